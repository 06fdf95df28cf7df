package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
)

// snapshotVersion is the format version written in the snapshot header.
const snapshotVersion = 1

// snapshotTables lists the tables a snapshot holds, in restore order.
// Lock delays are per-server wall-clock state and are not included.
var snapshotTables = []string{tableIndex, tableNodes, tableServices, tableChecks, tableKVs, tableTombstones, tableAutopilot,
	tableSessions, tableSessionChecks}

// snapshotHeader is the first record of a snapshot stream.
type snapshotHeader struct {
	Version int
}

// snapshotRecord is one row of one table.
type snapshotRecord struct {
	Table string
	Row   json.RawMessage
}

// Snapshot is a point-in-time read view of the whole store, for Raft
// snapshots. Release it when done.
type Snapshot struct {
	tx *memdb.Txn
}

// Snapshot returns a consistent view of the store. It is cheap (memdb is
// MVCC) and does not block writers.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{tx: s.db.Txn(false)}
}

// Release frees the snapshot.
func (sn *Snapshot) Release() { sn.tx.Abort() }

// Persist writes the snapshot as a stream of JSON records: a header, then
// one record per row of every table.
func (sn *Snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Version: snapshotVersion}); err != nil {
		return fmt.Errorf("state: write snapshot header: %w", err)
	}
	for _, table := range snapshotTables {
		it, err := sn.tx.Get(table, "id")
		if err != nil {
			return fmt.Errorf("state: snapshot table %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			row, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("state: snapshot row of %s: %w", table, err)
			}
			if err := enc.Encode(snapshotRecord{Table: table, Row: row}); err != nil {
				return fmt.Errorf("state: write snapshot row of %s: %w", table, err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("state: write snapshot: %w", err)
	}
	return nil
}

// Restore reads a stream written by Snapshot.Persist into a new store.
func Restore(r io.Reader) (*Store, error) {
	st, err := NewStore()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bufio.NewReader(r))
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, fmt.Errorf("state: read snapshot header: %w", err)
	}
	if hdr.Version != snapshotVersion {
		return nil, fmt.Errorf("state: snapshot version %d is not supported (want %d)", hdr.Version, snapshotVersion)
	}
	tx := st.db.Txn(true)
	defer tx.Abort()
	for {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("state: read snapshot record: %w", err)
		}
		row, err := decodeRow(rec)
		if err != nil {
			return nil, err
		}
		if err := tx.Insert(rec.Table, row); err != nil {
			return nil, fmt.Errorf("state: restore row of %s: %w", rec.Table, err)
		}
	}
	tx.Commit()
	return st, nil
}

func decodeRow(rec snapshotRecord) (any, error) {
	var row any
	switch rec.Table {
	case tableIndex:
		row = &indexEntry{}
	case tableNodes:
		row = &Node{}
	case tableServices:
		row = &serviceRow{}
	case tableChecks:
		row = &HealthCheck{}
	case tableKVs:
		row = &KVEntry{}
	case tableTombstones:
		row = &tombstone{}
	case tableAutopilot:
		row = &AutopilotConfig{}
	case tableSessions:
		row = &Session{}
	case tableSessionChecks:
		row = &sessionCheck{}
	default:
		return nil, fmt.Errorf("state: snapshot has unknown table %q", rec.Table)
	}
	if err := json.Unmarshal(rec.Row, row); err != nil {
		return nil, fmt.Errorf("state: decode snapshot row of %s: %w", rec.Table, err)
	}
	return row, nil
}

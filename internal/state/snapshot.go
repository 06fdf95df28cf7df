package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
)

// snapshotTables lists the tables a snapshot holds, in restore order.
// Lock delays are per-server wall-clock state and are not included.
var snapshotTables = []string{tableIndex, tableNodes, tableServices, tableChecks, tableKVs, tableTombstones, tableAutopilot,
	tableSessions, tableSessionChecks}

// snapshotHeader is the first record of a version 1 snapshot stream.
type snapshotHeader struct {
	Version int
}

// snapshotRecord is one row of one table in a version 1 stream.
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

// Persist writes the snapshot as a version 2 stream (see SnapshotV2).
func (sn *Snapshot) Persist(w io.Writer) error {
	return sn.PersistVersion(w, SnapshotV2)
}

// PersistVersion writes the snapshot in the given stream format: a header,
// then one record per row of every table. Version 1 is what servers wrote
// before version 2; it stays writable for tests and tools.
func (sn *Snapshot) PersistVersion(w io.Writer, version int) error {
	sw, err := NewSnapshotWriter(w, version)
	if err != nil {
		return err
	}
	for _, table := range snapshotTables {
		it, err := sn.tx.Get(table, "id")
		if err != nil {
			return fmt.Errorf("state: snapshot table %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := sw.WriteRow(table, raw); err != nil {
				return err
			}
		}
	}
	return sw.Close()
}

// Restore reads a stream written by Snapshot.Persist, in either format
// version, into a new store.
func Restore(r io.Reader) (*Store, error) {
	sr, err := NewSnapshotReader(r)
	if err != nil {
		return nil, err
	}
	st, err := NewStore()
	if err != nil {
		return nil, err
	}
	tx := st.db.Txn(true)
	defer tx.Abort()
	for {
		table, raw, err := sr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		row, err := decodeRow(sr, table, raw)
		if err != nil {
			return nil, err
		}
		if err := tx.Insert(table, row); err != nil {
			return nil, fmt.Errorf("state: restore row of %s: %w", table, err)
		}
	}
	tx.Commit()
	return st, nil
}

func decodeRow(sr *SnapshotReader, table string, raw []byte) (any, error) {
	var row any
	switch table {
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
		return nil, badSnapshot("unknown table %q", table)
	}
	if err := sr.DecodeRow(raw, row); err != nil {
		return nil, fmt.Errorf("state: snapshot row of %s: %w", table, err)
	}
	return row, nil
}

package server

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// stateIndexTable is the state store's table of per-table indexes, as it
// appears in the snapshot stream that state.Snapshot.Persist writes.
const stateIndexTable = "index"

// baseIndexKeys are the index entries that table-level reads consult. A
// restored state that lacks one (because that table was empty where the
// snapshot was taken) gets it at the floor, so that those reads report the
// floor too rather than 0.
var baseIndexKeys = []string{"nodes", "services", "checks", "kvs", "tombstones", "service_last_extinction", "sessions"}

// indexRow mirrors a row of the state store's index table.
type indexRow struct {
	Key   string
	Value uint64
}

// raiseIndexes copies the FSM snapshot stream from r to w, raising every
// index-table entry to at least floor and adding the base entries that are
// missing. Other rows pass through unchanged, so every KV entry, node,
// service and check keeps its own Create/ModifyIndex. The output keeps the
// input's format version (state.SnapshotV1 or state.SnapshotV2). It
// returns the number of bytes written.
func raiseIndexes(r io.Reader, w io.Writer, floor uint64) (int64, error) {
	sr, err := state.NewSnapshotReader(r)
	if err != nil {
		return 0, badState("read header", err)
	}
	cw := &countingWriter{w: w}
	sw, err := state.NewSnapshotWriter(cw, sr.Version())
	if err != nil {
		return 0, fmt.Errorf("server: write restore state: %w", err)
	}
	seen := map[string]bool{}
	for {
		table, raw, err := sr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, badState("read record", err)
		}
		if table != stateIndexTable {
			if err := sw.WriteRaw(table, raw); err != nil {
				return 0, fmt.Errorf("server: write restore state: %w", err)
			}
			continue
		}
		var row indexRow
		if err := sr.DecodeRow(raw, &row); err != nil {
			return 0, badState("decode index row", err)
		}
		if seen[row.Key] {
			return 0, badState("index row", fmt.Errorf("duplicate key %q", row.Key))
		}
		seen[row.Key] = true
		row.Value = max(row.Value, floor)
		if err := sw.WriteRow(table, &row); err != nil {
			return 0, fmt.Errorf("server: write restore state: %w", err)
		}
	}
	for _, k := range baseIndexKeys {
		if seen[k] {
			continue
		}
		if err := sw.WriteRow(stateIndexTable, &indexRow{Key: k, Value: floor}); err != nil {
			return 0, fmt.Errorf("server: write restore state: %w", err)
		}
	}
	if err := sw.Close(); err != nil {
		return 0, fmt.Errorf("server: write restore state: %w", err)
	}
	return cw.n, nil
}

func badState(what string, err error) error {
	return fmt.Errorf("server: snapshot state: %s: %v: %w", what, err, rpc.ErrBadRequest)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

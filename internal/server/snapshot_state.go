package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-io/cairn/internal/rpc"
)

// stateIndexTable is the state store's table of per-table indexes, as it
// appears in the snapshot stream that state.Snapshot.Persist writes: a
// header value, then one {"Table": ..., "Row": ...} value per row.
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

// streamRecord is one value of the snapshot stream after the header.
type streamRecord struct {
	Table string
	Row   json.RawMessage
}

// raiseIndexes copies the FSM snapshot stream from r to w, raising every
// index-table entry to at least floor and adding the base entries that are
// missing. Other rows pass through unchanged, so every KV entry, node,
// service and check keeps its own Create/ModifyIndex. It returns the number
// of bytes written.
func raiseIndexes(r io.Reader, w io.Writer, floor uint64) (int64, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	enc := json.NewEncoder(bw)

	var header json.RawMessage
	if err := dec.Decode(&header); err != nil {
		return 0, badState("read header", err)
	}
	if err := enc.Encode(header); err != nil {
		return 0, fmt.Errorf("server: write restore state: %w", err)
	}
	seen := map[string]bool{}
	for {
		var rec streamRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return 0, badState("read record", err)
		}
		if rec.Table == stateIndexTable {
			var row indexRow
			if err := json.Unmarshal(rec.Row, &row); err != nil {
				return 0, badState("decode index row", err)
			}
			if seen[row.Key] {
				return 0, badState("index row", fmt.Errorf("duplicate key %q", row.Key))
			}
			seen[row.Key] = true
			row.Value = max(row.Value, floor)
			raw, err := json.Marshal(row)
			if err != nil {
				return 0, fmt.Errorf("server: encode index row: %w", err)
			}
			rec.Row = raw
		}
		if err := enc.Encode(rec); err != nil {
			return 0, fmt.Errorf("server: write restore state: %w", err)
		}
	}
	for _, k := range baseIndexKeys {
		if seen[k] {
			continue
		}
		raw, _ := json.Marshal(indexRow{Key: k, Value: floor})
		if err := enc.Encode(streamRecord{Table: stateIndexTable, Row: raw}); err != nil {
			return 0, fmt.Errorf("server: write restore state: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
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

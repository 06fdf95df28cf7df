package raftlog

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/raft"
)

// importBatch is how many entries Import appends per write.
const importBatch = 256

// Import copies every entry of src and the given stable keys of stable
// (uintKeys read with GetUint64, byteKeys with Get) into s, which must be
// empty. It is how a data directory written by an older
// log store is carried over.
func (s *Store) Import(src raft.LogStore, stable raft.StableStore, uintKeys, byteKeys []string) error {
	if last, err := s.LastIndex(); err != nil || last != 0 {
		return fmt.Errorf("raftlog: import into a store that is not empty (last index %d): %v", last, err)
	}
	first, err := src.FirstIndex()
	if err != nil {
		return fmt.Errorf("raftlog: import: first index: %w", err)
	}
	last, err := src.LastIndex()
	if err != nil {
		return fmt.Errorf("raftlog: import: last index: %w", err)
	}
	if first != 0 {
		batch := make([]*raft.Log, 0, importBatch)
		for i := first; i <= last; i++ {
			l := new(raft.Log)
			if err := src.GetLog(i, l); err != nil {
				return fmt.Errorf("raftlog: import: read index %d: %w", i, err)
			}
			batch = append(batch, l)
			if len(batch) == importBatch || i == last {
				if err := s.StoreLogs(batch); err != nil {
					return fmt.Errorf("raftlog: import: %w", err)
				}
				batch = batch[:0]
			}
		}
	}
	// A uint64 key is stored as its 8 big-endian bytes (SetUint64), so
	// both kinds are written back with Set.
	for _, k := range uintKeys {
		n, err := stable.GetUint64([]byte(k))
		if err := s.importKey(k, binary.BigEndian.AppendUint64(nil, n), err); err != nil {
			return err
		}
	}
	for _, k := range byteKeys {
		v, err := stable.Get([]byte(k))
		if err := s.importKey(k, v, err); err != nil {
			return err
		}
	}
	return nil
}

// importKey stores key=v, read from the source with readErr; a key the
// source never had is skipped.
func (s *Store) importKey(key string, v []byte, readErr error) error {
	if readErr != nil && readErr.Error() == ErrKeyNotFound.Error() {
		return nil
	}
	if readErr != nil {
		return fmt.Errorf("raftlog: import: stable key %q: %w", key, readErr)
	}
	if err := s.Set([]byte(key), v); err != nil {
		return fmt.Errorf("raftlog: import: %w", err)
	}
	return nil
}

package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"

	"github.com/cairn-io/cairn/internal/fsutil"
)

// ErrKeyNotFound is returned by Get and GetUint64 for a key never set.
// hashicorp/raft compares the message, which must stay "not found".
var ErrKeyNotFound = errors.New("not found")

const (
	stableName  = "stable"
	stableMagic = "CAIRNST\x01"
	maxStableKV = 1 << 20
)

// stableFile holds the stable store's keys in memory and on disk in one
// file, rewritten whole and renamed into place on every Set. Raft sets keys
// only on elections and votes.
type stableFile struct {
	kv   map[string][]byte
	path string
}

// openStable loads dir/stable, or starts empty when it does not exist.
func openStable(dir string) (*stableFile, error) {
	st := &stableFile{kv: map[string][]byte{}, path: filepath.Join(dir, stableName)}
	data, err := os.ReadFile(st.path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: read %s: %w", st.path, err)
	}
	if err := st.decode(data); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, st.path, err)
	}
	return st, nil
}

// encode lays out: magic, count, then (key length, key, value length,
// value) per key in key order, then a CRC-32C of everything before it.
func (st *stableFile) encode() []byte {
	keys := make([]string, 0, len(st.kv))
	for k := range st.kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf := []byte(stableMagic)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(keys)))
	for _, k := range keys {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(k)))
		buf = append(buf, k...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(st.kv[k])))
		buf = append(buf, st.kv[k]...)
	}
	return binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

func (st *stableFile) decode(data []byte) error {
	if len(data) < len(stableMagic)+8 || string(data[:len(stableMagic)]) != stableMagic {
		return errors.New("not a stable store file")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return errors.New("checksum mismatch")
	}
	rest := body[len(stableMagic):]
	n := binary.LittleEndian.Uint32(rest)
	rest = rest[4:]
	next := func() ([]byte, error) {
		if len(rest) < 4 {
			return nil, errors.New("truncated")
		}
		l := binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(l) > uint64(len(rest)) {
			return nil, errors.New("truncated")
		}
		b := rest[:l:l]
		rest = rest[l:]
		return b, nil
	}
	for i := uint32(0); i < n; i++ {
		k, err := next()
		if err != nil {
			return err
		}
		v, err := next()
		if err != nil {
			return err
		}
		st.kv[string(k)] = append([]byte(nil), v...)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

// set stores key=val durably, replacing the file atomically.
func (st *stableFile) set(key string, val []byte) error {
	if len(key)+len(val) > maxStableKV {
		return fmt.Errorf("raftlog: stable key %q: %d bytes is over the limit", key, len(key)+len(val))
	}
	old, had := st.kv[key]
	st.kv[key] = append([]byte(nil), val...)
	if err := st.write(); err != nil {
		if had {
			st.kv[key] = old
		} else {
			delete(st.kv, key)
		}
		return err
	}
	return nil
}

func (st *stableFile) write() error {
	if err := fsutil.WriteFileAtomic(st.path, st.encode()); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	return nil
}

// Set implements raft.StableStore.
func (s *Store) Set(key []byte, val []byte) error {
	s.stableMu.Lock()
	defer s.stableMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	return s.stable.set(string(key), val)
}

// Get implements raft.StableStore; ErrKeyNotFound for a key never set.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.stableMu.Lock()
	defer s.stableMu.Unlock()
	if s.isClosed() {
		return nil, ErrClosed
	}
	v, ok := s.stable.kv[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return append([]byte(nil), v...), nil
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, not a uint64", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

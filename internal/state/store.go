package state

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-memdb"
)

// Sentinel errors of the state store.
var (
	// ErrMissingNode: a service or check was written for a node that does
	// not exist.
	ErrMissingNode = errors.New("state: missing node registration")
	// ErrMissingService: a check names a service the node does not have.
	ErrMissingService = errors.New("state: missing service registration")
	// ErrNodeIDConflict: a node ID is already used by another node name.
	ErrNodeIDConflict = errors.New("state: node ID already in use by another node")
	// ErrInvalidInput: a write is missing a required field.
	ErrInvalidInput = errors.New("state: invalid input")
)

// Store is the state store. It is safe for concurrent use: writes are
// serialized by memdb's writer lock and reads run on immutable snapshots.
type Store struct {
	db *memdb.MemDB

	// abandonCh is closed when the store is replaced by a restored one, so
	// blocking queries holding watches on this store wake up.
	abandonOnce sync.Once
	abandonCh   chan struct{}
}

// NewStore returns an empty state store.
func NewStore() (*Store, error) {
	db, err := newDB()
	if err != nil {
		return nil, err
	}
	return &Store{db: db, abandonCh: make(chan struct{})}, nil
}

// AbandonCh is closed once the store has been abandoned (replaced by a
// snapshot restore). Blocking queries add it to their watch set.
func (s *Store) AbandonCh() <-chan struct{} { return s.abandonCh }

// Abandon marks the store as replaced; it is safe to call more than once.
func (s *Store) Abandon() {
	s.abandonOnce.Do(func() { close(s.abandonCh) })
}

// MaxIndex returns the highest index of the named tables (0 when none of
// them has been written).
func (s *Store) MaxIndex(tables ...string) uint64 {
	tx := s.db.Txn(false)
	defer tx.Abort()
	return maxIndexTxn(tx, tables...)
}

// maxIndexTxn returns the highest index-table value among keys.
func maxIndexTxn(tx *memdb.Txn, keys ...string) uint64 {
	var max uint64
	for _, k := range keys {
		raw, err := tx.First(tableIndex, "id", k)
		if err != nil || raw == nil {
			continue
		}
		if v := raw.(*indexEntry).Value; v > max {
			max = v
		}
	}
	return max
}

// indexWatchTxn returns the value of one index entry and a channel that
// fires when it changes (or is created).
func indexWatchTxn(tx *memdb.Txn, key string) (uint64, <-chan struct{}) {
	ch, raw, err := tx.FirstWatch(tableIndex, "id", key)
	if err != nil || raw == nil {
		return 0, ch
	}
	return raw.(*indexEntry).Value, ch
}

// bumpIndexTxn sets the index entry key to idx unless it is already higher,
// so indexes never go backwards.
func bumpIndexTxn(tx *memdb.Txn, key string, idx uint64) error {
	raw, err := tx.First(tableIndex, "id", key)
	if err != nil {
		return fmt.Errorf("state: read index %q: %w", key, err)
	}
	if raw != nil && raw.(*indexEntry).Value >= idx {
		return nil
	}
	if err := tx.Insert(tableIndex, &indexEntry{Key: key, Value: idx}); err != nil {
		return fmt.Errorf("state: update index %q: %w", key, err)
	}
	return nil
}

// serviceIndexKey is the index-table key of a service name.
func serviceIndexKey(name string) string {
	return indexServicePrefix + strings.ToLower(name)
}

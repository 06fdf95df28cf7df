package state

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// KVGet returns the entry at key (nil when missing) and the index a client
// should see: the entry's ModifyIndex when it exists, else the KV table
// index (which includes deletes), so the index never goes backwards.
func (s *Store) KVGet(ws memdb.WatchSet, key string) (uint64, *KVEntry, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()

	ch, raw, err := tx.FirstWatch(tableKVs, "id", key)
	if err != nil {
		return 0, nil, fmt.Errorf("state: kv get %q: %w", key, err)
	}
	ws.Add(ch)
	if raw == nil {
		return maxIndexTxn(tx, tableKVs, tableTombstones), nil, nil
	}
	e := raw.(*KVEntry)
	return e.ModifyIndex, cloneKV(e), nil
}

// KVList returns every entry whose key starts with prefix, sorted by key.
// The index is the highest ModifyIndex among them and the tombstones of
// deleted keys under the prefix; with neither, the KV table index.
func (s *Store) KVList(ws memdb.WatchSet, prefix string) (uint64, []*KVEntry, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()

	idx, err := tombstoneIndexTxn(tx, ws, prefix)
	if err != nil {
		return 0, nil, err
	}
	it, err := tx.Get(tableKVs, "id_prefix", prefix)
	if err != nil {
		return 0, nil, fmt.Errorf("state: kv list %q: %w", prefix, err)
	}
	ws.Add(it.WatchCh())
	var out []*KVEntry
	for raw := it.Next(); raw != nil; raw = it.Next() {
		e := raw.(*KVEntry)
		if e.ModifyIndex > idx {
			idx = e.ModifyIndex
		}
		out = append(out, cloneKV(e))
	}
	if idx == 0 {
		idx = maxIndexTxn(tx, tableKVs, tableTombstones)
	}
	return idx, out, nil
}

// KVKeys lists the keys under prefix. With a separator, keys are rolled up
// at the first separator after the prefix ("a/" with "/" gives "a/b" and
// "a/c/" for keys a/b, a/c/d and a/c/e). The index is computed as in KVList.
func (s *Store) KVKeys(ws memdb.WatchSet, prefix, separator string) (uint64, []string, error) {
	idx, entries, err := s.KVList(ws, prefix)
	if err != nil {
		return 0, nil, err
	}
	keys := make([]string, 0, len(entries))
	last := ""
	for _, e := range entries {
		if separator == "" {
			keys = append(keys, e.Key)
			continue
		}
		after := e.Key[len(prefix):]
		i := strings.Index(after, separator)
		if i < 0 {
			keys = append(keys, e.Key)
			last = ""
			continue
		}
		rolled := e.Key[:len(prefix)+i+len(separator)]
		if rolled != last {
			keys = append(keys, rolled)
			last = rolled
		}
	}
	return idx, keys, nil
}

// tombstoneIndexTxn returns the highest delete index of keys under prefix
// and watches the tombstones there.
func tombstoneIndexTxn(tx *memdb.Txn, ws memdb.WatchSet, prefix string) (uint64, error) {
	it, err := tx.Get(tableTombstones, "id_prefix", prefix)
	if err != nil {
		return 0, fmt.Errorf("state: kv tombstones %q: %w", prefix, err)
	}
	ws.Add(it.WatchCh())
	var idx uint64
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if t := raw.(*tombstone); t.Index > idx {
			idx = t.Index
		}
	}
	return idx, nil
}

// KVSet writes entry at index idx. CreateIndex, LockIndex and Session of an
// existing entry are kept.
func (s *Store) KVSet(idx uint64, entry *KVEntry) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := kvSetTxn(tx, idx, entry); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

// KVSetCAS writes entry only if its ModifyIndex matches the stored one (0:
// only if the key does not exist). It reports whether the write happened.
func (s *Store) KVSetCAS(idx uint64, entry *KVEntry) (bool, error) {
	tx := s.db.Txn(true)
	defer tx.Abort()

	raw, err := tx.First(tableKVs, "id", entry.Key)
	if err != nil {
		return false, fmt.Errorf("state: kv cas %q: %w", entry.Key, err)
	}
	switch {
	case entry.ModifyIndex == 0 && raw != nil:
		return false, nil
	case entry.ModifyIndex != 0 && raw == nil:
		return false, nil
	case raw != nil && raw.(*KVEntry).ModifyIndex != entry.ModifyIndex:
		return false, nil
	}
	if err := kvSetTxn(tx, idx, entry); err != nil {
		return false, err
	}
	tx.Commit()
	return true, nil
}

func kvSetTxn(tx *memdb.Txn, idx uint64, entry *KVEntry) error {
	if entry.Key == "" {
		return fmt.Errorf("%w: missing key", ErrInvalidInput)
	}
	raw, err := tx.First(tableKVs, "id", entry.Key)
	if err != nil {
		return fmt.Errorf("state: kv set %q: %w", entry.Key, err)
	}
	e := cloneKV(entry)
	e.CreateIndex, e.ModifyIndex = idx, idx
	if raw != nil {
		old := raw.(*KVEntry)
		e.CreateIndex = old.CreateIndex
		e.LockIndex = old.LockIndex
		e.Session = old.Session
	} else {
		e.LockIndex, e.Session = 0, ""
	}
	if err := tx.Insert(tableKVs, e); err != nil {
		return fmt.Errorf("state: kv set %q: %w", entry.Key, err)
	}
	// A re-created key's index is above its tombstone's; drop the tombstone.
	if _, err := tx.DeleteAll(tableTombstones, "id", entry.Key); err != nil {
		return fmt.Errorf("state: kv set %q: %w", entry.Key, err)
	}
	return bumpIndexTxn(tx, tableKVs, idx)
}

// KVDelete deletes key; deleting a missing key is a no-op.
func (s *Store) KVDelete(idx uint64, key string) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := kvDeleteTxn(tx, idx, key); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

// KVDeleteCAS deletes key only if its ModifyIndex equals casIndex. A missing
// key counts as success, as in Consul.
func (s *Store) KVDeleteCAS(idx, casIndex uint64, key string) (bool, error) {
	tx := s.db.Txn(true)
	defer tx.Abort()
	raw, err := tx.First(tableKVs, "id", key)
	if err != nil {
		return false, fmt.Errorf("state: kv delete-cas %q: %w", key, err)
	}
	if raw == nil {
		return true, nil
	}
	if raw.(*KVEntry).ModifyIndex != casIndex {
		return false, nil
	}
	if err := kvDeleteTxn(tx, idx, key); err != nil {
		return false, err
	}
	tx.Commit()
	return true, nil
}

// KVDeleteTree deletes every key that starts with prefix ("" deletes all).
func (s *Store) KVDeleteTree(idx uint64, prefix string) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	it, err := tx.Get(tableKVs, "id_prefix", prefix)
	if err != nil {
		return fmt.Errorf("state: kv delete-tree %q: %w", prefix, err)
	}
	var keys []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		keys = append(keys, raw.(*KVEntry).Key)
	}
	for _, k := range keys {
		if err := kvDeleteTxn(tx, idx, k); err != nil {
			return err
		}
	}
	tx.Commit()
	return nil
}

func kvDeleteTxn(tx *memdb.Txn, idx uint64, key string) error {
	raw, err := tx.First(tableKVs, "id", key)
	if err != nil {
		return fmt.Errorf("state: kv delete %q: %w", key, err)
	}
	if raw == nil {
		return nil
	}
	if err := tx.Delete(tableKVs, raw); err != nil {
		return fmt.Errorf("state: kv delete %q: %w", key, err)
	}
	if err := tx.Insert(tableTombstones, &tombstone{Key: key, Index: idx}); err != nil {
		return fmt.Errorf("state: kv tombstone %q: %w", key, err)
	}
	if err := bumpIndexTxn(tx, tableKVs, idx); err != nil {
		return err
	}
	return bumpIndexTxn(tx, tableTombstones, idx)
}

func cloneKV(e *KVEntry) *KVEntry {
	c := *e
	if e.Value != nil {
		c.Value = append([]byte(nil), e.Value...)
	}
	return &c
}

package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// KVLock acquires key for entry.Session at index idx, writing entry's value
// and flags. It succeeds when the key is unlocked (LockIndex goes up by
// one) or already held by the same session (LockIndex unchanged), and
// reports false when another session holds it. The session must exist.
// Lock delay is not checked here: it is wall-clock state the leader checks
// before proposing the write.
func (s *Store) KVLock(idx uint64, entry *KVEntry) (bool, error) {
	tx := s.db.Txn(true)
	defer tx.Abort()
	ok, err := kvLockTxn(tx, idx, entry)
	if !ok || err != nil {
		return false, err
	}
	tx.Commit()
	return true, nil
}

// KVUnlock releases key if entry.Session holds it, writing entry's value
// and flags; LockIndex is kept. It reports false when the key is missing or
// held by someone else.
func (s *Store) KVUnlock(idx uint64, entry *KVEntry) (bool, error) {
	tx := s.db.Txn(true)
	defer tx.Abort()
	ok, err := kvUnlockTxn(tx, idx, entry)
	if !ok || err != nil {
		return false, err
	}
	tx.Commit()
	return true, nil
}

func kvLockTxn(tx *memdb.Txn, idx uint64, entry *KVEntry) (bool, error) {
	if entry.Key == "" {
		return false, fmt.Errorf("%w: missing key", ErrInvalidInput)
	}
	if entry.Session == "" {
		return false, fmt.Errorf("%w: missing session", ErrInvalidInput)
	}
	sraw, err := tx.First(tableSessions, "id", entry.Session)
	if err != nil {
		return false, fmt.Errorf("state: read session %q: %w", entry.Session, err)
	}
	if sraw == nil {
		return false, &consulError{msg: fmt.Sprintf("invalid session %q", entry.Session), kind: ErrInvalidSession}
	}
	raw, err := tx.First(tableKVs, "id", entry.Key)
	if err != nil {
		return false, fmt.Errorf("state: kv lock %q: %w", entry.Key, err)
	}
	e := cloneKV(entry)
	e.Session = sraw.(*Session).ID
	e.CreateIndex, e.ModifyIndex, e.LockIndex = idx, idx, 1
	if raw != nil {
		old := raw.(*KVEntry)
		switch {
		case old.Session == e.Session:
			e.LockIndex = old.LockIndex
		case old.Session != "":
			return false, nil
		default:
			e.LockIndex = old.LockIndex + 1
		}
		e.CreateIndex = old.CreateIndex
	}
	if _, err := tx.DeleteAll(tableLockDelays, "id", e.Key); err != nil {
		return false, fmt.Errorf("state: clear lock delay of %q: %w", e.Key, err)
	}
	return true, kvInsertTxn(tx, idx, e)
}

func kvUnlockTxn(tx *memdb.Txn, idx uint64, entry *KVEntry) (bool, error) {
	if entry.Key == "" {
		return false, fmt.Errorf("%w: missing key", ErrInvalidInput)
	}
	if entry.Session == "" {
		return false, fmt.Errorf("%w: missing session", ErrInvalidInput)
	}
	raw, err := tx.First(tableKVs, "id", entry.Key)
	if err != nil {
		return false, fmt.Errorf("state: kv unlock %q: %w", entry.Key, err)
	}
	if raw == nil {
		return false, nil
	}
	old := raw.(*KVEntry)
	if old.Session != entry.Session {
		return false, nil
	}
	e := cloneKV(entry)
	e.Session = ""
	e.LockIndex, e.CreateIndex, e.ModifyIndex = old.LockIndex, old.CreateIndex, idx
	return true, kvInsertTxn(tx, idx, e)
}

// kvInsertTxn writes e exactly as given (its indexes already set), drops a
// tombstone of the key and bumps the KV index.
func kvInsertTxn(tx *memdb.Txn, idx uint64, e *KVEntry) error {
	if err := tx.Insert(tableKVs, e); err != nil {
		return fmt.Errorf("state: kv write %q: %w", e.Key, err)
	}
	if _, err := tx.DeleteAll(tableTombstones, "id", e.Key); err != nil {
		return fmt.Errorf("state: kv write %q: %w", e.Key, err)
	}
	return bumpIndexTxn(tx, tableKVs, idx)
}

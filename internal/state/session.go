package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Session tables. Sessions and their check bindings are replicated and
// snapshotted; lock delays are local to each server (see lockDelay).
const (
	tableSessions      = "sessions"
	tableSessionChecks = "session_checks"
	tableLockDelays    = "lock_delays"
)

// Session behaviors: what happens to the keys a session holds when it is
// invalidated.
const (
	SessionBehaviorRelease = "release"
	SessionBehaviorDelete  = "delete"
)

// Sentinel errors of session writes.
var (
	// ErrMissingCheck: a session names a check its node does not have.
	ErrMissingCheck = errors.New("state: missing check registration")
	// ErrCheckCritical: a session names a check that is critical.
	ErrCheckCritical = errors.New("state: check is critical")
	// ErrSessionExists: a session ID is already in use.
	ErrSessionExists = errors.New("state: session ID already in use")
	// ErrInvalidSession: a lock names a session that does not exist.
	ErrInvalidSession = errors.New("state: invalid session")
)

// consulError carries the exact message Consul sends for a failure (clients
// and operators match on it) while still matching a package sentinel.
type consulError struct {
	msg  string
	kind error
}

func (e *consulError) Error() string { return e.msg }
func (e *consulError) Unwrap() error { return e.kind }

// ServiceCheck names a service check a session is bound to.
type ServiceCheck struct {
	ID        string
	Namespace string
}

// Session is a session as /v1/session returns it (Consul's SessionEntry).
// LockDelay is in nanoseconds on the wire, TTL a duration string.
type Session struct {
	ID            string
	Name          string
	Node          string
	LockDelay     time.Duration
	Behavior      string
	TTL           string
	Checks        []string `json:",omitempty"`
	NodeChecks    []string
	ServiceChecks []ServiceCheck
	CreateIndex   uint64
	ModifyIndex   uint64
}

// CheckIDs returns every check the session is bound to; all of them are
// checks of the session's node.
func (s *Session) CheckIDs() []string {
	out := slices.Clone(s.NodeChecks)
	for _, sc := range s.ServiceChecks {
		out = append(out, sc.ID)
	}
	return out
}

// sessionCheck binds a session to one check of its node, so that the check
// going critical (or away) finds the sessions to invalidate.
type sessionCheck struct {
	Node    string
	CheckID string
	Session string
}

// lockDelay is the time until which a key released by an invalidated
// session may not be locked again. It lives in the database so that it is
// written in the same transaction as the invalidation, but it is not part
// of snapshots: like Consul's, it is per-server wall-clock state.
type lockDelay struct {
	Key     string
	Expires time.Time
}

func sessionsTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSessions,
		Indexes: map[string]*memdb.IndexSchema{
			"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID", Lowercase: true}},
			"node": {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true}},
		},
	}
}

func sessionChecksTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableSessionChecks,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
				&memdb.StringFieldIndex{Field: "CheckID"},
				&memdb.StringFieldIndex{Field: "Session", Lowercase: true},
			}}},
			"node_check": {Name: "node_check", Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
				&memdb.StringFieldIndex{Field: "CheckID"},
			}}},
			"session": {Name: "session", Indexer: &memdb.StringFieldIndex{Field: "Session", Lowercase: true}},
		},
	}
}

func lockDelaysTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableLockDelays,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		},
	}
}

// SessionCreate stores a new session at index idx. The node must exist and
// every bound check must exist on it and not be critical; the messages of
// those failures are Consul's.
func (s *Store) SessionCreate(idx uint64, sess *Session) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := sessionCreateTxn(tx, idx, sess); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

func sessionCreateTxn(tx *memdb.Txn, idx uint64, in *Session) error {
	if in == nil || in.ID == "" {
		return fmt.Errorf("%w: missing session ID", ErrInvalidInput)
	}
	switch in.Behavior {
	case SessionBehaviorRelease, SessionBehaviorDelete:
	default:
		return fmt.Errorf("%w: invalid session behavior %q", ErrInvalidInput, in.Behavior)
	}
	raw, err := tx.First(tableSessions, "id", in.ID)
	if err != nil {
		return fmt.Errorf("state: read session %q: %w", in.ID, err)
	}
	if raw != nil {
		return fmt.Errorf("%w: %q", ErrSessionExists, in.ID)
	}
	nraw, err := tx.First(tableNodes, "id", in.Node)
	if err != nil {
		return fmt.Errorf("state: read node %q: %w", in.Node, err)
	}
	if nraw == nil {
		return &consulError{msg: "Missing node registration", kind: ErrMissingNode}
	}
	sess := cloneSession(in)
	sess.Node = nraw.(*Node).Node
	sess.CreateIndex, sess.ModifyIndex = idx, idx
	ids := sess.CheckIDs()
	for _, id := range ids {
		craw, err := tx.First(tableChecks, "id", sess.Node, id)
		if err != nil {
			return fmt.Errorf("state: read check %q: %w", id, err)
		}
		if craw == nil {
			return &consulError{msg: fmt.Sprintf("Missing check '%s' registration", id), kind: ErrMissingCheck}
		}
		if st := craw.(*HealthCheck).Status; st == HealthCritical {
			return &consulError{msg: fmt.Sprintf("Check '%s' is in %s state", id, st), kind: ErrCheckCritical}
		}
	}
	if err := tx.Insert(tableSessions, sess); err != nil {
		return fmt.Errorf("state: write session %q: %w", sess.ID, err)
	}
	for _, id := range ids {
		row := &sessionCheck{Node: sess.Node, CheckID: id, Session: sess.ID}
		if err := tx.Insert(tableSessionChecks, row); err != nil {
			return fmt.Errorf("state: bind session %q to check %q: %w", sess.ID, id, err)
		}
	}
	return bumpIndexTxn(tx, tableSessions, idx)
}

// SessionGet returns one session (nil when missing) and the sessions table
// index.
func (s *Store) SessionGet(ws memdb.WatchSet, id string) (uint64, *Session, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	idx, ch := indexWatchTxn(tx, tableSessions)
	ws.Add(ch)
	sraw, err := tx.First(tableSessions, "id", id)
	if err != nil {
		return 0, nil, fmt.Errorf("state: read session %q: %w", id, err)
	}
	if sraw == nil {
		return idx, nil, nil
	}
	return idx, cloneSession(sraw.(*Session)), nil
}

// SessionList returns every session sorted by ID.
func (s *Store) SessionList(ws memdb.WatchSet) (uint64, []*Session, error) {
	return s.sessionsBy(ws, "id")
}

// NodeSessions returns the sessions of node sorted by ID.
func (s *Store) NodeSessions(ws memdb.WatchSet, node string) (uint64, []*Session, error) {
	return s.sessionsBy(ws, "node", node)
}

func (s *Store) sessionsBy(ws memdb.WatchSet, index string, args ...any) (uint64, []*Session, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	it, err := tx.Get(tableSessions, index, args...)
	if err != nil {
		return 0, nil, fmt.Errorf("state: list sessions: %w", err)
	}
	ws.Add(it.WatchCh())
	out := []*Session{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, cloneSession(raw.(*Session)))
	}
	slices.SortFunc(out, func(a, b *Session) int { return strings.Compare(a.ID, b.ID) })
	return maxIndexTxn(tx, tableSessions), out, nil
}

// SessionDestroy invalidates a session at index idx: its locks are released
// or its keys deleted (by its Behavior) and those keys get its lock delay.
// A missing session is a no-op.
func (s *Store) SessionDestroy(idx uint64, id string) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := deleteSessionTxn(tx, idx, id); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

func deleteSessionTxn(tx *memdb.Txn, idx uint64, id string) error {
	raw, err := tx.First(tableSessions, "id", id)
	if err != nil {
		return fmt.Errorf("state: read session %q: %w", id, err)
	}
	if raw == nil {
		return nil
	}
	sess := raw.(*Session)
	if err := tx.Delete(tableSessions, sess); err != nil {
		return fmt.Errorf("state: delete session %q: %w", id, err)
	}
	if _, err := tx.DeleteAll(tableSessionChecks, "session", sess.ID); err != nil {
		return fmt.Errorf("state: unbind checks of session %q: %w", id, err)
	}
	it, err := tx.Get(tableKVs, "session", sess.ID)
	if err != nil {
		return fmt.Errorf("state: read keys of session %q: %w", id, err)
	}
	var held []*KVEntry
	for kv := it.Next(); kv != nil; kv = it.Next() {
		held = append(held, kv.(*KVEntry))
	}
	now := time.Now()
	for _, e := range held {
		switch sess.Behavior {
		case SessionBehaviorDelete:
			if err := kvDeleteTxn(tx, idx, e.Key); err != nil {
				return err
			}
		default:
			c := cloneKV(e)
			c.Session, c.ModifyIndex = "", idx
			if err := kvInsertTxn(tx, idx, c); err != nil {
				return err
			}
		}
		if sess.LockDelay > 0 {
			if err := tx.Insert(tableLockDelays, &lockDelay{Key: e.Key, Expires: now.Add(sess.LockDelay)}); err != nil {
				return fmt.Errorf("state: lock delay of %q: %w", e.Key, err)
			}
		}
	}
	return bumpIndexTxn(tx, tableSessions, idx)
}

// invalidateCheckSessionsTxn destroys the sessions bound to a check of node
// (called when the check goes critical or is deleted).
func invalidateCheckSessionsTxn(tx *memdb.Txn, idx uint64, node, checkID string) error {
	it, err := tx.Get(tableSessionChecks, "node_check", node, checkID)
	if err != nil {
		return fmt.Errorf("state: read sessions of check %q: %w", checkID, err)
	}
	return destroyCollectedTxn(tx, idx, it, func(raw any) string { return raw.(*sessionCheck).Session })
}

// invalidateNodeSessionsTxn destroys every session of node (called when the
// node is deleted).
func invalidateNodeSessionsTxn(tx *memdb.Txn, idx uint64, node string) error {
	it, err := tx.Get(tableSessions, "node", node)
	if err != nil {
		return fmt.Errorf("state: read sessions of node %q: %w", node, err)
	}
	return destroyCollectedTxn(tx, idx, it, func(raw any) string { return raw.(*Session).ID })
}

// destroyCollectedTxn collects session IDs first, because deleting while
// iterating is not allowed.
func destroyCollectedTxn(tx *memdb.Txn, idx uint64, it memdb.ResultIterator, id func(any) string) error {
	var ids []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ids = append(ids, id(raw))
	}
	for _, sid := range ids {
		if err := deleteSessionTxn(tx, idx, sid); err != nil {
			return err
		}
	}
	return nil
}

// KVLockDelay returns the time until which key may not be locked because a
// session holding it was invalidated (zero when there is no delay).
func (s *Store) KVLockDelay(key string) time.Time {
	tx := s.db.Txn(false)
	defer tx.Abort()
	raw, err := tx.First(tableLockDelays, "id", key)
	if err != nil || raw == nil {
		return time.Time{}
	}
	return raw.(*lockDelay).Expires
}

func cloneSession(s *Session) *Session {
	c := *s
	c.Checks = slices.Clone(s.Checks)
	c.NodeChecks = slices.Clone(s.NodeChecks)
	c.ServiceChecks = slices.Clone(s.ServiceChecks)
	return &c
}

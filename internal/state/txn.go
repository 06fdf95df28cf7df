package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Verbs of transaction operations, as Consul spells them. KV operations use
// all of them; node, service and check operations use set, cas, get,
// delete and delete-cas.
const (
	TxnSet            = "set"
	TxnCAS            = "cas"
	TxnLock           = "lock"
	TxnUnlock         = "unlock"
	TxnGet            = "get"
	TxnGetOrEmpty     = "get-or-empty"
	TxnGetTree        = "get-tree"
	TxnCheckIndex     = "check-index"
	TxnCheckSession   = "check-session"
	TxnCheckNotExists = "check-not-exists"
	TxnDelete         = "delete"
	TxnDeleteTree     = "delete-tree"
	TxnDeleteCAS      = "delete-cas"
)

// TxnKVOp is one KV operation. Entry.ModifyIndex is the operation's Index
// (for cas, check-index and delete-cas).
type TxnKVOp struct {
	Verb  string
	Entry KVEntry
}

// TxnNodeOp is one node operation; the node is found by ID when it has one,
// else by name.
type TxnNodeOp struct {
	Verb string
	Node Node
}

// TxnServiceOp is one operation on a service instance of Node.
type TxnServiceOp struct {
	Verb    string
	Node    string
	Service NodeService
}

// TxnCheckOp is one health check operation (Check.Node names the node).
type TxnCheckOp struct {
	Verb  string
	Check HealthCheck
}

// TxnOp is one operation of a transaction; exactly one field is set.
type TxnOp struct {
	KV      *TxnKVOp      `json:",omitempty"`
	Node    *TxnNodeOp    `json:",omitempty"`
	Service *TxnServiceOp `json:",omitempty"`
	Check   *TxnCheckOp   `json:",omitempty"`
}

// TxnResult is the result of one operation (Consul's shape). KV values are
// only returned by get and get-tree; deletes return no result.
type TxnResult struct {
	KV      *KVEntry     `json:",omitempty"`
	Node    *Node        `json:",omitempty"`
	Service *NodeService `json:",omitempty"`
	Check   *HealthCheck `json:",omitempty"`
}

// TxnError names an operation that failed and why.
type TxnError struct {
	OpIndex int
	What    string
}

// verb returns the operation's verb ("" when no field is set).
func (op *TxnOp) verb() string {
	switch {
	case op == nil:
		return ""
	case op.KV != nil:
		return op.KV.Verb
	case op.Node != nil:
		return op.Node.Verb
	case op.Service != nil:
		return op.Service.Verb
	case op.Check != nil:
		return op.Check.Verb
	}
	return ""
}

// IsRead reports whether the operation only reads.
func (op *TxnOp) IsRead() bool {
	switch op.verb() {
	case TxnGet, TxnGetOrEmpty, TxnGetTree, TxnCheckIndex, TxnCheckSession, TxnCheckNotExists:
		return true
	}
	return false
}

// TxnReadOnly reports whether every operation of ops only reads.
func TxnReadOnly(ops []*TxnOp) bool {
	for _, op := range ops {
		if !op.IsRead() {
			return false
		}
	}
	return true
}

// Txn applies ops at index idx in one state store transaction: all of them
// or, if any fails, none. The errors name every operation that failed.
func (s *Store) Txn(idx uint64, ops []*TxnOp) ([]*TxnResult, []*TxnError) {
	tx := s.db.Txn(true)
	defer tx.Abort()
	results, errs := txnDispatch(tx, idx, ops)
	if len(errs) > 0 {
		return nil, errs
	}
	tx.Commit()
	return results, nil
}

// TxnRead runs read-only ops against one consistent view and returns the
// highest index of the tables they can read. Write operations fail.
func (s *Store) TxnRead(ws memdb.WatchSet, ops []*TxnOp) (uint64, []*TxnResult, []*TxnError) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	for i, op := range ops {
		if !op.IsRead() {
			return 0, nil, []*TxnError{{OpIndex: i, What: fmt.Sprintf("operation %q is not a read", op.verb())}}
		}
	}
	idx := maxIndexTxn(tx, tableKVs, tableTombstones, tableNodes, tableServices, tableChecks)
	results, errs := txnDispatch(tx, 0, ops)
	if len(errs) > 0 {
		return idx, nil, errs
	}
	return idx, results, nil
}

func txnDispatch(tx *memdb.Txn, idx uint64, ops []*TxnOp) ([]*TxnResult, []*TxnError) {
	var (
		results []*TxnResult
		errs    []*TxnError
	)
	for i, op := range ops {
		var (
			res []*TxnResult
			err error
		)
		switch {
		case op == nil:
			err = fmt.Errorf("empty operation")
		case op.KV != nil:
			res, err = txnKV(tx, idx, op.KV)
		case op.Node != nil:
			res, err = txnNode(tx, idx, op.Node)
		case op.Service != nil:
			res, err = txnService(tx, idx, op.Service)
		case op.Check != nil:
			res, err = txnCheck(tx, idx, op.Check)
		default:
			err = fmt.Errorf("operation has no KV, Node, Service or Check")
		}
		if err != nil {
			errs = append(errs, &TxnError{OpIndex: i, What: err.Error()})
			continue
		}
		results = append(results, res...)
	}
	return results, errs
}

// kvResult reads key back for a result; with value false the value is
// left out, as Consul does for every verb but get and get-tree.
func kvResult(tx *memdb.Txn, key string, value bool) ([]*TxnResult, error) {
	raw, err := tx.First(tableKVs, "id", key)
	if err != nil {
		return nil, fmt.Errorf("state: read key %q: %w", key, err)
	}
	if raw == nil {
		return []*TxnResult{{}}, nil
	}
	e := cloneKV(raw.(*KVEntry))
	if !value {
		e.Value = nil
	}
	return []*TxnResult{{KV: e}}, nil
}

func txnKV(tx *memdb.Txn, idx uint64, op *TxnKVOp) ([]*TxnResult, error) {
	e := &op.Entry
	if e.Key == "" && op.Verb != TxnGetTree && op.Verb != TxnDeleteTree {
		return nil, fmt.Errorf("missing key for KV %q operation", op.Verb)
	}
	existing := func() (*KVEntry, error) {
		raw, err := tx.First(tableKVs, "id", e.Key)
		if err != nil || raw == nil {
			return nil, err
		}
		return raw.(*KVEntry), nil
	}
	switch op.Verb {
	case TxnSet:
		w := cloneKV(e)
		w.Session, w.LockIndex = "", 0
		if err := kvSetTxn(tx, idx, w); err != nil {
			return nil, err
		}
		return kvResult(tx, e.Key, false)
	case TxnCAS:
		old, err := existing()
		if err != nil {
			return nil, err
		}
		if (e.ModifyIndex == 0 && old != nil) || (e.ModifyIndex != 0 && (old == nil || old.ModifyIndex != e.ModifyIndex)) {
			return nil, fmt.Errorf("failed to set key %q, index is stale", e.Key)
		}
		w := cloneKV(e)
		w.Session, w.LockIndex = "", 0
		if err := kvSetTxn(tx, idx, w); err != nil {
			return nil, err
		}
		return kvResult(tx, e.Key, false)
	case TxnLock:
		ok, err := kvLockTxn(tx, idx, e)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("failed to lock key %q, lock is already held", e.Key)
		}
		return kvResult(tx, e.Key, false)
	case TxnUnlock:
		ok, err := kvUnlockTxn(tx, idx, e)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("failed to unlock key %q, lock isn't held, or is held by another session", e.Key)
		}
		return kvResult(tx, e.Key, false)
	case TxnGet, TxnGetOrEmpty:
		old, err := existing()
		if err != nil {
			return nil, err
		}
		if old == nil {
			if op.Verb == TxnGetOrEmpty {
				return []*TxnResult{{}}, nil
			}
			return nil, fmt.Errorf("key %q doesn't exist", e.Key)
		}
		return []*TxnResult{{KV: cloneKV(old)}}, nil
	case TxnGetTree:
		it, err := tx.Get(tableKVs, "id_prefix", e.Key)
		if err != nil {
			return nil, fmt.Errorf("state: list %q: %w", e.Key, err)
		}
		var out []*TxnResult
		for raw := it.Next(); raw != nil; raw = it.Next() {
			out = append(out, &TxnResult{KV: cloneKV(raw.(*KVEntry))})
		}
		return out, nil
	case TxnCheckIndex, TxnCheckSession, TxnCheckNotExists:
		old, err := existing()
		if err != nil {
			return nil, err
		}
		if op.Verb == TxnCheckNotExists {
			if old != nil {
				return nil, fmt.Errorf("key %q exists", e.Key)
			}
			return nil, nil
		}
		if old == nil {
			return nil, fmt.Errorf("key %q doesn't exist", e.Key)
		}
		if op.Verb == TxnCheckIndex && old.ModifyIndex != e.ModifyIndex {
			return nil, fmt.Errorf("current modify index %d != %d", old.ModifyIndex, e.ModifyIndex)
		}
		if op.Verb == TxnCheckSession && old.Session != e.Session {
			return nil, fmt.Errorf("key %q is not currently locked by session %q", e.Key, e.Session)
		}
		return kvResult(tx, e.Key, false)
	case TxnDelete:
		return nil, kvDeleteTxn(tx, idx, e.Key)
	case TxnDeleteCAS:
		old, err := existing()
		if err != nil {
			return nil, err
		}
		if old != nil && old.ModifyIndex != e.ModifyIndex {
			return nil, fmt.Errorf("failed to delete key %q, index is stale", e.Key)
		}
		return nil, kvDeleteTxn(tx, idx, e.Key)
	case TxnDeleteTree:
		return nil, kvDeleteTreeTxn(tx, idx, e.Key)
	default:
		return nil, fmt.Errorf("unknown KV verb %q", op.Verb)
	}
}

func kvDeleteTreeTxn(tx *memdb.Txn, idx uint64, prefix string) error {
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
	return nil
}

// findNodeTxn finds a node by ID when it has one, else by name.
func findNodeTxn(tx *memdb.Txn, n *Node) (*Node, error) {
	index, key := "id", n.Node
	if n.ID != "" {
		index, key = "uuid", n.ID
	}
	raw, err := tx.First(tableNodes, index, key)
	if err != nil {
		return nil, fmt.Errorf("state: read node %q: %w", key, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*Node), nil
}

func txnNode(tx *memdb.Txn, idx uint64, op *TxnNodeOp) ([]*TxnResult, error) {
	n := &op.Node
	if n.Node == "" && n.ID == "" {
		return nil, fmt.Errorf("node operation %q needs a node ID or name", op.Verb)
	}
	old, err := findNodeTxn(tx, n)
	if err != nil {
		return nil, err
	}
	name := n.Node
	if name == "" && old != nil {
		name = old.Node
	}
	switch op.Verb {
	case TxnGet:
		if old == nil {
			return nil, fmt.Errorf("node %q doesn't exist", name)
		}
		return []*TxnResult{{Node: cloneNode(old)}}, nil
	case TxnSet, TxnCAS:
		if op.Verb == TxnCAS && !casMatches(old != nil, modifyIndexOf(old), n.ModifyIndex) {
			return nil, fmt.Errorf("failed to set node %q, index is stale", name)
		}
		if n.Node == "" {
			return nil, fmt.Errorf("node set needs a node name")
		}
		if _, err := ensureNodeTxn(tx, idx, n); err != nil {
			return nil, err
		}
		cur, err := findNodeTxn(tx, &Node{Node: n.Node})
		if err != nil || cur == nil {
			return nil, fmt.Errorf("node %q was not written: %v", n.Node, err)
		}
		return []*TxnResult{{Node: cloneNode(cur)}}, nil
	case TxnDelete, TxnDeleteCAS:
		if old == nil {
			return nil, nil
		}
		if op.Verb == TxnDeleteCAS && old.ModifyIndex != n.ModifyIndex {
			return nil, fmt.Errorf("failed to delete node %q, index is stale", name)
		}
		return nil, deleteNodeTxn(tx, idx, old.Node)
	default:
		return nil, fmt.Errorf("unknown node verb %q", op.Verb)
	}
}

func modifyIndexOf(n *Node) uint64 {
	if n == nil {
		return 0
	}
	return n.ModifyIndex
}

// casMatches applies Consul's CAS rule: index 0 means "must not exist",
// otherwise the stored ModifyIndex must equal it.
func casMatches(exists bool, current, want uint64) bool {
	if want == 0 {
		return !exists
	}
	return exists && current == want
}

func txnService(tx *memdb.Txn, idx uint64, op *TxnServiceOp) ([]*TxnResult, error) {
	svc := &op.Service
	if op.Node == "" || svc.ID == "" {
		return nil, fmt.Errorf("service operation %q needs a node name and a service ID", op.Verb)
	}
	raw, err := tx.First(tableServices, "id", op.Node, svc.ID)
	if err != nil {
		return nil, fmt.Errorf("state: read service %q: %w", svc.ID, err)
	}
	var old *NodeService
	if raw != nil {
		old = raw.(*serviceRow).Service
	}
	switch op.Verb {
	case TxnGet:
		if old == nil {
			return nil, fmt.Errorf("service %q on node %q doesn't exist", svc.ID, op.Node)
		}
		return []*TxnResult{{Service: cloneService(old)}}, nil
	case TxnSet, TxnCAS:
		if op.Verb == TxnCAS && !casMatches(old != nil, serviceModifyIndex(old), svc.ModifyIndex) {
			return nil, fmt.Errorf("failed to set service %q on node %q, index is stale", svc.ID, op.Node)
		}
		if _, err := ensureServiceTxn(tx, idx, op.Node, svc); err != nil {
			return nil, err
		}
		cur, err := tx.First(tableServices, "id", op.Node, svc.ID)
		if err != nil || cur == nil {
			return nil, fmt.Errorf("service %q was not written: %v", svc.ID, err)
		}
		return []*TxnResult{{Service: cloneService(cur.(*serviceRow).Service)}}, nil
	case TxnDelete, TxnDeleteCAS:
		if old == nil {
			return nil, nil
		}
		if op.Verb == TxnDeleteCAS && old.ModifyIndex != svc.ModifyIndex {
			return nil, fmt.Errorf("failed to delete service %q on node %q, index is stale", svc.ID, op.Node)
		}
		return nil, deleteServiceTxn(tx, idx, raw.(*serviceRow).Node, svc.ID)
	default:
		return nil, fmt.Errorf("unknown service verb %q", op.Verb)
	}
}

func serviceModifyIndex(s *NodeService) uint64 {
	if s == nil {
		return 0
	}
	return s.ModifyIndex
}

func txnCheck(tx *memdb.Txn, idx uint64, op *TxnCheckOp) ([]*TxnResult, error) {
	hc := &op.Check
	if hc.Node == "" || hc.CheckID == "" {
		return nil, fmt.Errorf("check operation %q needs a node name and a check ID", op.Verb)
	}
	raw, err := tx.First(tableChecks, "id", hc.Node, hc.CheckID)
	if err != nil {
		return nil, fmt.Errorf("state: read check %q: %w", hc.CheckID, err)
	}
	var old *HealthCheck
	if raw != nil {
		old = raw.(*HealthCheck)
	}
	switch op.Verb {
	case TxnGet:
		if old == nil {
			return nil, fmt.Errorf("check %q on node %q doesn't exist", hc.CheckID, hc.Node)
		}
		return []*TxnResult{{Check: cloneCheck(old)}}, nil
	case TxnSet, TxnCAS:
		var cur uint64
		if old != nil {
			cur = old.ModifyIndex
		}
		if op.Verb == TxnCAS && !casMatches(old != nil, cur, hc.ModifyIndex) {
			return nil, fmt.Errorf("failed to set check %q on node %q, index is stale", hc.CheckID, hc.Node)
		}
		w := cloneCheck(hc)
		switch w.Status {
		case "", HealthPassing, HealthWarning, HealthCritical:
		default:
			return nil, fmt.Errorf("check %q has invalid status %q", hc.CheckID, hc.Status)
		}
		if _, err := ensureCheckTxn(tx, idx, w); err != nil {
			return nil, err
		}
		craw, err := tx.First(tableChecks, "id", w.Node, w.CheckID)
		if err != nil || craw == nil {
			return nil, fmt.Errorf("check %q was not written: %v", hc.CheckID, err)
		}
		return []*TxnResult{{Check: cloneCheck(craw.(*HealthCheck))}}, nil
	case TxnDelete, TxnDeleteCAS:
		if old == nil {
			return nil, nil
		}
		if op.Verb == TxnDeleteCAS && old.ModifyIndex != hc.ModifyIndex {
			return nil, fmt.Errorf("failed to delete check %q on node %q, index is stale", hc.CheckID, hc.Node)
		}
		return nil, deleteCheckTxn(tx, idx, old.Node, old.CheckID)
	default:
		return nil, fmt.Errorf("unknown check verb %q", op.Verb)
	}
}

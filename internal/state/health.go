package state

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// ChecksForNode returns the checks of node sorted by check ID.
func (s *Store) ChecksForNode(ws memdb.WatchSet, node string) (uint64, []*HealthCheck, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	it, err := tx.Get(tableChecks, "node", node)
	if err != nil {
		return 0, nil, fmt.Errorf("state: read checks of node %q: %w", node, err)
	}
	ws.Add(it.WatchCh())
	var out []*HealthCheck
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, cloneCheck(raw.(*HealthCheck)))
	}
	sortChecks(out)
	return maxIndexTxn(tx, tableChecks), out, nil
}

// ChecksForService returns the checks of every instance of service name on
// nodes matching meta, sorted by node then check ID.
func (s *Store) ChecksForService(ws memdb.WatchSet, name string, meta map[string]string) (uint64, []*HealthCheck, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	idx := serviceIndexTxn(tx, ws, name, true)
	it, err := tx.Get(tableChecks, "service", name)
	if err != nil {
		return 0, nil, fmt.Errorf("state: read checks of service %q: %w", name, err)
	}
	out, err := collectChecksTxn(tx, it, meta)
	if err != nil {
		return 0, nil, err
	}
	return idx, out, nil
}

// ChecksInState returns the checks in state (HealthAny for all) on nodes
// matching meta, sorted by node then check ID.
func (s *Store) ChecksInState(ws memdb.WatchSet, state string, meta map[string]string) (uint64, []*HealthCheck, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	var (
		it  memdb.ResultIterator
		err error
	)
	if state == HealthAny {
		it, err = tx.Get(tableChecks, "id")
	} else {
		it, err = tx.Get(tableChecks, "status", state)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("state: read checks in state %q: %w", state, err)
	}
	ws.Add(it.WatchCh())
	idx := maxIndexTxn(tx, tableChecks)
	if len(meta) > 0 {
		nit, err := tx.Get(tableNodes, "id")
		if err != nil {
			return 0, nil, fmt.Errorf("state: list nodes: %w", err)
		}
		ws.Add(nit.WatchCh())
		idx = max(idx, maxIndexTxn(tx, tableNodes))
	}
	out, err := collectChecksTxn(tx, it, meta)
	if err != nil {
		return 0, nil, err
	}
	return idx, out, nil
}

func collectChecksTxn(tx *memdb.Txn, it memdb.ResultIterator, meta map[string]string) ([]*HealthCheck, error) {
	var out []*HealthCheck
	nodes := map[string]*Node{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		hc := raw.(*HealthCheck)
		if len(meta) > 0 {
			n, err := nodeCachedTxn(tx, nodes, hc.Node)
			if err != nil {
				return nil, err
			}
			if n == nil || !metaMatches(n.Meta, meta) {
				continue
			}
		}
		out = append(out, cloneCheck(hc))
	}
	sortChecks(out)
	return out, nil
}

// CheckServiceNodes returns each instance of service name having all tags
// on nodes matching meta, with its node, the node's checks and the
// instance's checks; sorted by node then service ID.
func (s *Store) CheckServiceNodes(ws memdb.WatchSet, name string, tags []string, meta map[string]string) (uint64, []*CheckServiceNode, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	idx := serviceIndexTxn(tx, ws, name, true)
	rows, err := serviceRowsTxn(tx, name, tags)
	if err != nil {
		return 0, nil, err
	}
	var out []*CheckServiceNode
	nodes := map[string]*Node{}
	for _, row := range rows {
		n, err := nodeCachedTxn(tx, nodes, row.Node)
		if err != nil {
			return 0, nil, err
		}
		if n == nil || !metaMatches(n.Meta, meta) {
			continue
		}
		it, err := tx.Get(tableChecks, "node", n.Node)
		if err != nil {
			return 0, nil, fmt.Errorf("state: read checks of node %q: %w", n.Node, err)
		}
		checks := []*HealthCheck{}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			hc := raw.(*HealthCheck)
			if hc.ServiceID == "" || hc.ServiceID == row.ServiceID {
				checks = append(checks, cloneCheck(hc))
			}
		}
		out = append(out, &CheckServiceNode{Node: cloneNode(n), Service: cloneService(row.Service), Checks: checks})
	}
	slices.SortFunc(out, func(a, b *CheckServiceNode) int {
		if c := strings.Compare(a.Node.Node, b.Node.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Service.ID, b.Service.ID)
	})
	return idx, out, nil
}

func sortChecks(l []*HealthCheck) {
	slices.SortFunc(l, func(a, b *HealthCheck) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.CheckID, b.CheckID)
	})
}

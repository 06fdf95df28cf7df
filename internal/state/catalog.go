package state

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Registration is one catalog write: a node with optionally one service and
// some checks (Consul's /v1/catalog/register). Registering a service or check
// creates or updates its node unless SkipNodeUpdate is set and the node
// already exists.
type Registration struct {
	Node           *Node
	Service        *NodeService
	Checks         []*HealthCheck
	SkipNodeUpdate bool
}

// EnsureRegistration applies reg at index idx. Entries equal to what is
// stored are left alone (their ModifyIndex does not move), so a repeated
// anti-entropy sync does not wake blocking queries.
func (s *Store) EnsureRegistration(idx uint64, reg *Registration) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if _, err := ensureRegistrationTxn(tx, idx, reg); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

// RegistrationUpToDate reports whether applying reg would change nothing.
// The leader uses it to skip Raft writes that would be no-ops.
func (s *Store) RegistrationUpToDate(reg *Registration) (bool, error) {
	tx := s.db.Txn(true)
	defer tx.Abort()
	changed, err := ensureRegistrationTxn(tx, maxIndexTxn(tx, tableNodes, tableServices, tableChecks)+1, reg)
	if err != nil {
		return false, err
	}
	return !changed, nil
}

func ensureRegistrationTxn(tx *memdb.Txn, idx uint64, reg *Registration) (bool, error) {
	if reg == nil || reg.Node == nil || reg.Node.Node == "" {
		return false, fmt.Errorf("%w: missing node name", ErrInvalidInput)
	}
	changed := false
	existing, err := tx.First(tableNodes, "id", reg.Node.Node)
	if err != nil {
		return false, fmt.Errorf("state: read node %q: %w", reg.Node.Node, err)
	}
	if !reg.SkipNodeUpdate || existing == nil {
		c, err := ensureNodeTxn(tx, idx, reg.Node)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	if reg.Service != nil {
		c, err := ensureServiceTxn(tx, idx, reg.Node.Node, reg.Service)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	for _, hc := range reg.Checks {
		if hc == nil {
			continue
		}
		check := cloneCheck(hc)
		if check.Node == "" {
			check.Node = reg.Node.Node
		}
		c, err := ensureCheckTxn(tx, idx, check)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}

func ensureNodeTxn(tx *memdb.Txn, idx uint64, n *Node) (bool, error) {
	if n.ID != "" {
		raw, err := tx.First(tableNodes, "uuid", n.ID)
		if err != nil {
			return false, fmt.Errorf("state: read node id %q: %w", n.ID, err)
		}
		if raw != nil && !strings.EqualFold(raw.(*Node).Node, n.Node) {
			return false, fmt.Errorf("%w: node %q cannot use ID %q, node %q has it",
				ErrNodeIDConflict, n.Node, n.ID, raw.(*Node).Node)
		}
	}
	raw, err := tx.First(tableNodes, "id", n.Node)
	if err != nil {
		return false, fmt.Errorf("state: read node %q: %w", n.Node, err)
	}
	node := cloneNode(n)
	node.CreateIndex, node.ModifyIndex = idx, idx
	if raw != nil {
		old := raw.(*Node)
		if nodeEqual(old, node) {
			return false, nil
		}
		node.CreateIndex = old.CreateIndex
	}
	if err := tx.Insert(tableNodes, node); err != nil {
		return false, fmt.Errorf("state: write node %q: %w", n.Node, err)
	}
	if err := bumpIndexTxn(tx, tableNodes, idx); err != nil {
		return false, err
	}
	// Service queries return node data, so their indexes move too.
	return true, touchNodeServicesTxn(tx, idx, n.Node)
}

func ensureServiceTxn(tx *memdb.Txn, idx uint64, node string, ns *NodeService) (bool, error) {
	if ns.ID == "" || ns.Service == "" {
		return false, fmt.Errorf("%w: service needs an ID and a name", ErrInvalidInput)
	}
	nraw, err := tx.First(tableNodes, "id", node)
	if err != nil {
		return false, fmt.Errorf("state: read node %q: %w", node, err)
	}
	if nraw == nil {
		return false, fmt.Errorf("%w: node %q", ErrMissingNode, node)
	}
	node = nraw.(*Node).Node
	raw, err := tx.First(tableServices, "id", node, ns.ID)
	if err != nil {
		return false, fmt.Errorf("state: read service %q: %w", ns.ID, err)
	}
	svc := cloneService(ns)
	svc.CreateIndex, svc.ModifyIndex = idx, idx
	oldName := ""
	if raw != nil {
		old := raw.(*serviceRow).Service
		if serviceEqual(old, svc) {
			return false, nil
		}
		svc.CreateIndex = old.CreateIndex
		oldName = old.Service
	}
	row := &serviceRow{Node: node, ServiceID: svc.ID, ServiceName: svc.Service, Service: svc}
	if err := tx.Insert(tableServices, row); err != nil {
		return false, fmt.Errorf("state: write service %q: %w", ns.ID, err)
	}
	if err := bumpIndexTxn(tx, tableServices, idx); err != nil {
		return false, err
	}
	if err := touchServiceTxn(tx, idx, svc.Service); err != nil {
		return false, err
	}
	if oldName != "" && !strings.EqualFold(oldName, svc.Service) {
		if err := touchServiceTxn(tx, idx, oldName); err != nil {
			return false, err
		}
	}
	return true, refreshServiceChecksTxn(tx, idx, node, svc)
}

// refreshServiceChecksTxn copies a service's name and tags into its checks.
func refreshServiceChecksTxn(tx *memdb.Txn, idx uint64, node string, svc *NodeService) error {
	it, err := tx.Get(tableChecks, "node_service", node, svc.ID)
	if err != nil {
		return fmt.Errorf("state: read checks of service %q: %w", svc.ID, err)
	}
	var update []*HealthCheck
	for raw := it.Next(); raw != nil; raw = it.Next() {
		hc := raw.(*HealthCheck)
		if hc.ServiceName == svc.Service && equalStrings(hc.ServiceTags, svc.Tags) {
			continue
		}
		c := cloneCheck(hc)
		c.ServiceName, c.ServiceTags = svc.Service, cloneStrings(svc.Tags)
		c.ModifyIndex = idx
		update = append(update, c)
	}
	for _, c := range update {
		if err := tx.Insert(tableChecks, c); err != nil {
			return fmt.Errorf("state: write check %q: %w", c.CheckID, err)
		}
	}
	if len(update) > 0 {
		return bumpIndexTxn(tx, tableChecks, idx)
	}
	return nil
}

func ensureCheckTxn(tx *memdb.Txn, idx uint64, hc *HealthCheck) (bool, error) {
	if hc.CheckID == "" {
		return false, fmt.Errorf("%w: check needs an ID", ErrInvalidInput)
	}
	if hc.Status == "" {
		hc.Status = HealthCritical
	}
	nraw, err := tx.First(tableNodes, "id", hc.Node)
	if err != nil {
		return false, fmt.Errorf("state: read node %q: %w", hc.Node, err)
	}
	if nraw == nil {
		return false, fmt.Errorf("%w: node %q", ErrMissingNode, hc.Node)
	}
	hc.Node = nraw.(*Node).Node
	hc.ServiceName, hc.ServiceTags = "", []string{}
	if hc.ServiceID != "" {
		sraw, err := tx.First(tableServices, "id", hc.Node, hc.ServiceID)
		if err != nil {
			return false, fmt.Errorf("state: read service %q: %w", hc.ServiceID, err)
		}
		if sraw == nil {
			return false, fmt.Errorf("%w: check %q names service %q, which node %q does not have",
				ErrMissingService, hc.CheckID, hc.ServiceID, hc.Node)
		}
		svc := sraw.(*serviceRow).Service
		hc.ServiceName, hc.ServiceTags = svc.Service, cloneStrings(svc.Tags)
	}
	raw, err := tx.First(tableChecks, "id", hc.Node, hc.CheckID)
	if err != nil {
		return false, fmt.Errorf("state: read check %q: %w", hc.CheckID, err)
	}
	hc.CreateIndex, hc.ModifyIndex = idx, idx
	var old *HealthCheck
	if raw != nil {
		old = raw.(*HealthCheck)
		if checkEqual(old, hc) {
			return false, nil
		}
		hc.CreateIndex = old.CreateIndex
	}
	if err := tx.Insert(tableChecks, hc); err != nil {
		return false, fmt.Errorf("state: write check %q: %w", hc.CheckID, err)
	}
	if err := bumpIndexTxn(tx, tableChecks, idx); err != nil {
		return false, err
	}
	if err := touchCheckServicesTxn(tx, idx, hc); err != nil {
		return false, err
	}
	if old != nil && old.ServiceName != hc.ServiceName {
		if err := touchCheckServicesTxn(tx, idx, old); err != nil {
			return false, err
		}
	}
	// A critical check invalidates the sessions bound to it (session.go).
	if hc.Status == HealthCritical {
		if err := invalidateCheckSessionsTxn(tx, idx, hc.Node, hc.CheckID); err != nil {
			return false, err
		}
	}
	return true, nil
}

// touchCheckServicesTxn moves the index of every service whose health
// queries include hc: its own service, or all services of the node for a
// node-level check.
func touchCheckServicesTxn(tx *memdb.Txn, idx uint64, hc *HealthCheck) error {
	if hc.ServiceName != "" {
		return touchServiceTxn(tx, idx, hc.ServiceName)
	}
	if hc.ServiceID == "" {
		return touchNodeServicesTxn(tx, idx, hc.Node)
	}
	return nil
}

// touchNodeServicesTxn moves the index of every service on node.
func touchNodeServicesTxn(tx *memdb.Txn, idx uint64, node string) error {
	it, err := tx.Get(tableServices, "node", node)
	if err != nil {
		return fmt.Errorf("state: read services of node %q: %w", node, err)
	}
	names := map[string]struct{}{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		names[strings.ToLower(raw.(*serviceRow).ServiceName)] = struct{}{}
	}
	for name := range names {
		if err := touchServiceTxn(tx, idx, name); err != nil {
			return err
		}
	}
	return nil
}

// touchServiceTxn records a change to service name at idx. When the name
// has no instances left its index entry goes and the extinction index takes
// over, so queries for it still see a growing index.
func touchServiceTxn(tx *memdb.Txn, idx uint64, name string) error {
	raw, err := tx.First(tableServices, "service", name)
	if err != nil {
		return fmt.Errorf("state: read service %q: %w", name, err)
	}
	if raw != nil {
		return bumpIndexTxn(tx, serviceIndexKey(name), idx)
	}
	if _, err := tx.DeleteAll(tableIndex, "id", serviceIndexKey(name)); err != nil {
		return fmt.Errorf("state: delete index of service %q: %w", name, err)
	}
	return bumpIndexTxn(tx, indexServiceExtinction, idx)
}

// DeleteNode removes a node with its services and checks. A missing node is
// a no-op.
func (s *Store) DeleteNode(idx uint64, node string) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := deleteNodeTxn(tx, idx, node); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

func deleteNodeTxn(tx *memdb.Txn, idx uint64, node string) error {
	raw, err := tx.First(tableNodes, "id", node)
	if err != nil {
		return fmt.Errorf("state: read node %q: %w", node, err)
	}
	if raw == nil {
		return nil
	}
	n := raw.(*Node)
	// The node's sessions go with it (session.go).
	if err := invalidateNodeSessionsTxn(tx, idx, n.Node); err != nil {
		return err
	}
	if err := deleteAllTxn(tx, tableChecks, n.Node, func(raw any) error {
		return deleteCheckTxn(tx, idx, n.Node, raw.(*HealthCheck).CheckID)
	}); err != nil {
		return err
	}
	if err := deleteAllTxn(tx, tableServices, n.Node, func(raw any) error {
		return deleteServiceTxn(tx, idx, n.Node, raw.(*serviceRow).ServiceID)
	}); err != nil {
		return err
	}
	if err := tx.Delete(tableNodes, n); err != nil {
		return fmt.Errorf("state: delete node %q: %w", node, err)
	}
	return bumpIndexTxn(tx, tableNodes, idx)
}

// deleteAllTxn calls del for each row of table on node. Rows are collected
// first because deleting while iterating is not allowed.
func deleteAllTxn(tx *memdb.Txn, table, node string, del func(any) error) error {
	it, err := tx.Get(table, "node", node)
	if err != nil {
		return fmt.Errorf("state: read %s of node %q: %w", table, node, err)
	}
	var rows []any
	for raw := it.Next(); raw != nil; raw = it.Next() {
		rows = append(rows, raw)
	}
	for _, raw := range rows {
		if err := del(raw); err != nil {
			return err
		}
	}
	return nil
}

// DeleteService removes a service instance and its checks. A missing
// service is a no-op.
func (s *Store) DeleteService(idx uint64, node, serviceID string) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := deleteServiceTxn(tx, idx, node, serviceID); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

func deleteServiceTxn(tx *memdb.Txn, idx uint64, node, serviceID string) error {
	raw, err := tx.First(tableServices, "id", node, serviceID)
	if err != nil {
		return fmt.Errorf("state: read service %q: %w", serviceID, err)
	}
	if raw == nil {
		return nil
	}
	row := raw.(*serviceRow)
	it, err := tx.Get(tableChecks, "node_service", node, serviceID)
	if err != nil {
		return fmt.Errorf("state: read checks of service %q: %w", serviceID, err)
	}
	var checks []string
	for c := it.Next(); c != nil; c = it.Next() {
		checks = append(checks, c.(*HealthCheck).CheckID)
	}
	for _, id := range checks {
		if err := deleteCheckTxn(tx, idx, node, id); err != nil {
			return err
		}
	}
	if err := tx.Delete(tableServices, row); err != nil {
		return fmt.Errorf("state: delete service %q: %w", serviceID, err)
	}
	if err := bumpIndexTxn(tx, tableServices, idx); err != nil {
		return err
	}
	return touchServiceTxn(tx, idx, row.ServiceName)
}

// DeleteCheck removes a check. A missing check is a no-op.
func (s *Store) DeleteCheck(idx uint64, node, checkID string) error {
	tx := s.db.Txn(true)
	defer tx.Abort()
	if err := deleteCheckTxn(tx, idx, node, checkID); err != nil {
		return err
	}
	tx.Commit()
	return nil
}

func deleteCheckTxn(tx *memdb.Txn, idx uint64, node, checkID string) error {
	raw, err := tx.First(tableChecks, "id", node, checkID)
	if err != nil {
		return fmt.Errorf("state: read check %q: %w", checkID, err)
	}
	if raw == nil {
		return nil
	}
	hc := raw.(*HealthCheck)
	if err := tx.Delete(tableChecks, hc); err != nil {
		return fmt.Errorf("state: delete check %q: %w", checkID, err)
	}
	// Sessions bound to a check do not outlive it (session.go).
	if err := invalidateCheckSessionsTxn(tx, idx, hc.Node, hc.CheckID); err != nil {
		return err
	}
	if err := bumpIndexTxn(tx, tableChecks, idx); err != nil {
		return err
	}
	return touchCheckServicesTxn(tx, idx, hc)
}

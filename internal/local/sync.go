package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// SyncFull compares the catalog's view of this node with the local state,
// marks every difference, and then syncs the changes (both directions: the
// agent is the source of truth, so entries the catalog has but the agent
// does not are deregistered, except reserved ones).
func (s *State) SyncFull(ctx context.Context, caller rpc.Caller) error {
	if err := s.UpdateSyncState(ctx, caller); err != nil {
		return err
	}
	return s.SyncChanges(ctx, caller)
}

// UpdateSyncState reads this node's services and checks from the catalog and
// updates the in-sync flags of the local entries accordingly.
func (s *State) UpdateSyncState(ctx context.Context, caller rpc.Caller) error {
	cfg := s.NodeConfig()
	q := rpc.QueryOptions{Datacenter: cfg.Datacenter, Token: cfg.AgentToken}
	var svcs rpc.IndexedNodeServices
	if err := caller.RPC(ctx, rpc.MethodCatalogNodeServices, &rpc.NodeSpecificRequest{Node: cfg.NodeName, QueryOptions: q}, &svcs); err != nil {
		return fmt.Errorf("local: read node services: %w", err)
	}
	var chks rpc.IndexedHealthChecks
	if err := caller.RPC(ctx, rpc.MethodHealthNodeChecks, &rpc.NodeSpecificRequest{Node: cfg.NodeName, QueryOptions: q}, &chks); err != nil {
		return fmt.Errorf("local: read node checks: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	remoteSvcs := map[string]*state.NodeService{}
	if svcs.NodeServices == nil || svcs.NodeServices.Node == nil {
		s.nodeInSync = false
	} else {
		s.nodeInSync = s.nodeEqualLocked(svcs.NodeServices.Node)
		for id, svc := range svcs.NodeServices.Services {
			if svc != nil {
				remoteSvcs[id] = svc
			}
		}
	}
	reservedSvc := func(id string) bool { return slices.Contains(s.cfg.ReservedServiceIDs, id) }
	reservedChk := func(c *state.HealthCheck) bool {
		return slices.Contains(s.cfg.ReservedCheckIDs, c.CheckID) || (c.ServiceID != "" && reservedSvc(c.ServiceID))
	}

	for id, e := range s.services {
		remote := remoteSvcs[id]
		if e.deleted {
			if remote == nil {
				delete(s.services, id)
			}
			continue
		}
		if remote == nil {
			e.inSync = false
			continue
		}
		if e.svc.EnableTagOverride {
			// Tags may be changed in the catalog behind the agent's back.
			e.svc.Tags = cloneStrings(remote.Tags)
		}
		e.inSync = servicesEqual(e.svc, remote)
	}
	for id, remote := range remoteSvcs {
		if _, ok := s.services[id]; ok || reservedSvc(id) {
			continue
		}
		s.services[id] = &serviceEntry{svc: copyService(remote), deleted: true, gen: s.gen()}
	}

	remoteChks := map[string]*state.HealthCheck{}
	for _, c := range chks.HealthChecks {
		if c != nil {
			remoteChks[c.CheckID] = c
		}
	}
	for id, e := range s.checks {
		remote := remoteChks[id]
		if e.deleted {
			if remote == nil {
				delete(s.checks, id)
			}
			continue
		}
		if remote == nil {
			e.inSync = false
			continue
		}
		if e.deferred != nil {
			// An output change is deliberately held back; compare the rest.
			cp := *remote
			cp.Output = e.chk.Output
			remote = &cp
		}
		e.inSync = checksEqual(e.chk, remote)
	}
	for id, remote := range remoteChks {
		if _, ok := s.checks[id]; ok || reservedChk(remote) {
			continue
		}
		s.checks[id] = &checkEntry{chk: copyCheck(remote), deleted: true, gen: s.gen()}
	}
	return nil
}

// op is one catalog write planned by SyncChanges, with the generations of
// the entries it covers.
type op struct {
	dereg   *rpc.DeregisterRequest
	reg     *rpc.RegisterRequest
	svcID   string
	svcGen  uint64
	chkGens map[string]uint64
}

// SyncChanges writes every out-of-sync entry to the catalog: removed
// services and checks are deregistered, the others registered (a service
// together with its checks). The lock is not held during RPCs; an entry
// changed meanwhile stays out of sync for the next round. It returns the
// first error.
func (s *State) SyncChanges(ctx context.Context, caller rpc.Caller) error {
	ops := s.plan()
	for _, o := range ops {
		var err error
		if o.dereg != nil {
			err = caller.RPC(ctx, rpc.MethodCatalogDeregister, o.dereg, &struct{}{})
			if errors.Is(err, rpc.ErrNotFound) {
				err = nil // already gone
			}
		} else {
			err = caller.RPC(ctx, rpc.MethodCatalogRegister, o.reg, &struct{}{})
		}
		if err != nil {
			what := "node"
			switch {
			case o.svcID != "":
				what = "service " + o.svcID
			case len(o.chkGens) > 0:
				what = "check " + strings.Join(slices.Sorted(maps.Keys(o.chkGens)), ",")
			}
			return fmt.Errorf("local: sync %s: %w", what, err)
		}
		s.done(o)
	}
	return nil
}

// plan lists the catalog writes needed, in order: deregistrations, then
// services with their checks, then lone checks, then the node itself.
func (s *State) plan() []op {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	var ops []op
	base := func(token string) rpc.RegisterRequest {
		if token == "" {
			token = cfg.AgentToken
		}
		return rpc.RegisterRequest{
			ID:              cfg.NodeID,
			Node:            cfg.NodeName,
			Address:         cfg.Address,
			Datacenter:      cfg.Datacenter,
			TaggedAddresses: cloneMap(cfg.TaggedAddresses),
			NodeMeta:        cloneMap(cfg.NodeMeta),
			SkipNodeUpdate:  s.nodeInSync,
			WriteRequest:    rpc.WriteRequest{Datacenter: cfg.Datacenter, Token: token},
		}
	}
	tok := func(t string) string {
		if t == "" {
			return cfg.AgentToken
		}
		return t
	}

	for _, id := range sortedKeys(s.services) {
		e := s.services[id]
		if !e.deleted {
			continue
		}
		ops = append(ops, op{
			dereg:  &rpc.DeregisterRequest{Node: cfg.NodeName, ServiceID: id, WriteRequest: rpc.WriteRequest{Datacenter: cfg.Datacenter, Token: tok(e.token)}},
			svcID:  id,
			svcGen: e.gen,
		})
	}
	for _, id := range sortedKeys(s.checks) {
		e := s.checks[id]
		if !e.deleted {
			continue
		}
		if se, ok := s.services[e.chk.ServiceID]; ok && se.deleted {
			continue // goes with its service
		}
		ops = append(ops, op{
			dereg:   &rpc.DeregisterRequest{Node: cfg.NodeName, CheckID: id, WriteRequest: rpc.WriteRequest{Datacenter: cfg.Datacenter, Token: tok(e.token)}},
			chkGens: map[string]uint64{id: e.gen},
		})
	}
	nodeCovered := false
	for _, id := range sortedKeys(s.services) {
		e := s.services[id]
		if e.deleted || e.inSync {
			continue
		}
		req := base(e.token)
		req.Service = copyService(e.svc)
		gens := map[string]uint64{}
		for _, cid := range sortedKeys(s.checks) {
			c := s.checks[cid]
			if !c.deleted && c.chk.ServiceID == id {
				req.Checks = append(req.Checks, copyCheck(c.chk))
				gens[cid] = c.gen
			}
		}
		ops = append(ops, op{reg: &req, svcID: id, svcGen: e.gen, chkGens: gens})
		nodeCovered = true
	}
	for _, id := range sortedKeys(s.checks) {
		e := s.checks[id]
		if e.deleted || e.inSync {
			continue
		}
		if e.chk.ServiceID != "" {
			se, ok := s.services[e.chk.ServiceID]
			if !ok || se.deleted || !se.inSync {
				continue // registered with its service above, or orphaned
			}
		}
		req := base(e.token)
		req.Check = copyCheck(e.chk)
		ops = append(ops, op{reg: &req, chkGens: map[string]uint64{id: e.gen}})
		nodeCovered = true
	}
	if !s.nodeInSync && !nodeCovered {
		req := base("")
		ops = append(ops, op{reg: &req})
	}
	return ops
}

// done records a successful catalog write.
func (s *State) done(o op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.reg != nil {
		s.nodeInSync = true
	}
	if o.svcID != "" {
		if e, ok := s.services[o.svcID]; ok && e.gen == o.svcGen {
			if e.deleted {
				delete(s.services, o.svcID)
				// The catalog dropped the service's checks with it.
				for cid, c := range s.checks {
					if c.deleted && c.chk.ServiceID == o.svcID {
						delete(s.checks, cid)
					}
				}
			} else {
				e.inSync = true
			}
		}
	}
	for cid, gen := range o.chkGens {
		if e, ok := s.checks[cid]; ok && e.gen == gen {
			if e.deleted {
				delete(s.checks, cid)
			} else {
				e.inSync = true
			}
		}
	}
}

func (s *State) nodeEqualLocked(n *state.Node) bool {
	return strings.EqualFold(n.ID, s.cfg.NodeID) &&
		n.Address == s.cfg.Address &&
		mapsEqual(n.TaggedAddresses, s.cfg.TaggedAddresses) &&
		mapsEqual(n.Meta, s.cfg.NodeMeta)
}

func servicesEqual(a, b *state.NodeService) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Service == b.Service &&
		slicesEqual(a.Tags, b.Tags) && a.Address == b.Address &&
		len(a.TaggedAddresses) == len(b.TaggedAddresses) && maps.Equal(a.TaggedAddresses, b.TaggedAddresses) &&
		mapsEqual(a.Meta, b.Meta) && a.Port == b.Port && a.Weights == b.Weights &&
		a.EnableTagOverride == b.EnableTagOverride
}

func checksEqual(a, b *state.HealthCheck) bool {
	if a.CheckID != b.CheckID || a.Name != b.Name || a.Status != b.Status ||
		a.Notes != b.Notes || a.Output != b.Output || a.ServiceID != b.ServiceID ||
		a.ServiceName != b.ServiceName || a.Type != b.Type {
		return false
	}
	da, db := a.Definition, b.Definition
	if len(da.Header) != len(db.Header) {
		return false
	}
	for k, v := range da.Header {
		if !slicesEqual(v, db.Header[k]) {
			return false
		}
	}
	da.Header, db.Header = nil, nil
	return reflect.DeepEqual(da, db)
}

func mapsEqual(a, b map[string]string) bool { return len(a) == len(b) && maps.Equal(a, b) }

func slicesEqual(a, b []string) bool { return len(a) == len(b) && slices.Equal(a, b) }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

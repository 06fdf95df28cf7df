package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Membership timings.
const (
	// bootstrapRetryInterval is how often a server waiting for
	// bootstrap_expect peers re-checks even without a member event.
	bootstrapRetryInterval = time.Second
	// peerStatsTimeout bounds the question "do you have Raft state?" asked
	// of each peer before bootstrapping.
	peerStatsTimeout = 2 * time.Second
	// leaveRemovalTimeout bounds how long a leaving follower waits for the
	// leader to drop it from the Raft configuration.
	leaveRemovalTimeout = 5 * time.Second
	// leaveAskInterval is how often a leaving follower still in the
	// configuration asks the leader to remove it.
	leaveAskInterval = 250 * time.Millisecond
)

// serfHealth outputs, as Consul writes them.
const (
	serfAliveOutput  = "Agent alive and reachable"
	serfFailedOutput = "Agent not live or unreachable"
)

// membership is the server's view of the LAN gossip pool.
type membership struct {
	mu      sync.RWMutex
	members func() []serf.Member
}

// SetLANMembers connects the server to the datacenter's LAN gossip pool:
// fn returns every member serf knows (alive, failed, left). The server uses
// it to find its peers for bootstrap_expect, to add and remove Raft peers
// and to reconcile members into the catalog while it leads, and it feeds
// autopilot from the server members among them. Call it before Start;
// call MembershipChanged on every member event.
func (s *Server) SetLANMembers(fn func() []serf.Member) {
	s.members.mu.Lock()
	s.members.members = fn
	s.members.mu.Unlock()
	s.SetServerLister(s.serverMembers)
}

// MembershipChanged tells the server that the LAN membership changed. It
// never blocks; bursts of events coalesce into one reconcile.
func (s *Server) MembershipChanged() {
	for _, ch := range []chan struct{}{s.memberCh, s.reconcileCh} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *Server) lanMembers() ([]serf.Member, bool) {
	s.members.mu.RLock()
	fn := s.members.members
	s.members.mu.RUnlock()
	if fn == nil {
		return nil, false
	}
	return fn(), true
}

// localServers returns the server members of this server's datacenter.
func (s *Server) localServers() []*gossip.ServerInfo {
	members, _ := s.lanMembers()
	var out []*gossip.ServerInfo
	for _, m := range members {
		info, ok := gossip.IsServer(m)
		if !ok || info.Datacenter != s.cfg.Datacenter {
			continue
		}
		out = append(out, info)
	}
	return out
}

// serverMembers is the autopilot lister fed from gossip.
func (s *Server) serverMembers() []ServerMember {
	servers := s.localServers()
	out := make([]ServerMember, 0, len(servers))
	for _, info := range servers {
		id := info.ID
		if id == "" {
			id = info.Name
		}
		out = append(out, ServerMember{Name: info.Name, ID: id, Addr: info.Addr.String(),
			Status: info.Status.String(), Build: info.Build})
	}
	return out
}

// bootstrapLoop waits until BootstrapExpect servers are known and then
// bootstraps Raft with all of them (or gives up because a peer already
// has Raft state: that cluster's leader will add this server).
func (s *Server) bootstrapLoop() {
	t := time.NewTicker(bootstrapRetryInterval)
	defer t.Stop()
	for {
		if s.tryBootstrap() {
			return
		}
		select {
		case <-s.shutdownCh:
			return
		case <-s.memberCh:
		case <-t.C:
		}
	}
}

// tryBootstrap makes one bootstrap_expect attempt and reports whether the
// question is settled (bootstrapped, or not ours to bootstrap).
func (s *Server) tryBootstrap() bool {
	r := s.raftOrNil()
	if r == nil {
		return false
	}
	if r.LastIndex() > 0 {
		return true // joined an existing cluster meanwhile
	}
	expect := s.cfg.BootstrapExpect
	var servers []*gossip.ServerInfo
	for _, info := range s.localServers() {
		if info.Status != serf.StatusAlive {
			continue
		}
		if info.Expect != 0 && info.Expect != expect {
			s.logger.Error("peer has a different bootstrap_expect; not bootstrapping",
				"peer", info.Name, "peer_expect", info.Expect, "expect", expect)
			return false
		}
		if info.Bootstrap {
			s.logger.Error("peer is in bootstrap mode; not bootstrapping", "peer", info.Name)
			return false
		}
		servers = append(servers, info)
	}
	if len(servers) < expect {
		s.logger.Debug("waiting for servers to bootstrap", "known", len(servers), "expect", expect)
		return false
	}

	// Never two clusters: if any peer already has Raft state, a cluster
	// exists and its leader adds us.
	self := s.localRaftID()
	for _, info := range servers {
		if info.ID == string(self) || info.Name == s.cfg.NodeName {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), peerStatsTimeout)
		var st rpc.RaftStats
		err := s.pool.RPC(ctx, info.Addr, rpc.MethodOperatorRaftStats, &rpc.RaftStatsRequest{}, &st)
		cancel()
		if err != nil {
			s.logger.Warn("failed to ask peer for its raft state; will retry", "peer", info.Name, "error", err)
			return false
		}
		if st.LastIndex > 0 {
			s.logger.Info("peer already has raft state; not bootstrapping", "peer", info.Name, "last_index", st.LastIndex)
			return true
		}
	}

	conf := raft.Configuration{}
	for _, info := range servers {
		id := info.ID
		if id == "" {
			id = info.Name
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter,
			ID: raft.ServerID(id), Address: raft.ServerAddress(info.Addr.String())})
	}
	sort.Slice(conf.Servers, func(i, j int) bool { return conf.Servers[i].ID < conf.Servers[j].ID })
	err := r.BootstrapCluster(conf).Error()
	switch {
	case err == nil:
		s.logger.Info("bootstrapped raft cluster", "servers", len(conf.Servers))
	case errors.Is(err, raft.ErrCantBootstrap):
		s.logger.Info("raft already has state; bootstrap skipped")
	default:
		s.logger.Error("failed to bootstrap raft cluster", "error", err)
	}
	return true
}

// reconcileMembers brings the catalog and the Raft configuration in line
// with gossip. It runs on the leader after establishing leadership, on
// every member event and periodically:
//   - alive member: node registered with serfHealth passing (and, for a
//     server, its "consul" service); a server not in the Raft
//     configuration is added (as a non-voter that autopilot promotes);
//   - failed member: serfHealth critical (autopilot removes failed servers);
//   - left member: node deregistered and, for a server, removed from Raft;
//   - reaped member (no longer known to gossip): node deregistered.
//
// It writes only what differs from the catalog.
func (s *Server) reconcileMembers() error {
	members, ok := s.lanMembers()
	if !ok {
		return nil
	}
	var errs []error
	known := make(map[string]bool, len(members))
	for _, m := range members {
		known[m.Name] = true
		if m.Name == s.cfg.NodeName {
			continue // reconcileSelf registers this server with its full details
		}
		if dc := m.Tags[gossip.TagDatacenter]; dc != "" && dc != s.cfg.Datacenter {
			continue
		}
		var err error
		switch m.Status {
		case serf.StatusAlive:
			err = s.handleAliveMember(m)
		case serf.StatusFailed:
			err = s.handleFailedMember(m)
		case serf.StatusLeft:
			err = s.handleLeftMember(m)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("member %s: %w", m.Name, err))
		}
	}
	if err := s.reconcileReaped(known); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// memberRegistration builds the registration of member m with its
// serfHealth check in the given status. When the node already exists its
// own details (set by its agent's anti-entropy) are kept.
func (s *Server) memberRegistration(m serf.Member, status, output string) (*rpc.RegisterRequest, error) {
	req := &rpc.RegisterRequest{
		ID:         m.Tags[gossip.TagID],
		Node:       m.Name,
		Address:    m.Addr.String(),
		Datacenter: s.cfg.Datacenter,
		Check: &state.HealthCheck{
			Node: m.Name, CheckID: state.SerfCheckID, Name: state.SerfCheckName,
			Status: status, Output: output,
		},
	}
	_, node, err := s.fsm.State().GetNode(nil, m.Name)
	if err != nil {
		return nil, err
	}
	if node != nil {
		if node.Address == req.Address && (req.ID == "" || node.ID == req.ID) {
			req.SkipNodeUpdate = true
		} else {
			req.TaggedAddresses = node.TaggedAddresses
			req.NodeMeta = node.Meta
		}
	}
	return req, nil
}

// applyRegistration writes req unless the catalog already matches it.
func (s *Server) applyRegistration(req *rpc.RegisterRequest) error {
	req, err := s.normalizeRegister(req)
	if err != nil {
		return err
	}
	upToDate, err := s.fsm.State().RegistrationUpToDate(registrationFromRequest(req))
	if err != nil {
		return err
	}
	if upToDate {
		return nil
	}
	_, err = s.raftApply(RegisterRequestType, req)
	return mapStateError(err)
}

func (s *Server) handleAliveMember(m serf.Member) error {
	req, err := s.memberRegistration(m, state.HealthPassing, serfAliveOutput)
	if err != nil {
		return err
	}
	info, isServer := gossip.IsServer(m)
	if isServer {
		req.Service = &state.NodeService{ID: consulServiceID, Service: consulServiceID, Port: info.Port,
			Weights: state.Weights{Passing: 1, Warning: 1}}
	}
	if err := s.applyRegistration(req); err != nil {
		return err
	}
	if isServer {
		return s.ensureRaftPeer(info)
	}
	return nil
}

func (s *Server) handleFailedMember(m serf.Member) error {
	req, err := s.memberRegistration(m, state.HealthCritical, serfFailedOutput)
	if err != nil {
		return err
	}
	return s.applyRegistration(req)
}

func (s *Server) handleLeftMember(m serf.Member) error {
	if info, ok := gossip.IsServer(m); ok {
		if err := s.removeRaftPeer(info); err != nil {
			return err
		}
	}
	return s.deregisterNode(m.Name)
}

// deregisterNode removes a node from the catalog if it is there.
func (s *Server) deregisterNode(name string) error {
	_, node, err := s.fsm.State().GetNode(nil, name)
	if err != nil || node == nil {
		return err
	}
	s.logger.Info("deregistering node that left the cluster", "node", name)
	_, err = s.raftApply(DeregisterRequestType, &rpc.DeregisterRequest{Node: name})
	return mapStateError(err)
}

// reconcileReaped deregisters catalog nodes that carry a serfHealth check
// (so were put there by gossip) but that gossip no longer knows.
func (s *Server) reconcileReaped(known map[string]bool) error {
	_, checks, err := s.fsm.State().ChecksInState(nil, "any", nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range checks {
		if c.CheckID != state.SerfCheckID || known[c.Node] || c.Node == s.cfg.NodeName {
			continue
		}
		if err := s.deregisterNode(c.Node); err != nil {
			errs = append(errs, err)
		}
		known[c.Node] = true
	}
	return errors.Join(errs...)
}

// ensureRaftPeer adds an alive server of this datacenter to the Raft
// configuration if it is missing.
func (s *Server) ensureRaftPeer(info *gossip.ServerInfo) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrNotStarted
	}
	if info.Expect > 0 && s.cfg.BootstrapExpect > 0 && info.Expect != s.cfg.BootstrapExpect {
		s.logger.Warn("server has a different bootstrap_expect", "server", info.Name, "expect", info.Expect)
	}
	cfg, _, err := raftConfiguration(r)
	if err != nil {
		return err
	}
	id := info.ID
	if id == "" {
		id = info.Name
	}
	addr := info.Addr.String()
	for _, srv := range cfg.Servers {
		if string(srv.ID) == id && string(srv.Address) == addr {
			return nil
		}
	}
	s.logger.Info("adding server to the raft configuration", "server", info.Name, "id", id, "address", addr)
	if s.runningAutopilot() != nil {
		return s.AddServerAsNonVoter(id, addr)
	}
	for _, srv := range cfg.Servers {
		if string(srv.Address) == addr && string(srv.ID) != id {
			if err := r.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return fmt.Errorf("server: remove stale raft entry %s: %w", srv.ID, err)
			}
		}
	}
	if err := r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0).Error(); err != nil {
		return fmt.Errorf("server: add voter %s: %w", id, err)
	}
	return nil
}

// removeRaftPeer removes a server that left from the Raft configuration.
func (s *Server) removeRaftPeer(info *gossip.ServerInfo) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrNotStarted
	}
	cfg, _, err := raftConfiguration(r)
	if err != nil {
		return err
	}
	addr := info.Addr.String()
	for _, srv := range cfg.Servers {
		if srv.ID == s.localRaftID() {
			continue
		}
		if string(srv.ID) == info.ID || string(srv.Address) == addr {
			s.logger.Info("removing server that left from the raft configuration", "server", info.Name, "id", string(srv.ID))
			if err := r.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return fmt.Errorf("server: remove raft peer %s: %w", srv.ID, err)
			}
		}
	}
	return nil
}

// Leave leaves the Raft cluster gracefully before the agent shuts down.
// A leader with peers removes itself from the configuration (Raft then
// steps down and the others elect a new leader); then leaveGossip
// announces the departure on gossip; a follower finally waits (bounded by
// ctx and leaveRemovalTimeout) until the leader has removed it.
//
// The leader removes a server it sees leave. It may instead see it fail,
// when the gossip of its departure overtakes the gossip of its intent to
// leave, and it does not remove a failed server on its own when that would
// leave it without a quorum to spare. So while it waits, the follower asks
// the leader to remove it (Operator.RaftRemovePeerByID, which the leader
// grants once gossip no longer shows this server alive), every
// leaveAskInterval.
func (s *Server) Leave(ctx context.Context, leaveGossip func() error) error {
	r := s.raftOrNil()
	if r == nil {
		if leaveGossip != nil {
			return leaveGossip()
		}
		return nil
	}
	self := s.localRaftID()
	inConfig := func() (bool, int) {
		cfg, _, err := raftConfiguration(r)
		if err != nil {
			return false, 0
		}
		found := false
		for _, srv := range cfg.Servers {
			if srv.ID == self {
				found = true
			}
		}
		return found, len(cfg.Servers)
	}
	wasLeader := r.State() == raft.Leader
	if found, n := inConfig(); wasLeader && found && n > 1 {
		s.logger.Info("leader leaving: removing itself from the raft configuration")
		if err := r.RemoveServer(self, 0, 0).Error(); err != nil {
			s.logger.Error("failed to remove self from the raft configuration", "error", err)
		}
	}
	var errs []error
	if leaveGossip != nil {
		if err := leaveGossip(); err != nil {
			errs = append(errs, err)
		}
	}
	if found, n := inConfig(); !wasLeader && found && n > 1 {
		deadline := time.Now().Add(leaveRemovalTimeout)
		nextAsk := time.Now()
		var askErr error
		for ctx.Err() == nil {
			if found, _ := inConfig(); !found {
				s.logger.Info("removed from the raft configuration by the leader")
				askErr = nil
				break
			}
			if !time.Now().Before(deadline) {
				break
			}
			if !time.Now().Before(nextAsk) {
				actx, cancel := context.WithTimeout(ctx, leaveAskInterval)
				askErr = s.RPC(actx, rpc.MethodOperatorRaftRemovePeerByID,
					&rpc.RaftRemovePeerRequest{ID: string(self)}, &struct{}{})
				cancel()
				nextAsk = time.Now().Add(leaveAskInterval)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		if found, _ := inConfig(); found {
			s.logger.Warn("left without being removed from the raft configuration; remove it with `cairn operator raft remove-peer`",
				"id", string(self), "last_error", askErr)
		}
	}
	return errors.Join(errs...)
}

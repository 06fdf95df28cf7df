package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Autopilot timings: how often the leader refreshes server health (as
// Consul's server_health_interval) and how often it promotes stable
// servers and prunes dead ones.
const (
	defaultAutopilotUpdateInterval    = 2 * time.Second
	defaultAutopilotReconcileInterval = 10 * time.Second
)

// Member statuses of ServerMember.Status, as serf reports them.
const (
	MemberAlive   = "alive"
	MemberFailed  = "failed"
	MemberLeft    = "left"
	MemberLeaving = "leaving"
)

// ServerMember is one server as the cluster membership (serf) knows it.
type ServerMember struct {
	// Name is the node name; ID the Raft server ID (the node ID).
	Name, ID string
	// Addr is the server's Raft address (host:port). Raft and RPC share the
	// server port, so it is also where ServerCaller reaches the server.
	Addr string
	// Status is MemberAlive, MemberFailed, MemberLeft or MemberLeaving.
	Status string
	// Build is the server's version string.
	Build string
}

// ServerCaller makes an RPC to the one server at addr (its Raft/RPC
// address) without forwarding it anywhere else. The leader's autopilot
// uses it to ask every server for its Raft progress
// (rpc.MethodOperatorRaftStats). It must honour ctx's deadline.
type ServerCaller func(ctx context.Context, addr, method string, args, reply any) error

// operatorState is the autopilot and membership wiring of a Server. Its
// zero value is ready to use.
//
// Lock order: mu is a leaf lock; it is never held while calling into Raft,
// autopilot or a hook.
type operatorState struct {
	mu           sync.RWMutex
	lister       func() []ServerMember
	caller       ServerCaller
	defaults     *state.AutopilotConfig
	ap           *autopilot.Autopilot // non-nil while this server leads
	updateEvery  time.Duration        // 0: defaultAutopilotUpdateInterval
	reconcileDur time.Duration        // 0: defaultAutopilotReconcileInterval

	removals sync.WaitGroup // dead-server removals started by autopilot
}

// SetServerLister sets the source of the known servers and their
// membership status (the clustering layer feeds it from serf). Without one,
// every server in the Raft configuration counts as alive, so autopilot
// never removes a peer it has no news of. Safe to call at any time.
func (s *Server) SetServerLister(fn func() []ServerMember) {
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	s.op.lister = fn
}

// SetServerCaller sets how the leader reaches one specific server for its
// Raft stats. Without one, only the leader's own health is known and other
// servers count as unhealthy (so none is promoted to voter).
func (s *Server) SetServerCaller(fn ServerCaller) {
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	s.op.caller = fn
}

// SetAutopilotDefaults sets the configuration a new leader stores when the
// cluster has none yet (the agent's autopilot {} block); without it
// state.DefaultAutopilotConfig is used. Call it before Start.
func (s *Server) SetAutopilotDefaults(c state.AutopilotConfig) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("server: autopilot defaults: %w", err)
	}
	c.CreateIndex, c.ModifyIndex = 0, 0
	s.op.mu.Lock()
	defer s.op.mu.Unlock()
	s.op.defaults = &c
	return nil
}

// AddServerAsNonVoter adds a server to the Raft configuration as a
// non-voter (replacing a stale entry with the same address); autopilot
// promotes it to voter once it has been healthy for
// ServerStabilizationTime. It fails with rpc.ErrNoLeader unless this
// server leads with autopilot running.
func (s *Server) AddServerAsNonVoter(id, addr string) error {
	if id == "" || addr == "" {
		return fmt.Errorf("server: add server: id and address are required: %w", rpc.ErrBadRequest)
	}
	ap := s.runningAutopilot()
	if ap == nil {
		return fmt.Errorf("server: add server %q: %w", id, rpc.ErrNoLeader)
	}
	if err := ap.AddServer(&autopilot.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr),
		Name: id, NodeStatus: autopilot.NodeAlive, RaftVersion: 3}); err != nil {
		return fmt.Errorf("server: add server %q at %s: %w", id, addr, err)
	}
	return nil
}

// RemoveDeadServers asks the running autopilot (if this server leads) to
// prune failed and left servers now rather than at its next tick. Call it
// on membership events.
func (s *Server) RemoveDeadServers() {
	if ap := s.runningAutopilot(); ap != nil {
		ap.RemoveDeadServers()
	}
}

func (s *Server) runningAutopilot() *autopilot.Autopilot {
	s.op.mu.RLock()
	defer s.op.mu.RUnlock()
	return s.op.ap
}

// localRaftID is this server's Raft ID.
func (s *Server) localRaftID() raft.ServerID {
	if s.cfg.NodeID != "" {
		return raft.ServerID(s.cfg.NodeID)
	}
	return raft.ServerID(s.cfg.NodeName)
}

// knownServers returns the servers the membership layer knows, or (without
// a lister) every server of the Raft configuration as alive. explicit
// reports whether a lister supplied the list.
func (s *Server) knownServers() (members []ServerMember, explicit bool) {
	s.op.mu.RLock()
	lister := s.op.lister
	s.op.mu.RUnlock()
	if lister != nil {
		return lister(), true
	}
	self := ServerMember{Name: s.cfg.NodeName, ID: string(s.localRaftID()), Status: MemberAlive}
	r := s.raftOrNil()
	if r == nil {
		return []ServerMember{self}, false
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return []ServerMember{self}, false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == s.localRaftID() {
			self.Addr = string(srv.Address)
			members = append(members, self)
			continue
		}
		// The name is unknown without membership data.
		members = append(members, ServerMember{ID: string(srv.ID), Addr: string(srv.Address), Status: MemberAlive})
	}
	if len(members) == 0 {
		members = []ServerMember{self}
	}
	return members, false
}

// autopilotConfig returns the stored configuration, else the defaults.
func (s *Server) autopilotConfig() state.AutopilotConfig {
	if _, c, err := s.fsm.State().AutopilotConfig(nil); err == nil && c != nil {
		return *c
	}
	return s.autopilotDefaults()
}

func (s *Server) autopilotDefaults() state.AutopilotConfig {
	s.op.mu.RLock()
	defer s.op.mu.RUnlock()
	if s.op.defaults != nil {
		return *s.op.defaults
	}
	return state.DefaultAutopilotConfig()
}

// initAutopilotConfig stores the default configuration if the cluster has
// none (a CAS on index 0, so a concurrent or earlier write always wins).
// The leader loop calls it once leadership is established; a failure is
// logged, and autopilot then runs on the defaults until the next leader.
func (s *Server) initAutopilotConfig() {
	if _, c, err := s.fsm.State().AutopilotConfig(nil); err != nil || c != nil {
		return
	}
	if _, err := s.raftApply(AutopilotRequestType, &rpc.AutopilotSetConfigRequest{
		Config: s.autopilotDefaults(), CAS: true}); err != nil {
		s.logger.Warn("failed to store the initial autopilot configuration", "error", err)
	}
}

// startAutopilot runs autopilot; the leader loop calls it once leadership
// is established (after initAutopilotConfig) and stopAutopilot when it
// ends.
func (s *Server) startAutopilot() {
	r := s.raftOrNil()
	if r == nil {
		return
	}
	s.op.mu.Lock()
	if s.op.ap != nil {
		s.op.mu.Unlock()
		return
	}
	update, reconcile := s.op.updateEvery, s.op.reconcileDur
	s.op.mu.Unlock()
	if update <= 0 {
		update = defaultAutopilotUpdateInterval
	}
	if reconcile <= 0 {
		reconcile = defaultAutopilotReconcileInterval
	}
	ap := autopilot.New(r, &autopilotDelegate{s: s},
		autopilot.WithLogger(newHCLogAdapter(s.logger, "autopilot")),
		autopilot.WithUpdateInterval(update),
		autopilot.WithReconcileInterval(reconcile))
	// Start computes a first state synchronously, so health is available
	// as soon as it returns.
	ap.Start(context.Background())
	s.op.mu.Lock()
	s.op.ap = ap
	s.op.mu.Unlock()
	s.logger.Info("autopilot started")
}

// stopAutopilot stops autopilot (if running) and waits for its goroutines
// and any dead-server removal it started.
func (s *Server) stopAutopilot() {
	s.op.mu.Lock()
	ap := s.op.ap
	s.op.ap = nil
	s.op.mu.Unlock()
	if ap == nil {
		return
	}
	<-ap.Stop()
	s.op.removals.Wait()
	s.logger.Info("autopilot stopped")
}

// localRaftStats is this server's Raft progress.
func (s *Server) localRaftStats() (rpc.RaftStats, error) {
	r := s.raftOrNil()
	if r == nil {
		return rpc.RaftStats{}, ErrNotStarted
	}
	var out rpc.RaftStats
	stats := r.Stats()
	term, err := strconv.ParseUint(stats["last_log_term"], 10, 64)
	if err != nil {
		return out, fmt.Errorf("server: raft last_log_term %q: %w", stats["last_log_term"], err)
	}
	out.LastTerm = term
	out.LastIndex = r.LastIndex()
	switch last := r.LastContact(); {
	case r.State() == raft.Leader:
		out.LastContact = 0
	case last.IsZero():
		out.LastContact = -1
	default:
		out.LastContact = time.Since(last)
	}
	return out, nil
}

func (s *Server) raftStats(_ context.Context, _ *rpc.RaftStatsRequest, reply *rpc.RaftStats) error {
	st, err := s.localRaftStats()
	if err != nil {
		return err
	}
	*reply = st
	return nil
}

// autopilotDelegate connects raft-autopilot to the server. Autopilot calls
// it from its own goroutines; every method is safe for concurrent use.
type autopilotDelegate struct {
	s *Server
}

var _ autopilot.ApplicationIntegration = (*autopilotDelegate)(nil)

// AutopilotConfig implements autopilot.ApplicationIntegration.
func (d *autopilotDelegate) AutopilotConfig() *autopilot.Config {
	c := d.s.autopilotConfig()
	return &autopilot.Config{
		CleanupDeadServers:      c.CleanupDeadServers,
		LastContactThreshold:    time.Duration(c.LastContactThreshold),
		MaxTrailingLogs:         c.MaxTrailingLogs,
		MinQuorum:               c.MinQuorum,
		ServerStabilizationTime: time.Duration(c.ServerStabilizationTime),
	}
}

// NotifyState implements autopilot.ApplicationIntegration.
func (d *autopilotDelegate) NotifyState(*autopilot.State) {}

// KnownServers implements autopilot.ApplicationIntegration.
func (d *autopilotDelegate) KnownServers() map[raft.ServerID]*autopilot.Server {
	members, _ := d.s.knownServers()
	self := d.s.localRaftID()
	out := make(map[raft.ServerID]*autopilot.Server, len(members))
	for _, m := range members {
		if m.ID == "" {
			continue
		}
		id := raft.ServerID(m.ID)
		out[id] = &autopilot.Server{
			ID:          id,
			Name:        m.Name,
			Address:     raft.ServerAddress(m.Addr),
			NodeStatus:  nodeStatus(m.Status),
			Version:     m.Build,
			RaftVersion: 3,
			IsLeader:    id == self && d.s.IsLeader(),
			// Every Cairn server may vote; autopilot counts potential
			// voters by type when it decides how many it may remove.
			NodeType: autopilot.NodeVoter,
		}
	}
	return out
}

func nodeStatus(s string) autopilot.NodeStatus {
	switch s {
	case MemberAlive:
		return autopilot.NodeAlive
	case MemberFailed:
		return autopilot.NodeFailed
	case MemberLeft, MemberLeaving:
		return autopilot.NodeLeft
	default:
		return autopilot.NodeUnknown
	}
}

// FetchServerStats implements autopilot.ApplicationIntegration: this
// server's stats locally, every other server's through the ServerCaller in
// parallel, each bounded by ctx.
func (d *autopilotDelegate) FetchServerStats(ctx context.Context, servers map[raft.ServerID]*autopilot.Server) map[raft.ServerID]*autopilot.ServerStats {
	d.s.op.mu.RLock()
	caller := d.s.op.caller
	d.s.op.mu.RUnlock()

	self := d.s.localRaftID()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[raft.ServerID]*autopilot.ServerStats, len(servers))
	)
	put := func(id raft.ServerID, st rpc.RaftStats) {
		mu.Lock()
		defer mu.Unlock()
		out[id] = &autopilot.ServerStats{LastContact: st.LastContact, LastTerm: st.LastTerm, LastIndex: st.LastIndex}
	}
	for id, srv := range servers {
		if id == self {
			if st, err := d.s.localRaftStats(); err == nil {
				put(id, st)
			}
			continue
		}
		if caller == nil || srv.Address == "" {
			continue
		}
		wg.Add(1)
		go func(id raft.ServerID, addr string) {
			defer wg.Done()
			var st rpc.RaftStats
			if err := caller(ctx, addr, rpc.MethodOperatorRaftStats, &rpc.RaftStatsRequest{}, &st); err != nil {
				d.s.logger.Warn("failed to fetch raft stats of server", "server_id", string(id), "address", addr, "error", err)
				return
			}
			put(id, st)
		}(id, string(srv.Address))
	}
	wg.Wait()
	return out
}

// RemoveFailedServer implements autopilot.ApplicationIntegration. Autopilot
// has already applied MinQuorum and kept a majority of voters; the removal
// runs in the background because autopilot expects this to return at once.
func (d *autopilotDelegate) RemoveFailedServer(srv *autopilot.Server) {
	s := d.s
	r := s.raftOrNil()
	if r == nil || srv == nil || srv.ID == s.localRaftID() {
		return
	}
	if srv.NodeStatus != autopilot.NodeFailed && srv.NodeStatus != autopilot.NodeLeft {
		return
	}
	s.op.removals.Add(1)
	go func() {
		defer s.op.removals.Done()
		err := r.RemoveServer(srv.ID, 0, 0).Error()
		switch {
		case err == nil:
			s.logger.Info("removed dead server from the raft configuration",
				"server_id", string(srv.ID), "name", srv.Name, "status", string(srv.NodeStatus))
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			s.logger.Debug("dead server removal abandoned", "server_id", string(srv.ID), "error", err)
		default:
			s.logger.Error("failed to remove dead server", "server_id", string(srv.ID), "error", err)
		}
	}()
}

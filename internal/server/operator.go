package server

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// raftProtocolVersion is the Raft protocol version every Cairn server
// speaks (server IDs, non-voters), reported as Consul does.
const raftProtocolVersion = "3"

// errAutopilotNotRunning is returned by the autopilot reads on a leader
// whose autopilot has not produced a state yet; it wraps rpc.ErrNoLeader
// so callers retry.
var errAutopilotNotRunning = fmt.Errorf("server: autopilot is not running yet: %w", rpc.ErrNoLeader)

// leaderRaft returns Raft if this server leads, else rpc.ErrNoLeader.
func (s *Server) leaderRaft() (*raft.Raft, error) {
	r := s.raftOrNil()
	if r == nil {
		return nil, ErrNotStarted
	}
	if r.State() != raft.Leader {
		return nil, rpc.ErrNoLeader
	}
	return r, nil
}

// raftConfiguration reads the latest Raft configuration and its index
// (raft v1.8's GetConfiguration leaves the index 0, as Consul then reports).
func raftConfiguration(r *raft.Raft) (raft.Configuration, uint64, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, 0, fmt.Errorf("server: raft configuration: %w", err)
	}
	return f.Configuration(), f.Index(), nil
}

func (s *Server) operatorRaftGetConfiguration(_ context.Context, args *rpc.DCSpecificRequest, reply *rpc.RaftConfigurationResponse) error {
	if err := s.checkConsistency(&args.QueryOptions); err != nil {
		return err
	}
	r := s.raftOrNil()
	cfg, idx, err := raftConfiguration(r)
	if err != nil {
		return err
	}
	members, _ := s.knownServers()
	names := make(map[string]string, len(members))
	for _, m := range members {
		names[m.ID] = m.Name
	}
	_, leaderID := r.LeaderWithID()
	var apState *autopilot.State
	if ap := s.runningAutopilot(); ap != nil {
		apState = ap.GetState()
	}
	reply.Index = idx
	reply.Servers = make([]*rpc.RaftServer, 0, len(cfg.Servers))
	for _, srv := range cfg.Servers {
		node, ok := names[string(srv.ID)]
		if !ok || node == "" {
			node = "(unknown)"
		}
		out := &rpc.RaftServer{
			ID:              string(srv.ID),
			Node:            node,
			Address:         string(srv.Address),
			Leader:          srv.ID == leaderID,
			ProtocolVersion: raftProtocolVersion,
			Voter:           srv.Suffrage == raft.Voter,
		}
		switch {
		case srv.ID == s.localRaftID():
			out.LastIndex = r.LastIndex()
		case apState != nil && apState.Servers[srv.ID] != nil:
			out.LastIndex = apState.Servers[srv.ID].Stats.LastIndex
		}
		reply.Servers = append(reply.Servers, out)
	}
	return nil
}

func (s *Server) operatorRaftRemovePeerByAddress(_ context.Context, args *rpc.RaftRemovePeerRequest, _ *struct{}) error {
	if args.Address == "" {
		return fmt.Errorf("missing peer address: %w", rpc.ErrBadRequest)
	}
	return s.removePeer(func(srv raft.Server) bool { return string(srv.Address) == args.Address },
		fmt.Sprintf("address %q", args.Address))
}

func (s *Server) operatorRaftRemovePeerByID(_ context.Context, args *rpc.RaftRemovePeerRequest, _ *struct{}) error {
	if args.ID == "" {
		return fmt.Errorf("missing peer id: %w", rpc.ErrBadRequest)
	}
	return s.removePeer(func(srv raft.Server) bool { return string(srv.ID) == args.ID },
		fmt.Sprintf("id %q", args.ID))
}

// removePeer removes the one Raft server that match selects. It refuses
// this server itself and, when the membership layer is wired, any server
// it still sees alive: such a server would rejoin at once, so it must
// leave first.
func (s *Server) removePeer(match func(raft.Server) bool, what string) error {
	r, err := s.leaderRaft()
	if err != nil {
		return err
	}
	cfg, _, err := raftConfiguration(r)
	if err != nil {
		return err
	}
	var target *raft.Server
	for i := range cfg.Servers {
		if match(cfg.Servers[i]) {
			target = &cfg.Servers[i]
			break
		}
	}
	if target == nil {
		return fmt.Errorf("%s was not found in the Raft configuration: %w", what, rpc.ErrNotFound)
	}
	if target.ID == s.localRaftID() {
		return fmt.Errorf("cannot remove server %s: it is the leader; transfer leadership first: %w",
			target.ID, rpc.ErrBadRequest)
	}
	if members, explicit := s.knownServers(); explicit {
		for _, m := range members {
			if m.ID == string(target.ID) && m.Status == MemberAlive {
				return fmt.Errorf("cannot remove server %s (%s): it is alive in the cluster; make it leave first: %w",
					target.ID, target.Address, rpc.ErrBadRequest)
			}
		}
	}
	if err := r.RemoveServer(target.ID, 0, 0).Error(); err != nil {
		return s.raftChangeError("remove peer "+string(target.ID), err)
	}
	s.logger.Info("removed raft peer", "server_id", string(target.ID), "address", string(target.Address))
	return nil
}

// raftChangeError maps a failed Raft membership change, keeping
// leadership loss recognisable as rpc.ErrNoLeader.
func (s *Server) raftChangeError(what string, err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrRaftShutdown) {
		return fmt.Errorf("server: %s: %v: %w", what, err, rpc.ErrNoLeader)
	}
	return fmt.Errorf("server: %s: %w", what, err)
}

func (s *Server) operatorTransferLeader(_ context.Context, args *rpc.TransferLeaderRequest, reply *rpc.TransferLeaderResponse) error {
	r, err := s.leaderRaft()
	if err != nil {
		return err
	}
	cfg, _, err := raftConfiguration(r)
	if err != nil {
		return err
	}
	voters := 0
	var target *raft.Server
	for i, srv := range cfg.Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
		if args.ID != "" && string(srv.ID) == args.ID {
			target = &cfg.Servers[i]
		}
	}
	if voters < 2 {
		return fmt.Errorf("cannot transfer leadership: there is no other voter in the cluster: %w", rpc.ErrBadRequest)
	}
	var f raft.Future
	if args.ID != "" {
		switch {
		case target == nil:
			return fmt.Errorf("server id %q was not found in the Raft configuration: %w", args.ID, rpc.ErrNotFound)
		case target.ID == s.localRaftID():
			return fmt.Errorf("server %q is already the leader: %w", args.ID, rpc.ErrBadRequest)
		case target.Suffrage != raft.Voter:
			return fmt.Errorf("server %q is not a voter and cannot lead: %w", args.ID, rpc.ErrBadRequest)
		}
		f = r.LeadershipTransferToServer(target.ID, target.Address)
	} else {
		f = r.LeadershipTransfer()
	}
	if err := f.Error(); err != nil {
		return s.raftChangeError("transfer leadership", err)
	}
	s.logger.Info("leadership transferred", "target", args.ID)
	reply.Success = true
	return nil
}

func (s *Server) operatorAutopilotGetConfiguration(_ context.Context, args *rpc.DCSpecificRequest, reply *state.AutopilotConfig) error {
	if err := s.checkConsistency(&args.QueryOptions); err != nil {
		return err
	}
	*reply = s.autopilotConfig()
	return nil
}

func (s *Server) operatorAutopilotSetConfiguration(_ context.Context, args *rpc.AutopilotSetConfigRequest, reply *bool) error {
	if err := args.Config.Validate(); err != nil {
		return fmt.Errorf("invalid autopilot configuration: %v: %w", err, rpc.ErrBadRequest)
	}
	req := *args
	req.Token = "" // tokens must not end up in the Raft log
	resp, err := s.raftApply(AutopilotRequestType, &req)
	if err != nil {
		return err
	}
	ok, isBool := resp.(bool)
	if !isBool {
		return fmt.Errorf("server: autopilot apply returned %T, want bool", resp)
	}
	*reply = ok
	return nil
}

// autopilotState returns the running autopilot's latest state; only the
// leader has one.
func (s *Server) autopilotState() (*autopilot.State, error) {
	if _, err := s.leaderRaft(); err != nil {
		return nil, err
	}
	ap := s.runningAutopilot()
	if ap == nil {
		return nil, errAutopilotNotRunning
	}
	st := ap.GetState()
	if st == nil || len(st.Servers) == 0 {
		return nil, errAutopilotNotRunning
	}
	return st, nil
}

// sortedServerIDs lists the state's servers: voters in autopilot's order
// (leader first), then the others by ID.
func sortedServerIDs(st *autopilot.State) []raft.ServerID {
	ids := append([]raft.ServerID(nil), st.Voters...)
	seen := make(map[raft.ServerID]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	var rest []raft.ServerID
	for id := range st.Servers {
		if !seen[id] {
			rest = append(rest, id)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i] < rest[j] })
	return append(ids, rest...)
}

func (s *Server) operatorServerHealth(_ context.Context, _ *rpc.DCSpecificRequest, reply *rpc.OperatorHealthReply) error {
	st, err := s.autopilotState()
	if err != nil {
		return err
	}
	reply.Healthy = st.Healthy
	reply.FailureTolerance = st.FailureTolerance
	reply.Servers = make([]rpc.ServerHealth, 0, len(st.Servers))
	for _, id := range sortedServerIDs(st) {
		srv := st.Servers[id]
		if srv == nil {
			continue
		}
		reply.Servers = append(reply.Servers, rpc.ServerHealth{
			ID:          string(srv.Server.ID),
			Name:        srv.Server.Name,
			Address:     string(srv.Server.Address),
			SerfStatus:  string(srv.Server.NodeStatus),
			Version:     srv.Server.Version,
			Leader:      srv.State == autopilot.RaftLeader,
			LastContact: state.Duration(max(srv.Stats.LastContact, 0)),
			LastTerm:    srv.Stats.LastTerm,
			LastIndex:   srv.Stats.LastIndex,
			Healthy:     srv.Health.Healthy,
			Voter:       srv.HasVotingRights(),
			StableSince: srv.Health.StableSince.Round(0).UTC(),
		})
	}
	return nil
}

func (s *Server) operatorAutopilotState(_ context.Context, _ *rpc.DCSpecificRequest, reply *rpc.AutopilotStateReply) error {
	st, err := s.autopilotState()
	if err != nil {
		return err
	}
	reply.Healthy = st.Healthy
	reply.FailureTolerance = st.FailureTolerance
	// Without redundancy zones the optimistic tolerance (which assumes
	// healthy non-voters could be promoted) equals the plain one.
	reply.OptimisticFailureTolerance = st.FailureTolerance
	reply.Leader = string(st.Leader)
	reply.Voters = make([]string, 0, len(st.Voters))
	for _, id := range st.Voters {
		reply.Voters = append(reply.Voters, string(id))
	}
	reply.Servers = make(map[string]*rpc.AutopilotServer, len(st.Servers))
	for id, srv := range st.Servers {
		nodeType := string(srv.Server.NodeType)
		if nodeType == "" {
			nodeType = string(autopilot.NodeVoter)
		}
		reply.Servers[string(id)] = &rpc.AutopilotServer{
			ID:          string(srv.Server.ID),
			Name:        srv.Server.Name,
			Address:     string(srv.Server.Address),
			NodeStatus:  string(srv.Server.NodeStatus),
			Version:     srv.Server.Version,
			LastContact: state.Duration(max(srv.Stats.LastContact, 0)),
			LastTerm:    srv.Stats.LastTerm,
			LastIndex:   srv.Stats.LastIndex,
			Healthy:     srv.Health.Healthy,
			StableSince: srv.Health.StableSince.Round(0).UTC(),
			Status:      string(srv.State),
			Meta:        srv.Server.Meta,
			NodeType:    nodeType,
		}
	}
	return nil
}

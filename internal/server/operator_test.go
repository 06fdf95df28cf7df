package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// waitFor polls cond every 20ms until it holds or total passes.
func waitFor(t *testing.T, total time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(total)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", total, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startFastAutopilotServer starts a single leader whose autopilot ticks
// every 50ms.
func startFastAutopilotServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(testConfig(t))
	require.NoError(t, err)
	s.op.updateEvery, s.op.reconcileDur = 50*time.Millisecond, 50*time.Millisecond
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	select {
	case <-s.LeaderReady():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not become ready")
	}
	return s
}

func raftConfig(t *testing.T, s *Server, stale bool) *rpc.RaftConfigurationResponse {
	t.Helper()
	var out rpc.RaftConfigurationResponse
	args := &rpc.DCSpecificRequest{QueryOptions: rpc.QueryOptions{AllowStale: stale}}
	require.NoError(t, s.RPC(context.Background(), rpc.MethodOperatorRaftGetConfiguration, args, &out))
	return &out
}

func TestOperator_RaftGetConfiguration(t *testing.T) {
	s := startServer(t, testConfig(t))
	for _, stale := range []bool{false, true} {
		out := raftConfig(t, s, stale)
		require.Len(t, out.Servers, 1)
		srv := out.Servers[0]
		require.Equal(t, "00000000-0000-0000-0000-000000000001", srv.ID)
		require.Equal(t, "s1", srv.Node)
		require.Equal(t, s.Leader(), srv.Address)
		require.True(t, srv.Leader)
		require.True(t, srv.Voter)
		require.Equal(t, "3", srv.ProtocolVersion)
		require.NotZero(t, srv.LastIndex)
	}
}

func autopilotGet(t *testing.T, s *Server) state.AutopilotConfig {
	t.Helper()
	var out state.AutopilotConfig
	require.NoError(t, s.RPC(context.Background(), rpc.MethodOperatorAutopilotGetConfiguration, &rpc.DCSpecificRequest{}, &out))
	return out
}

func autopilotSet(t *testing.T, s *Server, cfg state.AutopilotConfig, cas bool) bool {
	t.Helper()
	var ok bool
	require.NoError(t, s.RPC(context.Background(), rpc.MethodOperatorAutopilotSetConfiguration,
		&rpc.AutopilotSetConfigRequest{Config: cfg, CAS: cas}, &ok))
	return ok
}

func TestOperator_AutopilotConfiguration(t *testing.T) {
	s := startServer(t, testConfig(t))

	// The new leader stores the defaults.
	waitFor(t, 5*time.Second, "the default autopilot config to be stored", func() bool {
		return autopilotGet(t, s).ModifyIndex > 0
	})
	cfg := autopilotGet(t, s)
	want := state.DefaultAutopilotConfig()
	want.CreateIndex, want.ModifyIndex = cfg.CreateIndex, cfg.ModifyIndex
	require.Equal(t, want, cfg)

	// CAS with a stale index writes nothing.
	stale := cfg
	stale.ModifyIndex--
	stale.MinQuorum = 7
	require.False(t, autopilotSet(t, s, stale, true))
	require.Equal(t, cfg, autopilotGet(t, s))

	// CAS with the current index writes.
	next := cfg
	next.MinQuorum = 3
	next.LastContactThreshold = state.Duration(time.Second)
	require.True(t, autopilotSet(t, s, next, true))
	got := autopilotGet(t, s)
	require.Equal(t, uint(3), got.MinQuorum)
	require.Equal(t, state.Duration(time.Second), got.LastContactThreshold)
	require.Greater(t, got.ModifyIndex, cfg.ModifyIndex)
	require.Equal(t, cfg.CreateIndex, got.CreateIndex)

	// A plain set ignores the index.
	plain := got
	plain.ModifyIndex = 0
	plain.CleanupDeadServers = false
	require.True(t, autopilotSet(t, s, plain, false))
	require.False(t, autopilotGet(t, s).CleanupDeadServers)

	// Invalid values are rejected before Raft.
	bad := got
	bad.ServerStabilizationTime = state.Duration(-time.Second)
	var ok bool
	err := s.RPC(context.Background(), rpc.MethodOperatorAutopilotSetConfiguration,
		&rpc.AutopilotSetConfigRequest{Config: bad}, &ok)
	require.ErrorIs(t, err, rpc.ErrBadRequest)
	require.ErrorContains(t, err, "ServerStabilizationTime")

	// The delegate hands autopilot the stored values.
	apc := (&autopilotDelegate{s: s}).AutopilotConfig()
	require.False(t, apc.CleanupDeadServers)
	require.Equal(t, uint(3), apc.MinQuorum)
	require.Equal(t, time.Second, apc.LastContactThreshold)

	// The configuration survives a snapshot and restore of the FSM.
	final := autopilotGet(t, s)
	snap, err := s.fsm.Snapshot()
	require.NoError(t, err)
	sink := &bufferSink{}
	require.NoError(t, snap.Persist(sink))
	snap.Release()
	f2, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	_, restored, err := f2.State().AutopilotConfig(nil)
	require.NoError(t, err)
	require.Equal(t, final, *restored)
}

func TestFSM_AutopilotCAS(t *testing.T) {
	f, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cfg := state.DefaultAutopilotConfig()
	require.Equal(t, true, applyCmd(t, f, 3, AutopilotRequestType, &rpc.AutopilotSetConfigRequest{Config: cfg, CAS: true}))
	require.Equal(t, false, applyCmd(t, f, 4, AutopilotRequestType, &rpc.AutopilotSetConfigRequest{Config: cfg, CAS: true}))
	cfg.ModifyIndex = 3
	cfg.MaxTrailingLogs = 1
	require.Equal(t, true, applyCmd(t, f, 5, AutopilotRequestType, &rpc.AutopilotSetConfigRequest{Config: cfg, CAS: true}))
	idx, got, err := f.State().AutopilotConfig(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(5), idx)
	require.Equal(t, uint64(1), got.MaxTrailingLogs)
	res := applyCmd(t, f, 6, AutopilotRequestType, []byte("not an object"))
	require.ErrorContains(t, res.(error), "decode autopilot command")
}

func serverHealth(s *Server) (*rpc.OperatorHealthReply, error) {
	var out rpc.OperatorHealthReply
	err := s.RPC(context.Background(), rpc.MethodOperatorServerHealth, &rpc.DCSpecificRequest{}, &out)
	return &out, err
}

func TestOperator_ServerHealthAndState(t *testing.T) {
	s := startServer(t, testConfig(t))
	var health *rpc.OperatorHealthReply
	waitFor(t, 5*time.Second, "autopilot health", func() bool {
		h, err := serverHealth(s)
		if err != nil {
			require.ErrorIs(t, err, rpc.ErrNoLeader)
			return false
		}
		health = h
		return h.Healthy
	})
	require.Equal(t, 0, health.FailureTolerance)
	require.Len(t, health.Servers, 1)
	srv := health.Servers[0]
	require.Equal(t, "00000000-0000-0000-0000-000000000001", srv.ID)
	require.Equal(t, "s1", srv.Name)
	require.Equal(t, s.Leader(), srv.Address)
	require.Equal(t, "alive", srv.SerfStatus)
	require.True(t, srv.Leader)
	require.True(t, srv.Voter)
	require.True(t, srv.Healthy)
	require.NotZero(t, srv.LastTerm)
	require.NotZero(t, srv.LastIndex)
	require.False(t, srv.StableSince.IsZero())

	var st rpc.AutopilotStateReply
	require.NoError(t, s.RPC(context.Background(), rpc.MethodOperatorAutopilotState, &rpc.DCSpecificRequest{}, &st))
	require.True(t, st.Healthy)
	require.Equal(t, srv.ID, st.Leader)
	require.Equal(t, []string{srv.ID}, st.Voters)
	require.Len(t, st.Servers, 1)
	require.Equal(t, "leader", st.Servers[srv.ID].Status)
	require.Equal(t, "voter", st.Servers[srv.ID].NodeType)
	require.Equal(t, "alive", st.Servers[srv.ID].NodeStatus)

	var stats rpc.RaftStats
	require.NoError(t, s.RPC(context.Background(), rpc.MethodOperatorRaftStats, &rpc.RaftStatsRequest{}, &stats))
	require.Zero(t, stats.LastContact)
	require.Equal(t, srv.LastTerm, stats.LastTerm)
}

func TestOperator_RemovePeerErrors(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	tests := []struct {
		name, method string
		args         *rpc.RaftRemovePeerRequest
		want         error
		msg          string
	}{
		{"unknown address", rpc.MethodOperatorRaftRemovePeerByAddress, &rpc.RaftRemovePeerRequest{Address: "10.9.9.9:8300"},
			rpc.ErrNotFound, `address "10.9.9.9:8300" was not found in the Raft configuration`},
		{"unknown id", rpc.MethodOperatorRaftRemovePeerByID, &rpc.RaftRemovePeerRequest{ID: "nope"},
			rpc.ErrNotFound, `id "nope" was not found in the Raft configuration`},
		{"missing address", rpc.MethodOperatorRaftRemovePeerByAddress, &rpc.RaftRemovePeerRequest{},
			rpc.ErrBadRequest, "missing peer address"},
		{"missing id", rpc.MethodOperatorRaftRemovePeerByID, &rpc.RaftRemovePeerRequest{},
			rpc.ErrBadRequest, "missing peer id"},
		{"the leader itself", rpc.MethodOperatorRaftRemovePeerByAddress, &rpc.RaftRemovePeerRequest{Address: s.Leader()},
			rpc.ErrBadRequest, "it is the leader"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RPC(ctx, tc.method, tc.args, &struct{}{})
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	require.Len(t, raftConfig(t, s, false).Servers, 1, "nothing was removed")

	var tl rpc.TransferLeaderResponse
	err := s.RPC(ctx, rpc.MethodOperatorTransferLeader, &rpc.TransferLeaderRequest{}, &tl)
	require.ErrorIs(t, err, rpc.ErrBadRequest)
	require.ErrorContains(t, err, "no other voter")
	require.False(t, tl.Success)
}

// TestOperator_PeersAndDeadServerCleanup adds non-voters that never answer
// (so they are never promoted), removes one by ID, and has autopilot prune
// the other once the membership layer reports it failed.
func TestOperator_PeersAndDeadServerCleanup(t *testing.T) {
	s := startFastAutopilotServer(t)
	ctx := context.Background()
	waitFor(t, 5*time.Second, "autopilot to run", func() bool { return s.runningAutopilot() != nil })

	require.NoError(t, s.AddServerAsNonVoter("s2-id", "127.0.0.1:1"))
	require.NoError(t, s.AddServerAsNonVoter("s3-id", "127.0.0.1:2"))
	out := raftConfig(t, s, false)
	require.Len(t, out.Servers, 3)
	byID := map[string]*rpc.RaftServer{}
	for _, srv := range out.Servers {
		byID[srv.ID] = srv
	}
	require.False(t, byID["s2-id"].Voter)
	require.False(t, byID["s2-id"].Leader)
	require.Equal(t, "(unknown)", byID["s2-id"].Node)
	require.Equal(t, "127.0.0.1:1", byID["s2-id"].Address)

	// Without membership data nothing is pruned and a stale peer can be
	// removed by hand.
	require.NoError(t, s.RPC(ctx, rpc.MethodOperatorRaftRemovePeerByID, &rpc.RaftRemovePeerRequest{ID: "s3-id"}, &struct{}{}))
	require.Len(t, raftConfig(t, s, false).Servers, 2)

	// A server the membership layer sees alive cannot be removed by hand.
	self := ServerMember{Name: "s1", ID: string(s.localRaftID()), Addr: s.Leader(), Status: MemberAlive}
	s2 := ServerMember{Name: "s2", ID: "s2-id", Addr: "127.0.0.1:1", Status: MemberAlive, Build: "1.0.0"}
	s.SetServerLister(func() []ServerMember { return []ServerMember{self, s2} })
	err := s.RPC(ctx, rpc.MethodOperatorRaftRemovePeerByAddress, &rpc.RaftRemovePeerRequest{Address: "127.0.0.1:1"}, &struct{}{})
	require.ErrorIs(t, err, rpc.ErrBadRequest)
	require.ErrorContains(t, err, "alive in the cluster")
	require.Equal(t, "s2", raftConfigByID(t, s)["s2-id"].Node)

	// The health view shows the unanswering non-voter as unhealthy.
	waitFor(t, 5*time.Second, "s2 in the health view", func() bool {
		h, err := serverHealth(s)
		if err != nil || len(h.Servers) != 2 {
			return false
		}
		for _, srv := range h.Servers {
			if srv.ID == "s2-id" {
				return !srv.Healthy && !srv.Voter && srv.Name == "s2" && srv.Version == "1.0.0"
			}
		}
		return false
	})

	// Once it fails, autopilot removes it.
	s2.Status = MemberFailed
	s.SetServerLister(func() []ServerMember { return []ServerMember{self, s2} })
	s.RemoveDeadServers()
	waitFor(t, 5*time.Second, "the failed server to be pruned", func() bool {
		return len(raftConfig(t, s, false).Servers) == 1
	})
	require.True(t, raftConfig(t, s, false).Servers[0].Leader)
}

func raftConfigByID(t *testing.T, s *Server) map[string]*rpc.RaftServer {
	out := map[string]*rpc.RaftServer{}
	for _, srv := range raftConfig(t, s, false).Servers {
		out[srv.ID] = srv
	}
	return out
}

func TestOperator_NotLeader(t *testing.T) {
	cfg := testConfig(t)
	cfg.Bootstrap = false
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	ctx := context.Background()

	var ok bool
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodOperatorAutopilotSetConfiguration,
		&rpc.AutopilotSetConfigRequest{Config: state.DefaultAutopilotConfig()}, &ok), rpc.ErrNoLeader)
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodOperatorRaftRemovePeerByID,
		&rpc.RaftRemovePeerRequest{ID: "x"}, &struct{}{}), rpc.ErrNoLeader)
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodOperatorTransferLeader,
		&rpc.TransferLeaderRequest{}, &rpc.TransferLeaderResponse{}), rpc.ErrNoLeader)
	_, err = serverHealth(s)
	require.ErrorIs(t, err, rpc.ErrNoLeader)
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodOperatorAutopilotState, &rpc.DCSpecificRequest{}, &rpc.AutopilotStateReply{}), rpc.ErrNoLeader)
	var apc state.AutopilotConfig
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodOperatorAutopilotGetConfiguration, &rpc.DCSpecificRequest{}, &apc), rpc.ErrNoLeader)
	require.ErrorIs(t, s.AddServerAsNonVoter("a", "b:1"), rpc.ErrNoLeader)

	// Stale reads answer from the follower: no configuration stored yet,
	// so the defaults; an empty Raft configuration.
	require.NoError(t, s.RPC(ctx, rpc.MethodOperatorAutopilotGetConfiguration,
		&rpc.DCSpecificRequest{QueryOptions: rpc.QueryOptions{AllowStale: true}}, &apc))
	require.Equal(t, state.DefaultAutopilotConfig(), apc)
	require.Empty(t, raftConfig(t, s, true).Servers)

	var stats rpc.RaftStats
	require.NoError(t, s.RPC(ctx, rpc.MethodOperatorRaftStats, &rpc.RaftStatsRequest{}, &stats))
	require.Equal(t, time.Duration(-1), stats.LastContact, "never contacted by a leader")
}

package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// inmemCluster is n in-memory servers whose Raft transports are wired to
// each other; s[0] bootstraps. It stands in for the clustering layer: the
// membership list and the server caller are maps the test controls.
type inmemCluster struct {
	t       *testing.T
	servers []*Server

	mu     sync.Mutex
	status map[string]string // node ID -> member status
	lists  int               // calls of members (autopilot state updates and prunes)
}

func newInmemCluster(t *testing.T, n int) *inmemCluster {
	t.Helper()
	c := &inmemCluster{t: t, status: map[string]string{}}
	for i := range n {
		cfg := testConfig(t)
		cfg.NodeName = fmt.Sprintf("s%d", i+1)
		cfg.NodeID = fmt.Sprintf("00000000-0000-0000-0000-00000000000%d", i+1)
		cfg.RaftAdvertise = fmt.Sprintf("127.0.0.1:%d", 7000+i)
		cfg.Bootstrap = i == 0
		s, err := New(cfg)
		require.NoError(t, err)
		s.op.updateEvery, s.op.reconcileDur = 50*time.Millisecond, 50*time.Millisecond
		s.SetServerLister(c.members)
		s.SetServerCaller(c.call)
		c.status[cfg.NodeID] = MemberAlive
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		require.NoError(t, s.Start())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, s.Shutdown(ctx))
		})
	}
	for _, a := range c.servers {
		for _, b := range c.servers {
			if a != b {
				at := a.parts.transport.(*raft.InmemTransport)
				at.Connect(raft.ServerAddress(b.cfg.RaftAdvertise), b.parts.transport.(*raft.InmemTransport))
			}
		}
	}
	select {
	case <-c.servers[0].LeaderReady():
	case <-time.After(5 * time.Second):
		t.Fatal("s1 did not lead")
	}
	return c
}

func (c *inmemCluster) setStatus(id, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status[id] = status
}

func (c *inmemCluster) members() []ServerMember {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lists++
	var out []ServerMember
	for _, s := range c.servers {
		out = append(out, ServerMember{Name: s.cfg.NodeName, ID: s.cfg.NodeID, Addr: s.cfg.RaftAdvertise,
			Status: c.status[s.cfg.NodeID], Build: "test"})
	}
	return out
}

func (c *inmemCluster) call(ctx context.Context, addr, method string, args, reply any) error {
	for _, s := range c.servers {
		if s.cfg.RaftAdvertise == addr {
			return s.RPC(ctx, method, args, reply)
		}
	}
	return fmt.Errorf("no server at %s", addr)
}

func voters(t *testing.T, s *Server) map[string]bool {
	out := map[string]bool{}
	for _, srv := range raftConfig(t, s, false).Servers {
		out[srv.ID] = srv.Voter
	}
	return out
}

// TestAutopilot_PromoteAndCleanup: servers added as non-voters become
// voters once stable; a failed voter is removed while a majority remains.
func TestAutopilot_PromoteAndCleanup(t *testing.T) {
	c := newInmemCluster(t, 3)
	leader := c.servers[0]
	waitFor(t, 5*time.Second, "autopilot to run", func() bool { return leader.runningAutopilot() != nil })
	cfg := autopilotGet(t, leader)
	cfg.ServerStabilizationTime = state.Duration(100 * time.Millisecond)
	require.True(t, autopilotSet(t, leader, cfg, true))

	for _, s := range c.servers[1:] {
		require.NoError(t, leader.AddServerAsNonVoter(s.cfg.NodeID, s.cfg.RaftAdvertise))
	}
	waitFor(t, 10*time.Second, "both new servers to be promoted", func() bool {
		v := voters(t, leader)
		return len(v) == 3 && v[c.servers[1].cfg.NodeID] && v[c.servers[2].cfg.NodeID]
	})
	waitFor(t, 10*time.Second, "a healthy cluster tolerating one failure", func() bool {
		h, err := serverHealth(leader)
		return err == nil && h.Healthy && h.FailureTolerance == 1 && len(h.Servers) == 3
	})
	// The configuration lists node names and follower progress.
	for _, srv := range raftConfig(t, leader, false).Servers {
		require.NotEqual(t, "(unknown)", srv.Node)
		require.True(t, srv.Voter)
	}

	// s3 dies: autopilot removes it (2 of 3 voters remain, a majority).
	dead := c.servers[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, dead.Shutdown(ctx))
	c.setStatus(dead.cfg.NodeID, MemberFailed)
	leader.RemoveDeadServers()
	waitFor(t, 10*time.Second, "the dead server to be removed", func() bool {
		v := voters(t, leader)
		_, still := v[dead.cfg.NodeID]
		return len(v) == 2 && !still
	})
	var ok bool
	require.NoError(t, leader.RPC(context.Background(), rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte("v")}}, &ok))
	require.True(t, ok, "the remaining two servers still commit")
}

// TestAutopilot_MinQuorumKeepsDeadServer: with MinQuorum at the voter count
// a failed voter is not removed, and the health view shows it unhealthy.
func TestAutopilot_MinQuorumKeepsDeadServer(t *testing.T) {
	c := newInmemCluster(t, 3)
	leader := c.servers[0]
	waitFor(t, 5*time.Second, "autopilot to run", func() bool { return leader.runningAutopilot() != nil })
	cfg := autopilotGet(t, leader)
	cfg.ServerStabilizationTime = state.Duration(100 * time.Millisecond)
	cfg.MinQuorum = 3
	require.True(t, autopilotSet(t, leader, cfg, true))
	for _, s := range c.servers[1:] {
		require.NoError(t, leader.AddServerAsNonVoter(s.cfg.NodeID, s.cfg.RaftAdvertise))
	}
	waitFor(t, 10*time.Second, "promotion", func() bool {
		v := voters(t, leader)
		return len(v) == 3 && v[c.servers[1].cfg.NodeID] && v[c.servers[2].cfg.NodeID]
	})

	dead := c.servers[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, dead.Shutdown(ctx))
	c.setStatus(dead.cfg.NodeID, MemberFailed)
	leader.RemoveDeadServers()
	waitFor(t, 10*time.Second, "the dead server to show unhealthy", func() bool {
		h, err := serverHealth(leader)
		if err != nil {
			return false
		}
		for _, srv := range h.Servers {
			if srv.ID == dead.cfg.NodeID {
				return !srv.Healthy && srv.SerfStatus == "failed" && !h.Healthy && h.FailureTolerance == 0
			}
		}
		return false
	})
	// Let autopilot look at the membership 20 more times (state updates
	// and prunes alternate): the voter is still there.
	c.mu.Lock()
	seen := c.lists
	c.mu.Unlock()
	waitFor(t, 10*time.Second, "more autopilot rounds", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lists >= seen+20
	})
	require.Len(t, voters(t, leader), 3)
}

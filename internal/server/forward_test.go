package server

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestNeedsLeader(t *testing.T) {
	tests := []struct {
		name   string
		method string
		args   any
		want   bool
	}{
		{"default read", rpc.MethodKVSGet, &rpc.KeyRequest{}, true},
		{"stale read", rpc.MethodKVSGet, &rpc.KeyRequest{QueryOptions: rpc.QueryOptions{AllowStale: true}}, false},
		{"consistent read", rpc.MethodKVSGet, &rpc.KeyRequest{QueryOptions: rpc.QueryOptions{RequireConsistent: true}}, true},
		{"stale and consistent", rpc.MethodKVSGet, &rpc.KeyRequest{QueryOptions: rpc.QueryOptions{AllowStale: true, RequireConsistent: true}}, true},
		{"write", rpc.MethodKVSApply, &rpc.KVSRequest{}, true},
		{"operator write", rpc.MethodOperatorTransferLeader, &rpc.TransferLeaderRequest{}, true},
		{"status leader", rpc.MethodStatusLeader, &struct{}{}, false},
		{"status peers", rpc.MethodStatusPeers, &struct{}{}, false},
		{"own raft stats", rpc.MethodOperatorRaftStats, &rpc.RaftStatsRequest{}, false},
		{"datacenters", rpc.MethodCatalogListDatacenters, &rpc.DCSpecificRequest{}, false},
		{"nil args", rpc.MethodKVSGet, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, needsLeader(tc.method, tc.args))
		})
	}
}

// networkConfig is a durable-transport server on a free loopback port.
func networkConfig(t *testing.T, name string) Config {
	cfg := testConfig(t)
	cfg.NodeName, cfg.NodeID = name, "id-"+name
	cfg.InMemory, cfg.DataDir = false, t.TempDir()
	cfg.RaftBindAddr = "127.0.0.1:0"
	cfg.ServerPort = 0
	return cfg
}

func TestServer_HoldsWithoutLeader(t *testing.T) {
	cfg := networkConfig(t, "lonely")
	cfg.Bootstrap = false
	cfg.RPCHoldTimeout = 300 * time.Millisecond
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	require.NotEmpty(t, s.RPCAddr())
	require.NotZero(t, s.cfg.ServerPort, "port 0 is replaced by the bound port")

	start := time.Now()
	var ok bool
	err = s.RPC(context.Background(), rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "a"}}, &ok)
	require.ErrorIs(t, err, rpc.ErrNoLeader)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "held for about rpc_hold_timeout")

	// A cancelled context ends the hold early.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s.RPC(ctx, rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "a"}}, &ok)
	require.Error(t, err)
	require.Less(t, time.Since(start), 250*time.Millisecond)

	// Its own raft stats are answered over the network without a leader.
	pool := rpc.NewConnPool(rpc.ConnPoolConfig{})
	defer func() { require.NoError(t, pool.Shutdown()) }()
	addr, err := net.ResolveTCPAddr("tcp", s.RPCAddr())
	require.NoError(t, err)
	var st rpc.RaftStats
	require.NoError(t, pool.RPC(context.Background(), addr, rpc.MethodOperatorRaftStats, &rpc.RaftStatsRequest{}, &st))
	require.Zero(t, st.LastIndex)
}

// member fakes the LAN member of server s.
func member(s *Server, expect int) serf.Member {
	host, port, _ := net.SplitHostPort(s.RPCAddr())
	return serf.Member{Name: s.cfg.NodeName, Addr: net.ParseIP(host), Status: serf.StatusAlive, Tags: map[string]string{
		gossip.TagRole: gossip.RoleServer, gossip.TagDatacenter: "dc1", gossip.TagPort: port,
		gossip.TagID: s.cfg.NodeID, gossip.TagExpect: strconv.Itoa(expect)}}
}

// startExpectServers starts one networked server per name, each with
// bootstrap_expect = len(names) (mod may change the config further), and
// returns them with their gossip members. Nobody knows the others yet.
func startExpectServers(t *testing.T, names []string, mod func(*Config)) ([]*Server, []serf.Member) {
	t.Helper()
	var servers []*Server
	for _, name := range names {
		cfg := networkConfig(t, name)
		cfg.Bootstrap = false
		cfg.BootstrapExpect = len(names)
		if mod != nil {
			mod(&cfg)
		}
		s, err := New(cfg)
		require.NoError(t, err)
		require.NoError(t, s.Start())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, s.Shutdown(ctx))
		})
		servers = append(servers, s)
	}
	members := make([]serf.Member, 0, len(servers))
	for _, s := range servers {
		members = append(members, member(s, len(names)))
	}
	return servers, members
}

func TestServer_BootstrapExpect(t *testing.T) {
	servers, members := startExpectServers(t, []string{"b1", "b2", "b3"}, nil)

	// Two known servers of three expected: nobody bootstraps.
	for _, s := range servers {
		s.SetLANMembers(func() []serf.Member { return members[:2] })
		s.MembershipChanged()
	}
	time.Sleep(300 * time.Millisecond) // a negative check: give the loops a chance
	for _, s := range servers {
		require.Empty(t, s.Leader())
		require.Zero(t, s.Raft().LastIndex())
	}

	// A peer with a different expect blocks bootstrapping.
	conflict := append(append([]serf.Member(nil), members[:2]...), member(servers[2], 5))
	servers[0].SetLANMembers(func() []serf.Member { return conflict })
	require.False(t, servers[0].tryBootstrap())

	// All three known: one cluster with three voters, one leader.
	for _, s := range servers {
		s.SetLANMembers(func() []serf.Member { return members })
		s.MembershipChanged()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := servers[0].Leader()
		if l != "" && servers[1].Leader() == l && servers[2].Leader() == l {
			break
		}
		require.True(t, time.Now().Before(deadline), "no common leader")
		time.Sleep(10 * time.Millisecond)
	}
	// A follower learns the leader from its first heartbeat, which can come
	// before the configuration entry is in its log: wait for the entry.
	for _, s := range servers {
		deadline := time.Now().Add(10 * time.Second)
		for {
			cfg, _, err := raftConfiguration(s.Raft())
			require.NoError(t, err)
			if len(cfg.Servers) == 3 || time.Now().After(deadline) {
				require.Len(t, cfg.Servers, 3)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// A write on a follower is forwarded to the leader.
	var follower *Server
	for _, s := range servers {
		if !s.IsLeader() {
			follower = s
		}
	}
	var ok bool
	require.NoError(t, follower.RPC(context.Background(), rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte("v")}}, &ok))
	require.True(t, ok)
	var out rpc.IndexedKVEntries
	require.NoError(t, follower.RPC(context.Background(), rpc.MethodKVSGet, &rpc.KeyRequest{Key: "k"}, &out))
	require.Len(t, out.Entries, 1)
}

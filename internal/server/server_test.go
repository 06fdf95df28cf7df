package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger sends the server's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func testConfig(t *testing.T) Config {
	return Config{
		NodeName:   "s1",
		NodeID:     "00000000-0000-0000-0000-000000000001",
		Datacenter: "dc1",
		InMemory:   true,
		Bootstrap:  true,
		ServerPort: 8300,
		// A lone server without a leader need not hold requests long.
		RPCHoldTimeout: 100 * time.Millisecond,
		Logger:         testLogger(t),
	}
}

// startServer starts a server and waits until it leads and is ready.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	require.NoError(t, err)
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

func kvSet(t *testing.T, s *Server, key, value string) {
	t.Helper()
	var ok bool
	require.NoError(t, s.RPC(context.Background(), rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: key, Value: []byte(value)}}, &ok))
	require.True(t, ok)
}

func TestServer_LeaderWithinOneSecond(t *testing.T) {
	start := time.Now()
	s, err := New(testConfig(t))
	require.NoError(t, err)
	require.NoError(t, s.Start())
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	select {
	case <-s.LeaderReady():
	case <-time.After(time.Second):
		t.Fatal("not leader within 1s")
	}
	t.Logf("leader after %s", time.Since(start))
	require.True(t, s.IsLeader())
	require.NotEmpty(t, s.Leader())

	var csn rpc.IndexedCheckServiceNodes
	require.NoError(t, s.RPC(context.Background(), rpc.MethodHealthServiceNodes,
		&rpc.ServiceSpecificRequest{ServiceName: "consul"}, &csn))
	require.Len(t, csn.Nodes, 1)
	require.Equal(t, "s1", csn.Nodes[0].Node.Node)
	require.Equal(t, 8300, csn.Nodes[0].Service.Port)
	require.Len(t, csn.Nodes[0].Checks, 1)
	require.Equal(t, state.SerfCheckID, csn.Nodes[0].Checks[0].CheckID)
	require.Equal(t, state.HealthPassing, csn.Nodes[0].Checks[0].Status)

	// Reconciling an up-to-date catalog writes nothing.
	last := s.Raft().LastIndex()
	require.NoError(t, s.reconcileSelf())
	require.Equal(t, last, s.Raft().LastIndex())

	var leader string
	require.NoError(t, s.RPC(context.Background(), rpc.MethodStatusLeader, &struct{}{}, &leader))
	require.Equal(t, s.Leader(), leader)
	var peers []string
	require.NoError(t, s.RPC(context.Background(), rpc.MethodStatusPeers, nil, &peers))
	require.Equal(t, []string{leader}, peers)
	var dcs []string
	require.NoError(t, s.RPC(context.Background(), rpc.MethodCatalogListDatacenters, &rpc.DCSpecificRequest{}, &dcs))
	require.Equal(t, []string{"dc1"}, dcs)
}

func TestServer_KVSetGetCAS(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	kvSet(t, s, "a", "1")

	var out rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "a"}, &out))
	require.Len(t, out.Entries, 1)
	require.Equal(t, "1", string(out.Entries[0].Value))
	require.Equal(t, out.Entries[0].ModifyIndex, out.Index)
	modify := out.Entries[0].ModifyIndex

	// Two CAS writes with the same index: exactly one wins.
	var wg sync.WaitGroup
	results := make([]bool, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok bool
			err := s.RPC(ctx, rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVCAS,
				Entry: state.KVEntry{Key: "a", Value: []byte(strconv.Itoa(i)), ModifyIndex: modify}}, &ok)
			if err == nil {
				results[i] = ok
			}
		}()
	}
	wg.Wait()
	wins := 0
	for _, ok := range results {
		if ok {
			wins++
		}
	}
	require.Equal(t, 1, wins)

	cases := []struct {
		name string
		req  *rpc.KVSRequest
		err  error
	}{
		{"empty key", &rpc.KVSRequest{Op: rpc.KVSet}, rpc.ErrBadRequest},
		{"unknown op", &rpc.KVSRequest{Op: "bogus", Entry: state.KVEntry{Key: "x"}}, rpc.ErrBadRequest},
		{"lock needs sessions", &rpc.KVSRequest{Op: rpc.KVLock, Entry: state.KVEntry{Key: "x"}}, rpc.ErrBadRequest},
		{"too large", &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "x", Value: make([]byte, DefaultKVMaxValueSize+1)}}, rpc.ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ok bool
			require.ErrorIs(t, s.RPC(ctx, rpc.MethodKVSApply, tc.req, &ok), tc.err)
		})
	}

	t.Run("list and keys", func(t *testing.T) {
		kvSet(t, s, "dir/x", "")
		kvSet(t, s, "dir/y/z", "")
		var keys rpc.IndexedKeyList
		require.NoError(t, s.RPC(ctx, rpc.MethodKVSListKeys, &rpc.KeyListRequest{Prefix: "dir/", Separator: "/"}, &keys))
		require.Equal(t, []string{"dir/x", "dir/y/"}, keys.Keys)
		var list rpc.IndexedKVEntries
		require.NoError(t, s.RPC(ctx, rpc.MethodKVSList, &rpc.KeyRequest{Key: "dir/"}, &list))
		require.Len(t, list.Entries, 2)
		var ok bool
		require.NoError(t, s.RPC(ctx, rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVDeleteTree, Entry: state.KVEntry{Key: "dir/"}}, &ok))
		var after rpc.IndexedKVEntries
		require.NoError(t, s.RPC(ctx, rpc.MethodKVSList, &rpc.KeyRequest{Key: "dir/"}, &after))
		require.Empty(t, after.Entries)
		require.Greater(t, after.Index, list.Index)
	})
}

func TestServer_UnknownMethod(t *testing.T) {
	s := startServer(t, testConfig(t))
	require.ErrorIs(t, s.RPC(context.Background(), "Nope.Nothing", nil, nil), rpc.ErrUnknownMethod)
	var ok bool
	require.ErrorIs(t, s.RPC(context.Background(), rpc.MethodKVSApply, &rpc.KeyRequest{}, &ok), rpc.ErrBadRequest)
}

func TestServer_BlockingQuery(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	kvSet(t, s, "watched", "1")
	var first rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "watched"}, &first))

	t.Run("woken by a write", func(t *testing.T) {
		type result struct {
			out   rpc.IndexedKVEntries
			err   error
			woken time.Time
		}
		done := make(chan result, 1)
		go func() {
			var r result
			r.err = s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "watched",
				QueryOptions: rpc.QueryOptions{MinQueryIndex: first.Index, MaxQueryTime: 10 * time.Second}}, &r.out)
			r.woken = time.Now()
			done <- r
		}()
		// A write to another key must not wake it.
		kvSet(t, s, "other", "x")
		select {
		case <-done:
			t.Fatal("blocking query returned for an unrelated write")
		case <-time.After(100 * time.Millisecond):
		}
		kvSet(t, s, "watched", "2")
		wrote := time.Now()
		select {
		case r := <-done:
			require.NoError(t, r.err)
			require.Less(t, r.woken.Sub(wrote), 50*time.Millisecond)
			require.Greater(t, r.out.Index, first.Index)
			require.Equal(t, "2", string(r.out.Entries[0].Value))
		case <-time.After(5 * time.Second):
			t.Fatal("blocking query not woken")
		}
	})

	t.Run("times out", func(t *testing.T) {
		var cur rpc.IndexedKVEntries
		require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "watched"}, &cur))
		wait := 200 * time.Millisecond
		start := time.Now()
		var out rpc.IndexedKVEntries
		require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "watched",
			QueryOptions: rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: wait}}, &out))
		took := time.Since(start)
		require.GreaterOrEqual(t, took, wait)
		require.Less(t, took, wait+wait/16+time.Second)
		require.Equal(t, cur.Index, out.Index)
	})

	t.Run("caller cancels", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		var out rpc.IndexedKVEntries
		err := s.RPC(cctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "watched",
			QueryOptions: rpc.QueryOptions{MinQueryIndex: 1 << 40}}, &out)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("health query woken by check change", func(t *testing.T) {
		reg := &rpc.RegisterRequest{Node: "n1", Address: "10.0.0.1",
			Service: &state.NodeService{Service: "web"},
			Check:   &state.HealthCheck{CheckID: "web-check", ServiceID: "web", Status: state.HealthCritical}}
		var none struct{}
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogRegister, reg, &none))
		var cur rpc.IndexedCheckServiceNodes
		require.NoError(t, s.RPC(ctx, rpc.MethodHealthServiceNodes, &rpc.ServiceSpecificRequest{ServiceName: "web"}, &cur))
		done := make(chan rpc.IndexedCheckServiceNodes, 1)
		go func() {
			var out rpc.IndexedCheckServiceNodes
			_ = s.RPC(ctx, rpc.MethodHealthServiceNodes, &rpc.ServiceSpecificRequest{ServiceName: "web",
				QueryOptions: rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: 10 * time.Second}}, &out)
			done <- out
		}()
		reg.Check.Status = state.HealthPassing
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogRegister, reg, &none))
		select {
		case out := <-done:
			require.Greater(t, out.Index, cur.Index)
			require.Equal(t, state.HealthPassing, out.Nodes[0].Checks[0].Status)
		case <-time.After(5 * time.Second):
			t.Fatal("health query not woken")
		}
	})
}

func TestServer_QueryMeta(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	cases := []struct {
		name string
		opts rpc.QueryOptions
		want string
	}{
		{"default", rpc.QueryOptions{}, rpc.ConsistencyLeader},
		{"stale", rpc.QueryOptions{AllowStale: true}, rpc.ConsistencyStale},
		{"consistent", rpc.QueryOptions{RequireConsistent: true}, rpc.ConsistencyConsistent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out rpc.IndexedKVEntries
			require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "missing", QueryOptions: tc.opts}, &out))
			require.Equal(t, tc.want, out.ConsistencyLevel)
			require.True(t, out.KnownLeader)
			require.Zero(t, out.LastContact)
			require.GreaterOrEqual(t, out.Index, uint64(1), "index is at least 1 even with an empty KV store")
			require.Empty(t, out.Entries)
		})
	}
	var keys rpc.IndexedKeyList
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSListKeys, &rpc.KeyListRequest{Prefix: "none/"}, &keys))
	require.Equal(t, uint64(1), keys.Index)
}

func TestServer_NotLeader(t *testing.T) {
	cfg := testConfig(t)
	cfg.Bootstrap = false
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	ctx := context.Background()
	var out rpc.IndexedKVEntries
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "a"}, &out), rpc.ErrNoLeader)
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "a",
		QueryOptions: rpc.QueryOptions{RequireConsistent: true}}, &out), rpc.ErrNoLeader)
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "a",
		QueryOptions: rpc.QueryOptions{AllowStale: true}}, &out))
	require.False(t, out.KnownLeader)
	require.Equal(t, uint64(1), out.Index)
	var ok bool
	require.ErrorIs(t, s.RPC(ctx, rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "a"}}, &ok), rpc.ErrNoLeader)
}

func TestServer_CatalogAndFilter(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	var none struct{}
	for i, n := range []string{"n1", "n2"} {
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogRegister, &rpc.RegisterRequest{
			Node: n, Address: "10.0.0." + strconv.Itoa(i+1), NodeMeta: map[string]string{"rack": n},
			Service: &state.NodeService{Service: "web", Tags: []string{"v" + strconv.Itoa(i+1)}, Port: 80},
			Checks:  []*state.HealthCheck{{Name: "web-check", ServiceID: "web", Status: state.HealthPassing}},
		}, &none))
	}

	t.Run("invalid register", func(t *testing.T) {
		bad := []*rpc.RegisterRequest{
			{Address: "1.2.3.4"},
			{Node: "x"},
			{Node: "x", Address: "1", Service: &state.NodeService{ID: "noname"}},
			{Node: "x", Address: "1", Check: &state.HealthCheck{CheckID: "c", Status: "bogus"}},
			{Node: "x", Address: "1", Check: &state.HealthCheck{CheckID: "c", Node: "y"}},
			{Node: "x", Address: "1", Check: &state.HealthCheck{CheckID: "c", ServiceID: "missing"}},
		}
		for i, req := range bad {
			require.ErrorIs(t, s.RPC(ctx, rpc.MethodCatalogRegister, req, &none), rpc.ErrBadRequest, "case %d", i)
		}
	})

	t.Run("filters", func(t *testing.T) {
		var nodes rpc.IndexedNodes
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogListNodes, &rpc.DCSpecificRequest{
			QueryOptions: rpc.QueryOptions{Filter: `Meta.rack == "n2"`}}, &nodes))
		require.Len(t, nodes.Nodes, 1)
		require.Equal(t, "n2", nodes.Nodes[0].Node)

		var svcs rpc.IndexedServices
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogListServices, &rpc.DCSpecificRequest{
			QueryOptions: rpc.QueryOptions{Filter: `ServiceTags contains "v1"`}}, &svcs))
		require.Equal(t, map[string][]string{"web": {"v1"}}, svcs.Services)

		var sn rpc.IndexedServiceNodes
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogServiceNodes, &rpc.ServiceSpecificRequest{
			ServiceName: "web", ServiceTags: []string{"v2"}}, &sn))
		require.Len(t, sn.ServiceNodes, 1)
		require.Equal(t, "n2", sn.ServiceNodes[0].Node)

		var csn rpc.IndexedCheckServiceNodes
		require.NoError(t, s.RPC(ctx, rpc.MethodHealthServiceNodes, &rpc.ServiceSpecificRequest{
			ServiceName: "web", QueryOptions: rpc.QueryOptions{Filter: `Node.Node == "n1"`}}, &csn))
		require.Len(t, csn.Nodes, 1)

		var checks rpc.IndexedHealthChecks
		require.NoError(t, s.RPC(ctx, rpc.MethodHealthChecksInState, &rpc.ChecksInStateRequest{
			State: state.HealthAny, QueryOptions: rpc.QueryOptions{Filter: `ServiceName == "web"`}}, &checks))
		require.Len(t, checks.HealthChecks, 2)
		require.Equal(t, "web", checks.HealthChecks[0].ServiceName)
	})

	t.Run("invalid filter", func(t *testing.T) {
		var nodes rpc.IndexedNodes
		err := s.RPC(ctx, rpc.MethodCatalogListNodes, &rpc.DCSpecificRequest{
			QueryOptions: rpc.QueryOptions{Filter: `Node ==`}}, &nodes)
		require.ErrorIs(t, err, rpc.ErrBadRequest)
		var checks rpc.IndexedHealthChecks
		err = s.RPC(ctx, rpc.MethodHealthChecksInState, &rpc.ChecksInStateRequest{State: "nope"}, &checks)
		require.ErrorIs(t, err, rpc.ErrBadRequest)
	})

	t.Run("node services and deregister", func(t *testing.T) {
		var ns rpc.IndexedNodeServices
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogNodeServices, &rpc.NodeSpecificRequest{Node: "n1"}, &ns))
		require.Contains(t, ns.NodeServices.Services, "web")
		var nsl rpc.IndexedNodeServiceList
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogNodeServiceList, &rpc.NodeSpecificRequest{Node: "n1"}, &nsl))
		require.Len(t, nsl.NodeServices.Services, 1)

		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogDeregister, &rpc.DeregisterRequest{Node: "n1", ServiceID: "web"}, &none))
		var checks rpc.IndexedHealthChecks
		require.NoError(t, s.RPC(ctx, rpc.MethodHealthNodeChecks, &rpc.NodeSpecificRequest{Node: "n1"}, &checks))
		require.Empty(t, checks.HealthChecks)
		require.NoError(t, s.RPC(ctx, rpc.MethodHealthServiceChecks, &rpc.ServiceSpecificRequest{ServiceName: "web"}, &checks))
		require.Len(t, checks.HealthChecks, 1)

		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogDeregister, &rpc.DeregisterRequest{Node: "n1"}, &none))
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogNodeServices, &rpc.NodeSpecificRequest{Node: "n1"}, &ns))
		require.Nil(t, ns.NodeServices)
	})
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestServer_DurableRestart(t *testing.T) {
	cases := []struct {
		name     string
		snapshot bool
	}{
		{"log replay", false},
		{"snapshot restore", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.InMemory = false
			cfg.DataDir = t.TempDir()
			cfg.RaftBindAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
			if tc.snapshot {
				cfg.SnapshotThreshold = 10
				cfg.SnapshotInterval = 50 * time.Millisecond
			}
			const n = 50
			func() {
				s, err := New(cfg)
				require.NoError(t, err)
				require.NoError(t, s.Start())
				defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
				<-s.LeaderReady()
				for i := range n {
					kvSet(t, s, "key/"+strconv.Itoa(i), strconv.Itoa(i))
				}
				if tc.snapshot {
					require.NoError(t, s.Raft().Snapshot().Error())
				}
			}()

			s, err := New(cfg)
			require.NoError(t, err)
			require.NoError(t, s.Start())
			defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
			select {
			case <-s.LeaderReady():
			case <-time.After(10 * time.Second):
				t.Fatal("restarted server did not lead")
			}
			var list rpc.IndexedKVEntries
			require.NoError(t, s.RPC(context.Background(), rpc.MethodKVSList, &rpc.KeyRequest{Key: "key/"}, &list))
			require.Len(t, list.Entries, n)
			got := map[string]string{}
			for _, e := range list.Entries {
				got[e.Key] = string(e.Value)
			}
			for i := range n {
				require.Equal(t, strconv.Itoa(i), got["key/"+strconv.Itoa(i)])
			}
		})
	}
}

func TestServer_ShutdownIdempotent(t *testing.T) {
	s, err := New(testConfig(t))
	require.NoError(t, err)
	require.NoError(t, s.Shutdown(context.Background()), "shutdown before start")
	require.Error(t, s.Start())

	s, err = New(testConfig(t))
	require.NoError(t, err)
	require.NoError(t, s.Start())
	<-s.LeaderReady()
	// A blocking query in flight returns on shutdown.
	done := make(chan error, 1)
	go func() {
		var out rpc.IndexedKVEntries
		done <- s.RPC(context.Background(), rpc.MethodKVSGet, &rpc.KeyRequest{Key: "x",
			QueryOptions: rpc.QueryOptions{MinQueryIndex: 1 << 40}}, &out)
	}()
	require.NoError(t, s.Shutdown(context.Background()))
	require.NoError(t, s.Shutdown(context.Background()))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query did not return on shutdown")
	}
}

func TestConfig_Validate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
	}{
		{"no node name", func(c *Config) { c.NodeName = "" }},
		{"no datacenter", func(c *Config) { c.Datacenter = "" }},
		{"no data dir", func(c *Config) { c.InMemory = false }},
		{"bad multiplier", func(c *Config) { c.RaftMultiplier = 11 }},
		{"bad bind", func(c *Config) { c.InMemory = false; c.DataDir = "/tmp/x"; c.RaftBindAddr = "nope" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mod(&cfg)
			_, err := New(cfg)
			require.True(t, errors.Is(err, ErrInvalidConfig), "got %v", err)
		})
	}
}

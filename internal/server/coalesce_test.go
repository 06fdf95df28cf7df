package server

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

type kvResult struct {
	out rpc.IndexedKVEntries
	err error
}

// blockingGets starts n identical blocking reads of key on s.
func blockingGets(ctx context.Context, s *Server, n int, req rpc.KeyRequest) <-chan kvResult {
	results := make(chan kvResult, n)
	for range n {
		go func() {
			args := req // each caller has its own args
			var r kvResult
			r.err = s.RPC(ctx, rpc.MethodKVSGet, &args, &r.out)
			results <- r
		}()
	}
	return results
}

func TestCoalesce_IdenticalBlockingReadsShareOneCall(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	kvSet(t, s, "k", "v1")
	var cur rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "k"}, &cur))

	const n = 50
	before := s.coalesce.runs.Load()
	results := blockingGets(ctx, s, n, rpc.KeyRequest{Key: "k",
		QueryOptions: rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: 10 * time.Second, Token: "t"}})
	waitFor(t, 5*time.Second, "all waiters", func() bool { return s.coalesce.waiting() == n })
	require.Equal(t, uint64(1), s.coalesce.runs.Load()-before, "one underlying query")

	kvSet(t, s, "k", "v2")
	var all []rpc.IndexedKVEntries
	for range n {
		select {
		case r := <-results:
			require.NoError(t, r.err)
			all = append(all, r.out)
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken")
		}
	}
	for _, out := range all {
		require.Greater(t, out.Index, cur.Index)
		require.Equal(t, all[0], out, "every waiter gets the same reply")
	}
	// The replies are independent: mutating one changes no other.
	all[0].Entries[0].Value[0] = 'X'
	all[0].Entries[0].Key = "mutated"
	all[0].Entries = append(all[0].Entries[:0], &state.KVEntry{Key: "other"})
	for _, out := range all[1:] {
		require.Len(t, out.Entries, 1)
		require.Equal(t, "k", out.Entries[0].Key)
		require.Equal(t, "v2", string(out.Entries[0].Value))
	}
	require.Zero(t, s.coalesce.waiting())
}

func TestCoalesce_DifferentRequestsAreNotMerged(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	kvSet(t, s, "k", "v1")
	var cur rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "k"}, &cur))

	base := rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: 10 * time.Second}
	variants := map[string]func(o *rpc.QueryOptions){
		"base":       func(*rpc.QueryOptions) {},
		"token":      func(o *rpc.QueryOptions) { o.Token = "other" },
		"index":      func(o *rpc.QueryOptions) { o.MinQueryIndex = cur.Index + 1000 },
		"wait":       func(o *rpc.QueryOptions) { o.MaxQueryTime = 9 * time.Second },
		"filter":     func(o *rpc.QueryOptions) { o.Filter = `Key == "k"` },
		"stale":      func(o *rpc.QueryOptions) { o.AllowStale = true },
		"datacenter": func(o *rpc.QueryOptions) { o.Datacenter = "dc1" },
	}
	before := s.coalesce.runs.Load()
	var wg sync.WaitGroup
	for _, mod := range variants {
		o := base
		mod(&o)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out rpc.IndexedKVEntries
			_ = s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "k", QueryOptions: o}, &out)
		}()
	}
	waitFor(t, 5*time.Second, "all waiters", func() bool { return s.coalesce.waiting() == len(variants) })
	require.Equal(t, uint64(len(variants)), s.coalesce.runs.Load()-before, "one call per distinct request")
	cancel()
	wg.Wait()
	waitFor(t, 5*time.Second, "calls to end", func() bool { return s.coalesce.waiting() == 0 })
}

func TestCoalesce_CancelledWaiterDoesNotCancelOthers(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx := context.Background()
	kvSet(t, s, "k", "v1")
	var cur rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "k"}, &cur))
	req := rpc.KeyRequest{Key: "k", QueryOptions: rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: 10 * time.Second}}

	// The first caller, whose call the others join, goes away.
	firstCtx, cancelFirst := context.WithCancel(ctx)
	first := blockingGets(firstCtx, s, 1, req)
	waitFor(t, 5*time.Second, "first waiter", func() bool { return s.coalesce.waiting() == 1 })
	others := blockingGets(ctx, s, 3, req)
	waitFor(t, 5*time.Second, "all waiters", func() bool { return s.coalesce.waiting() == 4 })

	cancelFirst()
	select {
	case r := <-first:
		require.ErrorIs(t, r.err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled waiter did not return at once")
	}
	require.Equal(t, 3, s.coalesce.waiting())

	kvSet(t, s, "k", "v2")
	for range 3 {
		select {
		case r := <-others:
			require.NoError(t, r.err)
			require.Equal(t, "v2", string(r.out.Entries[0].Value))
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken")
		}
	}
}

func TestCoalesce_LastWaiterLeavingEndsTheCall(t *testing.T) {
	s := startServer(t, testConfig(t))
	kvSet(t, s, "k", "v1")
	ctx, cancel := context.WithCancel(context.Background())
	res := blockingGets(ctx, s, 2, rpc.KeyRequest{Key: "k", QueryOptions: rpc.QueryOptions{MinQueryIndex: 1 << 40}})
	waitFor(t, 5*time.Second, "waiters", func() bool { return s.coalesce.waiting() == 2 })
	cancel()
	for range 2 {
		require.ErrorIs(t, (<-res).err, context.Canceled)
	}
	waitFor(t, 5*time.Second, "the shared call to end", func() bool {
		s.coalesce.mu.Lock()
		defer s.coalesce.mu.Unlock()
		return len(s.coalesce.calls) == 0
	})
}

func TestCoalesce_ErrorsReachAllWaiters(t *testing.T) {
	c := newCoalescer()
	defer c.stop()
	errBoom := errors.New("boom")
	release := make(chan struct{})
	run := func(ctx context.Context, args, reply any) error {
		<-release
		return errBoom
	}
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			var out rpc.IndexedKVEntries
			errs <- c.do(context.Background(), rpc.MethodKVSGet,
				&rpc.KeyRequest{Key: "k", QueryOptions: rpc.QueryOptions{MinQueryIndex: 3}}, &out, run)
		}()
	}
	waitFor(t, 5*time.Second, "waiters", func() bool { return c.waiting() == n })
	close(release)
	for range n {
		require.ErrorIs(t, <-errs, errBoom)
	}
	require.Equal(t, uint64(1), c.runs.Load())
}

func TestCoalesce_StopEndsSharedCalls(t *testing.T) {
	c := newCoalescer()
	run := func(ctx context.Context, args, reply any) error {
		<-ctx.Done()
		return ctx.Err()
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			var out rpc.IndexedKVEntries
			errs <- c.do(context.Background(), rpc.MethodKVSGet,
				&rpc.KeyRequest{Key: "k", QueryOptions: rpc.QueryOptions{MinQueryIndex: 3}}, &out, run)
		}()
	}
	waitFor(t, 5*time.Second, "waiters", func() bool { return c.waiting() == 2 })
	c.stop()
	for range 2 {
		require.ErrorIs(t, <-errs, context.Canceled)
	}
	// After stop, requests run on the caller's goroutine.
	var out rpc.IndexedKVEntries
	ran := false
	require.NoError(t, c.do(context.Background(), rpc.MethodKVSGet, &rpc.KeyRequest{QueryOptions: rpc.QueryOptions{MinQueryIndex: 3}}, &out,
		func(context.Context, any, any) error { ran = true; return nil }))
	require.True(t, ran)
}

func TestCoalesce_SharedCallOwnsItsArgs(t *testing.T) {
	c := newCoalescer()
	defer c.stop()
	seen := make(chan string, 1)
	release := make(chan struct{})
	run := func(ctx context.Context, args, reply any) error {
		<-release
		seen <- args.(*rpc.KeyRequest).Key
		return nil
	}
	args := &rpc.KeyRequest{Key: "k", QueryOptions: rpc.QueryOptions{MinQueryIndex: 3}}
	done := make(chan error, 1)
	go func() {
		var out rpc.IndexedKVEntries
		done <- c.do(context.Background(), rpc.MethodKVSGet, args, &out, run)
	}()
	waitFor(t, 5*time.Second, "waiter", func() bool { return c.waiting() == 1 })
	args.Key = "changed by the caller" // a racy caller cannot change the shared call
	close(release)
	require.Equal(t, "k", <-seen)
	require.NoError(t, <-done)
}

func TestCoalescible(t *testing.T) {
	blocking := rpc.QueryOptions{MinQueryIndex: 5}
	tests := []struct {
		name   string
		method string
		args   any
		want   bool
	}{
		{"blocking kv get", rpc.MethodKVSGet, &rpc.KeyRequest{QueryOptions: blocking}, true},
		{"blocking stale read", rpc.MethodKVSList, &rpc.KeyRequest{QueryOptions: rpc.QueryOptions{MinQueryIndex: 5, AllowStale: true}}, true},
		{"blocking health", rpc.MethodHealthServiceNodes, &rpc.ServiceSpecificRequest{QueryOptions: blocking}, true},
		{"blocking consistent read", rpc.MethodKVSGet, &rpc.KeyRequest{QueryOptions: rpc.QueryOptions{MinQueryIndex: 5, RequireConsistent: true}}, false},
		{"non-blocking read", rpc.MethodKVSGet, &rpc.KeyRequest{}, false},
		{"write", rpc.MethodKVSApply, &rpc.KVSRequest{}, false},
		{"session write", rpc.MethodSessionApply, &rpc.SessionRequest{}, false},
		{"txn", rpc.MethodTxnApply, &rpc.TxnRequest{}, false},
		{"nil args", rpc.MethodKVSGet, nil, false},
		{"typed nil args", rpc.MethodKVSGet, (*rpc.KeyRequest)(nil), false},
		{"status", rpc.MethodStatusLeader, &struct{}{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, coalescible(tc.method, tc.args))
		})
	}
}

// TestCoalesce_KeyCoversEveryQueryOption guards against a partial key:
// changing any field of the args changes the encoding.
func TestCoalesce_KeyCoversEveryQueryOption(t *testing.T) {
	base := rpc.KeyRequest{Key: "k", QueryOptions: rpc.QueryOptions{MinQueryIndex: 5}}
	mods := map[string]func(r *rpc.KeyRequest){
		"key":        func(r *rpc.KeyRequest) { r.Key = "k2" },
		"datacenter": func(r *rpc.KeyRequest) { r.Datacenter = "dc2" },
		"token":      func(r *rpc.KeyRequest) { r.Token = "t" },
		"index":      func(r *rpc.KeyRequest) { r.MinQueryIndex = 6 },
		"wait":       func(r *rpc.KeyRequest) { r.MaxQueryTime = time.Second },
		"stale":      func(r *rpc.KeyRequest) { r.AllowStale = true },
		"consistent": func(r *rpc.KeyRequest) { r.RequireConsistent = true },
		"filter":     func(r *rpc.KeyRequest) { r.Filter = "x" },
	}
	bk, err := argsKey(&base)
	require.NoError(t, err)
	same := base
	sk, err := argsKey(&same)
	require.NoError(t, err)
	require.True(t, bk == sk, "identical args, identical keys")
	for name, mod := range mods {
		t.Run(name, func(t *testing.T) {
			r := base
			mod(&r)
			k, err := argsKey(&r)
			require.NoError(t, err)
			require.False(t, bk == k, "a changed field changes the key")
			back, err := ownArgs(&r, k)
			require.NoError(t, err)
			require.Equal(t, &r, back)
			r.Key = "changed after" // the call's copy is its own
			require.NotEqual(t, &r, back)
		})
	}
}

// TestCoalesce_ArgsKeyKinds: plain args are their own key, args with a
// slice, map, pointer or float fall back to their msgpack encoding.
func TestCoalesce_ArgsKeyKinds(t *testing.T) {
	require.True(t, plainArgs(reflect.TypeFor[rpc.KeyRequest]()))
	require.True(t, plainArgs(reflect.TypeFor[rpc.KeyListRequest]()))
	type withMap struct {
		rpc.QueryOptions
		Meta map[string]string
	}
	type withFloat struct{ F float64 }
	type withPtr struct{ P *int }
	type withSlice struct{ S []string }
	for _, typ := range []reflect.Type{reflect.TypeFor[withMap](), reflect.TypeFor[withFloat](),
		reflect.TypeFor[withPtr](), reflect.TypeFor[withSlice]()} {
		require.False(t, plainArgs(typ), typ.String())
	}
	a := &withMap{Meta: map[string]string{"a": "b"}}
	k, err := argsKey(a)
	require.NoError(t, err)
	require.IsType(t, "", k, "keyed by encoding")
	c, err := ownArgs(a, k)
	require.NoError(t, err)
	require.Equal(t, a, c)
	a.Meta["a"] = "changed"
	require.Equal(t, "b", c.(*withMap).Meta["a"])
	k2, err := argsKey(&withMap{Meta: map[string]string{"a": "other"}})
	require.NoError(t, err)
	require.NotEqual(t, k, k2)
}

// TestCoalesce_CopyReply: the fast copy of KV replies equals the reply and
// shares no memory with it, and keeps nil and empty slices apart as the
// reply of a lone waiter does.
func TestCoalesce_CopyReply(t *testing.T) {
	t.Run("filled", func(t *testing.T) {
		for _, src := range []any{&rpc.IndexedKVEntries{}, &rpc.IndexedKeyList{}} {
			fillAll(t, reflect.ValueOf(src).Elem(), "reply")
			dst := reflect.New(reflect.TypeOf(src).Elem()).Interface()
			require.True(t, copyReply(src, dst))
			require.Equal(t, src, dst)
			// Change every field of the copy: the source must not move.
			want := reflect.New(reflect.TypeOf(src).Elem()).Interface()
			require.True(t, copyReply(src, want))
			fillAll(t, reflect.ValueOf(dst).Elem(), "other")
			switch d := dst.(type) {
			case *rpc.IndexedKVEntries:
				d.Entries[0].Value[0]++
			case *rpc.IndexedKeyList:
				d.Keys[0] = "x"
			}
			require.Equal(t, want, src)
		}
	})
	t.Run("one entry", func(t *testing.T) {
		src := &rpc.IndexedKVEntries{Entries: []*state.KVEntry{{Key: "k", Value: []byte("v"), Session: "s", Flags: 1,
			LockIndex: 2, CreateIndex: 3, ModifyIndex: 4}}, QueryMeta: rpc.QueryMeta{Index: 4, KnownLeader: true}}
		var dst rpc.IndexedKVEntries
		require.True(t, copyReply(src, &dst))
		require.Equal(t, src, &dst)
		dst.Entries[0].Value[0] = 'x'
		dst.Entries[0].Key = "changed"
		dst.Entries = append(dst.Entries, &state.KVEntry{})
		require.Equal(t, "v", string(src.Entries[0].Value))
		require.Equal(t, "k", src.Entries[0].Key)
		require.Len(t, src.Entries, 1)
	})
	t.Run("values do not overlap", func(t *testing.T) {
		src := &rpc.IndexedKVEntries{Entries: []*state.KVEntry{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}
		var dst rpc.IndexedKVEntries
		require.True(t, copyReply(src, &dst))
		dst.Entries[0].Value = append(dst.Entries[0].Value, 'x')
		require.Equal(t, "2", string(dst.Entries[1].Value))
	})
	t.Run("nil and empty", func(t *testing.T) {
		for _, src := range []*rpc.IndexedKVEntries{
			{},
			{Entries: []*state.KVEntry{}},
			{Entries: []*state.KVEntry{{Key: "nil"}, {Key: "empty", Value: []byte{}}}},
			{Entries: []*state.KVEntry{{Key: "nil"}}},
			{Entries: []*state.KVEntry{{Key: "empty", Value: []byte{}}}},
			{Entries: []*state.KVEntry{nil}},
		} {
			var dst rpc.IndexedKVEntries
			require.True(t, copyReply(src, &dst))
			require.Equal(t, src.Entries == nil, dst.Entries == nil)
			for i, e := range src.Entries {
				if e == nil {
					require.Nil(t, dst.Entries[i])
					continue
				}
				require.Equal(t, e.Value == nil, dst.Entries[i].Value == nil, e.Key)
			}
		}
		var keys rpc.IndexedKeyList
		require.True(t, copyReply(&rpc.IndexedKeyList{Keys: []string{}}, &keys))
		require.NotNil(t, keys.Keys)
	})
	t.Run("other types", func(t *testing.T) {
		require.False(t, copyReply(&rpc.IndexedNodes{}, &rpc.IndexedNodes{}))
		require.False(t, copyReply(&rpc.IndexedKVEntries{}, &rpc.IndexedKeyList{}))
	})
}

// TestCoalesce_Forwarded: identical blocking reads on a follower share one
// forwarded call, and the leader runs one query for them.
func TestCoalesce_Forwarded(t *testing.T) {
	servers := startCoalesceCluster(t)
	leader, follower := servers[0], servers[1]
	ctx := context.Background()
	var ok bool
	cur := seedKey(t, follower)

	const n = 30
	fBefore, lBefore := follower.coalesce.runs.Load(), leader.coalesce.runs.Load()
	results := blockingGets(ctx, follower, n, rpc.KeyRequest{Key: "k",
		QueryOptions: rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: 10 * time.Second}})
	waitFor(t, 5*time.Second, "waiters on the follower", func() bool { return follower.coalesce.waiting() == n })
	require.Equal(t, uint64(1), follower.coalesce.runs.Load()-fBefore)
	// The leader serves the one forwarded call without its coalescer:
	// requests from other agents are never coalesced.
	require.Equal(t, uint64(0), leader.coalesce.runs.Load()-lBefore)
	require.Equal(t, 0, leader.coalesce.waiting())

	require.NoError(t, follower.RPC(ctx, rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte("v2")}}, &ok))
	for range n {
		select {
		case r := <-results:
			require.NoError(t, r.err)
			require.Equal(t, "v2", string(r.out.Entries[0].Value))
			require.Greater(t, r.out.Index, cur.Index)
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken")
		}
	}
}

// TestCoalesce_LeadershipMovesToTheFollower: identical blocking reads
// waiting on a follower (one shared call forwarded to the leader) still
// return when leadership moves to that follower. When servers coalesced
// requests forwarded to them, the old leader's retry of the forwarded
// call joined the new leader's shared call that was waiting on it, and
// neither returned until the query's wait ran out.
func TestCoalesce_LeadershipMovesToTheFollower(t *testing.T) {
	servers := startCoalesceCluster(t)
	leader, follower := servers[0], servers[1]
	ctx := context.Background()
	var ok bool
	cur := seedKey(t, follower)

	const n = 20
	results := blockingGets(ctx, follower, n, rpc.KeyRequest{Key: "k",
		QueryOptions: rpc.QueryOptions{MinQueryIndex: cur.Index, MaxQueryTime: time.Minute}})
	waitFor(t, 5*time.Second, "waiters on the follower", func() bool { return follower.coalesce.waiting() == n })

	fid := raft.ServerID(follower.cfg.NodeID)
	if fid == "" {
		fid = raft.ServerID(follower.cfg.NodeName)
	}
	require.NoError(t, leader.raftOrNil().LeadershipTransferToServer(fid, raft.ServerAddress(follower.RPCAddr())).Error())
	waitFor(t, 10*time.Second, "the follower to lead and serve reads", func() bool {
		return follower.IsLeader() && follower.readyForReads.Load()
	})
	start := time.Now()
	require.NoError(t, follower.RPC(ctx, rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte("v2")}}, &ok))
	for range n {
		select {
		case r := <-results:
			require.NoError(t, r.err)
			require.Equal(t, "v2", string(r.out.Entries[0].Value))
		case <-time.After(10 * time.Second):
			t.Fatal("waiter not woken after the leadership change")
		}
	}
	t.Logf("all %d waiters woken %s after the write", n, time.Since(start))
}

// startCoalesceCluster starts 3 networked servers and returns them with
// the leader (ready for reads) first.
func startCoalesceCluster(t *testing.T) []*Server {
	t.Helper()
	// The hold timeout is long enough to ride out a leadership transfer.
	servers, members := startExpectServers(t, []string{"f0", "f1", "f2"},
		func(c *Config) { c.RPCHoldTimeout = 3 * time.Second })
	for _, s := range servers {
		s.SetLANMembers(func() []serf.Member { return members })
		s.MembershipChanged()
	}
	var leader *Server
	waitFor(t, 5*time.Second, "a leader ready for reads", func() bool {
		for _, s := range servers {
			if s.IsLeader() && s.readyForReads.Load() {
				leader = s
			}
		}
		return leader != nil
	})
	out := []*Server{leader}
	for _, s := range servers {
		if s != leader {
			out = append(out, s)
		}
	}
	return out
}

// seedKey writes k = v1 through s and reads it back (the blocking index
// the tests start from).
func seedKey(t *testing.T, s *Server) rpc.IndexedKVEntries {
	t.Helper()
	ctx := context.Background()
	var ok bool
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte("v1")}}, &ok))
	var cur rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "k"}, &cur))
	return cur
}

package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/state"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testServer is a Mux on 127.0.0.1 serving RPC with h, on multiplexed
// and plain connections as a server does.
type testServer struct {
	mux    *Mux
	addr   net.Addr
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, h Handler, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	return startServerOn(t, "127.0.0.1:0", h, mutate)
}

// startMuxOnlyServer serves multiplexed connections only, as servers did
// before plain ones: every call goes over yamux streams.
func startMuxOnlyServer(t *testing.T, h Handler, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	return startServerWith(t, "127.0.0.1:0", false, h, mutate)
}

func startServerOn(t *testing.T, bind string, h Handler, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	return startServerWith(t, bind, true, h, mutate)
}

func startServerWith(t *testing.T, bind string, plain bool, h Handler, mutate func(*ServerConfig)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", bind)
	require.NoError(t, err)
	mux := NewMux(ln, MuxConfig{Logger: testLogger(t), HandshakeTimeout: time.Second})
	cfg := ServerConfig{Handler: h, Logger: testLogger(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := NewServer(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{mux: mux, addr: ln.Addr(), cancel: cancel, done: make(chan error, 2)}
	rpcLn := mux.RPCListener()
	var plainLn net.Listener
	if plain {
		plainLn = mux.PlainRPCListener()
	}
	mux.Start()
	go func() { ts.done <- srv.Serve(ctx, rpcLn) }()
	if plainLn != nil {
		go func() { ts.done <- srv.ServePlain(ctx, plainLn) }()
	} else {
		ts.done <- nil
	}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	<-ts.done
	<-ts.done
	_ = ts.mux.Close()
	ts.cancel = nil
}

func newPool(t *testing.T, mutate func(*ConnPoolConfig)) *ConnPool {
	cfg := ConnPoolConfig{Logger: testLogger(t)}
	if mutate != nil {
		mutate(&cfg)
	}
	p := NewConnPool(cfg)
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

// populated returns a filled value of the method's args or reply type.
func populated(t *testing.T, ctor func(string) (any, error), method string) any {
	v, err := ctor(method)
	require.NoError(t, err)
	seed := 0
	fill(t, reflect.ValueOf(v), &seed)
	return v
}

func TestConnPool_EveryMethodOverTheWire(t *testing.T) {
	reg := DefaultRegistry()
	var calls atomic.Int64
	ts := startServer(t, func(_ context.Context, method string, args, reply any) error {
		calls.Add(1)
		want := populated(t, reg.NewArgs, method)
		if !reflect.DeepEqual(want, args) {
			return fmt.Errorf("%w: %s args arrived changed: %#v", ErrBadRequest, method, args)
		}
		reflect.ValueOf(reply).Elem().Set(reflect.ValueOf(populated(t, reg.NewReply, method)).Elem())
		return nil
	}, nil)
	pool := newPool(t, nil)
	for _, m := range reg.Methods() {
		t.Run(m, func(t *testing.T) {
			reply, err := reg.NewReply(m)
			require.NoError(t, err)
			require.NoError(t, pool.RPC(context.Background(), ts.addr, m, populated(t, reg.NewArgs, m), reply))
			require.Equal(t, populated(t, reg.NewReply, m), reply)
		})
	}
	require.Equal(t, int64(len(reg.Methods())), calls.Load())
	require.Equal(t, 1, pool.Sessions())
}

func TestConnPool_ErrorIdentityOverTheWire(t *testing.T) {
	sentinels := map[string]error{
		"no-leader": ErrNoLeader, "denied": ErrPermissionDenied, "missing": ErrNotFound,
		"bad": ErrBadRequest, "big": ErrTooLarge, "plain": nil,
	}
	ts := startServer(t, func(_ context.Context, _ string, args, _ any) error {
		key := args.(*KeyRequest).Key
		if s := sentinels[key]; s != nil {
			return fmt.Errorf("key %q: %w", key, s)
		}
		return errors.New("disk on fire")
	}, nil)
	pool := newPool(t, nil)
	for key, sentinel := range sentinels {
		t.Run(key, func(t *testing.T) {
			err := pool.RPC(context.Background(), ts.addr, MethodKVSGet, &KeyRequest{Key: key}, &IndexedKVEntries{})
			var remote *RemoteError
			require.ErrorAs(t, err, &remote)
			if sentinel == nil {
				require.EqualError(t, err, "disk on fire")
				return
			}
			require.ErrorIs(t, err, sentinel)
			require.Equal(t, fmt.Sprintf("key %q: %s", key, sentinel), err.Error())
		})
	}
	t.Run("unknown method", func(t *testing.T) {
		err := pool.RPC(context.Background(), ts.addr, "Nope.Missing", &KeyRequest{}, &IndexedKVEntries{})
		require.ErrorIs(t, err, ErrUnknownMethod)
		require.Contains(t, err.Error(), "Nope.Missing")
	})
	t.Run("wrong types fail before sending", func(t *testing.T) {
		err := pool.RPC(context.Background(), ts.addr, MethodKVSGet, &KeyListRequest{}, &IndexedKVEntries{})
		require.ErrorIs(t, err, ErrBadRequest)
	})
}

func TestConnPool_ConcurrentCallsShareOneSession(t *testing.T) {
	ts := startServer(t, func(_ context.Context, _ string, args, reply any) error {
		*reply.(*IndexedKVEntries) = IndexedKVEntries{Entries: []*state.KVEntry{{Key: args.(*KeyRequest).Key}}}
		return nil
	}, nil)
	pool := newPool(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64*20)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				key := fmt.Sprintf("k-%d-%d", g, i)
				var out IndexedKVEntries
				if err := pool.RPC(context.Background(), ts.addr, MethodKVSGet, &KeyRequest{Key: key}, &out); err != nil {
					errs <- err
					continue
				}
				if len(out.Entries) != 1 || out.Entries[0].Key != key {
					errs <- fmt.Errorf("reply for %s was %+v", key, out.Entries)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.Equal(t, 1, pool.Sessions())
}

func TestConnPool_ContextCancelAbortsCall(t *testing.T) {
	handlerCancelled := make(chan struct{}, 2)
	started := make(chan struct{}, 2)
	ts := startServer(t, func(ctx context.Context, _ string, _, _ any) error {
		started <- struct{}{}
		<-ctx.Done()
		handlerCancelled <- struct{}{}
		return ctx.Err()
	}, nil)
	pool := newPool(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.RPC(ctx, ts.addr, MethodStatusLeader, &struct{}{}, new(string)) }()
	<-started
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("call did not return after cancel")
	}
	select {
	case <-handlerCancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("server handler context was not cancelled")
	}
	// The session is still usable.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	err := pool.RPC(ctx2, ts.addr, MethodStatusLeader, &struct{}{}, new(string))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestConnPool_BlockingCallDoesNotBlockOthers(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, _ string, args, reply any) error {
		q := args.(*KeyRequest)
		if q.MinQueryIndex > 0 {
			select {
			case <-time.After(2 * time.Second):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		reply.(*IndexedKVEntries).Index = q.MinQueryIndex + 1
		return nil
	}, nil)
	// An RPC timeout far below the blocking wait: the blocking call must
	// get its wait on top.
	pool := newPool(t, func(c *ConnPoolConfig) { c.RPCTimeout = 500 * time.Millisecond })

	blockingDone := make(chan error, 1)
	start := time.Now()
	go func() {
		var out IndexedKVEntries
		err := pool.RPC(context.Background(), ts.addr, MethodKVSGet,
			&KeyRequest{Key: "a", QueryOptions: QueryOptions{MinQueryIndex: 5, MaxQueryTime: 2 * time.Second}}, &out)
		if err == nil && out.Index != 6 {
			err = fmt.Errorf("index %d", out.Index)
		}
		blockingDone <- err
	}()
	for i := range 50 {
		t0 := time.Now()
		var out IndexedKVEntries
		require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodKVSGet, &KeyRequest{Key: "b"}, &out))
		require.Less(t, time.Since(t0), 500*time.Millisecond, "call %d was held up", i)
	}
	select {
	case err := <-blockingDone:
		require.NoError(t, err)
		require.GreaterOrEqual(t, time.Since(start), 2*time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("blocking call never returned")
	}
	require.Equal(t, 1, pool.Sessions())
}

func TestConnPool_Timeout(t *testing.T) {
	release := make(chan struct{})
	ts := startServer(t, func(ctx context.Context, _ string, _, _ any) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, nil)
	defer close(release)
	pool := newPool(t, func(c *ConnPoolConfig) { c.RPCTimeout = 100 * time.Millisecond })
	err := pool.RPC(context.Background(), ts.addr, MethodStatusPeers, &struct{}{}, &[]string{})
	require.ErrorIs(t, err, ErrTimeout)
	require.NotErrorIs(t, err, ErrConnect)
}

func TestConnPool_RequestTooLarge(t *testing.T) {
	ts := startServer(t, func(context.Context, string, any, any) error { return nil },
		func(c *ServerConfig) { c.MaxRequestBytes = 1024 })
	pool := newPool(t, nil)
	var ok bool
	err := pool.RPC(context.Background(), ts.addr, MethodKVSApply,
		&KVSRequest{Op: KVSet, Entry: state.KVEntry{Key: "k", Value: make([]byte, 4096)}}, &ok)
	require.ErrorIs(t, err, ErrTooLarge)
	// Small requests still work on the same session.
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodKVSApply, &KVSRequest{Op: KVSet}, &ok))
}

func TestServer_HandlerPanicIsAnError(t *testing.T) {
	ts := startServer(t, func(context.Context, string, any, any) error { panic("boom") }, nil)
	pool := newPool(t, nil)
	err := pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string))
	var remote *RemoteError
	require.ErrorAs(t, err, &remote)
	require.Contains(t, err.Error(), "internal error")
}

func TestConnPool_DialFailureIsErrConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr()
	require.NoError(t, ln.Close())
	pool := newPool(t, nil)
	err = pool.RPC(context.Background(), addr, MethodStatusLeader, &struct{}{}, new(string))
	require.ErrorIs(t, err, ErrConnect)
	require.Equal(t, 0, pool.Sessions())
}

func TestConnPool_ReconnectsAfterServerRestart(t *testing.T) {
	h := func(_ context.Context, _ string, _, reply any) error { *reply.(*string) = "leader"; return nil }
	ts := startMuxOnlyServer(t, h, nil)
	pool := newPool(t, nil)
	var out string
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, &out))
	ts.stop()

	ts2 := startServerWith(t, ts.addr.String(), false, h, nil)
	waitFor(t, 5*time.Second, "call on restarted server", func() bool {
		return pool.RPC(context.Background(), ts2.addr, MethodStatusLeader, &struct{}{}, &out) == nil
	})
	require.Equal(t, 1, pool.Sessions())
}

func TestConnPool_IdleSessionsReaped(t *testing.T) {
	ts := startMuxOnlyServer(t, func(context.Context, string, any, any) error { return nil }, nil)
	pool := newPool(t, func(c *ConnPoolConfig) { c.IdleTimeout = 50 * time.Millisecond })
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string)))
	require.Equal(t, 1, pool.Sessions())
	waitFor(t, 2*time.Second, "idle session reaped", func() bool { return pool.Sessions() == 0 })
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string)))
}

func TestConnPool_ShutdownFailsInFlightCalls(t *testing.T) {
	started := make(chan struct{})
	ts := startServer(t, func(ctx context.Context, _ string, _, _ any) error {
		close(started)
		<-ctx.Done()
		return nil
	}, nil)
	pool := NewConnPool(ConnPoolConfig{Logger: testLogger(t)})
	errc := make(chan error, 1)
	go func() { errc <- pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string)) }()
	<-started
	require.NoError(t, pool.Shutdown())
	require.NoError(t, pool.Shutdown())
	require.Error(t, <-errc)
	err := pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string))
	require.ErrorIs(t, err, ErrPoolShutdown)
}

func TestServer_ServeStopsAndWaitsForHandlers(t *testing.T) {
	var running atomic.Int64
	started := make(chan struct{}, 1)
	ts := startServer(t, func(ctx context.Context, _ string, _, _ any) error {
		running.Add(1)
		defer running.Add(-1)
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	pool := newPool(t, nil)
	errc := make(chan error, 1)
	go func() { errc <- pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string)) }()
	<-started
	ts.cancel()
	// Serve and ServePlain both return (the call is on one of them)...
	require.NoError(t, <-ts.done)
	require.NoError(t, <-ts.done)
	// ...and only after their handlers.
	require.Zero(t, running.Load(), "Serve returned before its handlers")
	require.Error(t, <-errc)
	ts.done <- nil // let Cleanup's stop() finish
	ts.done <- nil
}

func TestMux_DemuxesRaftAndRPC(t *testing.T) {
	ts := startServer(t, func(_ context.Context, _ string, _, reply any) error {
		*reply.(*string) = "rpc-ok"
		return nil
	}, nil)

	// A real Raft NetworkTransport on the mux, and a second one dialing it.
	layer := NewRaftLayer(nil, ts.mux)
	server := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 2, Timeout: time.Second, Logger: hclog.NewNullLogger(),
	})
	defer server.Close()
	clientLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	clientMux := NewMux(clientLn, MuxConfig{})
	clientMux.Start()
	defer clientMux.Close()
	client := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: NewRaftLayer(nil, clientMux), MaxPool: 2, Timeout: time.Second, Logger: hclog.NewNullLogger(),
	})
	// The client's pooled connections are left open on purpose: the
	// server mux's Close must end the server transport's goroutines that
	// read them.
	defer client.Close()

	consumerDone := make(chan struct{})
	stopConsumer := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for {
			select {
			case rpc := <-server.Consumer():
				req := rpc.Command.(*raft.RequestVoteRequest)
				rpc.Respond(&raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
			case <-stopConsumer:
				return
			}
		}
	}()
	defer func() { close(stopConsumer); <-consumerDone }()

	pool := newPool(t, nil)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			var resp raft.RequestVoteResponse
			err := client.RequestVote("s1", raft.ServerAddress(ts.addr.String()),
				&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{Addr: []byte("c")}, Term: uint64(i + 1)}, &resp)
			if err != nil || !resp.Granted || resp.Term != uint64(i+1) {
				t.Errorf("raft vote %d: %v %+v", i, err, resp)
			}
		}()
		go func() {
			defer wg.Done()
			var out string
			if err := pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, &out); err != nil || out != "rpc-ok" {
				t.Errorf("rpc %d: %v %q", i, err, out)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, ts.addr.String(), layer.Addr().String())
}

func TestMux_ClosesBadConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := NewMux(ln, MuxConfig{HandshakeTimeout: 100 * time.Millisecond, Logger: testLogger(t)})
	mux.Start()
	defer mux.Close()
	raftLn := mux.RaftListener()

	tests := []struct {
		name string
		send []byte
	}{
		{"unknown type", []byte{0x7f}},
		{"reserved plain rpc", []byte{TypeRPC}},
		{"silent client", nil},
		{"nobody accepts raft", []byte{TypeRaft}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			require.NoError(t, err)
			defer c.Close()
			if tc.send != nil {
				_, err = c.Write(tc.send)
				require.NoError(t, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = c.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "mux must close the connection")
		})
	}
	// Accept on a closed sub-listener fails; the mux goes on.
	require.NoError(t, raftLn.Close())
	_, err = raftLn.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	require.NoError(t, mux.Close())
	require.NoError(t, mux.Close())
	_, err = mux.RPCListener().Accept()
	require.ErrorIs(t, err, net.ErrClosed)
}

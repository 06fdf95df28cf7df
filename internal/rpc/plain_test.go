package rpc

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/state"
	"github.com/stretchr/testify/require"
)

// countingDial counts the connections the pool opens.
func countingDial(n *atomic.Int64) func(context.Context, net.Addr) (net.Conn, error) {
	return func(ctx context.Context, addr net.Addr) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr.String())
	}
}

func TestPlain_ShortCallsShareOneConnection(t *testing.T) {
	ts := startServer(t, func(ctx context.Context, m string, args, reply any) error {
		q := args.(*KeyRequest)
		switch {
		case q.Key == "missing":
			return fmt.Errorf("key %q: %w", q.Key, ErrNotFound)
		case q.MinQueryIndex > 0:
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	var dials atomic.Int64
	pool := newPool(t, func(c *ConnPoolConfig) { c.Dial = countingDial(&dials) })
	for i := range 50 {
		require.NoError(t, getKey(context.Background(), pool, ts.addr, fmt.Sprintf("k%d", i)))
	}
	// An error reply leaves the connection in step: it is kept.
	err := getKey(context.Background(), pool, ts.addr, "missing")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, getKey(context.Background(), pool, ts.addr, "after-error"))
	require.Equal(t, int64(1), pool.plainDialed.Load())
	require.Equal(t, int64(0), pool.streamsOpened.Load(), "short calls must not open yamux streams")

	// A blocking query goes over the yamux session.
	var out IndexedKVEntries
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodKVSGet,
		&KeyRequest{Key: "w", QueryOptions: QueryOptions{MinQueryIndex: 3, MaxQueryTime: time.Second}}, &out))
	require.Equal(t, int64(1), pool.streamsOpened.Load())
	require.Equal(t, int64(2), dials.Load(), "one plain connection and one session")
	open, idle := pool.plainCounts(ts.addr)
	require.Equal(t, 1, open)
	require.Equal(t, 1, idle)
}

func TestPlain_OlderServerFallsBackToYamux(t *testing.T) {
	ts := startMuxOnlyServer(t, echoKeyHandler, nil)
	var dials atomic.Int64
	pool := newPool(t, func(c *ConnPoolConfig) { c.Dial = countingDial(&dials) })
	for i := range 10 {
		require.NoError(t, getKey(context.Background(), pool, ts.addr, fmt.Sprintf("k%d", i)))
	}
	require.Equal(t, int64(0), pool.plainDialed.Load())
	require.Equal(t, int64(1), pool.streamsOpened.Load())
	// One refused plain connection, then the session only: the refusal is
	// remembered.
	require.Equal(t, int64(2), dials.Load())
}

func TestPlain_CancelReachesHandlerAndDropsConnection(t *testing.T) {
	started := make(chan struct{}, 1)
	handlerCancelled := make(chan struct{}, 1)
	ts := startServer(t, func(ctx context.Context, m string, args, reply any) error {
		if args.(*KeyRequest).Key != "block" {
			return echoKeyHandler(ctx, m, args, reply)
		}
		started <- struct{}{}
		<-ctx.Done()
		handlerCancelled <- struct{}{}
		return ctx.Err()
	}, nil)
	pool := newPool(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- getKey(ctx, pool, ts.addr, "block") }()
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
	open, _ := pool.plainCounts(ts.addr)
	require.Equal(t, 0, open, "a cancelled call's connection must be closed")
	require.Equal(t, int64(1), pool.plainDialed.Load())
	require.NoError(t, getKey(context.Background(), pool, ts.addr, "next"))
	require.Equal(t, int64(2), pool.plainDialed.Load())
}

func TestPlain_TimeoutIsErrTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, func(ctx context.Context, _ string, _, _ any) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}, nil)
	pool := newPool(t, func(c *ConnPoolConfig) { c.RPCTimeout = 100 * time.Millisecond })
	err := pool.RPC(context.Background(), ts.addr, MethodStatusPeers, &struct{}{}, &[]string{})
	require.ErrorIs(t, err, ErrTimeout)
	require.NotErrorIs(t, err, ErrConnect)
	require.Equal(t, int64(1), pool.plainDialed.Load())
	open, _ := pool.plainCounts(ts.addr)
	require.Equal(t, 0, open, "a timed-out call's connection must be closed")
}

// A server restart closes the pooled connection while it is idle; the next
// call must notice before sending and succeed on a new one.
func TestPlain_IdleConnectionClosedByServerIsNotUsed(t *testing.T) {
	h := func(_ context.Context, _ string, _, reply any) error { *reply.(*string) = "leader"; return nil }
	ts := startServer(t, h, nil)
	pool := newPool(t, nil)
	var out string
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, &out))
	ts.stop()
	ts2 := startServerOn(t, ts.addr.String(), h, nil)
	// The server's close has to reach this side's socket; once it has, the
	// very next call must succeed (no retry loop here).
	waitFor(t, 5*time.Second, "server close seen", func() bool {
		set := pool.plainSetFor(ts.addr.String())
		set.mu.Lock()
		defer set.mu.Unlock()
		return len(set.idle) == 1 && !set.idle[0].usable()
	})
	require.NoError(t, pool.RPC(context.Background(), ts2.addr, MethodStatusLeader, &struct{}{}, &out))
	require.Equal(t, int64(2), pool.plainDialed.Load())
}

func TestPlain_CallsOverTheCapUseYamux(t *testing.T) {
	release := make(chan struct{})
	var inHandler atomic.Int64
	ts := startServer(t, func(ctx context.Context, m string, args, reply any) error {
		inHandler.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	pool := newPool(t, nil)
	const calls = maxPlainConns + 8
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- getKey(context.Background(), pool, ts.addr, fmt.Sprintf("k%d", i))
		}()
	}
	waitFor(t, 5*time.Second, "every call in its handler", func() bool { return inHandler.Load() == calls })
	open, _ := pool.plainCounts(ts.addr)
	require.Equal(t, maxPlainConns, open)
	require.Equal(t, int64(8), pool.streamsOpened.Load())
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	_, idle := pool.plainCounts(ts.addr)
	require.Equal(t, maxPlainConns, idle)
}

func TestPlain_ShutdownAndRemoveFailInFlightCalls(t *testing.T) {
	for _, how := range []string{"shutdown", "remove"} {
		t.Run(how, func(t *testing.T) {
			started := make(chan struct{}, 1)
			ts := startServer(t, func(ctx context.Context, _ string, _, _ any) error {
				started <- struct{}{}
				<-ctx.Done()
				return nil
			}, nil)
			pool := newPool(t, nil)
			errc := make(chan error, 1)
			go func() { errc <- pool.RPC(context.Background(), ts.addr, MethodStatusLeader, &struct{}{}, new(string)) }()
			<-started
			if how == "shutdown" {
				require.NoError(t, pool.Shutdown())
			} else {
				pool.Remove(ts.addr)
			}
			select {
			case err := <-errc:
				require.Error(t, err)
			case <-time.After(2 * time.Second):
				t.Fatal("in-flight call did not fail")
			}
			open, _ := pool.plainCounts(ts.addr)
			require.Equal(t, 0, open)
		})
	}
}

func TestPlain_IdleConnectionsReaped(t *testing.T) {
	ts := startServer(t, echoKeyHandler, nil)
	pool := newPool(t, func(c *ConnPoolConfig) { c.IdleTimeout = 50 * time.Millisecond })
	require.NoError(t, getKey(context.Background(), pool, ts.addr, "k"))
	waitFor(t, 2*time.Second, "idle plain connection reaped and its set forgotten", func() bool {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		return len(pool.plain) == 0
	})
	require.NoError(t, getKey(context.Background(), pool, ts.addr, "k2"))
	require.Equal(t, int64(2), pool.plainDialed.Load())
	open, idle := pool.plainCounts(ts.addr)
	require.Equal(t, 1, open)
	require.Equal(t, 1, idle)
}

// BenchmarkConnPool_PlainSequential is BenchmarkConnPool_RPCSequential
// against a server that serves plain connections (as servers do): the
// cost of one short call as forwarded writes pay it.
func BenchmarkConnPool_PlainSequential(b *testing.B) {
	benchSequential(b, true)
}

// A request over the size limit is answered with ErrTooLarge, and the
// caller gets that answer even though the server stops reading mid-request:
// the server's close lingers until the caller has sent the rest.
func TestPlain_OversizedRequestGetsErrTooLarge(t *testing.T) {
	ts := startServer(t, func(context.Context, string, any, any) error { return nil },
		func(c *ServerConfig) { c.MaxRequestBytes = 1024 })
	pool := newPool(t, nil)
	for i := range 10 {
		var ok bool
		err := pool.RPC(context.Background(), ts.addr, MethodKVSApply,
			&KVSRequest{Op: KVSet, Entry: state.KVEntry{Key: "k", Value: make([]byte, 512<<10)}}, &ok)
		require.ErrorIs(t, err, ErrTooLarge, "call %d", i)
	}
	require.Equal(t, int64(10), pool.plainDialed.Load(), "each oversized call ends its connection")
	var ok bool
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodKVSApply, &KVSRequest{Op: KVSet}, &ok))
}

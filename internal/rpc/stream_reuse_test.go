package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/state"
	"github.com/hashicorp/yamux"
	"github.com/stretchr/testify/require"
)

// oldResponseHeader is the response header of servers from before stream
// reuse: no KeepAlive field.
type oldResponseHeader struct {
	Error string
	Codes []uint16
}

func echoKeyHandler(_ context.Context, _ string, args, reply any) error {
	*reply.(*IndexedKVEntries) = IndexedKVEntries{Entries: []*state.KVEntry{{Key: args.(*KeyRequest).Key}}}
	return nil
}

func getKey(ctx context.Context, p *ConnPool, addr net.Addr, key string) error {
	var out IndexedKVEntries
	if err := p.RPC(ctx, addr, MethodKVSGet, &KeyRequest{Key: key}, &out); err != nil {
		return err
	}
	if len(out.Entries) != 1 || out.Entries[0].Key != key {
		return fmt.Errorf("reply for %s was %+v", key, out.Entries)
	}
	return nil
}

func TestCodec_KeepAliveHeaderCompatible(t *testing.T) {
	encode := func(v any) []byte {
		var buf bytes.Buffer
		require.NoError(t, newEncoder(&buf).encode(v))
		return buf.Bytes()
	}
	// Without KeepAlive a new header is byte for byte an old one.
	require.Equal(t, encode(&oldResponseHeader{Error: "x", Codes: []uint16{3}}),
		encode(&responseHeader{Error: "x", Codes: []uint16{3}}))
	// An old client skips the new field; a new one reads it.
	wire := encode(&responseHeader{Error: "x", KeepAlive: true})
	var old oldResponseHeader
	require.NoError(t, newDecoder(bytes.NewReader(wire)).decode(&old))
	require.Equal(t, "x", old.Error)
	var cur responseHeader
	require.NoError(t, newDecoder(bytes.NewReader(wire)).decode(&cur))
	require.True(t, cur.KeepAlive)
	var fromOld responseHeader
	require.NoError(t, newDecoder(bytes.NewReader(encode(&oldResponseHeader{}))).decode(&fromOld))
	require.False(t, fromOld.KeepAlive, "an old server's header must read as no keep-alive")
}

func TestConnPool_SequentialCallsReuseOneStream(t *testing.T) {
	ts := startMuxOnlyServer(t, func(ctx context.Context, m string, args, reply any) error {
		if q := args.(*KeyRequest); q.MinQueryIndex > 0 {
			// A short blocking query: it must use a pooled stream too.
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	pool := newPool(t, nil)
	for i := range 50 {
		require.NoError(t, getKey(context.Background(), pool, ts.addr, fmt.Sprintf("k%d", i)))
	}
	var out IndexedKVEntries
	require.NoError(t, pool.RPC(context.Background(), ts.addr, MethodKVSGet,
		&KeyRequest{Key: "w", QueryOptions: QueryOptions{MinQueryIndex: 3, MaxQueryTime: time.Second}}, &out))
	require.NoError(t, getKey(context.Background(), pool, ts.addr, "after-blocking"))
	require.Equal(t, int64(1), pool.streamsOpened.Load())
	require.Equal(t, 1, pool.idleStreams(ts.addr))
}

func TestConnPool_FailedCallsDoNotReturnStream(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 4)
	handlerCancelled := make(chan struct{}, 4)
	ts := startMuxOnlyServer(t, func(ctx context.Context, m string, args, reply any) error {
		switch args.(*KeyRequest).Key {
		case "block":
			started <- struct{}{}
			select {
			case <-ctx.Done():
				handlerCancelled <- struct{}{}
				return ctx.Err()
			case <-release:
				return nil
			}
		case "fail":
			return fmt.Errorf("key: %w", ErrNotFound)
		}
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	pool := newPool(t, func(c *ConnPoolConfig) { c.RPCTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	require.NoError(t, getKey(ctx, pool, ts.addr, "a"))
	require.Equal(t, int64(1), pool.streamsOpened.Load())

	t.Run("cancelled mid-flight", func(t *testing.T) {
		opened := pool.streamsOpened.Load()
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- getKey(cctx, pool, ts.addr, "block") }()
		<-started
		require.Equal(t, opened, pool.streamsOpened.Load(), "the call must have taken the idle stream")
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)
		select {
		case <-handlerCancelled:
		case <-time.After(2 * time.Second):
			t.Fatal("handler of a call on a reused stream was not cancelled")
		}
		require.Zero(t, pool.idleStreams(ts.addr))
		require.NoError(t, getKey(ctx, pool, ts.addr, "b"))
		require.Equal(t, opened+1, pool.streamsOpened.Load())
	})
	t.Run("timed out", func(t *testing.T) {
		opened := pool.streamsOpened.Load()
		err := getKey(ctx, pool, ts.addr, "block")
		require.ErrorIs(t, err, ErrTimeout)
		<-started
		require.Zero(t, pool.idleStreams(ts.addr))
		require.NoError(t, getKey(ctx, pool, ts.addr, "c"))
		require.Equal(t, opened+1, pool.streamsOpened.Load())
	})
	t.Run("remote error", func(t *testing.T) {
		opened := pool.streamsOpened.Load()
		require.ErrorIs(t, getKey(ctx, pool, ts.addr, "fail"), ErrNotFound)
		require.Zero(t, pool.idleStreams(ts.addr))
		require.NoError(t, getKey(ctx, pool, ts.addr, "d"))
		require.Equal(t, opened+1, pool.streamsOpened.Load())
	})
}

// oldServer serves the pre-reuse protocol: one request per stream, a
// header without KeepAlive, then it closes the stream.
type oldServer struct {
	addr  net.Addr
	calls atomic.Int64
	mux   *Mux
	wg    sync.WaitGroup
}

func startOldServer(t *testing.T) *oldServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &oldServer{addr: ln.Addr(), mux: NewMux(ln, MuxConfig{})}
	rpcLn := s.mux.RPCListener()
	s.mux.Start()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := rpcLn.Accept()
			if err != nil {
				return
			}
			sess, err := yamux.Server(conn, yamuxConfig(slog.New(slog.DiscardHandler)))
			if err != nil {
				_ = conn.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer sess.Close()
				for {
					st, err := sess.AcceptStream()
					if err != nil {
						return
					}
					s.serve(st)
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = s.mux.Close(); s.wg.Wait() })
	return s
}

func (s *oldServer) serve(st *yamux.Stream) {
	defer st.Close()
	dec := newDecoder(st)
	var hdr requestHeader
	var args KeyRequest
	if dec.decode(&hdr) != nil || dec.decode(&args) != nil {
		return
	}
	s.calls.Add(1)
	_ = newEncoder(st).encode(&oldResponseHeader{}, &IndexedKVEntries{Entries: []*state.KVEntry{{Key: args.Key}}})
}

func TestConnPool_OldServerClosingStreamsStillWorks(t *testing.T) {
	old := startOldServer(t)
	pool := newPool(t, nil)
	for i := range 20 {
		require.NoError(t, getKey(context.Background(), pool, old.addr, fmt.Sprintf("k%d", i)))
	}
	require.Equal(t, int64(20), old.calls.Load())
	require.Equal(t, int64(20), pool.streamsOpened.Load(), "streams of an old server must not be reused")
	require.Zero(t, pool.idleStreams(old.addr))
}

func TestServer_OldClientOneCallPerStream(t *testing.T) {
	var calls atomic.Int64
	ts := startMuxOnlyServer(t, func(ctx context.Context, m string, args, reply any) error {
		calls.Add(1)
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	conn, err := net.Dial("tcp", ts.addr.String())
	require.NoError(t, err)
	_, err = conn.Write([]byte{TypeMultiplexRPC})
	require.NoError(t, err)
	sess, err := yamux.Client(conn, yamuxConfig(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer sess.Close()
	for i := range 5 {
		st, err := sess.OpenStream()
		require.NoError(t, err)
		require.NoError(t, newEncoder(st).encode(&requestHeader{Version: protocolVersion, Method: MethodKVSGet}, &KeyRequest{Key: "k"}))
		dec := newDecoder(st)
		var hdr oldResponseHeader
		var out IndexedKVEntries
		require.NoError(t, dec.decode(&hdr))
		require.Empty(t, hdr.Error)
		require.NoError(t, dec.decode(&out))
		require.Equal(t, "k", out.Entries[0].Key, "call %d", i)
		require.NoError(t, st.Close())
	}
	require.Equal(t, int64(5), calls.Load())
	// The server ends each stream once the old client closed it.
	waitFor(t, 5*time.Second, "server to close the streams", func() bool { return sess.NumStreams() == 0 })
}

func TestConnPool_ConcurrentCallsReuseStreams(t *testing.T) {
	ts := startMuxOnlyServer(t, echoKeyHandler, nil)
	pool := newPool(t, nil)
	const workers, calls = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				if err := getKey(context.Background(), pool, ts.addr, fmt.Sprintf("k-%d-%d", g, i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A new stream is opened only while every existing one is busy.
	require.LessOrEqual(t, pool.streamsOpened.Load(), int64(workers))
	require.LessOrEqual(t, pool.idleStreams(ts.addr), workers)
	require.Equal(t, 1, pool.Sessions())
}

func TestConnPool_IdleStreamsCapped(t *testing.T) {
	release := make(chan struct{})
	var inHandler atomic.Int64
	ts := startMuxOnlyServer(t, func(ctx context.Context, m string, args, reply any) error {
		inHandler.Add(1)
		<-release
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	pool := newPool(t, nil)
	const n = maxIdleStreams + 6
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := getKey(context.Background(), pool, ts.addr, fmt.Sprint(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	waitFor(t, 5*time.Second, "all calls in their handlers", func() bool { return inHandler.Load() == n })
	close(release)
	wg.Wait()
	require.Equal(t, int64(n), pool.streamsOpened.Load())
	require.Equal(t, maxIdleStreams, pool.idleStreams(ts.addr))
}

func TestConnPool_StaleStreams(t *testing.T) {
	t.Run("closed by the server while idle", func(t *testing.T) {
		ts := startMuxOnlyServer(t, echoKeyHandler, func(c *ServerConfig) { c.IdleStreamTimeout = 50 * time.Millisecond })
		pool := newPool(t, nil)
		require.NoError(t, getKey(context.Background(), pool, ts.addr, "a"))
		pc := pool.conns[ts.addr.String()]
		waitFor(t, 5*time.Second, "server to close the idle stream", func() bool {
			// The stream stays in the idle list until a call takes it;
			// usable() sees the server's FIN once it has arrived.
			pc.idleMu.Lock()
			defer pc.idleMu.Unlock()
			return len(pc.idle) == 1 && !pc.idle[0].usable()
		})
		require.NoError(t, getKey(context.Background(), pool, ts.addr, "b"))
		require.Equal(t, int64(2), pool.streamsOpened.Load())
	})
	t.Run("closed before the request is written is resent on a new stream", func(t *testing.T) {
		var calls atomic.Int64
		ts := startMuxOnlyServer(t, func(ctx context.Context, m string, args, reply any) error {
			calls.Add(1)
			return echoKeyHandler(ctx, m, args, reply)
		}, nil)
		pool := newPool(t, nil)
		require.NoError(t, getKey(context.Background(), pool, ts.addr, "a"))
		pc := pool.conns[ts.addr.String()]
		pc.idleMu.Lock()
		// Our side closed: reads still wait (usable passes), writes fail
		// with nothing sent.
		_ = pc.idle[0].st.Close()
		pc.idleMu.Unlock()
		require.NoError(t, getKey(context.Background(), pool, ts.addr, "b"))
		require.Equal(t, int64(2), pool.streamsOpened.Load())
		require.Equal(t, int64(2), calls.Load(), "the request must have been sent once")
	})
	t.Run("aged out", func(t *testing.T) {
		ts := startMuxOnlyServer(t, echoKeyHandler, nil)
		pool := newPool(t, nil)
		require.NoError(t, getKey(context.Background(), pool, ts.addr, "a"))
		pool.conns[ts.addr.String()].trimIdle(time.Now().Add(time.Second))
		require.Zero(t, pool.idleStreams(ts.addr))
		require.NoError(t, getKey(context.Background(), pool, ts.addr, "b"))
		require.Equal(t, int64(2), pool.streamsOpened.Load())
	})
}

// killConn wraps the pool's connections so a test can break them.
type killConn struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killConn) dial(ctx context.Context, addr net.Addr) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err == nil {
		k.mu.Lock()
		k.conns = append(k.conns, c)
		k.mu.Unlock()
	}
	return c, err
}

func (k *killConn) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		_ = c.Close()
	}
}

func TestConnPool_ReusedStreamFailureAfterSendIsNotErrConnect(t *testing.T) {
	var k killConn
	var calls atomic.Int64
	ts := startMuxOnlyServer(t, func(ctx context.Context, m string, args, reply any) error {
		if calls.Add(1) == 2 {
			// The request arrived; the connection dies before the reply.
			k.kill()
			<-ctx.Done()
			return ctx.Err()
		}
		return echoKeyHandler(ctx, m, args, reply)
	}, nil)
	pool := newPool(t, func(c *ConnPoolConfig) { c.Dial = k.dial })
	require.NoError(t, getKey(context.Background(), pool, ts.addr, "a"))
	err := getKey(context.Background(), pool, ts.addr, "b")
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrConnect), "a request that reached the server must not look unsent: %v", err)
	require.Equal(t, int64(2), calls.Load(), "the request must not have been resent")
	require.Equal(t, int64(1), pool.streamsOpened.Load())
}

func TestServer_StreamReadTimeouts(t *testing.T) {
	ts := startMuxOnlyServer(t, echoKeyHandler, func(c *ServerConfig) {
		c.RequestReadTimeout = 100 * time.Millisecond
		c.IdleStreamTimeout = 300 * time.Millisecond
	})
	conn, err := net.Dial("tcp", ts.addr.String())
	require.NoError(t, err)
	_, err = conn.Write([]byte{TypeMultiplexRPC})
	require.NoError(t, err)
	sess, err := yamux.Client(conn, yamuxConfig(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer sess.Close()
	// readEOF reads whatever the server still sends (an error reply for
	// a cut request) until it closes the stream.
	readEOF := func(t *testing.T, st *yamux.Stream) time.Duration {
		t.Helper()
		start := time.Now()
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, st)
		require.NoError(t, err, "the server must close the stream")
		return time.Since(start)
	}
	t.Run("silent new stream", func(t *testing.T) {
		st, err := sess.OpenStream()
		require.NoError(t, err)
		defer st.Close()
		require.NoError(t, newEncoder(st).encode(&requestHeader{Version: protocolVersion, Method: MethodKVSGet}))
		require.Less(t, readEOF(t, st), 2*time.Second)
	})
	t.Run("idle then half a request", func(t *testing.T) {
		st, err := sess.OpenStream()
		require.NoError(t, err)
		defer st.Close()
		enc, dec := newEncoder(st), newDecoder(st)
		for i := range 3 {
			// Pauses between requests shorter than the idle timeout but
			// longer than the request timeout keep the stream. (The first
			// request is due within the request timeout.)
			if i > 0 {
				time.Sleep(150 * time.Millisecond)
			}
			require.NoError(t, enc.encode(&requestHeader{Version: protocolVersion, Method: MethodKVSGet}, &KeyRequest{Key: "k"}))
			var hdr responseHeader
			var out IndexedKVEntries
			require.NoError(t, dec.decode(&hdr), "call %d", i)
			require.True(t, hdr.KeepAlive)
			require.NoError(t, dec.decode(&out))
		}
		// Only the header of the next request: the request timeout ends it.
		require.NoError(t, enc.encode(&requestHeader{Version: protocolVersion, Method: MethodKVSGet}))
		readEOF(t, st)
	})
}

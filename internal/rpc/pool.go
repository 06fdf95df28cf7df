package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Defaults of ConnPoolConfig.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultRPCTimeout is how long a non-blocking call may wait for its
	// reply (Consul's rpc_client_timeout); blocking queries get their wait
	// time on top of it.
	DefaultRPCTimeout = 60 * time.Second
)

// Client-side errors.
var (
	// ErrConnect means the request was never sent (dial or stream open
	// failed): it is safe to retry on another server, writes included.
	ErrConnect = errors.New("rpc: could not reach server")
	// ErrTimeout means no reply came within the call's timeout; the
	// request may or may not have been applied.
	ErrTimeout = errors.New("rpc: timed out waiting for reply")
	// ErrPoolShutdown is returned after ConnPool.Shutdown.
	ErrPoolShutdown = errors.New("rpc: connection pool shut down")
)

// ConnPoolConfig configures a ConnPool.
type ConnPoolConfig struct {
	DialTimeout time.Duration
	// IdleTimeout closes a session that has had no call for this long.
	IdleTimeout time.Duration
	// RPCTimeout bounds the wait for a reply of a non-blocking call, and is
	// the margin added to a blocking query's wait.
	RPCTimeout time.Duration
	// DefaultQueryTime and MaxQueryTime mirror the agent's
	// default_query_time and max_query_time (5 m and 10 m when zero).
	DefaultQueryTime time.Duration
	MaxQueryTime     time.Duration
	// Registry must match the servers'; nil means DefaultRegistry().
	Registry *Registry
	// Dial, when set, replaces the plain TCP dial (TLS, tests). The pool
	// writes the connection type byte itself.
	Dial   func(ctx context.Context, addr net.Addr) (net.Conn, error)
	Logger *slog.Logger
}

// maxIdleStreams caps the idle streams a session keeps for reuse.
const maxIdleStreams = 64

// ConnPool is the client side of the internal RPC. It keeps one yamux
// session per server address, shared by concurrent calls (each call in
// flight has a stream of its own), and closes sessions that stay idle.
// A stream whose call ended cleanly on a server that keeps streams open
// (responseHeader.KeepAlive) is kept, with its encoder and decoder, for
// the next call to that server: up to maxIdleStreams per session, each for
// at most IdleTimeout. It is safe for concurrent use. NewConnPool starts
// one reaper goroutine; Shutdown stops it.
type ConnPool struct {
	cfg    ConnPoolConfig
	reg    *Registry
	logger *slog.Logger
	yamux  *yamux.Config

	mu       sync.Mutex // guards conns, plain, shutdown
	conns    map[string]*poolConn
	plain    map[string]*plainSet
	shutdown bool

	stopCh chan struct{}
	wg     sync.WaitGroup

	// streamsOpened counts OpenStream calls, plainDialed the plain
	// connections opened (tests).
	streamsOpened atomic.Int64
	plainDialed   atomic.Int64
}

// poolConn is one address's session. ready is closed once the dial has
// finished; sess and err are set before that and never change afterwards.
//
// idleMu is never held together with ConnPool.mu.
type poolConn struct {
	key      string
	ready    chan struct{}
	sess     *yamux.Session
	err      error
	inflight atomic.Int64
	lastUsed atomic.Int64 // unix nanoseconds

	idleMu sync.Mutex    // guards idle
	idle   []*poolStream // most recently used last
}

// poolStream is a stream with its codec, kept between calls.
//
// Its deadlines stay zero between calls: a call's timeout is a timer that
// sets them into the past when it fires (a deadline on the stream itself
// would cost yamux a new timer on every blocking read), and a stream whose
// timer or cancel hook fired is never reused.
type poolStream struct {
	st       *yamux.Stream
	enc      *encoder
	dec      *decoder
	timeout  *time.Timer // created by the first call
	idleFrom time.Time   // when it was put back
}

func newPoolStream(st *yamux.Stream) *poolStream {
	return &poolStream{st: st, enc: newEncoder(st), dec: newDecoder(st)}
}

// takeIdle returns the most recently used idle stream that is still open,
// or nil. Streams idle for longer than maxIdle, closed by the server or
// holding unasked-for data are closed; none of them carried a byte of this
// call.
func (c *poolConn) takeIdle(now time.Time, maxIdle time.Duration) *poolStream {
	for {
		c.idleMu.Lock()
		n := len(c.idle)
		if n == 0 {
			c.idleMu.Unlock()
			return nil
		}
		ps := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.idleMu.Unlock()
		if now.Sub(ps.idleFrom) < maxIdle && ps.usable() {
			return ps
		}
		_ = ps.st.Close()
	}
}

// usable reports whether the server has neither closed nor reset the
// stream nor sent anything on it while it was idle. A close still on its
// way is not seen; the call then fails without ErrConnect.
func (ps *poolStream) usable() bool {
	if ps.dec.buffered() > 0 {
		return false
	}
	_ = ps.st.SetReadDeadline(time.Unix(1, 0))
	var b [1]byte
	n, err := ps.st.Read(b[:])
	_ = ps.st.SetReadDeadline(time.Time{})
	return n == 0 && errors.Is(err, yamux.ErrTimeout)
}

// putIdle keeps ps for another call, or closes it when the pool is full or
// the session is gone.
func (c *poolConn) putIdle(ps *poolStream, now time.Time) {
	// Give back the receive buffer sized for the last reply.
	ps.st.Shrink()
	ps.idleFrom = now
	c.idleMu.Lock()
	if len(c.idle) < maxIdleStreams && !c.sess.IsClosed() {
		c.idle = append(c.idle, ps)
		c.idleMu.Unlock()
		return
	}
	c.idleMu.Unlock()
	_ = ps.st.Close()
}

// trimIdle closes idle streams unused since before cutoff.
func (c *poolConn) trimIdle(cutoff time.Time) {
	c.idleMu.Lock()
	var old []*poolStream
	c.idle, old = splitIdle(c.idle, cutoff, func(ps *poolStream) time.Time { return ps.idleFrom })
	c.idleMu.Unlock()
	for _, ps := range old {
		_ = ps.st.Close()
	}
}

// splitIdle removes from idle, in place, the entries idle since before
// cutoff, and returns what is kept and what was removed.
func splitIdle[T any](idle []T, cutoff time.Time, since func(T) time.Time) (kept, old []T) {
	kept = idle[:0]
	for _, v := range idle {
		if since(v).Before(cutoff) {
			old = append(old, v)
		} else {
			kept = append(kept, v)
		}
	}
	clear(idle[len(kept):])
	return kept, old
}

// dropIdle forgets the idle streams; closing the session closes them.
func (c *poolConn) dropIdle() {
	c.idleMu.Lock()
	c.idle = nil
	c.idleMu.Unlock()
}

// idleStreams returns the number of idle streams kept (tests).
func (c *poolConn) idleStreams() int {
	c.idleMu.Lock()
	defer c.idleMu.Unlock()
	return len(c.idle)
}

func (c *poolConn) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// NewConnPool returns a pool and starts its idle reaper.
func NewConnPool(cfg ConnPoolConfig) *ConnPool {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = DefaultRPCTimeout
	}
	if cfg.DefaultQueryTime <= 0 {
		cfg.DefaultQueryTime = DefaultQueryTime
	}
	if cfg.MaxQueryTime <= 0 {
		cfg.MaxQueryTime = MaxQueryTime
	}
	if cfg.Registry == nil {
		cfg.Registry = DefaultRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &ConnPool{
		cfg:    cfg,
		reg:    cfg.Registry,
		logger: cfg.Logger,
		yamux:  yamuxConfig(cfg.Logger),
		conns:  map[string]*poolConn{},
		plain:  map[string]*plainSet{},
		stopCh: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.reapLoop()
	return p
}

// RPC calls method on the server at addr. args and reply must be pointers
// of the method's registered types. The call ends when the reply arrives,
// ctx is done (the server's handler context is then cancelled too), or the
// call's timeout passes: RPCTimeout, or for a blocking query its wait plus
// jitter plus RPCTimeout.
//
// Errors: a *RemoteError for the handler's error (errors.Is matches the
// shared sentinels), ErrConnect when the request was never sent, ErrTimeout,
// ctx's error, or a wrapped transport error.
func (p *ConnPool) RPC(ctx context.Context, addr net.Addr, method string, args, reply any) error {
	if addr == nil {
		return fmt.Errorf("%w: %s: no server address", ErrConnect, method)
	}
	if err := p.reg.checkTypes(method, args, reply); err != nil {
		return err
	}
	if _, blocking := blockingWait(args, p.cfg.DefaultQueryTime, p.cfg.MaxQueryTime); !blocking {
		if handled, err := p.plainRPC(ctx, addr, method, args, reply); handled {
			return err
		}
	}
	freshOnly := false
	for attempt := 0; ; attempt++ {
		pc, err := p.acquire(ctx, addr)
		if err != nil {
			return p.callError(ctx, method, addr, err)
		}
		var ps *poolStream
		if !freshOnly {
			ps = pc.takeIdle(time.Now(), p.cfg.IdleTimeout)
		}
		reused := ps != nil
		if !reused {
			st, err := pc.sess.OpenStream()
			if err != nil {
				p.release(pc)
				p.discard(pc)
				// A pooled session can die between calls (server restart);
				// nothing was sent, so one retry on a fresh session is safe.
				if attempt == 0 && ctx.Err() == nil {
					continue
				}
				return p.callError(ctx, method, addr, fmt.Errorf("%w: open stream: %w", ErrConnect, err))
			}
			p.streamsOpened.Add(1)
			ps = newPoolStream(st)
		}
		err = p.call(ctx, pc, ps, reused, method, args, reply)
		p.release(pc)
		if err != nil {
			var remote *RemoteError
			if errors.As(err, &remote) {
				return err
			}
			// The reused stream was closed under us before any byte of
			// the request left: the server never saw it, so it is safe to
			// send it once more, on a new stream.
			if errors.Is(err, errStreamStale) && !freshOnly && ctx.Err() == nil {
				freshOnly = true
				attempt--
				continue
			}
			return p.callError(ctx, method, addr, err)
		}
		return nil
	}
}

// errStreamStale marks a call on a reused stream that failed before any
// byte of its request was written because the stream was already closed
// or reset: provably never sent.
var errStreamStale = errors.New("rpc: reused stream already closed")

// call runs one request/reply exchange on ps. It keeps ps for the next
// call only when the exchange completed cleanly on a server that keeps
// streams open; otherwise it closes it.
func (p *ConnPool) call(ctx context.Context, pc *poolConn, ps *poolStream, reused bool, method string, args, reply any) (err error) {
	st := ps.st
	timeout := p.cfg.RPCTimeout
	if wait, ok := blockingWait(args, p.cfg.DefaultQueryTime, p.cfg.MaxQueryTime); ok {
		timeout += wait
	}
	expire := func() { _ = st.SetDeadline(time.Unix(1, 0)) }
	if ps.timeout == nil {
		ps.timeout = time.AfterFunc(timeout, expire)
	} else {
		ps.timeout.Reset(timeout)
	}
	stop := context.AfterFunc(ctx, expire)
	var keep bool
	defer func() {
		// A Stop that reports false means the hook has run or is running:
		// the stream's deadline may be in the past, so it is not reused.
		stopped := stop()
		timerStopped := ps.timeout.Stop()
		if keep && err == nil && stopped && timerStopped && ctx.Err() == nil {
			pc.putIdle(ps, time.Now())
			return
		}
		_ = st.Close()
	}()
	keep, err = p.exchange(ps.enc, ps.dec, reused, func(err error) bool {
		return errors.Is(err, yamux.ErrStreamClosed) || errors.Is(err, yamux.ErrConnectionReset)
	}, method, args, reply)
	return err
}

// exchange sends one request and reads its reply. On a reused stream or
// connection, a send that failed before any byte left with an error stale
// accepts is errStreamStale: provably never sent. keepAlive is the reply
// header's KeepAlive once the reply, error or not, was read whole.
func (p *ConnPool) exchange(enc *encoder, dec *decoder, reused bool, stale func(error) bool, method string, args, reply any) (keepAlive bool, err error) {
	enc.rec.reset()
	dec.rec.reset()
	if err := enc.encode(&requestHeader{Version: protocolVersion, Method: method}, args); err != nil {
		if reused && enc.rec.written == 0 && stale(err) {
			return false, fmt.Errorf("%w: send request: %w", errStreamStale, err)
		}
		return false, fmt.Errorf("send request: %w", err)
	}
	var hdr responseHeader
	if err := dec.decode(&hdr); err != nil {
		return false, fmt.Errorf("read reply: %w", err)
	}
	if err := p.reg.decodeError(hdr); err != nil {
		return hdr.KeepAlive, err
	}
	if err := dec.decode(reply); err != nil {
		return false, fmt.Errorf("read reply: %w", err)
	}
	return hdr.KeepAlive, nil
}

// callError gives a transport failure its context and its sentinel.
func (p *ConnPool) callError(ctx context.Context, method string, addr net.Addr, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("rpc: %s to %s: %w", method, addr, ctx.Err())
	case isDeadline(err):
		return fmt.Errorf("rpc: %s to %s: %w: %w", method, addr, ErrTimeout, err)
	}
	return fmt.Errorf("rpc: %s to %s: %w", method, addr, err)
}

// acquire returns a live session for addr, dialing one if needed, with its
// in-flight count raised; release lowers it.
func (p *ConnPool) acquire(ctx context.Context, addr net.Addr) (*poolConn, error) {
	key := addr.String()
	for {
		p.mu.Lock()
		if p.shutdown {
			p.mu.Unlock()
			return nil, ErrPoolShutdown
		}
		pc := p.conns[key]
		switch {
		case pc == nil:
			pc = &poolConn{key: key, ready: make(chan struct{})}
			p.conns[key] = pc
			p.mu.Unlock()
			if err := p.dial(ctx, addr, pc); err != nil {
				return nil, err
			}
			continue
		case pc.isReady() && pc.sess != nil && !pc.sess.IsClosed():
			pc.inflight.Add(1)
			pc.lastUsed.Store(time.Now().UnixNano())
			p.mu.Unlock()
			return pc, nil
		case pc.isReady():
			// Failed dial or dead session: forget it and start over.
			if p.conns[key] == pc {
				delete(p.conns, key)
			}
			p.mu.Unlock()
			if pc.sess != nil {
				_ = pc.sess.Close()
			}
			if pc.err != nil && !errors.Is(pc.err, context.Canceled) && !errors.Is(pc.err, context.DeadlineExceeded) {
				return nil, pc.err
			}
			continue
		}
		p.mu.Unlock()
		// Another call is dialing this address: wait for it.
		select {
		case <-pc.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// dial connects pc and publishes the outcome.
func (p *ConnPool) dial(ctx context.Context, addr net.Addr, pc *poolConn) error {
	sess, err := p.connect(ctx, addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(pc.ready)
	if err == nil && p.shutdown {
		_ = sess.Close()
		err = ErrPoolShutdown
	}
	if err != nil {
		pc.err = err
		if p.conns[pc.key] == pc {
			delete(p.conns, pc.key)
		}
		return err
	}
	pc.sess = sess
	pc.lastUsed.Store(time.Now().UnixNano())
	return nil
}

// dialConn opens a connection to addr (cfg.Dial or TCP); errors are
// ErrConnect.
func (p *ConnPool) dialConn(ctx context.Context, addr net.Addr) (net.Conn, error) {
	var conn net.Conn
	var err error
	if p.cfg.Dial != nil {
		conn, err = p.cfg.Dial(ctx, addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr.String())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrConnect, addr, err)
	}
	return conn, nil
}

func (p *ConnPool) connect(ctx context.Context, addr net.Addr) (*yamux.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	conn, err := p.dialConn(ctx, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte{TypeMultiplexRPC}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: handshake with %s: %w", ErrConnect, addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	sess, err := yamux.Client(conn, p.yamux)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: session with %s: %w", ErrConnect, addr, err)
	}
	p.logger.Debug("rpc session opened", "server", addr.String())
	return sess, nil
}

func (p *ConnPool) release(pc *poolConn) {
	pc.lastUsed.Store(time.Now().UnixNano())
	pc.inflight.Add(-1)
}

// discard closes pc's session, and with it its idle streams, and forgets
// it.
func (p *ConnPool) discard(pc *poolConn) {
	p.mu.Lock()
	if p.conns[pc.key] == pc {
		delete(p.conns, pc.key)
	}
	p.mu.Unlock()
	if pc.sess != nil {
		_ = pc.sess.Close()
	}
	pc.dropIdle()
}

// Remove closes the session and the plain connections to addr, if any,
// failing their in-flight calls. Callers use it after a server proved
// unhealthy.
func (p *ConnPool) Remove(addr net.Addr) {
	p.mu.Lock()
	pc := p.conns[addr.String()]
	ps := p.plain[addr.String()]
	delete(p.plain, addr.String())
	p.mu.Unlock()
	if ps != nil {
		ps.close()
	}
	if pc != nil && pc.isReady() {
		p.discard(pc)
	}
}

// Sessions returns the number of pooled sessions (for tests and metrics).
func (p *ConnPool) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// idleStreams returns the number of idle streams kept for addr (tests).
func (p *ConnPool) idleStreams(addr net.Addr) int {
	p.mu.Lock()
	pc := p.conns[addr.String()]
	p.mu.Unlock()
	if pc == nil {
		return 0
	}
	return pc.idleStreams()
}

// reapLoop closes sessions that are idle or dead, and streams kept idle for
// too long.
func (p *ConnPool) reapLoop() {
	defer p.wg.Done()
	interval := min(max(p.cfg.IdleTimeout/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stopCh:
			return
		case <-t.C:
			p.reap(time.Now())
		}
	}
}

func (p *ConnPool) reap(now time.Time) {
	var closing, live []*poolConn
	p.mu.Lock()
	for key, pc := range p.conns {
		if !pc.isReady() || pc.sess == nil {
			continue
		}
		idle := now.Sub(time.Unix(0, pc.lastUsed.Load()))
		if pc.inflight.Load() == 0 && (idle >= p.cfg.IdleTimeout || pc.sess.IsClosed()) {
			delete(p.conns, key)
			closing = append(closing, pc)
			continue
		}
		live = append(live, pc)
	}
	plain := make(map[string]*plainSet, len(p.plain))
	maps.Copy(plain, p.plain)
	p.mu.Unlock()
	for _, s := range plain {
		s.trim(now.Add(-p.cfg.IdleTimeout))
	}
	// Forget the sets left empty, so servers that went away leave nothing.
	p.mu.Lock()
	for key, s := range plain {
		if p.plain[key] == s && s.closeIfUnused(now) {
			delete(p.plain, key)
		}
	}
	p.mu.Unlock()
	for _, pc := range closing {
		p.logger.Debug("rpc session closed", "server", pc.key, "reason", "idle")
		_ = pc.sess.Close()
		pc.dropIdle()
	}
	for _, pc := range live {
		pc.trimIdle(now.Add(-p.cfg.IdleTimeout))
	}
}

// Shutdown closes every session (failing in-flight calls), stops the
// reaper and waits for it. It is idempotent.
func (p *ConnPool) Shutdown() error {
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		return nil
	}
	p.shutdown = true
	conns, plain := p.conns, p.plain
	p.conns, p.plain = map[string]*poolConn{}, map[string]*plainSet{}
	p.mu.Unlock()
	for _, s := range plain {
		s.close()
	}

	close(p.stopCh)
	for _, pc := range conns {
		if pc.isReady() && pc.sess != nil {
			_ = pc.sess.Close()
			pc.dropIdle()
		}
	}
	p.wg.Wait()
	return nil
}

package rpc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Connection types: the first byte a client writes on the server port says
// what the rest of the connection carries. The numbering is Consul's.
const (
	TypeRPC          byte = 0x00 // one call at a time on a connection of its own (ConnPool's plain connections)
	TypeRaft         byte = 0x01 // Raft's NetworkTransport
	TypeMultiplex    byte = 0x02 // Consul's old multiplexer: reserved, not served
	TypeTLS          byte = 0x03 // TLS wrapper: reserved for the security work
	TypeMultiplexRPC byte = 0x04 // yamux session of RPC streams (ConnPool, Server)
	TypeSnapshot     byte = 0x05 // streaming snapshot save/restore
	TypeGossip       byte = 0x06 // gossip over the server port: reserved
)

// DefaultHandshakeTimeout bounds how long a new connection may take to send
// its type byte.
const DefaultHandshakeTimeout = 5 * time.Second

// ErrMuxClosed is returned by a sub-listener's Accept once it or its Mux is
// closed. It wraps net.ErrClosed.
var ErrMuxClosed = fmt.Errorf("rpc: listener closed: %w", net.ErrClosed)

// MuxConfig configures a Mux.
type MuxConfig struct {
	// HandshakeTimeout bounds the read of the type byte; zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	Logger           *slog.Logger
}

// Mux shares one listener between Raft, RPC and the other connection
// types. It accepts connections, reads each one's type byte (with a
// deadline) and hands the rest of the connection to the sub-listener of
// that type. Connections of a type nobody listens for are closed.
//
// Lifecycle: NewMux allocates, Listener registers sub-listeners (before or
// after Start), Start runs the accept loop, Close stops it, closes every
// sub-listener and pending connection and waits for its goroutines.
type Mux struct {
	ln      net.Listener
	timeout time.Duration
	logger  *slog.Logger

	mu      sync.Mutex // guards subs, pending, active, closed, started
	subs    map[byte]*subListener
	pending map[net.Conn]struct{} // still in the handshake
	active  map[*muxConn]struct{} // handed to a sub-listener, not yet closed
	closed  bool
	started bool

	closeCh chan struct{}
	wg      sync.WaitGroup
}

// NewMux wraps ln. The Mux owns ln from now on and closes it on Close.
func NewMux(ln net.Listener, cfg MuxConfig) *Mux {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Mux{
		ln:      ln,
		timeout: cfg.HandshakeTimeout,
		logger:  cfg.Logger,
		subs:    map[byte]*subListener{},
		pending: map[net.Conn]struct{}{},
		active:  map[*muxConn]struct{}{},
		closeCh: make(chan struct{}),
	}
}

// Addr returns the shared listener's address.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Listener returns the sub-listener for connection type t, creating it on
// first use. Its Accept yields connections whose type byte was t, with that
// byte already consumed.
func (m *Mux) Listener(t byte) net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.subs[t]; ok {
		return s
	}
	s := &subListener{
		mux:    m,
		typ:    t,
		ch:     make(chan net.Conn),
		closed: make(chan struct{}),
	}
	if m.closed {
		s.closeOnce.Do(func() { close(s.closed) })
	}
	m.subs[t] = s
	return s
}

// RaftListener is Listener(TypeRaft); wrap it with NewRaftLayer.
func (m *Mux) RaftListener() net.Listener { return m.Listener(TypeRaft) }

// RPCListener is Listener(TypeMultiplexRPC); pass it to Server.Serve.
func (m *Mux) RPCListener() net.Listener { return m.Listener(TypeMultiplexRPC) }

// PlainRPCListener is Listener(TypeRPC); pass it to Server.ServePlain.
func (m *Mux) PlainRPCListener() net.Listener { return m.Listener(TypeRPC) }

// Start runs the accept loop in a goroutine. Calling it twice is a no-op.
func (m *Mux) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.closed {
		return
	}
	m.started = true
	m.wg.Add(1)
	go m.acceptLoop()
}

// Close stops accepting, closes the listener, every sub-listener and every
// connection it accepted that is still open (so Raft's and the RPC
// server's connection goroutines end too), and waits for the Mux's
// goroutines. It is idempotent.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closeCh)
	for c := range m.pending {
		_ = c.Close()
	}
	active := make([]*muxConn, 0, len(m.active))
	for c := range m.active {
		active = append(active, c)
	}
	subs := make([]*subListener, 0, len(m.subs))
	for _, s := range m.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()

	err := m.ln.Close()
	for _, s := range subs {
		_ = s.Close()
	}
	for _, c := range active {
		_ = c.Close()
	}
	m.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("rpc: close mux listener: %w", err)
	}
	return nil
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closeCh:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. too many open files): back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.logger.Error("rpc accept failed", "error", err, "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
				continue
			case <-m.closeCh:
				return
			}
		}
		backoff = 0
		if !m.track(conn) {
			_ = conn.Close()
			return
		}
		m.wg.Add(1)
		go m.handshake(conn)
	}
}

// track records conn as pending; false when the mux is closed.
func (m *Mux) track(conn net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.pending[conn] = struct{}{}
	return true
}

func (m *Mux) untrack(conn net.Conn) {
	m.mu.Lock()
	delete(m.pending, conn)
	m.mu.Unlock()
}

// handshake reads the type byte and hands conn to its sub-listener.
func (m *Mux) handshake(conn net.Conn) {
	defer m.wg.Done()
	defer m.untrack(conn)
	remote := conn.RemoteAddr().String()

	var b [1]byte
	_ = conn.SetReadDeadline(time.Now().Add(m.timeout))
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		m.logger.Debug("rpc connection handshake failed", "remote_addr", remote, "error", err)
		_ = conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})

	m.mu.Lock()
	sub := m.subs[b[0]]
	if sub == nil || m.closed {
		m.mu.Unlock()
		if sub == nil {
			m.logger.Warn("rpc connection of unsupported type closed", "remote_addr", remote, "type", int(b[0]))
		}
		_ = conn.Close()
		return
	}
	mc := &muxConn{Conn: conn, mux: m}
	m.active[mc] = struct{}{}
	m.mu.Unlock()

	// Wait for an Accept, but not forever: a sub-listener nobody serves
	// must not pile up connections.
	timer := time.NewTimer(m.timeout)
	defer timer.Stop()
	select {
	case sub.ch <- mc:
	case <-sub.closed:
		_ = mc.Close()
	case <-m.closeCh:
		_ = mc.Close()
	case <-timer.C:
		m.logger.Warn("rpc connection not accepted in time, closed", "remote_addr", remote, "type", int(b[0]))
		_ = mc.Close()
	}
}

// muxConn is a connection handed to a sub-listener; the Mux closes it on
// Close if its new owner has not.
type muxConn struct {
	net.Conn
	mux  *Mux
	once sync.Once
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *muxConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// Close closes the connection and forgets it.
func (c *muxConn) Close() error {
	c.once.Do(func() {
		c.mux.mu.Lock()
		delete(c.mux.active, c)
		c.mux.mu.Unlock()
	})
	return c.Conn.Close()
}

// subListener is the net.Listener of one connection type.
type subListener struct {
	mux       *Mux
	typ       byte
	ch        chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

// Accept waits for the next connection of this type.
func (s *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.ch:
		return c, nil
	case <-s.closed:
		return nil, ErrMuxClosed
	}
}

// Close stops this sub-listener only; the Mux and the other types go on.
func (s *subListener) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// Addr returns the shared listener's address.
func (s *subListener) Addr() net.Addr { return s.mux.Addr() }

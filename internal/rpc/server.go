package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Handler serves one RPC: args and reply are fresh values of the method's
// registered types (pointers). ctx is cancelled when the caller gives up or
// the connection or server goes away. A server's in-process Caller.RPC
// usually is the Handler. It is called concurrently.
type Handler func(ctx context.Context, method string, args, reply any) error

// Defaults of ServerConfig.
const (
	DefaultMaxRequestBytes    = 64 << 20
	DefaultRequestReadTimeout = 30 * time.Second
	DefaultReplyWriteTimeout  = 30 * time.Second
	// DefaultIdleStreamTimeout is how long a stream may wait for its
	// caller's next request; it is well above the client's pooled-stream
	// lifetime (ConnPoolConfig.IdleTimeout, 2 m by default) so the client,
	// not the server, ends idle streams.
	DefaultIdleStreamTimeout = 5 * time.Minute
)

// ServerConfig configures a Server.
type ServerConfig struct {
	Handler Handler
	// Registry gives the methods' types and error codes; nil means
	// DefaultRegistry().
	Registry *Registry
	// MaxRequestBytes caps one encoded request (default 64 MiB); a larger
	// one fails with ErrTooLarge.
	MaxRequestBytes int64
	// RequestReadTimeout bounds reading a request once its stream opened.
	RequestReadTimeout time.Duration
	// ReplyWriteTimeout bounds writing a reply to a slow reader.
	ReplyWriteTimeout time.Duration
	// IdleStreamTimeout bounds the wait for the next request on a stream
	// that has served one (default 5 m). Keep it above the clients'
	// ConnPoolConfig.IdleTimeout.
	IdleStreamTimeout time.Duration
	Logger            *slog.Logger
}

// Server serves multiplexed RPC connections: each connection is a yamux
// session and each stream a sequence of calls, one at a time (see the wire
// format in codec.go).
type Server struct {
	cfg    ServerConfig
	reg    *Registry
	logger *slog.Logger
	yamux  *yamux.Config
}

// NewServer validates cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("rpc: server needs a handler")
	}
	if cfg.Registry == nil {
		cfg.Registry = DefaultRegistry()
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.RequestReadTimeout <= 0 {
		cfg.RequestReadTimeout = DefaultRequestReadTimeout
	}
	if cfg.ReplyWriteTimeout <= 0 {
		cfg.ReplyWriteTimeout = DefaultReplyWriteTimeout
	}
	if cfg.IdleStreamTimeout <= 0 {
		cfg.IdleStreamTimeout = DefaultIdleStreamTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, reg: cfg.Registry, logger: cfg.Logger, yamux: yamuxConfig(cfg.Logger)}, nil
}

// Serve is NewServer(ServerConfig{Handler: h, Logger: logger}).Serve(ctx, l).
func Serve(ctx context.Context, l net.Listener, h Handler, logger *slog.Logger) error {
	s, err := NewServer(ServerConfig{Handler: h, Logger: logger})
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// yamuxConfig is the session configuration of both ends.
func yamuxConfig(logger *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = nil
	c.Logger = yamuxLogger(logger)
	// Replies of big catalogs move faster with a larger window.
	c.MaxStreamWindowSize = 1 << 20
	return c
}

// Serve accepts connections from l (whose type byte, if any, is already
// consumed, as with Mux.RPCListener) until ctx is done or l is closed. It
// closes l, then every session, and waits for all in-flight calls to return
// (their contexts are cancelled) before returning. The error is nil unless
// Accept failed for another reason.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return acceptLoop(ctx, l, "rpc: accept", s.ServeConn)
}

// ServePlain serves plain RPC connections (TypeRPC, as with
// Mux.PlainRPCListener) from l the way Serve serves multiplexed ones: each
// connection carries calls one at a time, framed as on a stream.
func (s *Server) ServePlain(ctx context.Context, l net.Listener) error {
	return acceptLoop(ctx, l, "rpc: accept plain", s.ServePlainConn)
}

// ServePlainConn serves one plain connection until it closes or ctx is
// done. It first writes plainAck, which tells the caller that this server
// serves plain connections (an older one closes them unanswered).
func (s *Server) ServePlainConn(ctx context.Context, conn net.Conn) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.ReplyWriteTimeout))
	if _, err := conn.Write([]byte{plainAck}); err != nil {
		s.logger.Debug("rpc plain connection ended before its ack", "remote_addr", conn.RemoteAddr().String(), "error", err)
		_ = conn.Close()
		return
	}
	_ = conn.SetWriteDeadline(time.Time{})
	s.serveStream(ctx, plainStream{conn})
}

// Lingering close of a plain connection: see plainStream.Close.
const (
	plainLinger      = 500 * time.Millisecond
	plainLingerBytes = 4 << 20
)

// plainStream is a plain connection as a callStream. Its Close half-closes
// the connection, then reads and discards what the caller still sends (up
// to plainLingerBytes, for up to plainLinger) before closing it. A reply
// that ends the connection early (a request over the size limit, an
// unknown method) then reaches the caller; closing over unread data would
// send a reset, which can discard the reply before the caller reads it.
type plainStream struct{ net.Conn }

func (p plainStream) Close() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = p.Conn.SetReadDeadline(time.Now().Add(plainLinger))
		_, _ = io.CopyN(io.Discard, p.Conn, plainLingerBytes)
	}
	return p.Conn.Close()
}

// acceptLoop accepts connections from l and serves each on its own
// goroutine with serve until ctx is done or l is closed; then it closes l
// and waits for every serve to return. Temporary accept errors (timeouts)
// back off up to 1 s; any other error cancels the served connections and
// is returned, prefixed with what.
func acceptLoop(ctx context.Context, l net.Listener, what string, serve func(context.Context, net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			cancel()
			return fmt.Errorf("%s: %w", what, err)
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(ctx, conn)
		}()
	}
}

// ServeConn serves one multiplexed connection until it closes or ctx is
// done, and waits for its calls to return.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	sess, err := yamux.Server(conn, s.yamux)
	if err != nil {
		s.logger.Error("rpc session setup failed", "remote_addr", conn.RemoteAddr().String(), "error", err)
		_ = conn.Close()
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: cancel in-flight calls when the session ends
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, yamux.ErrSessionShutdown) {
				s.logger.Debug("rpc session ended", "remote_addr", conn.RemoteAddr().String(), "error", err)
			}
			_ = sess.Close()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveStream(ctx, st)
		}()
	}
}

type peerKey struct{}

// PeerAddr returns the network address of the caller of the RPC being
// served, if ctx belongs to a network call.
func PeerAddr(ctx context.Context) (net.Addr, bool) {
	a, ok := ctx.Value(peerKey{}).(net.Addr)
	return a, ok
}

// callStream is what carries calls one at a time: a yamux stream, or a
// plain connection of its own (TypeRPC).
type callStream interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	RemoteAddr() net.Addr
}

// isDeadline reports whether err is a read or write deadline passing, on
// a yamux stream or a net.Conn.
func isDeadline(err error) bool {
	return errors.Is(err, yamux.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded)
}

// serveStream serves the calls of one stream in turn until the caller
// closes it, a read or write fails, a request cannot be parsed, or the
// server stops.
func (s *Server) serveStream(ctx context.Context, st callStream) {
	defer st.Close()
	lr := &limitReader{r: st}
	dec := newDecoder(lr)
	enc := newEncoder(st)
	// The read timeouts are one timer that moves the read deadline into
	// the past when it fires, rather than a deadline on the stream, which
	// would cost yamux a new timer on every blocking read.
	readTimer := time.AfterFunc(s.cfg.RequestReadTimeout, func() { _ = st.SetReadDeadline(time.Unix(1, 0)) })
	defer readTimer.Stop()
	for first := true; ctx.Err() == nil; first = false {
		// The size limit is per request; it also counts what the buffer
		// read ahead while waiting.
		lr.n = s.cfg.MaxRequestBytes
		if !first {
			readTimer.Reset(s.cfg.IdleStreamTimeout)
			err := dec.wait()
			if !readTimer.Stop() || err != nil {
				// EOF: the caller closed the stream, the usual end.
				return
			}
			readTimer.Reset(s.cfg.RequestReadTimeout)
		}
		if !s.serveRequest(ctx, st, dec, enc, readTimer) {
			return
		}
	}
}

// serveRequest reads one request, calls the handler and writes the reply.
// It reports whether the stream can carry another request.
func (s *Server) serveRequest(ctx context.Context, st callStream, dec *decoder, enc *encoder, readTimer *time.Timer) bool {
	dec.rec.reset()
	enc.rec.reset()
	var hdr requestHeader
	if err := dec.decode(&hdr); err != nil {
		s.logger.Debug("rpc request header unreadable", "error", err)
		return false
	}
	// After a request that was not read whole the stream is out of step:
	// reply and end it.
	if hdr.Version != protocolVersion {
		s.reply(st, enc, "", fmt.Errorf("%w: unsupported rpc protocol version %d", ErrBadRequest, hdr.Version), nil, false)
		return false
	}
	args, err := s.reg.NewArgs(hdr.Method)
	if err != nil {
		s.reply(st, enc, hdr.Method, err, nil, false)
		return false
	}
	if err := dec.decode(args); err != nil {
		if errors.Is(err, errMessageTooLarge) {
			err = fmt.Errorf("%w: %s request over %d bytes", ErrTooLarge, hdr.Method, s.cfg.MaxRequestBytes)
		} else {
			err = fmt.Errorf("%w: decode %s request: %v", ErrBadRequest, hdr.Method, err)
		}
		s.reply(st, enc, hdr.Method, err, nil, false)
		return false
	}
	if !readTimer.Stop() {
		// The request took longer than RequestReadTimeout to arrive and
		// the read deadline is passing: end the stream unanswered.
		s.logger.Debug("rpc request read timed out", "method", hdr.Method)
		return false
	}
	// A client sends one request at a time: bytes beyond it mean it does
	// not follow the protocol.
	keepAlive := dec.buffered() == 0
	reply, _ := s.reg.NewReply(hdr.Method)

	// The caller sends nothing more until the reply; any read result (EOF
	// on its close, a reset, the session ending) means it has given up.
	callCtx, cancel := context.WithCancel(context.WithValue(ctx, peerKey{}, st.RemoteAddr()))
	defer cancel()
	gone := make(chan struct{})
	var callerGone atomic.Bool
	go func() {
		defer close(gone)
		var b [1]byte
		if _, err := st.Read(b[:]); err != nil && isDeadline(err) {
			return // our own wake-up below: the caller is still there
		}
		callerGone.Store(true)
		cancel()
	}()

	err = s.call(callCtx, hdr.Method, args, reply)

	// Stop the watcher before replying; if the caller has gone there is
	// nobody to reply to.
	_ = st.SetReadDeadline(time.Unix(1, 0))
	<-gone
	_ = st.SetReadDeadline(time.Time{})
	if callerGone.Load() {
		return false
	}
	return s.reply(st, enc, hdr.Method, err, reply, keepAlive) && keepAlive
}

// call runs the handler, turning a panic into an error.
func (s *Server) call(ctx context.Context, method string, args, reply any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("rpc handler panicked", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("rpc: %s failed: internal error", method)
		}
	}()
	return s.cfg.Handler(ctx, method, args, reply)
}

// reply writes the response; keepAlive announces that the stream stays
// open for the next request. It reports whether the reply was written.
func (s *Server) reply(st callStream, enc *encoder, method string, err error, reply any, keepAlive bool) bool {
	_ = st.SetWriteDeadline(time.Now().Add(s.cfg.ReplyWriteTimeout))
	var werr error
	if err != nil {
		hdr := s.reg.encodeError(err)
		hdr.KeepAlive = keepAlive
		werr = enc.encode(&hdr)
	} else {
		werr = enc.encode(&responseHeader{KeepAlive: keepAlive}, reply)
	}
	if werr != nil {
		s.logger.Debug("rpc reply not delivered", "method", method, "error", werr)
		return false
	}
	_ = st.SetWriteDeadline(time.Time{})
	return true
}

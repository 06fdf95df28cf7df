package dns

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Server is the DNS interface of one agent. New validates; ListenAndServe
// binds and starts serving; Shutdown stops and waits. ServeDNS is safe for
// concurrent use.
type Server struct {
	cfg       Config
	domains   []string // lowercase FQDNs: Domain, then AltDomain if set
	ttl       ttlTable
	recursors []string
	clients   map[string]*dns.Client // "udp", "tcp"
	cache     *lookupCache           // nil when Config.DisableCache

	// ctx is cancelled by Shutdown so that in-flight reads and recursions
	// end and the miekg servers can drain.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // guards the fields below
	started bool
	closed  bool
	udp     []*dns.Server // one per UDP socket (SO_REUSEPORT where supported)
	tcp     *dns.Server
	udpAddr net.Addr
	tcpAddr net.Addr
	wg      sync.WaitGroup // serving goroutines
}

// New validates cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		domains:   []string{cfg.Domain},
		ttl:       newTTLTable(cfg.ServiceTTL),
		recursors: cfg.Recursors,
		clients: map[string]*dns.Client{
			"udp": {Net: "udp", Timeout: cfg.RecursorTimeout, UDPSize: dns.DefaultMsgSize},
			"tcp": {Net: "tcp", Timeout: cfg.RecursorTimeout},
		},
	}
	if cfg.AltDomain != "" {
		s.domains = append(s.domains, cfg.AltDomain)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if !cfg.DisableCache {
		s.cache = newLookupCache(s)
	}
	return s, nil
}

// ListenAndServe binds udpAddr and tcpAddr (either may be "" to skip it;
// port 0 picks a free port) and returns once both are serving. Serving runs
// in goroutines owned by the server until Shutdown.
func (s *Server) ListenAndServe(udpAddr, tcpAddr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrServerClosed
	case s.started:
		return ErrAlreadyStarted
	case udpAddr == "" && tcpAddr == "":
		return fmt.Errorf("dns: listen: no address given")
	}

	pcs, err := listenUDP(udpAddr)
	if err != nil {
		return err
	}
	var ln net.Listener
	if tcpAddr != "" {
		if ln, err = net.Listen("tcp", tcpAddr); err != nil {
			for _, pc := range pcs {
				pc.Close()
			}
			return fmt.Errorf("dns: listen tcp %s: %w", tcpAddr, err)
		}
	}
	s.started = true

	for _, pc := range pcs {
		s.udpAddr = pc.LocalAddr()
		s.udp = append(s.udp, &dns.Server{PacketConn: plainIfBound(pc), Handler: s, UDPSize: dns.DefaultMsgSize})
	}
	if ln != nil {
		s.tcpAddr = ln.Addr()
		s.tcp = &dns.Server{Listener: ln, Handler: s, ReadTimeout: 2 * time.Second, IdleTimeout: func() time.Duration { return 8 * time.Second }}
	}
	for _, srv := range s.servers() {
		if err := s.serve(srv); err != nil {
			return err
		}
	}
	s.cfg.Logger.Info("dns server listening", "udp", addrString(s.udpAddr), "tcp", addrString(s.tcpAddr))
	return nil
}

// serve starts srv in an owned goroutine and waits until it is serving, so
// that a Shutdown right after ListenAndServe always finds it started.
func (s *Server) serve(srv *dns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.ActivateAndServe(); err != nil {
			failed <- err
			s.cfg.Logger.Error("dns server stopped", "error", err)
		}
	}()
	select {
	case <-started:
		return nil
	case err := <-failed:
		return fmt.Errorf("dns: serve: %w", err)
	}
}

// UDPAddr is the bound UDP address (nil before ListenAndServe).
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpAddr
}

// TCPAddr is the bound TCP address (nil before ListenAndServe).
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAddr
}

// Shutdown stops the listeners, cancels in-flight reads, recursions and the
// lookup cache's watchers and waits for every goroutine, or for ctx. It is
// idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	servers := s.servers()
	s.mu.Unlock()

	if s.cache != nil {
		s.cache.close()
	}
	s.cancel()
	var firstErr error
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("dns: shutdown: %w", err)
		}
	}
	if s.cache != nil {
		if err := s.cache.wait(ctx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("dns: shutdown: cache watchers: %w", err)
		}
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if firstErr == nil {
			firstErr = fmt.Errorf("dns: shutdown: %w", ctx.Err())
		}
	}
	return firstErr
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// servers lists the started miekg servers; s.mu must be held.
func (s *Server) servers() []*dns.Server {
	out := append([]*dns.Server(nil), s.udp...)
	if s.tcp != nil {
		out = append(out, s.tcp)
	}
	return out
}

// listenUDP binds addr ("" = none). Where SO_REUSEPORT exists it binds one
// socket per CPU on the same port, so that reads are not serialized on one
// socket; the first bind resolves port 0 for the others.
func listenUDP(addr string) ([]net.PacketConn, error) {
	if addr == "" {
		return nil, nil
	}
	n := 1
	lc := net.ListenConfig{}
	if reusePortSupported {
		n = min(runtime.GOMAXPROCS(0), maxUDPSockets)
		lc.Control = reusePortControl
	}
	first, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	pcs := []net.PacketConn{first}
	for len(pcs) < n {
		pc, err := lc.ListenPacket(context.Background(), "udp", first.LocalAddr().String())
		if err != nil {
			break // one socket still serves; more are an optimization
		}
		pcs = append(pcs, pc)
	}
	return pcs, nil
}

// maxUDPSockets bounds the reader sockets on large machines.
const maxUDPSockets = 8

// plainPacketConn hides *net.UDPConn from miekg/dns, which then reads and
// writes with plain recvfrom/sendto instead of carrying the destination
// address in control messages (IP_PKTINFO) for every packet.
type plainPacketConn struct{ net.PacketConn }

// plainIfBound wraps pc when it is bound to one address: replies then leave
// from that address anyway, and the per-packet control messages (about 6 %
// of the CPU under load) are saved. A wildcard socket keeps them, so that
// replies leave from the address each query was sent to.
func plainIfBound(pc net.PacketConn) net.PacketConn {
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP != nil && !a.IP.IsUnspecified() {
		return plainPacketConn{pc}
	}
	return pc
}

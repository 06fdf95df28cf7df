package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/serf/serf"
)

// Pool is one gossip pool (LAN or WAN) of this agent.
//
// Lifecycle: New validates and allocates, Start binds and starts serf and
// the event goroutine, Leave announces a graceful departure, Shutdown stops
// everything and waits for the goroutine. All methods are safe for
// concurrent use.
type Pool struct {
	cfg    Config
	logger *slog.Logger

	serfEvents chan serf.Event
	events     *dropQueue[MemberEvent]
	userEvents *dropQueue[serf.UserEvent]

	mu       sync.Mutex // guards serf, started, shutdown
	serf     *serf.Serf
	started  bool
	shutdown bool

	stopCh chan struct{}
	wg     sync.WaitGroup
}

// New validates cfg and returns an unstarted pool. It does no I/O.
func New(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pool := "lan"
	if cfg.WAN {
		pool = "wan"
	}
	logger = logger.With("pool", pool)
	size := cfg.EventBuffer
	if size == 0 {
		size = DefaultEventBuffer
	}
	return &Pool{
		cfg:        cfg,
		logger:     logger,
		serfEvents: make(chan serf.Event, 256),
		events:     newDropQueue[MemberEvent](size, "member", logger),
		userEvents: newDropQueue[serf.UserEvent](size, "user", logger),
		stopCh:     make(chan struct{}),
	}, nil
}

// Start creates serf, which binds the gossip port, and starts the event
// goroutine. It returns once the pool is listening.
func (p *Pool) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutdown {
		return ErrShutdown
	}
	if p.started {
		return nil
	}
	if p.cfg.SnapshotPath != "" {
		if err := os.MkdirAll(filepath.Dir(p.cfg.SnapshotPath), 0o700); err != nil {
			return fmt.Errorf("gossip: create snapshot dir: %w", err)
		}
	}
	conf := p.cfg.serfConfig(p.serfEvents, p.logger)
	s, err := serf.Create(conf)
	if err != nil {
		return fmt.Errorf("gossip: start serf on %s:%d: %w", p.cfg.BindAddr, p.cfg.BindPort, err)
	}
	p.serf = s
	p.started = true
	p.wg.Add(1)
	go p.eventLoop(s)
	addr, port := p.addrLocked()
	p.logger.Info("gossip pool started", "node", p.cfg.NodeName, "addr", addr, "port", port)
	return nil
}

// running returns serf if the pool is started and not shut down.
func (p *Pool) running() (*serf.Serf, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.shutdown:
		return nil, ErrShutdown
	case !p.started:
		return nil, ErrNotStarted
	}
	return p.serf, nil
}

// Join contacts the given addresses ("host" or "host:port"; the pool's own
// port is the default) and returns how many were joined. ignoreOld skips
// replaying old user events.
func (p *Pool) Join(addrs []string, ignoreOld bool) (int, error) {
	s, err := p.running()
	if err != nil {
		return 0, err
	}
	n, err := s.Join(addrs, ignoreOld)
	if err != nil {
		return n, fmt.Errorf("gossip: join %v: %w", addrs, err)
	}
	return n, nil
}

// Leave gracefully leaves the pool: other members see this one as left
// rather than failed. Call Shutdown afterwards.
func (p *Pool) Leave() error {
	s, err := p.running()
	if err != nil {
		return err
	}
	if err := s.Leave(); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops serf (without leaving: others will see this member fail)
// and waits for the event goroutine. The Events and UserEvents channels are
// closed once it returns. It is idempotent and safe before Start.
func (p *Pool) Shutdown() error {
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		return nil
	}
	p.shutdown = true
	s, started := p.serf, p.started
	p.mu.Unlock()

	close(p.stopCh)
	var err error
	if s != nil {
		if serr := s.Shutdown(); serr != nil {
			err = fmt.Errorf("gossip: shutdown serf: %w", serr)
		}
	}
	p.wg.Wait()
	if !started {
		// The event loop never ran; close the channels it would have.
		p.events.close()
		p.userEvents.close()
	}
	return err
}

// Members returns every member serf knows, including failed and left ones.
// It returns nil when the pool is not running.
func (p *Pool) Members() []serf.Member {
	s, err := p.running()
	if err != nil {
		return nil
	}
	return s.Members()
}

// LocalMember returns this agent's own member entry (zero before Start).
func (p *Pool) LocalMember() serf.Member {
	s, err := p.running()
	if err != nil {
		return serf.Member{}
	}
	return s.LocalMember()
}

// ForceLeave moves a failed member to the left state; with prune it is also
// forgotten at once instead of after the tombstone timeout.
func (p *Pool) ForceLeave(node string, prune bool) error {
	s, err := p.running()
	if err != nil {
		return err
	}
	if prune {
		err = s.RemoveFailedNodePrune(node)
	} else {
		err = s.RemoveFailedNode(node)
	}
	if err != nil {
		return fmt.Errorf("gossip: force-leave %q: %w", node, err)
	}
	return nil
}

// SetTags replaces this member's tags and gossips the change.
func (p *Pool) SetTags(tags map[string]string) error {
	s, err := p.running()
	if err != nil {
		return err
	}
	if err := s.SetTags(tags); err != nil {
		return fmt.Errorf("gossip: set tags: %w", err)
	}
	return nil
}

// Events delivers member join/leave/fail/update/reap events, one per
// member. The channel is buffered; when the consumer falls behind the oldest
// events are dropped (and logged) so serf is never blocked. Consumers that
// need exact state should reconcile against Members periodically. The
// channel is closed by Shutdown.
func (p *Pool) Events() <-chan MemberEvent { return p.events.ch }

// UserEvents delivers serf user events, with the same buffering rules as
// Events.
func (p *Pool) UserEvents() <-chan serf.UserEvent { return p.userEvents.ch }

// Serf returns the underlying serf instance (nil before Start), for
// features this package does not wrap (user events, keyring, coordinates).
func (p *Pool) Serf() *serf.Serf {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serf
}

// Addr returns the address and port other members use to reach this pool;
// with BindPort 0 it reports the port that was actually bound. It returns
// ("", 0) before Start.
func (p *Pool) Addr() (string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrLocked()
}

func (p *Pool) addrLocked() (string, int) {
	if p.serf == nil {
		return "", 0
	}
	n := p.serf.Memberlist().LocalNode()
	return net.IP(n.Addr).String(), int(n.Port)
}

// NodeName returns the configured member name.
func (p *Pool) NodeName() string { return p.cfg.NodeName }

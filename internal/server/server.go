package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
)

// ErrNotStarted is returned by calls that need a started server.
var ErrNotStarted = errors.New("server: not started")

// Server is one Cairn server: Raft, the FSM with its state store, the RPC
// endpoints and the leader loop.
//
// Lock order: lifecycleMu before nothing else; it guards start/shutdown
// only and is never held while calling into Raft.
type Server struct {
	cfg    Config
	logger *slog.Logger

	fsm          *fsm
	raftNotifyCh chan bool
	endpoints    map[string]handler

	// coalesce shares identical blocking reads in flight (coalesce.go).
	coalesce *coalescer

	lifecycleMu sync.Mutex
	started     bool
	stopped     bool
	parts       *raftParts
	raft        *raft.Raft

	shutdownCh chan struct{}
	wg         sync.WaitGroup // goroutines started by Start

	readyOnce sync.Once
	readyCh   chan struct{}

	// readyForReads is true while this server leads and has passed its
	// barrier; default and consistent reads need it.
	readyForReads atomic.Bool

	// op holds the autopilot and membership wiring (autopilot.go).
	op operatorState

	// sessions are the session TTL timers, armed while leading
	// (session_ttl.go).
	sessions sessionTimers

	// Clustering (membership.go, forward.go). pool forwards requests to
	// the leader and reaches other servers; rpcSrv serves the network RPC
	// on the server port; both exist while started with a network
	// transport.
	pool        *rpc.ConnPool
	rpcCancel   context.CancelFunc
	rpcDone     chan struct{}
	members     membership
	memberCh    chan struct{} // member changes for the bootstrap loop (cap 1)
	reconcileCh chan struct{} // member changes for the leader loop (cap 1)

	// Snapshots (snapshot.go, snapshot_forward.go). restoreMu serializes
	// restores; snapCancel and snapDone stop the snapshot stream server on
	// the server port.
	restoreMu  sync.Mutex
	snapCancel context.CancelFunc
	snapDone   chan struct{}
}

// New validates cfg and allocates a server. It does no I/O.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("component", "server")
	f, err := newFSM(logger)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		logger:       logger,
		fsm:          f,
		raftNotifyCh: make(chan bool, 10),
		shutdownCh:   make(chan struct{}),
		readyCh:      make(chan struct{}),
		memberCh:     make(chan struct{}, 1),
		reconcileCh:  make(chan struct{}, 1),
		coalesce:     newCoalescer(),
	}
	s.endpoints = s.endpointTable()
	return s, nil
}

// Start opens the Raft stores, starts Raft and the leader monitor. It does
// not wait for leadership (see LeaderReady).
func (s *Server) Start() error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	if s.stopped {
		return errors.New("server: cannot start after shutdown")
	}
	if s.started {
		return errors.New("server: already started")
	}
	parts, err := s.openRaft()
	if err != nil {
		return err
	}
	s.parts, s.raft, s.started = parts, parts.raft, true
	if s.cfg.ServerPort == 0 && parts.mux != nil {
		// Port 0 was asked for (tests): the consul service shows the
		// bound port.
		if _, p, err := net.SplitHostPort(string(parts.transport.LocalAddr())); err == nil {
			s.cfg.ServerPort, _ = strconv.Atoi(p)
		}
	}
	s.pool = rpc.NewConnPool(rpc.ConnPoolConfig{DialTimeout: ServerDialTimeout, Logger: s.logger.With("component", "rpc.pool")})
	s.op.mu.Lock()
	if s.op.caller == nil {
		s.op.caller = s.callServer
	}
	s.op.mu.Unlock()
	s.startSnapshotServer(parts)
	if err := s.startRPCServer(parts); err != nil {
		return err
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.monitorLeadership()
	}()
	go func() {
		defer s.wg.Done()
		s.releaseMemoryLoop()
	}()
	if s.cfg.BootstrapExpect > 1 && !s.cfg.Bootstrap && !parts.hasState {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.bootstrapLoop()
		}()
	}
	s.logger.Info("server started", "node", s.cfg.NodeName, "datacenter", s.cfg.Datacenter,
		"in_memory", s.cfg.InMemory)
	return nil
}

// Shutdown stops the leader loop and Raft and closes the stores. It is
// idempotent; it returns ctx's error if ctx ends first (cleanup then goes
// on in the background).
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifecycleMu.Lock()
	if s.stopped {
		s.lifecycleMu.Unlock()
		return nil
	}
	s.stopped = true
	close(s.shutdownCh)
	parts := s.parts
	rpcCancel, rpcDone, pool := s.rpcCancel, s.rpcDone, s.pool
	snapCancel, snapDone := s.snapCancel, s.snapDone
	s.lifecycleMu.Unlock()

	done := make(chan error, 1)
	go func() {
		var errs []error
		// Shared blocking reads end first: they may be forwarding
		// through the pool closed below.
		s.coalesce.stop()
		if parts != nil && parts.raft != nil {
			if err := parts.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("server: shut down raft: %w", err))
			}
		}
		s.wg.Wait()
		if rpcCancel != nil {
			rpcCancel()
			<-rpcDone
		}
		if snapCancel != nil {
			snapCancel()
			<-snapDone
		}
		if pool != nil {
			_ = pool.Shutdown()
		}
		if parts != nil {
			errs = append(errs, parts.close())
		}
		s.fsm.State().Abandon()
		done <- errors.Join(errs...)
	}()
	select {
	case err := <-done:
		s.logger.Info("server stopped")
		return err
	case <-ctx.Done():
		return fmt.Errorf("server: shutdown: %w", ctx.Err())
	}
}

// raftOrNil returns Raft once started.
func (s *Server) raftOrNil() *raft.Raft {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	return s.raft
}

// Raft returns the Raft instance (nil before Start), for operator endpoints.
func (s *Server) Raft() *raft.Raft { return s.raftOrNil() }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool {
	r := s.raftOrNil()
	return r != nil && r.State() == raft.Leader
}

// Leader returns the leader's Raft address, or "" when there is none.
func (s *Server) Leader() string {
	r := s.raftOrNil()
	if r == nil {
		return ""
	}
	addr, _ := r.LeaderWithID()
	return string(addr)
}

// LeaderReady is closed the first time this server has established
// leadership (Raft barrier passed and this node registered itself).
func (s *Server) LeaderReady() <-chan struct{} { return s.readyCh }

// RPC implements rpc.Caller by dispatching to the endpoint named by method:
// in-process when this server may answer (stale reads, status, its own Raft
// stats, anything on the leader), else forwarded to the leader, waiting up
// to RPCHoldTimeout for one during an election (forward.go). Identical
// blocking reads in flight share one call (coalesce.go). It is also the
// handler of the network RPC served on the server port.
func (s *Server) RPC(ctx context.Context, method string, args, reply any) error {
	h, ok := s.endpoints[method]
	if !ok {
		return fmt.Errorf("%w: %q", rpc.ErrUnknownMethod, method)
	}
	if s.raftOrNil() == nil {
		return ErrNotStarted
	}
	// Only requests that start at this agent (its HTTP API and DNS) are
	// coalesced, never one that another agent sent over the network: a
	// server's shared call may be forwarded to another server, and if
	// that server could join the forwarded request to a shared call of
	// its own that is waiting on the first (both forwarding to each
	// other across a leadership change), neither would ever return.
	if _, remote := rpc.PeerAddr(ctx); !remote && coalescible(method, args) {
		return s.coalesce.do(ctx, method, args, reply, func(ctx context.Context, args, reply any) error {
			return s.dispatch(ctx, method, h, args, reply)
		})
	}
	return s.dispatch(ctx, method, h, args, reply)
}

var _ rpc.Caller = (*Server)(nil)

// applyTimeout bounds how long a write waits for Raft.
const applyTimeout = 30 * time.Second

// raftApply commits one command through Raft on the leader and returns the
// FSM's result (an error result is returned as the error).
func (s *Server) raftApply(t MessageType, req any) (any, error) {
	r := s.raftOrNil()
	if r == nil {
		return nil, ErrNotStarted
	}
	if r.State() != raft.Leader {
		return nil, rpc.ErrNoLeader
	}
	buf, err := encodeCommand(t, req)
	if err != nil {
		return nil, err
	}
	f := r.Apply(buf, applyTimeout)
	if err := f.Error(); err != nil {
		// Only ErrNotLeader means the entry was never accepted, so only it
		// may be retried (forward.go holds and retries rpc.ErrNoLeader).
		// After ErrLeadershipLost or ErrRaftShutdown the entry may still
		// commit: the outcome is unknown and must not be retried.
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, fmt.Errorf("server: apply: %v: %w", err, rpc.ErrNoLeader)
		}
		return nil, fmt.Errorf("server: apply (outcome unknown): %w", err)
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.monitorLeadership()
	}()
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
	s.lifecycleMu.Unlock()

	done := make(chan error, 1)
	go func() {
		var errs []error
		if parts != nil {
			if err := parts.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("server: shut down raft: %w", err))
			}
		}
		s.wg.Wait()
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

// RPC implements rpc.Caller by dispatching in-process to the endpoint
// named by method.
func (s *Server) RPC(ctx context.Context, method string, args, reply any) error {
	h, ok := s.endpoints[method]
	if !ok {
		return fmt.Errorf("%w: %q", rpc.ErrUnknownMethod, method)
	}
	if s.raftOrNil() == nil {
		return ErrNotStarted
	}
	return h(ctx, args, reply)
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
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrRaftShutdown) {
			return nil, fmt.Errorf("server: apply: %v: %w", err, rpc.ErrNoLeader)
		}
		return nil, fmt.Errorf("server: apply: %w", err)
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

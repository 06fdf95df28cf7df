package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
)

// ServerDialTimeout bounds a connection attempt to another server. Servers
// of a datacenter share a LAN, where a dial answers in milliseconds; a
// server behind a partition (packets dropped, nothing refused) must not
// stall a forwarded request for long before another attempt.
const ServerDialTimeout = 2 * time.Second

// Backoff between attempts to find the leader while a request is held.
// Short, because on a LAN an election takes a few hundred milliseconds and
// the held request should go out as soon as there is a leader.
const (
	holdBackoffMin = 10 * time.Millisecond
	holdBackoffMax = 100 * time.Millisecond
)

// needsLeader reports whether a request must be served by the leader: every
// write and every read that is not ?stale. Status, the datacenter list and
// a server's own Raft stats are answered by whichever server gets them.
func needsLeader(method string, args any) bool {
	switch method {
	case rpc.MethodStatusLeader, rpc.MethodStatusPeers, rpc.MethodOperatorRaftStats,
		rpc.MethodCatalogListDatacenters:
		return false
	}
	if q, ok := args.(rpc.QueryRequest); ok {
		o := q.GetQueryOptions()
		return !o.AllowStale || o.RequireConsistent
	}
	_, write := args.(rpc.WriteRequestGetter)
	return write
}

// leaderRPC serves a request on the leader: locally when this server leads,
// else forwarded to the leader over the connection pool. While there is no
// leader (or it cannot be reached, or it answers that it no longer leads)
// the request is held and retried for up to RPCHoldTimeout. Only failures
// that prove the request was not applied are retried: rpc.ErrNoLeader
// (returned before anything is committed) and rpc.ErrConnect (never sent).
func (s *Server) leaderRPC(ctx context.Context, method string, h handler, args, reply any) error {
	deadline := time.Now().Add(s.cfg.RPCHoldTimeout)
	backoff := holdBackoffMin
	for {
		err := s.leaderAttempt(ctx, method, h, args, reply)
		if err == nil || !retryableForward(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("server: %s: waiting for a leader: %w", method, ctx.Err())
		case <-s.shutdownCh:
			t.Stop()
			return err
		}
		backoff = min(2*backoff, holdBackoffMax)
	}
}

// leaderAttempt makes one attempt: local on the leader, else one forward.
func (s *Server) leaderAttempt(ctx context.Context, method string, h handler, args, reply any) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrNotStarted
	}
	if r.State() == raft.Leader {
		return h(ctx, args, reply)
	}
	addr, _ := r.LeaderWithID()
	if addr == "" || s.pool == nil || s.parts == nil || s.parts.mux == nil ||
		addr == s.parts.transport.LocalAddr() {
		return fmt.Errorf("server: %s: %w", method, rpc.ErrNoLeader)
	}
	return s.forward(ctx, string(addr), method, args, reply)
}

// forward sends one request to the server at addr.
func (s *Server) forward(ctx context.Context, addr, method string, args, reply any) error {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: leader address %q: %w", addr, err)
	}
	return s.pool.RPC(ctx, tcp, method, args, reply)
}

// retryableForward reports whether err proves the request was not applied
// and a leader may appear or be reached later.
func retryableForward(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, rpc.ErrNoLeader) || errors.Is(err, rpc.ErrConnect)
}

// callServer is the ServerCaller the server uses unless one is set: a
// direct RPC to the server at addr, never forwarded.
func (s *Server) callServer(ctx context.Context, addr, method string, args, reply any) error {
	s.lifecycleMu.Lock()
	pool := s.pool
	s.lifecycleMu.Unlock()
	if pool == nil {
		return ErrNotStarted
	}
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return fmt.Errorf("server: address %q: %w", addr, err)
	}
	return pool.RPC(ctx, tcp, method, args, reply)
}

// startRPCServer serves the network RPC on the server port's Mux with
// s.RPC as the handler, then starts the Mux. Without a Mux (in-memory
// transport) there is nothing to serve.
func (s *Server) startRPCServer(parts *raftParts) error {
	if parts.mux == nil {
		return nil
	}
	srv, err := rpc.NewServer(rpc.ServerConfig{Handler: s.RPC, Logger: s.logger.With("component", "rpc.server")})
	if err != nil {
		return fmt.Errorf("server: rpc server: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ln, plainLn := parts.mux.RPCListener(), parts.mux.PlainRPCListener()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx, ln); err != nil {
			s.logger.Error("rpc server stopped", "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := srv.ServePlain(ctx, plainLn); err != nil {
			s.logger.Error("plain rpc server stopped", "error", err)
		}
	}()
	go func() { wg.Wait(); close(done) }()
	s.rpcCancel, s.rpcDone = cancel, done
	parts.mux.Start()
	return nil
}

// RPCAddr returns the address other servers and client agents reach this
// server at (Raft and RPC share it), or "" before Start.
func (s *Server) RPCAddr() string {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	if s.parts == nil || s.parts.transport == nil {
		return ""
	}
	return string(s.parts.transport.LocalAddr())
}

// DropConnections closes this server's pooled connections to addr, failing
// the calls in flight on them at once. The agent calls it when gossip
// declares a server failed or left, so requests stuck on a partitioned or
// dead server end in seconds rather than at their RPC timeout.
func (s *Server) DropConnections(addr net.Addr) {
	s.lifecycleMu.Lock()
	pool := s.pool
	s.lifecycleMu.Unlock()
	if pool != nil && addr != nil {
		pool.Remove(addr)
	}
}

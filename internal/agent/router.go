package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/rpc"
)

// ErrNoServers is returned by a client agent's RPCs while no server of its
// datacenter is known (Consul: "No known Consul servers").
var ErrNoServers = errors.New("agent: no known servers")

// Router backoff while a request is held (no server known, or no leader).
const (
	routerBackoffMin = 10 * time.Millisecond
	routerBackoffMax = 250 * time.Millisecond
)

// router is a client agent's rpc.Caller: it sends every request to one of
// the datacenter's servers that gossip reports alive, staying with the
// same server until it fails, and moves on to another when a connection
// cannot be made. A request is held, with jittered backoff, while no
// server is known or the servers report no leader, for up to the hold
// timeout (rpc_hold_timeout). A write whose outcome is unknown (sent, but
// no reply: a timeout, a broken connection) is returned, never retried; a
// read is retried on another server.
type router struct {
	pool    *rpc.ConnPool
	members func() []serf.Member
	dc      string
	hold    time.Duration
	stopCh  <-chan struct{}
	logger  *slog.Logger

	mu      sync.Mutex // guards current
	current string     // address of the sticky server ("" = pick anew)
}

var _ rpc.Caller = (*router)(nil)

// servers returns the alive servers of the router's datacenter.
func (r *router) servers() []*gossip.ServerInfo {
	if r.members == nil {
		return nil
	}
	var out []*gossip.ServerInfo
	for _, m := range r.members() {
		info, ok := gossip.IsServer(m)
		if !ok || info.Status != serf.StatusAlive || (info.Datacenter != "" && info.Datacenter != r.dc) {
			continue
		}
		out = append(out, info)
	}
	return out
}

// pick returns the sticky server if it is still alive and not in skip,
// else a random other one (which becomes sticky).
func (r *router) pick(skip map[string]bool) *gossip.ServerInfo {
	servers := r.servers()
	r.mu.Lock()
	defer r.mu.Unlock()
	var candidates []*gossip.ServerInfo
	for _, s := range servers {
		addr := s.Addr.String()
		if skip[addr] {
			continue
		}
		if addr == r.current {
			return s
		}
		candidates = append(candidates, s)
	}
	if len(candidates) == 0 {
		return nil
	}
	s := candidates[rand.N(len(candidates))]
	r.current = s.Addr.String()
	return s
}

// forget drops addr as the sticky server.
func (r *router) forget(addr string) {
	r.mu.Lock()
	if r.current == addr {
		r.current = ""
	}
	r.mu.Unlock()
}

// next says what the router does after one attempt on a server.
type next int

const (
	// stop: return the attempt's error (nil on success).
	stop next = iota
	// tryAnother: the request was never sent; try another server at once.
	tryAnother
	// wait: nothing was applied (no leader yet); back off, then retry.
	wait
)

// RPC implements rpc.Caller.
func (r *router) RPC(ctx context.Context, method string, args, reply any) error {
	_, read := args.(rpc.QueryRequest)
	return r.retry(ctx, method, func(srv *gossip.ServerInfo) (next, error) {
		err := r.pool.RPC(ctx, srv.Addr, method, args, reply)
		if err == nil {
			return stop, nil
		}
		addr := srv.Addr.String()
		var remote *rpc.RemoteError
		switch {
		case errors.Is(err, rpc.ErrConnect):
			// Never sent: another server may take it at once.
			r.logger.Debug("rpc to server failed, trying another", "server", addr, "error", err)
			r.pool.Remove(srv.Addr)
			return tryAnother, err
		case errors.Is(err, rpc.ErrNoLeader):
			// Not applied; wait for the election.
			return wait, err
		case errors.As(err, &remote):
			return stop, err
		default:
			// Sent but no usable reply (timeout, broken session): use
			// another server from now on. A read may simply be asked
			// again; a write's outcome is unknown, so it is returned.
			r.forget(addr)
			if !read || ctx.Err() != nil {
				return stop, err
			}
			return tryAnother, err
		}
	})
}

// retry runs attempt against the datacenter's servers until it says stop,
// holding the request for up to the hold timeout (rpc_hold_timeout):
// tryAnother moves to another server at once (the server is forgotten as
// sticky and skipped until every known one has been tried), wait and "no
// server known" back off with jitter. The last wait is cut to the
// deadline, where one more attempt is made. what names the request in
// errors.
func (r *router) retry(ctx context.Context, what string, attempt func(*gossip.ServerInfo) (next, error)) error {
	deadline := time.Now().Add(r.hold)
	backoff := routerBackoffMin
	tried := map[string]bool{}
	for {
		srv := r.pick(tried)
		if srv == nil && len(tried) > 0 {
			// Every known server failed to connect once; start over.
			tried = map[string]bool{}
			srv = r.pick(tried)
		}
		var err error
		then := wait
		if srv == nil {
			err = fmt.Errorf("%s: %w", what, ErrNoServers)
		} else {
			then, err = attempt(srv)
			if then == stop {
				return err
			}
			if then == tryAnother {
				addr := srv.Addr.String()
				r.forget(addr)
				tried[addr] = true
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if then == tryAnother && time.Now().Before(deadline) {
			continue
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return err
		}
		t := time.NewTimer(min(backoff/2+rand.N(backoff/2+1), remaining))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-r.stopCh:
			t.Stop()
			return err
		}
		backoff = min(2*backoff, routerBackoffMax)
	}
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/server"
)

// snapshotRouter is a client agent's httpapi.SnapshotBackend: it streams
// each save or restore to a server picked by the router (rpc.SnapshotClient
// over the server port), which answers or passes it on to the leader.
// Like router.RPC it moves to another server when one cannot be reached
// and holds the request, for up to the hold timeout, while no server is
// known or the servers report no leader — but only until the first archive
// byte moves, since the HTTP body and response cannot be rewound.
type snapshotRouter struct {
	router *router
	client *rpc.SnapshotClient
}

var _ httpapi.SnapshotBackend = (*snapshotRouter)(nil)

func newSnapshotRouter(r *router) *snapshotRouter {
	return &snapshotRouter{router: r, client: rpc.NewSnapshotClient(rpc.SnapshotClientConfig{DialTimeout: server.ServerDialTimeout})}
}

// SnapshotSave implements httpapi.SnapshotBackend.
func (s *snapshotRouter) SnapshotSave(ctx context.Context, w io.Writer, allowStale bool, started func(index uint64)) (uint64, error) {
	begun := false
	announce := func(index uint64) {
		begun = true
		if started != nil {
			started(index)
		}
	}
	req := rpc.SnapshotRequest{Datacenter: s.router.dc, AllowStale: allowStale}
	var index uint64
	err := s.do(ctx, "save", func() bool { return begun }, func(addr net.Addr) (err error) {
		index, err = s.client.Save(ctx, addr, req, w, announce)
		return err
	})
	if err != nil {
		return 0, err
	}
	return index, nil
}

// SnapshotRestore implements httpapi.SnapshotBackend.
func (s *snapshotRouter) SnapshotRestore(ctx context.Context, r io.Reader) error {
	tr := &touchedReader{r: r}
	req := rpc.SnapshotRequest{Datacenter: s.router.dc}
	return s.do(ctx, "restore", func() bool { return tr.touched }, func(addr net.Addr) error {
		return s.client.Restore(ctx, addr, req, tr)
	})
}

// do runs call against a server, retrying as described on snapshotRouter.
func (s *snapshotRouter) do(ctx context.Context, op string, consumed func() bool, call func(net.Addr) error) error {
	r := s.router
	deadline := time.Now().Add(r.hold)
	backoff := routerBackoffMin
	tried := map[string]bool{}
	for {
		srv := r.pick(tried)
		if srv == nil && len(tried) > 0 {
			tried = map[string]bool{}
			srv = r.pick(tried)
		}
		var err error
		retryNow := false
		if srv == nil {
			err = fmt.Errorf("snapshot %s: %w", op, ErrNoServers)
		} else {
			err = call(srv.Addr)
			if err == nil || consumed() {
				return err
			}
			addr := srv.Addr.String()
			switch {
			case errors.Is(err, rpc.ErrConnect):
				r.logger.Debug("snapshot stream to server failed, trying another", "server", addr, "error", err)
				r.forget(addr)
				tried[addr] = true
				retryNow = true
			case errors.Is(err, rpc.ErrNoLeader):
				// Nothing moved; wait for the election.
			default:
				return err
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("snapshot %s: %w", op, ctx.Err())
		}
		if retryNow && time.Now().Before(deadline) {
			continue
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
			return fmt.Errorf("snapshot %s: %w", op, ctx.Err())
		case <-r.stopCh:
			t.Stop()
			return err
		}
		backoff = min(2*backoff, routerBackoffMax)
	}
}

// touchedReader records whether anything was read.
type touchedReader struct {
	r       io.Reader
	touched bool
}

func (t *touchedReader) Read(p []byte) (int, error) {
	t.touched = true
	return t.r.Read(p)
}

package agent

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/cairn-io/cairn/internal/gossip"
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
	return s.router.retry(ctx, "snapshot "+op, func(srv *gossip.ServerInfo) (next, error) {
		err := call(srv.Addr)
		switch {
		case err == nil || consumed():
			return stop, err
		case errors.Is(err, rpc.ErrConnect):
			s.router.logger.Debug("snapshot stream to server failed, trying another", "server", srv.Addr.String(), "error", err)
			return tryAnother, err
		case errors.Is(err, rpc.ErrNoLeader):
			// Nothing moved; wait for the election.
			return wait, err
		default:
			return stop, err
		}
	})
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

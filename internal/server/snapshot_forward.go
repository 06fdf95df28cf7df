package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
)

// Snapshots on followers. A save without ?stale and every restore must run
// on the leader; a follower sends them there over a snapshot stream
// (rpc.SnapshotClient, connection type rpc.TypeSnapshot on the server
// port) and relays the archive. The start header of a stream comes before
// any archive byte moves, so, like leaderRPC, a request is held and retried
// for up to RPCHoldTimeout while there is no leader or it cannot be
// reached, as long as nothing has been written to the caller's writer or
// read from its reader.

// startSnapshotServer serves snapshot streams on the server port's Mux with
// this server as the handler. Without a Mux (in-memory transport) there is
// nothing to serve.
func (s *Server) startSnapshotServer(parts *raftParts) {
	if parts.mux == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ln := parts.mux.Listener(rpc.TypeSnapshot)
	cfg := rpc.SnapshotServerConfig{
		Handler:    s,
		Datacenter: s.cfg.Datacenter,
		Logger:     s.logger.With("component", "rpc.snapshot"),
	}
	go func() {
		defer close(done)
		if err := rpc.ServeSnapshots(ctx, ln, cfg); err != nil {
			s.logger.Error("snapshot stream server stopped", "error", err)
		}
	}()
	s.snapCancel, s.snapDone = cancel, done
}

var _ rpc.SnapshotHandler = (*Server)(nil)

// snapshotClient opens snapshot streams to the leader.
func (s *Server) snapshotClient() *rpc.SnapshotClient {
	return rpc.NewSnapshotClient(rpc.SnapshotClientConfig{DialTimeout: ServerDialTimeout})
}

// forwardSnapshotSave saves on the leader: here when this server is the
// ready leader, else through a stream to it.
func (s *Server) forwardSnapshotSave(ctx context.Context, w io.Writer, started func(index uint64)) (uint64, error) {
	begun := false
	announce := func(index uint64) {
		begun = true
		if started != nil {
			started(index)
		}
	}
	var index uint64
	err := s.onSnapshotLeader(ctx, "save", func() bool { return begun },
		func() (err error) {
			index, err = s.snapshotSaveLocal(ctx, w, announce)
			return err
		},
		func(addr net.Addr) (err error) {
			req := rpc.SnapshotRequest{Datacenter: s.cfg.Datacenter, Forwarded: true}
			index, err = s.snapshotClient().Save(ctx, addr, req, w, announce)
			return err
		})
	if err != nil {
		return 0, err
	}
	return index, nil
}

// forwardSnapshotRestore restores on the leader: here when this server is
// the ready leader, else by streaming r to it.
func (s *Server) forwardSnapshotRestore(ctx context.Context, r io.Reader) error {
	tr := &touchedReader{r: r}
	return s.onSnapshotLeader(ctx, "restore", func() bool { return tr.touched },
		func() error { return s.snapshotRestoreLocal(ctx, tr) },
		func(addr net.Addr) error {
			req := rpc.SnapshotRequest{Datacenter: s.cfg.Datacenter, Forwarded: true}
			return s.snapshotClient().Restore(ctx, addr, req, tr)
		})
}

// onSnapshotLeader runs local when this server is the ready leader, else
// remote with the leader's address. While there is no leader, or it is not
// reached, or it refuses with rpc.ErrNoLeader, and consumed reports that
// no archive byte has moved, it waits and tries again for up to
// RPCHoldTimeout. An error after the archive started moving is returned:
// the caller's reader or writer cannot be rewound.
func (s *Server) onSnapshotLeader(ctx context.Context, op string, consumed func() bool, local func() error, remote func(net.Addr) error) error {
	if req, ok := rpc.SnapshotRequestOf(ctx); ok && req.Forwarded {
		// The server that sent it here holds and retries; never pass it on.
		return s.snapshotAttempt(local, nil)
	}
	deadline := time.Now().Add(s.cfg.RPCHoldTimeout)
	backoff := holdBackoffMin
	for {
		err := s.snapshotAttempt(local, remote)
		if err == nil || consumed() || !retryableForward(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("server: snapshot %s: %w", op, ctx.Err())
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if time.Now().Add(wait).After(deadline) {
			if errors.Is(err, ErrSnapshotNotLeader) {
				return err
			}
			return fmt.Errorf("%w: %w", ErrSnapshotNotLeader, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("server: snapshot %s: waiting for a leader: %w", op, ctx.Err())
		case <-s.shutdownCh:
			t.Stop()
			return err
		}
		backoff = min(2*backoff, holdBackoffMax)
	}
}

// snapshotAttempt makes one attempt: local on the ready leader, else one
// stream to the leader (none when remote is nil).
func (s *Server) snapshotAttempt(local func() error, remote func(net.Addr) error) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrNotStarted
	}
	if r.State() == raft.Leader {
		if !s.readyForReads.Load() {
			return ErrSnapshotNotLeader
		}
		return local()
	}
	s.lifecycleMu.Lock()
	parts := s.parts
	s.lifecycleMu.Unlock()
	addr, _ := r.LeaderWithID()
	if remote == nil || addr == "" || parts == nil || parts.mux == nil || addr == parts.transport.LocalAddr() {
		return ErrSnapshotNotLeader
	}
	tcp, err := net.ResolveTCPAddr("tcp", string(addr))
	if err != nil {
		return fmt.Errorf("server: leader address %q: %w", addr, err)
	}
	return remote(tcp)
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

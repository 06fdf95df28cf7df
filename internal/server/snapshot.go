package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/state"
	"github.com/cairn-io/cairn/internal/version"
)

// ErrSnapshotNotLeader is returned by SnapshotSave without allowStale and by
// SnapshotRestore when no ready leader could be reached within the hold
// timeout. It wraps rpc.ErrNoLeader.
var ErrSnapshotNotLeader = fmt.Errorf("server: snapshots are taken and restored on the leader: %w", rpc.ErrNoLeader)

// defaultRestoreTimeout bounds raft.Restore when ctx has no deadline.
const defaultRestoreTimeout = 5 * time.Minute

// SnapshotSave takes a Raft snapshot of the current state and writes it to
// w as a self-checking archive (package snapshot). Without allowStale only
// the ready leader answers, so the snapshot holds every acknowledged write:
// a follower forwards the request to the leader over a snapshot stream
// (snapshot_forward.go) and copies the leader's archive to w. With
// allowStale this server answers from its own state. started, when not
// nil, is called with the snapshot's Raft index before the first byte
// reaches w (the HTTP API sets X-Consul-Index from it). It returns that
// index.
func (s *Server) SnapshotSave(ctx context.Context, w io.Writer, allowStale bool, started func(index uint64)) (uint64, error) {
	if allowStale {
		return s.snapshotSaveLocal(ctx, w, started)
	}
	return s.forwardSnapshotSave(ctx, w, started)
}

// snapshotSaveLocal writes this server's snapshot to w.
func (s *Server) snapshotSaveLocal(ctx context.Context, w io.Writer, started func(index uint64)) (uint64, error) {
	r := s.raftOrNil()
	if r == nil {
		return 0, ErrNotStarted
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("server: snapshot save: %w", err)
	}
	fut := r.Snapshot()
	if err := fut.Error(); err != nil {
		return 0, fmt.Errorf("server: take raft snapshot: %w", err)
	}
	rmeta, rc, err := fut.Open()
	if err != nil {
		return 0, fmt.Errorf("server: open raft snapshot: %w", err)
	}
	defer rc.Close()
	if started != nil {
		started(rmeta.Index)
	}
	if err := snapshot.Write(w, archiveMeta(rmeta), ctxReader{ctx: ctx, r: rc}); err != nil {
		return 0, err
	}
	s.logger.Info("snapshot saved", "index", rmeta.Index, "term", rmeta.Term, "bytes", rmeta.Size)
	return rmeta.Index, nil
}

// SnapshotRestore replaces the whole replicated state with the archive read
// from r. The archive is verified completely (checksums, then a trial
// decode of the state) before anything is applied; a bad archive returns an
// error wrapping snapshot.ErrCorrupt and changes nothing. The restore goes
// through Raft on the leader, so followers install it too; the FSM swaps
// its store and abandons the old one, which wakes every blocking query. A
// follower streams the archive to the leader (snapshot_forward.go).
//
// Indexes never go backwards for clients: every table index in the
// restored state is raised to the Raft index of the restore, which is above
// any index this cluster has answered with.
func (s *Server) SnapshotRestore(ctx context.Context, r io.Reader) error {
	return s.forwardSnapshotRestore(ctx, r)
}

// snapshotRestoreLocal restores on this server, the ready leader.
func (s *Server) snapshotRestoreLocal(ctx context.Context, r io.Reader) error {
	rf := s.raftOrNil()
	if rf == nil {
		return ErrNotStarted
	}
	// Restores compute their index floor from Raft's last index and must
	// not interleave.
	s.restoreMu.Lock()
	defer s.restoreMu.Unlock()

	return snapshot.Read(ctxReader{ctx: ctx, r: r}, func(meta *snapshot.Meta, st io.Reader) error {
		if v := raft.SnapshotVersion(meta.Version); meta.Version < 0 || v < raft.SnapshotVersionMin || v > raft.SnapshotVersionMax {
			return fmt.Errorf("server: raft snapshot version %d is not supported: %w", meta.Version, rpc.ErrBadRequest)
		}
		// raft.Restore stores the snapshot at max(last index, meta index)+1;
		// the state's table indexes are raised to at least that.
		floor := max(rf.LastIndex(), meta.Index) + 1
		f, err := os.CreateTemp("", "cairn-restore-*.bin")
		if err != nil {
			return fmt.Errorf("server: create restore temp file: %w", err)
		}
		defer func() {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}()
		size, err := raiseIndexes(st, f, floor)
		if err != nil {
			return err
		}
		// A state the FSM cannot decode would make Raft panic half-way
		// through the restore; decode it once here instead.
		if _, err := state.Restore(io.NewSectionReader(f, 0, size)); err != nil {
			return fmt.Errorf("server: snapshot state does not decode: %v: %w", err, rpc.ErrBadRequest)
		}
		timeout := defaultRestoreTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		rmeta := &raft.SnapshotMeta{Version: raft.SnapshotVersion(meta.Version), Index: floor - 1, Term: meta.Term, Size: size}
		if err := rf.Restore(rmeta, io.NewSectionReader(f, 0, size), timeout); err != nil {
			return fmt.Errorf("server: raft restore: %w", err)
		}
		s.logger.Info("snapshot restored", "archive_index", meta.Index, "archive_id", meta.ID,
			"index_floor", floor, "bytes", size)
		// The restored catalog may lack this server; put it back now
		// rather than at the next reconcile.
		if err := s.reconcileSelf(); err != nil {
			s.logger.Warn("failed to re-register this server after restore", "error", err)
		}
		// Session TTL timers follow the restored sessions (session_ttl.go).
		s.rearmSessionTimers()
		return nil
	})
}

// archiveMeta converts Raft's snapshot metadata for the archive.
func archiveMeta(m *raft.SnapshotMeta) *snapshot.Meta {
	out := &snapshot.Meta{
		ID: m.ID, Index: m.Index, Term: m.Term, Version: int(m.Version), Size: m.Size,
		ConfigurationIndex: m.ConfigurationIndex,
		CairnVersion:       version.Human(),
		Created:            time.Now().UTC(),
	}
	for _, srv := range m.Configuration.Servers {
		out.Configuration = append(out.Configuration, snapshot.Server{
			ID: string(srv.ID), Address: string(srv.Address), Suffrage: suffrageName(srv.Suffrage),
		})
	}
	return out
}

func suffrageName(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	case raft.Staging:
		return "staging"
	default:
		return s.String()
	}
}

// ctxReader stops a long copy when ctx ends (the HTTP client went away).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("server: snapshot: %w", err)
	}
	return c.r.Read(p)
}

package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/snapshot"
)

// SnapshotBackend takes and restores snapshots; a server agent passes its
// server. Both methods may run concurrently with everything else.
type SnapshotBackend interface {
	// SnapshotSave writes a snapshot archive to w. Without allowStale only
	// the leader answers. started is called with the snapshot's index
	// before the first byte is written.
	SnapshotSave(ctx context.Context, w io.Writer, allowStale bool, started func(index uint64)) (uint64, error)
	// SnapshotRestore verifies the archive read from r completely and then
	// replaces the replicated state with it. A bad archive returns an
	// error matching snapshot.ErrCorrupt and changes nothing.
	SnapshotRestore(ctx context.Context, r io.Reader) error
}

// errNoSnapshots is returned when the agent has no server to snapshot.
var errNoSnapshots = &httpError{code: http.StatusNotImplemented, msg: "snapshots need a server agent"}

// snapshotAllowed is the ACL rule for both directions. Consul requires a
// management token; the nearest rule here is operator:write, and the
// archive holds every KV value, so operator:read is not enough to save.
func snapshotAllowed(a acl.Authorizer) bool { return a.OperatorWrite() }

// snapshot serves GET (save) and PUT (restore) /v1/snapshot.
func (h *handler) snapshot(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, snapshotAllowed); err != nil {
		return err
	}
	if h.cfg.Snapshot == nil {
		return errNoSnapshots
	}
	if dc := queryParams(r).Get("dc"); dc != "" && dc != h.cfg.Datacenter {
		return badRequest("snapshots of another datacenter (%q) are not supported; ask an agent there", dc)
	}
	if r.Method == http.MethodPut {
		return h.snapshotRestore(w, r)
	}
	return h.snapshotSave(w, r)
}

func (h *handler) snapshotSave(w http.ResponseWriter, r *http.Request) error {
	q := queryParams(r)
	_, stale := q["stale"]
	headersSent := false
	started := func(index uint64) {
		hdr := w.Header()
		hdr.Set("Content-Type", "application/x-gzip")
		hdr.Set("X-Consul-Index", strconv.FormatUint(max(index, 1), 10))
		hdr.Set("X-Consul-KnownLeader", "true")
		hdr.Set("X-Consul-LastContact", "0")
		w.WriteHeader(http.StatusOK)
		headersSent = true
	}
	_, err := h.cfg.Snapshot.SnapshotSave(r.Context(), w, stale, started)
	if err == nil {
		return nil
	}
	if !headersSent {
		return err
	}
	// The status line is gone; cut the connection so the client sees a
	// failed transfer rather than a complete-looking short response (the
	// archive's own checksums would refuse it anyway).
	h.logger.Error("snapshot save failed mid-stream", "error", err)
	if conn, _, herr := http.NewResponseController(w).Hijack(); herr == nil {
		_ = conn.Close()
	}
	return nil
}

func (h *handler) snapshotRestore(w http.ResponseWriter, r *http.Request) error {
	err := h.cfg.Snapshot.SnapshotRestore(r.Context(), r.Body)
	if errors.Is(err, snapshot.ErrCorrupt) {
		return badRequest("%s", err.Error())
	}
	if err != nil {
		return err
	}
	return writeEmpty(w)
}

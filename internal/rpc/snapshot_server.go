package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// SnapshotServerConfig configures ServeSnapshots.
type SnapshotServerConfig struct {
	Handler SnapshotHandler
	// Datacenter, when set, refuses requests naming another datacenter.
	Datacenter string
	// IdleTimeout fails a stream without progress for this long
	// (DefaultSnapshotIdleTimeout).
	IdleTimeout time.Duration
	// RequestReadTimeout bounds reading the request after the type byte
	// (DefaultRequestReadTimeout).
	RequestReadTimeout time.Duration
	Logger             *slog.Logger
}

// ServeSnapshots serves snapshot streams accepted from l (the Mux's
// Listener(TypeSnapshot)) until ctx is done or l is closed. It then closes
// l and every open stream (cancelling their handlers' contexts) and waits
// for the handlers to return. The error is nil unless Accept failed for
// another reason.
func ServeSnapshots(ctx context.Context, l net.Listener, cfg SnapshotServerConfig) error {
	if cfg.Handler == nil {
		return errors.New("rpc: snapshot server needs a handler")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultSnapshotIdleTimeout
	}
	if cfg.RequestReadTimeout <= 0 {
		cfg.RequestReadTimeout = DefaultRequestReadTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &snapshotServer{cfg: cfg, reg: snapshotRegistry()}
	return acceptLoop(ctx, l, "rpc: snapshot accept", s.serveConn)
}

type snapshotServer struct {
	cfg SnapshotServerConfig
	reg *Registry
}

// serveConn serves the one request of a snapshot connection.
func (s *snapshotServer) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	remote := conn.RemoteAddr().String()
	if peer := conn.RemoteAddr(); peer != nil {
		ctx = context.WithValue(ctx, peerKey{}, peer)
	}

	f := newFrameConn(conn, s.cfg.IdleTimeout)
	var req SnapshotRequest
	if err := f.readHeader(s.cfg.RequestReadTimeout, &req); err != nil {
		s.cfg.Logger.Debug("snapshot request unreadable", "remote_addr", remote, "error", err)
		return
	}
	var err error
	switch {
	case req.Version != snapshotProtocolVersion:
		err = fmt.Errorf("%w: unsupported snapshot protocol version %d", ErrBadRequest, req.Version)
	case s.cfg.Datacenter != "" && req.Datacenter != "" && req.Datacenter != s.cfg.Datacenter:
		err = fmt.Errorf("%w: snapshot for datacenter %q sent to a server of %q", ErrBadRequest, req.Datacenter, s.cfg.Datacenter)
	case req.Op != SnapshotOpSave && req.Op != SnapshotOpRestore:
		err = fmt.Errorf("%w: unknown snapshot operation %q", ErrBadRequest, req.Op)
	}
	if err != nil {
		_ = f.writeHeader(s.response(err, 0))
		return
	}
	ctx = context.WithValue(ctx, snapshotRequestKey{}, &req)
	if req.Op == SnapshotOpSave {
		// The client sends nothing more on a save: a read that returns
		// means it hung up, and the handler (perhaps still holding for a
		// leader or taking the snapshot) should stop.
		_ = conn.SetReadDeadline(time.Time{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			var b [1]byte
			_, _ = f.br.Read(b[:])
			cancel()
		}()
		err = s.save(ctx, f, &req)
		_ = conn.Close()
		<-watched
	} else {
		err = s.restore(ctx, f)
	}
	if err != nil {
		s.cfg.Logger.Debug("snapshot stream failed", "remote_addr", remote, "op", string(req.Op), "error", err)
	}
}

func (s *snapshotServer) response(err error, index uint64) *snapshotResponse {
	if err == nil {
		return &snapshotResponse{Index: index}
	}
	h := s.reg.encodeError(err)
	return &snapshotResponse{Error: h.Error, Codes: h.Codes, Index: index}
}

// save streams a snapshot. The start header goes out when the handler
// calls started; an error before that is the start header.
func (s *snapshotServer) save(ctx context.Context, f *frameConn, req *SnapshotRequest) error {
	begun := false
	var startErr error
	started := func(index uint64) {
		begun = true
		startErr = f.writeHeader(s.response(nil, index))
	}
	w := &startedWriter{w: frameWriter{f: f}, begun: &begun, err: &startErr}
	index, err := s.cfg.Handler.SnapshotSave(ctx, w, req.AllowStale, started)
	if !begun {
		if err == nil {
			// The handler never announced the snapshot; do it now.
			started(index)
			err = startErr
		} else {
			return f.writeHeader(s.response(err, 0))
		}
	}
	if startErr != nil {
		return startErr
	}
	if err != nil {
		// Tell the client the archive it got is not whole.
		_ = f.writeFrame(nil)
		_ = f.writeHeader(s.response(err, index))
		return err
	}
	if err := f.writeFrame(nil); err != nil {
		return err
	}
	return f.writeHeader(s.response(nil, index))
}

// errWriteBeforeStart is a handler bug: archive bytes must follow the
// start header.
var errWriteBeforeStart = errors.New("rpc: snapshot save handler wrote before announcing the snapshot")

// startedWriter lets archive bytes through only after a start header was
// sent.
type startedWriter struct {
	w     io.Writer
	begun *bool
	err   *error
}

func (w *startedWriter) Write(p []byte) (int, error) {
	if !*w.begun {
		return 0, errWriteBeforeStart
	}
	if *w.err != nil {
		return 0, *w.err
	}
	return w.w.Write(p)
}

// restore receives an archive. The start header goes out when the handler
// first reads; an error before that is the start header and the client
// sends no data.
func (s *snapshotServer) restore(ctx context.Context, f *frameConn) error {
	r := &acceptingReader{f: f, fr: &frameReader{f: f}, accept: func() error { return f.writeHeader(s.response(nil, 0)) }}
	err := s.cfg.Handler.SnapshotRestore(ctx, r)
	if !r.accepted {
		if err == nil {
			err = errors.New("rpc: snapshot restore handler returned without reading the archive")
		}
		return f.writeHeader(s.response(err, 0))
	}
	if r.acceptErr != nil {
		return r.acceptErr
	}
	// Read the rest of the archive so the client, which sends it all
	// before reading, gets the result.
	if _, derr := io.Copy(io.Discard, r.fr); derr != nil {
		return fmt.Errorf("drain archive: %w", derr)
	}
	if werr := f.writeHeader(s.response(err, 0)); werr != nil {
		return werr
	}
	return err
}

// acceptingReader sends the start header on its first Read.
type acceptingReader struct {
	f         *frameConn
	fr        *frameReader
	accept    func() error
	accepted  bool
	acceptErr error
}

func (r *acceptingReader) Read(p []byte) (int, error) {
	if !r.accepted {
		r.accepted = true
		r.acceptErr = r.accept()
	}
	if r.acceptErr != nil {
		return 0, fmt.Errorf("rpc: snapshot restore: %w", r.acceptErr)
	}
	return r.fr.Read(p)
}

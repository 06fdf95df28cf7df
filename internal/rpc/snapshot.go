package rpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/cairn-io/cairn/internal/snapshot"
)

// Streaming snapshots (connection type TypeSnapshot).
//
// A snapshot archive can be far larger than an RPC message, so it does not
// travel over the multiplexed RPC: each save or restore gets a connection
// of its own on the server port. After the type byte everything is a
// frame, a 4-byte big-endian length followed by that many bytes. Header
// frames hold one msgpack value; data frames hold archive bytes, and an
// empty data frame ends the archive.
//
//	client: TypeSnapshot, [SnapshotRequest]
//	server: [start]                  start.Error set: the end; nothing else
//	                                 was read or written
//	save:    server: data..., [], [trailer]   trailer.Error: failed mid-stream
//	restore: client: data..., []
//	         server: [result]
//
// The start header comes before any archive byte moves, so a request
// refused there (no leader, wrong datacenter) consumed nothing and may be
// sent again elsewhere. The server keeps reading a restore's data up to
// its end even after it failed, so the client always gets to read the
// result.

// snapshotProtocolVersion is sent in every SnapshotRequest.
const snapshotProtocolVersion uint8 = 1

// Limits and timeouts of snapshot streams.
const (
	// DefaultSnapshotIdleTimeout fails a stream that makes no progress
	// (no frame read or written) for this long.
	DefaultSnapshotIdleTimeout = 2 * time.Minute
	// DefaultSnapshotWaitTimeout bounds each wait for a header from the
	// server: holding for a leader and taking a snapshot before the start
	// header, verifying and applying a restore before its result.
	DefaultSnapshotWaitTimeout = 10 * time.Minute

	maxSnapshotHeader = 64 << 10
	snapshotChunkSize = 64 << 10
	maxSnapshotChunk  = 1 << 20
)

// SnapshotOp says what a snapshot stream does.
type SnapshotOp string

// Snapshot operations.
const (
	SnapshotOpSave    SnapshotOp = "save"
	SnapshotOpRestore SnapshotOp = "restore"
)

// SnapshotRequest opens a snapshot stream.
type SnapshotRequest struct {
	Version    uint8
	Op         SnapshotOp
	Datacenter string
	// Token is the caller's ACL token. The agent that took the HTTP
	// request has authorized it already; servers may check it again.
	Token string
	// AllowStale lets any server answer a save from its own state.
	AllowStale bool
	// Forwarded marks a request a server sent on to the leader: the
	// receiver serves it itself or refuses it (ErrNoLeader), never
	// forwards it again, so two servers with stale views of the
	// leadership cannot pass a request back and forth.
	Forwarded bool
}

type snapshotRequestKey struct{}

// SnapshotRequestOf returns the request of the snapshot stream whose
// handler ctx belongs to.
func SnapshotRequestOf(ctx context.Context) (*SnapshotRequest, bool) {
	r, ok := ctx.Value(snapshotRequestKey{}).(*SnapshotRequest)
	return r, ok
}

// snapshotResponse is the start header, a save's trailer and a restore's
// result.
type snapshotResponse struct {
	Error string
	Codes []uint16
	// Index is the Raft index of the snapshot a save streams.
	Index uint64
}

// SnapshotHandler serves snapshot streams on a server. Its methods have the
// shapes of httpapi.SnapshotBackend, so a server is both. Both may be
// called concurrently.
type SnapshotHandler interface {
	// SnapshotSave writes an archive to w, calling started with its index
	// before the first byte.
	SnapshotSave(ctx context.Context, w io.Writer, allowStale bool, started func(index uint64)) (uint64, error)
	// SnapshotRestore reads an archive from r and applies it.
	SnapshotRestore(ctx context.Context, r io.Reader) error
}

// codeSnapshotCorrupt carries snapshot.ErrCorrupt on snapshot streams.
const codeSnapshotCorrupt uint16 = FirstCustomErrorCode - 1

// snapshotRegistry is DefaultRegistry plus snapshot.ErrCorrupt, so a
// corrupt archive refused by the leader is still one (HTTP 400) at the
// agent that took the request.
func snapshotRegistry() *Registry {
	r := DefaultRegistry()
	r.codes[codeSnapshotCorrupt] = snapshot.ErrCorrupt
	return r
}

// frameConn reads and writes frames on a connection, moving the deadline
// forward before every frame.
type frameConn struct {
	conn net.Conn
	br   *bufio.Reader
	idle time.Duration
	hdr  [4]byte
}

func newFrameConn(conn net.Conn, idle time.Duration) *frameConn {
	return &frameConn{conn: conn, br: bufio.NewReaderSize(conn, snapshotChunkSize), idle: idle}
}

// writeFrame writes one frame within the idle timeout.
func (f *frameConn) writeFrame(p []byte) error {
	_ = f.conn.SetWriteDeadline(time.Now().Add(f.idle))
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	if _, err := f.conn.Write(hdr[:]); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	_, err := f.conn.Write(p)
	return err
}

// writeHeader encodes v as a header frame.
func (f *frameConn) writeHeader(v any) error {
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(v); err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	return f.writeFrame(b)
}

// readFrame reads the next frame's length, waiting up to wait for it, and
// checks it against limit. The payload follows in f.br.
func (f *frameConn) readFrameLen(wait time.Duration, limit int) (int, error) {
	_ = f.conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(f.br, f.hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n := binary.BigEndian.Uint32(f.hdr[:])
	if n > uint32(limit) {
		return 0, fmt.Errorf("rpc: snapshot stream frame of %d bytes is over the limit of %d", n, limit)
	}
	_ = f.conn.SetReadDeadline(time.Now().Add(f.idle))
	return int(n), nil
}

// readHeader reads a header frame into v (a pointer).
func (f *frameConn) readHeader(wait time.Duration, v any) error {
	n, err := f.readFrameLen(wait, maxSnapshotHeader)
	if err != nil {
		return err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.br, b); err != nil {
		return err
	}
	if err := codec.NewDecoderBytes(b, msgpackHandle).Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

// frameWriter is the io.Writer of a stream's data frames.
type frameWriter struct{ f *frameConn }

func (w frameWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxSnapshotChunk)
		if err := w.f.writeFrame(p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// frameReader is the io.Reader of a stream's data frames: io.EOF at the
// empty frame, io.ErrUnexpectedEOF when the connection ends before it.
type frameReader struct {
	f    *frameConn
	left int  // bytes of the current frame not yet read
	done bool // the empty frame was read
}

func (r *frameReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	for r.left == 0 {
		n, err := r.f.readFrameLen(r.f.idle, maxSnapshotChunk)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			r.done = true
			return 0, io.EOF
		}
		r.left = n
	}
	n, err := r.f.br.Read(p[:min(len(p), r.left)])
	r.left -= n
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// SnapshotClientConfig configures a SnapshotClient.
type SnapshotClientConfig struct {
	// DialTimeout bounds the connection attempt (DefaultDialTimeout).
	DialTimeout time.Duration
	// IdleTimeout fails a stream without progress for this long
	// (DefaultSnapshotIdleTimeout).
	IdleTimeout time.Duration
	// WaitTimeout bounds each wait for the server's start header and a
	// restore's result (DefaultSnapshotWaitTimeout).
	WaitTimeout time.Duration
	// Dial, when set, replaces the plain TCP dial; the client writes the
	// type byte itself.
	Dial func(ctx context.Context, addr net.Addr) (net.Conn, error)
}

// SnapshotClient opens snapshot streams to servers. It holds no
// connections or goroutines between calls; it is safe for concurrent use.
type SnapshotClient struct {
	cfg SnapshotClientConfig
	reg *Registry
}

// NewSnapshotClient fills in cfg's defaults.
func NewSnapshotClient(cfg SnapshotClientConfig) *SnapshotClient {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultSnapshotIdleTimeout
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = DefaultSnapshotWaitTimeout
	}
	return &SnapshotClient{cfg: cfg, reg: snapshotRegistry()}
}

// Save asks the server at addr for a snapshot and copies the archive to w.
// started runs with the snapshot's index before the first byte reaches w.
//
// Errors: ErrConnect when the server was not reached; a *RemoteError
// (matching the server's sentinels, e.g. ErrNoLeader) when it refused or
// failed; ctx's error; a wrapped transport error. When started has not run,
// nothing was written to w and the save may be tried again.
func (c *SnapshotClient) Save(ctx context.Context, addr net.Addr, req SnapshotRequest, w io.Writer, started func(index uint64)) (uint64, error) {
	req.Op = SnapshotOpSave
	var index uint64
	err := c.stream(ctx, addr, req, func(f *frameConn) error {
		var start snapshotResponse
		if err := f.readHeader(c.cfg.WaitTimeout, &start); err != nil {
			return fmt.Errorf("read start: %w", err)
		}
		if err := c.reg.decodeError(responseHeader{Error: start.Error, Codes: start.Codes}); err != nil {
			return err
		}
		index = start.Index
		if started != nil {
			started(index)
		}
		fr := &frameReader{f: f}
		if _, err := io.Copy(w, fr); err != nil {
			return fmt.Errorf("copy archive: %w", err)
		}
		var trailer snapshotResponse
		if err := f.readHeader(c.cfg.IdleTimeout, &trailer); err != nil {
			return fmt.Errorf("read trailer: %w", err)
		}
		return c.reg.decodeError(responseHeader{Error: trailer.Error, Codes: trailer.Codes})
	})
	if err != nil {
		return 0, err
	}
	return index, nil
}

// Restore sends the archive read from r to the server at addr and returns
// the server's verdict. r is read only after the server accepted the
// request, so on an error before that (ErrConnect, or a *RemoteError such
// as ErrNoLeader) r is untouched and the restore may be tried again. An
// error reading r ends the stream early, which the server refuses as a
// truncated archive.
func (c *SnapshotClient) Restore(ctx context.Context, addr net.Addr, req SnapshotRequest, r io.Reader) error {
	req.Op = SnapshotOpRestore
	return c.stream(ctx, addr, req, func(f *frameConn) error {
		var start snapshotResponse
		if err := f.readHeader(c.cfg.WaitTimeout, &start); err != nil {
			return fmt.Errorf("read start: %w", err)
		}
		if err := c.reg.decodeError(responseHeader{Error: start.Error, Codes: start.Codes}); err != nil {
			return err
		}
		buf := make([]byte, snapshotChunkSize)
		for {
			n, rerr := r.Read(buf)
			if n > 0 {
				if err := f.writeFrame(buf[:n]); err != nil {
					return fmt.Errorf("send archive: %w", err)
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return fmt.Errorf("read archive: %w", rerr)
			}
		}
		if err := f.writeFrame(nil); err != nil {
			return fmt.Errorf("send archive end: %w", err)
		}
		var result snapshotResponse
		if err := f.readHeader(c.cfg.WaitTimeout, &result); err != nil {
			return fmt.Errorf("read result: %w", err)
		}
		return c.reg.decodeError(responseHeader{Error: result.Error, Codes: result.Codes})
	})
}

// stream dials addr, sends the request and runs body on the connection,
// which is closed when body returns or ctx ends.
func (c *SnapshotClient) stream(ctx context.Context, addr net.Addr, req SnapshotRequest, body func(*frameConn) error) error {
	if addr == nil {
		return fmt.Errorf("%w: snapshot %s: no server address", ErrConnect, req.Op)
	}
	req.Version = snapshotProtocolVersion
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return c.streamError(ctx, req, addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	f := newFrameConn(conn, c.cfg.IdleTimeout)
	_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.IdleTimeout))
	if _, err := conn.Write([]byte{TypeSnapshot}); err != nil {
		return c.streamError(ctx, req, addr, fmt.Errorf("%w: handshake: %w", ErrConnect, err))
	}
	if err := f.writeHeader(&req); err != nil {
		// The server acts only on a whole request: nothing was done.
		return c.streamError(ctx, req, addr, fmt.Errorf("%w: send request: %w", ErrConnect, err))
	}
	if err := body(f); err != nil {
		var remote *RemoteError
		if errors.As(err, &remote) && ctx.Err() == nil {
			return err
		}
		return c.streamError(ctx, req, addr, err)
	}
	return nil
}

func (c *SnapshotClient) dial(ctx context.Context, addr net.Addr) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.cfg.Dial != nil {
		conn, err = c.cfg.Dial(ctx, addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr.String())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrConnect, addr, err)
	}
	return conn, nil
}

// streamError gives a transport failure its context; ctx's error wins.
func (c *SnapshotClient) streamError(ctx context.Context, req SnapshotRequest, addr net.Addr, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("rpc: snapshot %s at %s: %w", req.Op, addr, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("rpc: snapshot %s at %s: %w: %w", req.Op, addr, ErrTimeout, err)
	}
	return fmt.Errorf("rpc: snapshot %s at %s: %w", req.Op, addr, err)
}

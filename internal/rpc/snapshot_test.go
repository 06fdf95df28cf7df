package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/snapshot"
)

// fakeSnapshots is a SnapshotHandler whose behaviour the test sets.
type fakeSnapshots struct {
	mu       sync.Mutex
	archive  []byte
	index    uint64
	saveErr  error // before started
	midErr   error // after half the archive
	restErr  error // before reading
	readN    int   // restore: read this many bytes, then fail with failErr (0 = all)
	failErr  error
	block    chan struct{} // when set, handlers wait on it (or ctx)
	got      []byte
	gotErr   error
	stale    bool
	requests []SnapshotRequest
	ended    int // handlers that returned because their ctx ended
}

func (f *fakeSnapshots) SnapshotSave(ctx context.Context, w io.Writer, allowStale bool, started func(uint64)) (uint64, error) {
	f.mu.Lock()
	f.stale = allowStale
	if req, ok := SnapshotRequestOf(ctx); ok {
		f.requests = append(f.requests, *req)
	}
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			f.mu.Lock()
			f.ended++
			f.mu.Unlock()
			return 0, ctx.Err()
		}
	}
	if f.saveErr != nil {
		return 0, f.saveErr
	}
	started(f.index)
	if f.midErr != nil {
		_, _ = w.Write(f.archive[:len(f.archive)/2])
		return 0, f.midErr
	}
	if _, err := io.Copy(w, bytes.NewReader(f.archive)); err != nil {
		return 0, err
	}
	return f.index, nil
}

func (f *fakeSnapshots) SnapshotRestore(ctx context.Context, r io.Reader) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.restErr != nil {
		return f.restErr
	}
	var b []byte
	var err error
	if f.readN > 0 {
		b = make([]byte, f.readN)
		_, err = io.ReadFull(r, b)
		if err == nil {
			err = f.failErr
		}
	} else {
		b, err = io.ReadAll(r)
	}
	f.mu.Lock()
	f.got, f.gotErr = b, err
	f.mu.Unlock()
	return err
}

// startSnapshotServer serves h on a Mux at 127.0.0.1 and returns its address.
func startSnapshotServer(t *testing.T, h SnapshotHandler) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := NewMux(ln, MuxConfig{Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	snapLn := mux.Listener(TypeSnapshot)
	go func() {
		done <- ServeSnapshots(ctx, snapLn, SnapshotServerConfig{Handler: h, Datacenter: "dc1",
			IdleTimeout: 5 * time.Second, Logger: testLogger(t)})
	}()
	mux.Start()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, mux.Close())
	})
	return mux.Addr()
}

func testArchive(size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %d of the archive\n", i)
	}
	return b.Bytes()[:size]
}

func TestSnapshotStream_Save(t *testing.T) {
	arch := testArchive(3<<20 + 17) // several frames
	h := &fakeSnapshots{archive: arch, index: 42}
	addr := startSnapshotServer(t, h)
	c := NewSnapshotClient(SnapshotClientConfig{})

	var buf bytes.Buffer
	var announced uint64
	idx, err := c.Save(context.Background(), addr, SnapshotRequest{Datacenter: "dc1", AllowStale: true}, &buf, func(i uint64) {
		require.Zero(t, buf.Len(), "started runs before the first byte")
		announced = i
	})
	require.NoError(t, err)
	require.Equal(t, uint64(42), idx)
	require.Equal(t, uint64(42), announced)
	require.True(t, bytes.Equal(arch, buf.Bytes()), "archive differs: %d vs %d bytes", len(arch), buf.Len())
	require.True(t, h.stale)
	require.Len(t, h.requests, 1)
	require.Equal(t, SnapshotOpSave, h.requests[0].Op)
}

func TestSnapshotStream_SaveErrors(t *testing.T) {
	ctx := context.Background()
	c := NewSnapshotClient(SnapshotClientConfig{})

	t.Run("refused before the start", func(t *testing.T) {
		addr := startSnapshotServer(t, &fakeSnapshots{saveErr: fmt.Errorf("not here: %w", ErrNoLeader)})
		called := false
		var buf bytes.Buffer
		_, err := c.Save(ctx, addr, SnapshotRequest{}, &buf, func(uint64) { called = true })
		require.ErrorIs(t, err, ErrNoLeader)
		var remote *RemoteError
		require.ErrorAs(t, err, &remote)
		require.Equal(t, "not here: rpc: no cluster leader", err.Error())
		require.False(t, called)
		require.Zero(t, buf.Len())
	})
	t.Run("failed mid-stream", func(t *testing.T) {
		addr := startSnapshotServer(t, &fakeSnapshots{archive: testArchive(1 << 20), index: 3, midErr: errors.New("disk on fire")})
		called := false
		var buf bytes.Buffer
		_, err := c.Save(ctx, addr, SnapshotRequest{}, &buf, func(uint64) { called = true })
		require.ErrorContains(t, err, "disk on fire")
		require.True(t, called)
	})
	t.Run("other datacenter", func(t *testing.T) {
		addr := startSnapshotServer(t, &fakeSnapshots{})
		_, err := c.Save(ctx, addr, SnapshotRequest{Datacenter: "dc2"}, io.Discard, nil)
		require.ErrorIs(t, err, ErrBadRequest)
		require.ErrorContains(t, err, `"dc2"`)
	})
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr()
		require.NoError(t, ln.Close())
		_, err = c.Save(ctx, addr, SnapshotRequest{}, io.Discard, nil)
		require.ErrorIs(t, err, ErrConnect)
	})
	t.Run("writer fails", func(t *testing.T) {
		addr := startSnapshotServer(t, &fakeSnapshots{archive: testArchive(4 << 20), index: 3})
		_, err := c.Save(ctx, addr, SnapshotRequest{}, failingWriter{}, nil)
		require.ErrorContains(t, err, "sink broke")
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("sink broke") }

func TestSnapshotStream_Restore(t *testing.T) {
	ctx := context.Background()
	c := NewSnapshotClient(SnapshotClientConfig{})

	t.Run("ok", func(t *testing.T) {
		arch := testArchive(2<<20 + 5)
		h := &fakeSnapshots{}
		addr := startSnapshotServer(t, h)
		require.NoError(t, c.Restore(ctx, addr, SnapshotRequest{Datacenter: "dc1"}, bytes.NewReader(arch)))
		require.NoError(t, h.gotErr)
		require.True(t, bytes.Equal(arch, h.got))
	})
	t.Run("refused before reading: the reader is untouched", func(t *testing.T) {
		addr := startSnapshotServer(t, &fakeSnapshots{restErr: fmt.Errorf("follower: %w", ErrNoLeader)})
		r := &countingReader{r: strings.NewReader("archive")}
		err := c.Restore(ctx, addr, SnapshotRequest{}, r)
		require.ErrorIs(t, err, ErrNoLeader)
		require.Zero(t, r.reads)
	})
	t.Run("corrupt archive keeps its sentinel and message", func(t *testing.T) {
		_, corrupt := snapshot.Verify(strings.NewReader("not an archive at all"))
		require.ErrorIs(t, corrupt, snapshot.ErrCorrupt)
		h := &fakeSnapshots{readN: 1000, failErr: corrupt}
		addr := startSnapshotServer(t, h)
		err := c.Restore(ctx, addr, SnapshotRequest{}, bytes.NewReader(testArchive(3<<20)))
		require.ErrorIs(t, err, snapshot.ErrCorrupt)
		require.Equal(t, corrupt.Error(), err.Error())
	})
	t.Run("source fails: the server sees a truncated archive", func(t *testing.T) {
		h := &fakeSnapshots{}
		addr := startSnapshotServer(t, h)
		src := io.MultiReader(strings.NewReader("some bytes"), errReader{errors.New("client went away")})
		err := c.Restore(ctx, addr, SnapshotRequest{}, src)
		require.ErrorContains(t, err, "client went away")
		waitFor(t, 5*time.Second, "handler done", func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.gotErr != nil
		})
		require.ErrorIs(t, h.gotErr, io.ErrUnexpectedEOF)
	})
}

type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A cancelled context closes the stream at once, and shutting the server
// down ends handlers that are still running.
func TestSnapshotStream_CancelAndShutdown(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	h := &fakeSnapshots{block: block}
	addr := startSnapshotServer(t, h)
	c := NewSnapshotClient(SnapshotClientConfig{})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Save(ctx, addr, SnapshotRequest{}, io.Discard, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
	waitFor(t, 5*time.Second, "the save handler's ctx ends when the client hangs up", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.ended == 1
	})

	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	err = c.Restore(ctx2, addr, SnapshotRequest{}, strings.NewReader("x"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// The cleanup's shutdown must not wait for block: the handlers' ctx
	// ends when their connection or the server goes away.
}

func TestSnapshotStream_BadFrames(t *testing.T) {
	addr := startSnapshotServer(t, &fakeSnapshots{})
	conn, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	defer conn.Close()
	// A header frame over the limit: the server hangs up.
	_, err = conn.Write([]byte{TypeSnapshot, 0xff, 0xff, 0xff, 0xff})
	require.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	require.Error(t, err)

	// A version this server does not speak is refused with a message.
	f := newFrameConn(mustDial(t, addr), time.Second)
	defer f.conn.Close()
	_, err = f.conn.Write([]byte{TypeSnapshot})
	require.NoError(t, err)
	require.NoError(t, f.writeHeader(&SnapshotRequest{Version: 9, Op: SnapshotOpSave}))
	var resp snapshotResponse
	require.NoError(t, f.readHeader(5*time.Second, &resp))
	require.Contains(t, resp.Error, "version 9")

	// So is an unknown operation.
	err = NewSnapshotClient(SnapshotClientConfig{}).stream(context.Background(), addr, SnapshotRequest{Op: "explode"},
		func(f *frameConn) error {
			var resp snapshotResponse
			if err := f.readHeader(5*time.Second, &resp); err != nil {
				return err
			}
			return snapshotRegistry().decodeError(responseHeader{Error: resp.Error, Codes: resp.Codes})
		})
	require.ErrorIs(t, err, ErrBadRequest)
}

func mustDial(t *testing.T, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	return c
}

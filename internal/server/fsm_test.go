package server

import (
	"bytes"
	"io"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

type bufferSink struct {
	bytes.Buffer
	cancelled bool
}

func (b *bufferSink) ID() string    { return "test" }
func (b *bufferSink) Cancel() error { b.cancelled = true; return nil }
func (b *bufferSink) Close() error  { return nil }

func applyCmd(t *testing.T, f *fsm, idx uint64, typ MessageType, req any) any {
	t.Helper()
	buf, err := encodeCommand(typ, req)
	require.NoError(t, err)
	return f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: buf})
}

func TestFSM_SnapshotRestore(t *testing.T) {
	f, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, true, applyCmd(t, f, 1, KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte("v"), Flags: 9}}))
	require.Equal(t, false, applyCmd(t, f, 2, KVSRequestType, &rpc.KVSRequest{Op: rpc.KVCAS, Entry: state.KVEntry{Key: "k", ModifyIndex: 7}}))
	require.Nil(t, applyCmd(t, f, 3, RegisterRequestType, &rpc.RegisterRequest{Node: "n1", Address: "1.2.3.4",
		Service: &state.NodeService{ID: "web", Service: "web"},
		Checks:  []*state.HealthCheck{{CheckID: "c1", ServiceID: "web", Status: state.HealthPassing}}}))
	require.Nil(t, applyCmd(t, f, 4, DeregisterRequestType, &rpc.DeregisterRequest{Node: "n1", CheckID: "c1"}))
	res := applyCmd(t, f, 5, RegisterRequestType, &rpc.RegisterRequest{Node: "n1", Address: "1",
		Checks: []*state.HealthCheck{{CheckID: "c2", ServiceID: "nope"}}})
	require.ErrorIs(t, res.(error), state.ErrMissingService)

	// Unknown types: skipped with the ignore flag, fatal without it.
	require.Nil(t, f.Apply(&raft.Log{Index: 6, Type: raft.LogCommand, Data: []byte{byte(IgnoreUnknownTypeFlag | 77), '{', '}'}}))
	require.Panics(t, func() { f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: []byte{77}}) })

	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &bufferSink{}
	require.NoError(t, snap.Persist(sink))
	snap.Release()

	f2, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	old := f2.State()
	require.NoError(t, f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	select {
	case <-old.AbandonCh():
	default:
		t.Fatal("restore must abandon the old store")
	}

	for _, st := range []*state.Store{f.State(), f2.State()} {
		idx, e, err := st.KVGet(nil, "k")
		require.NoError(t, err)
		require.Equal(t, uint64(1), idx)
		require.Equal(t, uint64(9), e.Flags)
		idx, csn, err := st.CheckServiceNodes(nil, "web", nil, nil)
		require.NoError(t, err)
		require.Equal(t, uint64(4), idx)
		require.Len(t, csn, 1)
		require.Empty(t, csn[0].Checks)
	}
	require.Error(t, f2.Restore(io.NopCloser(bytes.NewReader([]byte("garbage")))))
}

package server

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/state"
)

func secondConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.NodeName = "s2"
	cfg.NodeID = "00000000-0000-0000-0000-000000000002"
	return cfg
}

// seed writes KV entries (one deleted again) and two catalog nodes.
func seed(t *testing.T, s *Server) {
	t.Helper()
	ctx := context.Background()
	for i := range 20 {
		kvSet(t, s, fmt.Sprintf("app/config/%02d", i), strings.Repeat("v", i))
	}
	kvSet(t, s, "gone", "x")
	var ok bool
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVDelete, Entry: state.KVEntry{Key: "gone"}}, &ok))
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSApply, &rpc.KVSRequest{Op: rpc.KVSet,
		Entry: state.KVEntry{Key: "flags", Flags: 42, Value: []byte{0, 1, 2}}}, &ok))
	var none struct{}
	for i, n := range []string{"n1", "n2"} {
		require.NoError(t, s.RPC(ctx, rpc.MethodCatalogRegister, &rpc.RegisterRequest{
			Node: n, Address: fmt.Sprintf("10.0.0.%d", i+1), NodeMeta: map[string]string{"rack": n},
			Service: &state.NodeService{Service: "web", Tags: []string{"v1"}, Port: 80 + i},
			Checks: []*state.HealthCheck{
				{CheckID: "web-check", Name: "web", ServiceID: "web", Status: state.HealthPassing},
				{CheckID: "disk", Name: "disk", Status: state.HealthWarning, Output: "80%"},
			},
		}, &none))
	}
}

// dump is the replicated data a restore must reproduce exactly.
type dump struct {
	KV       []*state.KVEntry
	Nodes    []*state.Node
	Web      []*state.CheckServiceNode
	N1Checks []*state.HealthCheck
}

func takeDump(t *testing.T, s *Server) dump {
	t.Helper()
	ctx := context.Background()
	var d dump
	var kv rpc.IndexedKVEntries
	require.NoError(t, s.RPC(ctx, rpc.MethodKVSList, &rpc.KeyRequest{Key: ""}, &kv))
	d.KV = kv.Entries
	var nodes rpc.IndexedNodes
	require.NoError(t, s.RPC(ctx, rpc.MethodCatalogListNodes, &rpc.DCSpecificRequest{}, &nodes))
	for _, n := range nodes.Nodes {
		if n.Node == "n1" || n.Node == "n2" { // the servers' own nodes differ
			d.Nodes = append(d.Nodes, n)
		}
	}
	var web rpc.IndexedCheckServiceNodes
	require.NoError(t, s.RPC(ctx, rpc.MethodHealthServiceNodes, &rpc.ServiceSpecificRequest{ServiceName: "web"}, &web))
	d.Web = web.Nodes
	var checks rpc.IndexedHealthChecks
	require.NoError(t, s.RPC(ctx, rpc.MethodHealthNodeChecks, &rpc.NodeSpecificRequest{Node: "n1"}, &checks))
	d.N1Checks = checks.HealthChecks
	return d
}

func save(t *testing.T, s *Server) ([]byte, uint64) {
	t.Helper()
	var buf bytes.Buffer
	var announced uint64
	idx, err := s.SnapshotSave(context.Background(), &buf, false, func(i uint64) {
		require.Zero(t, buf.Len(), "started must run before the first byte")
		announced = i
	})
	require.NoError(t, err)
	require.Equal(t, idx, announced)
	meta, err := snapshot.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, idx, meta.Index)
	return buf.Bytes(), idx
}

func TestServer_SnapshotSaveRestoreIntoFreshServer(t *testing.T) {
	ctx := context.Background()
	s1 := startServer(t, testConfig(t))
	seed(t, s1)
	want := takeDump(t, s1)
	require.Len(t, want.KV, 21)
	require.Len(t, want.Nodes, 2)
	arch, _ := save(t, s1)

	// A fresh server with its own, different history and a higher index
	// than the snapshot's, so the index floor matters.
	s2 := startServer(t, secondConfig(t))
	for i := range 60 {
		kvSet(t, s2, fmt.Sprintf("junk/%d", i), "x")
	}
	var before rpc.IndexedNodes
	require.NoError(t, s2.RPC(ctx, rpc.MethodCatalogListNodes, &rpc.DCSpecificRequest{}, &before))
	var beforeKV rpc.IndexedKVEntries
	require.NoError(t, s2.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "junk/59"}, &beforeKV))
	kvSet(t, s2, "app/config/00", "s2's value")
	var beforeShared rpc.IndexedKVEntries
	require.NoError(t, s2.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "app/config/00"}, &beforeShared))

	// Blocking queries on s2 must be woken by the restore: one whose index
	// the floor raises (catalog) and one whose restored index is lower
	// (a key that the restore deletes).
	type woken struct {
		index uint64
		err   error
		at    time.Time
	}
	nodesCh, keyCh, sharedCh := make(chan woken, 1), make(chan woken, 1), make(chan woken, 1)
	go func() {
		var out rpc.IndexedNodes
		err := s2.RPC(ctx, rpc.MethodCatalogListNodes, &rpc.DCSpecificRequest{
			QueryOptions: rpc.QueryOptions{MinQueryIndex: before.Index, MaxQueryTime: 30 * time.Second}}, &out)
		nodesCh <- woken{out.Index, err, time.Now()}
	}()
	go func() {
		var out rpc.IndexedKVEntries
		err := s2.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "junk/59",
			QueryOptions: rpc.QueryOptions{MinQueryIndex: beforeKV.Index, MaxQueryTime: 30 * time.Second}}, &out)
		keyCh <- woken{out.Index, err, time.Now()}
	}()
	// A key that exists in both: the restore brings back its lower
	// ModifyIndex, and the query must still return at once.
	go func() {
		var out rpc.IndexedKVEntries
		err := s2.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "app/config/00",
			QueryOptions: rpc.QueryOptions{MinQueryIndex: beforeShared.Index, MaxQueryTime: 30 * time.Second}}, &out)
		sharedCh <- woken{out.Index, err, time.Now()}
	}()
	select {
	case <-sharedCh:
		t.Fatal("blocking query returned before the restore")
	case <-nodesCh:
		t.Fatal("blocking query returned before the restore")
	case <-keyCh:
		t.Fatal("blocking query returned before the restore")
	case <-time.After(100 * time.Millisecond):
	}

	require.NoError(t, s2.SnapshotRestore(ctx, bytes.NewReader(arch)))
	restoredAt := time.Now()
	for name, ch := range map[string]chan woken{"catalog": nodesCh, "kv key": keyCh, "shared key": sharedCh} {
		select {
		case w := <-ch:
			require.NoError(t, w.err, name)
			require.Less(t, w.at.Sub(restoredAt), 2*time.Second, name)
			if name == "catalog" {
				require.Greater(t, w.index, before.Index, "catalog index must not go backwards")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s blocking query not woken by the restore", name)
		}
	}

	got := takeDump(t, s2)
	require.Equal(t, want, got)

	// Indexes of table-level reads did not go backwards, and new writes
	// get indexes above the restore.
	var after rpc.IndexedNodes
	require.NoError(t, s2.RPC(ctx, rpc.MethodCatalogListNodes, &rpc.DCSpecificRequest{}, &after))
	require.Greater(t, after.Index, before.Index)
	var missing rpc.IndexedKVEntries
	require.NoError(t, s2.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "junk/0"}, &missing))
	require.Empty(t, missing.Entries)
	require.Greater(t, missing.Index, beforeKV.Index)
	kvSet(t, s2, "after", "restore")
	var a rpc.IndexedKVEntries
	require.NoError(t, s2.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "after"}, &a))
	require.Greater(t, a.Entries[0].ModifyIndex, after.Index)

	// s2 put itself back into the restored catalog.
	var self rpc.IndexedNodeServices
	require.NoError(t, s2.RPC(ctx, rpc.MethodCatalogNodeServices, &rpc.NodeSpecificRequest{Node: "s2"}, &self))
	require.NotNil(t, self.NodeServices)
}

func TestServer_SnapshotRestoreRefusesCorruptArchive(t *testing.T) {
	ctx := context.Background()
	s1 := startServer(t, testConfig(t))
	seed(t, s1)
	arch, _ := save(t, s1)

	s2 := startServer(t, secondConfig(t))
	kvSet(t, s2, "keep", "me")
	before := takeDump(t, s2)
	lastIndex := s2.Raft().LastIndex()

	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"flipped byte", func() []byte { b := bytes.Clone(arch); b[len(b)/2] ^= 0x40; return b }()},
		{"truncated", arch[:len(arch)-10]},
		{"empty", nil},
		{"not an archive", []byte("hello world, this is not a snapshot")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s2.SnapshotRestore(ctx, bytes.NewReader(tc.b))
			require.ErrorIs(t, err, snapshot.ErrCorrupt)
			require.Equal(t, before, takeDump(t, s2))
			require.Equal(t, lastIndex, s2.Raft().LastIndex(), "nothing may reach raft")
		})
	}

	t.Run("valid archive with undecodable state", func(t *testing.T) {
		var buf bytes.Buffer
		bad := []byte(`{"Version":1}` + "\n" + `{"Table":"nosuch","Row":{}}` + "\n")
		require.NoError(t, snapshot.Write(&buf, &snapshot.Meta{ID: "x", Index: 3, Term: 1, Version: 1,
			Size: int64(len(bad))}, bytes.NewReader(bad)))
		err := s2.SnapshotRestore(ctx, &buf)
		require.ErrorIs(t, err, rpc.ErrBadRequest)
		require.ErrorContains(t, err, "nosuch")
		require.Equal(t, before, takeDump(t, s2))
	})
}

func TestServer_SnapshotNeedsLeader(t *testing.T) {
	cfg := testConfig(t)
	cfg.Bootstrap = false // never elects itself
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	ctx := context.Background()
	_, err = s.SnapshotSave(ctx, &bytes.Buffer{}, false, nil)
	require.ErrorIs(t, err, ErrSnapshotNotLeader)
	require.ErrorIs(t, err, rpc.ErrNoLeader)
	require.ErrorIs(t, s.SnapshotRestore(ctx, strings.NewReader("x")), ErrSnapshotNotLeader)
}

func TestServer_SnapshotStaleSave(t *testing.T) {
	s := startServer(t, testConfig(t))
	kvSet(t, s, "a", "b")
	var buf bytes.Buffer
	idx, err := s.SnapshotSave(context.Background(), &buf, true, nil)
	require.NoError(t, err)
	require.Positive(t, idx)
}

func TestRaiseIndexes(t *testing.T) {
	in := `{"Version":1}
{"Table":"index","Row":{"Key":"kvs","Value":7}}
{"Table":"index","Row":{"Key":"service.web","Value":9}}
{"Table":"kvs","Row":{"Key":"a","ModifyIndex":7}}
`
	var out bytes.Buffer
	n, err := raiseIndexes(strings.NewReader(in), &out, 100)
	require.NoError(t, err)
	require.Equal(t, int64(out.Len()), n)
	st, err := state.Restore(bytes.NewReader(out.Bytes()))
	require.NoError(t, err)
	require.Equal(t, uint64(100), st.MaxIndex("kvs"))
	require.Equal(t, uint64(100), st.MaxIndex("service.web"))
	require.Equal(t, uint64(100), st.MaxIndex("nodes"), "missing base entries are added")
	_, e, err := st.KVGet(nil, "a")
	require.NoError(t, err)
	require.Equal(t, uint64(7), e.ModifyIndex, "rows keep their own indexes")

	for _, bad := range []string{"", "{", `{"Version":1}` + "\n" + `{"Table":"index","Row":"x"}`} {
		_, err := raiseIndexes(strings.NewReader(bad), &bytes.Buffer{}, 1)
		require.ErrorIs(t, err, rpc.ErrBadRequest, bad)
	}
}

func TestServer_RaftSnapshotsFromConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.SnapshotThreshold = 16
	cfg.SnapshotInterval = 20 * time.Millisecond
	cfg.TrailingLogs = 8
	s := startServer(t, cfg)
	for i := range 64 {
		kvSet(t, s, fmt.Sprintf("k/%d", i), "v")
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Raft().Stats()["last_snapshot_index"] == "0" {
		require.True(t, time.Now().Before(deadline), "raft never took a snapshot at threshold 16")
		time.Sleep(10 * time.Millisecond)
	}
	var out rpc.IndexedKVEntries
	require.NoError(t, s.RPC(context.Background(), rpc.MethodKVSList, &rpc.KeyRequest{Key: "k/"}, &out))
	require.Len(t, out.Entries, 64)
}

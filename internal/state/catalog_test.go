package state

import (
	"bytes"
	"testing"

	"github.com/hashicorp/go-memdb"
	"github.com/stretchr/testify/require"
)

func testRegistration(node, svcID, svcName string, tags ...string) *Registration {
	reg := &Registration{
		Node: &Node{ID: "id-" + node, Node: node, Address: "10.0.0.1", Datacenter: "dc1",
			Meta: map[string]string{"env": "prod"}},
		Checks: []*HealthCheck{{CheckID: "serfHealth", Name: "Serf Health Status", Status: HealthPassing}},
	}
	if svcID != "" {
		reg.Service = &NodeService{ID: svcID, Service: svcName, Tags: tags, Port: 80}
		reg.Checks = append(reg.Checks, &HealthCheck{CheckID: "service:" + svcID, Name: "svc",
			ServiceID: svcID, Status: HealthCritical})
	}
	return reg
}

func TestStore_CatalogRegisterDeregister(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.EnsureRegistration(1, testRegistration("n1", "web1", "web", "v1", "blue")))
	require.NoError(t, s.EnsureRegistration(2, testRegistration("n2", "web2", "web", "v2")))
	require.NoError(t, s.EnsureRegistration(3, testRegistration("n2", "db", "db")))

	t.Run("nodes", func(t *testing.T) {
		idx, nodes, err := s.Nodes(nil, nil)
		require.NoError(t, err)
		require.Equal(t, uint64(2), idx)
		require.Len(t, nodes, 2)
		require.Equal(t, "n1", nodes[0].Node)
	})
	t.Run("services aggregate tags", func(t *testing.T) {
		_, svcs, err := s.Services(nil, nil)
		require.NoError(t, err)
		require.Equal(t, map[string][]string{"web": {"blue", "v1", "v2"}, "db": {}}, svcs)
	})
	t.Run("check gets service name and tags", func(t *testing.T) {
		_, checks, err := s.ChecksForService(nil, "web", nil)
		require.NoError(t, err)
		require.Len(t, checks, 2)
		require.Equal(t, "web", checks[0].ServiceName)
		require.Equal(t, []string{"v1", "blue"}, checks[0].ServiceTags)
	})
	t.Run("check service nodes", func(t *testing.T) {
		idx, csn, err := s.CheckServiceNodes(nil, "web", nil, nil)
		require.NoError(t, err)
		require.Equal(t, uint64(2), idx)
		require.Len(t, csn, 2)
		require.Len(t, csn[1].Checks, 2, "node check plus the instance's own check, not db's")
	})
	t.Run("checks in state", func(t *testing.T) {
		_, crit, err := s.ChecksInState(nil, HealthCritical, nil)
		require.NoError(t, err)
		require.Len(t, crit, 3)
		_, all, err := s.ChecksInState(nil, HealthAny, map[string]string{"env": "prod"})
		require.NoError(t, err)
		require.Len(t, all, 5)
		_, none, err := s.ChecksInState(nil, HealthAny, map[string]string{"env": "dev"})
		require.NoError(t, err)
		require.Empty(t, none)
	})
	t.Run("unknown service for check", func(t *testing.T) {
		reg := testRegistration("n1", "", "")
		reg.Checks[0].ServiceID = "nope"
		require.ErrorIs(t, s.EnsureRegistration(4, reg), ErrMissingService)
	})
	t.Run("node id conflict", func(t *testing.T) {
		reg := testRegistration("n3", "", "")
		reg.Node.ID = "id-n1"
		require.ErrorIs(t, s.EnsureRegistration(4, reg), ErrNodeIDConflict)
	})
	t.Run("delete service takes its checks", func(t *testing.T) {
		require.NoError(t, s.DeleteService(5, "n2", "web2"))
		_, checks, err := s.ChecksForNode(nil, "n2")
		require.NoError(t, err)
		require.Len(t, checks, 2)
		idx, sn, err := s.ServiceNodes(nil, "web", nil, nil)
		require.NoError(t, err)
		require.Equal(t, uint64(5), idx)
		require.Len(t, sn, 1)
	})
	t.Run("delete check", func(t *testing.T) {
		require.NoError(t, s.DeleteCheck(6, "n2", "service:db"))
		_, checks, err := s.ChecksForNode(nil, "n2")
		require.NoError(t, err)
		require.Len(t, checks, 1)
	})
	t.Run("delete node", func(t *testing.T) {
		require.NoError(t, s.DeleteNode(7, "n2"))
		_, ns, err := s.NodeServices(nil, "n2")
		require.NoError(t, err)
		require.Nil(t, ns)
		idx, sn, err := s.ServiceNodes(nil, "db", nil, nil)
		require.NoError(t, err)
		require.Empty(t, sn)
		require.Equal(t, uint64(7), idx, "extinct service reports the extinction index")
		_, checks, err := s.ChecksInState(nil, HealthAny, nil)
		require.NoError(t, err)
		require.Len(t, checks, 2)
	})
}

func TestStore_ServiceTagFilter(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.EnsureRegistration(1, testRegistration("n1", "web1", "web", "v1", "Blue")))
	require.NoError(t, s.EnsureRegistration(2, testRegistration("n2", "web2", "web", "v1")))
	require.NoError(t, s.EnsureRegistration(3, testRegistration("n3", "web3", "WEB", "v2", "blue")))
	cases := []struct {
		name  string
		tags  []string
		meta  map[string]string
		nodes []string
	}{
		{"no tags", nil, nil, []string{"n1", "n2", "n3"}},
		{"one tag", []string{"v1"}, nil, []string{"n1", "n2"}},
		{"tag case-insensitive", []string{"blue"}, nil, []string{"n1", "n3"}},
		{"all tags required", []string{"v1", "blue"}, nil, []string{"n1"}},
		{"missing tag", []string{"v3"}, nil, nil},
		{"node meta", nil, map[string]string{"env": "dev"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, sn, err := s.ServiceNodes(nil, "web", tc.tags, tc.meta)
			require.NoError(t, err)
			var got []string
			for _, n := range sn {
				got = append(got, n.Node)
			}
			require.Equal(t, tc.nodes, got)
			_, csn, err := s.CheckServiceNodes(nil, "web", tc.tags, tc.meta)
			require.NoError(t, err)
			require.Len(t, csn, len(tc.nodes))
		})
	}
}

func TestStore_UnchangedRegistrationKeepsIndexes(t *testing.T) {
	s := newTestStore(t)
	reg := testRegistration("n1", "web1", "web", "v1")
	require.NoError(t, s.EnsureRegistration(1, reg))
	ok, err := s.RegistrationUpToDate(testRegistration("n1", "web1", "web", "v1"))
	require.NoError(t, err)
	require.True(t, ok)

	ws := memdb.NewWatchSet()
	idx, _, err := s.CheckServiceNodes(ws, "web", nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.EnsureRegistration(2, testRegistration("n1", "web1", "web", "v1")))
	require.False(t, watchFired(ws), "an unchanged write must not wake watchers")
	idx2, csn, err := s.CheckServiceNodes(nil, "web", nil, nil)
	require.NoError(t, err)
	require.Equal(t, idx, idx2)
	require.Equal(t, uint64(1), csn[0].Service.ModifyIndex)

	changed := testRegistration("n1", "web1", "web", "v2")
	ok, err = s.RegistrationUpToDate(changed)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, s.EnsureRegistration(3, changed))
	require.True(t, watchFired(ws))
	_, csn, err = s.CheckServiceNodes(nil, "web", nil, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(1), csn[0].Service.CreateIndex)
	require.Equal(t, uint64(3), csn[0].Service.ModifyIndex)
	require.Equal(t, []string{"v2"}, csn[0].Checks[1].ServiceTags, "service checks follow the service's tags")
}

func TestStore_CatalogWatch(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.EnsureRegistration(1, testRegistration("n1", "web1", "web")))
	require.NoError(t, s.EnsureRegistration(2, testRegistration("n2", "db1", "db")))
	cases := []struct {
		name  string
		read  func(ws memdb.WatchSet)
		write func() error
		fires bool
	}{
		{"health of web ignores db", func(ws memdb.WatchSet) { _, _, _ = s.CheckServiceNodes(ws, "web", nil, nil) },
			func() error {
				r := testRegistration("n2", "db1", "db")
				r.Checks[1].Status = HealthPassing
				return s.EnsureRegistration(3, r)
			}, false},
		{"health of db fires on its check", func(ws memdb.WatchSet) { _, _, _ = s.CheckServiceNodes(ws, "db", nil, nil) },
			func() error { return s.EnsureRegistration(4, testRegistration("n2", "db1", "db")) }, true},
		{"health of web fires on node check", func(ws memdb.WatchSet) { _, _, _ = s.CheckServiceNodes(ws, "web", nil, nil) },
			func() error {
				r := testRegistration("n1", "", "")
				r.Checks[0].Status = HealthCritical
				return s.EnsureRegistration(5, r)
			}, true},
		{"missing service fires on create", func(ws memdb.WatchSet) { _, _, _ = s.ServiceNodes(ws, "api", nil, nil) },
			func() error { return s.EnsureRegistration(6, testRegistration("n1", "api1", "api")) }, true},
		{"nodes fire on node delete", func(ws memdb.WatchSet) { _, _, _ = s.Nodes(ws, nil) },
			func() error { return s.DeleteNode(7, "n2") }, true},
		{"abandon fires", func(ws memdb.WatchSet) { ws.Add(s.AbandonCh()) },
			func() error { s.Abandon(); return nil }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := memdb.NewWatchSet()
			tc.read(ws)
			require.NoError(t, tc.write())
			require.Equal(t, tc.fires, watchFired(ws))
		})
	}
}

func TestStore_IndexMonotonicCatalog(t *testing.T) {
	s := newTestStore(t)
	var last uint64
	check := func(t *testing.T) {
		t.Helper()
		idx, _, err := s.CheckServiceNodes(nil, "web", nil, nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, idx, last)
		last = idx
	}
	steps := []func() error{
		func() error { return s.EnsureRegistration(1, testRegistration("n1", "", "")) },
		func() error { return s.EnsureRegistration(2, testRegistration("n1", "web1", "web")) },
		func() error { return s.EnsureRegistration(3, testRegistration("n2", "db", "db")) },
		func() error { return s.DeleteService(4, "n1", "web1") },
		func() error { return s.EnsureRegistration(5, testRegistration("n3", "x", "x")) },
		func() error { return s.DeleteService(6, "n3", "x") },
		func() error { return s.EnsureRegistration(7, testRegistration("n1", "web1", "web")) },
		func() error { return s.DeleteNode(8, "n1") },
	}
	for i, step := range steps {
		require.NoError(t, step(), "step %d", i)
		check(t)
	}
	require.Equal(t, uint64(8), last)
}

func TestStore_SnapshotRestore(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.EnsureRegistration(1, testRegistration("n1", "web1", "web", "a")))
	require.NoError(t, s.KVSet(2, &KVEntry{Key: "k", Value: []byte("v"), Flags: 3}))
	require.NoError(t, s.KVSet(3, &KVEntry{Key: "gone"}))
	require.NoError(t, s.KVDelete(4, "gone"))

	snap := s.Snapshot()
	var buf bytes.Buffer
	require.NoError(t, snap.Persist(&buf))
	snap.Release()
	r, err := Restore(&buf)
	require.NoError(t, err)

	for _, st := range []*Store{s, r} {
		require.Equal(t, uint64(4), st.MaxIndex(tableKVs, tableTombstones))
	}
	_, e1, err := s.KVGet(nil, "k")
	require.NoError(t, err)
	_, e2, err := r.KVGet(nil, "k")
	require.NoError(t, err)
	require.Equal(t, e1, e2)
	i1, c1, err := s.CheckServiceNodes(nil, "web", nil, nil)
	require.NoError(t, err)
	i2, c2, err := r.CheckServiceNodes(nil, "web", nil, nil)
	require.NoError(t, err)
	require.Equal(t, i1, i2)
	require.Equal(t, c1, c2)
	idx, _, err := r.KVList(nil, "gone")
	require.NoError(t, err)
	require.Equal(t, uint64(4), idx, "tombstones survive restore")

	_, err = Restore(bytes.NewReader([]byte(`{"Version":99}`)))
	require.Error(t, err)
}

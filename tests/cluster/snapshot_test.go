package cluster

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// TestCluster_SnapshotRestoreIntoNewCluster: a snapshot saved on one
// 3-server cluster and restored into a fresh one reproduces its KV (values,
// flags and indexes) and the catalog entries of an external node; a
// corrupted snapshot is refused with a clear error and changes nothing.
func TestCluster_SnapshotRestoreIntoNewCluster(t *testing.T) {
	skipShort(t)
	a := testutil.StartCluster(t, testutil.ClusterOptions{Servers: 3, LogLevel: "info", NamePrefix: "a"})
	b := testutil.StartCluster(t, testutil.ClusterOptions{Servers: 3, LogLevel: "info", NamePrefix: "b"})
	aLeader := a.WaitReady(readyTimeout)
	bLeader := b.WaitReady(readyTimeout)
	ac := aLeader.Client()
	for i := 0; i < 200; i++ {
		_, err := ac.KV().Put(&api.KVPair{Key: fmt.Sprintf("snap/%03d", i), Value: []byte(strings.Repeat("v", i%17) + fmt.Sprint(i)), Flags: uint64(i)}, nil)
		require.NoError(t, err)
	}
	_, err := ac.KV().Delete("snap/007", nil)
	require.NoError(t, err)
	_, err = ac.Catalog().Register(&api.CatalogRegistration{
		Node: "ext1", Address: "192.0.2.10", NodeMeta: map[string]string{"rack": "r1"},
		Service: &api.AgentService{ID: "db1", Service: "db", Port: 5432, Tags: []string{"primary"}},
		Check:   &api.AgentCheck{CheckID: "db-alive", Name: "db alive", Status: api.HealthPassing, ServiceID: "db1"},
	}, nil)
	require.NoError(t, err)

	snap, _, err := ac.Snapshot().Save(nil)
	require.NoError(t, err)
	data, err := io.ReadAll(snap)
	require.NoError(t, snap.Close())
	require.NoError(t, err)
	t.Logf("snapshot: %d bytes", len(data))

	bcl := bLeader.Client()
	_, err = bcl.KV().Put(&api.KVPair{Key: "only-in-b", Value: []byte("x")}, nil)
	require.NoError(t, err)

	// A corrupted snapshot is refused and B is unchanged.
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0xff
	err = bcl.Snapshot().Restore(nil, bytes.NewReader(bad))
	require.Error(t, err, "a corrupted snapshot must be refused")
	t.Logf("corrupted snapshot refused: %v", err)
	p, _, err := bcl.KV().Get("only-in-b", &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.NotNil(t, p, "a refused restore changed the state")
	pairs, _, err := bcl.KV().List("snap/", nil)
	require.NoError(t, err)
	require.Empty(t, pairs, "a refused restore applied part of the snapshot")

	// A truncated one too.
	err = bcl.Snapshot().Restore(nil, bytes.NewReader(data[:len(data)/3]))
	require.Error(t, err, "a truncated snapshot must be refused")

	require.NoError(t, bcl.Snapshot().Restore(nil, bytes.NewReader(data)))
	want := kvDump(t, ac, "snap/")
	require.Len(t, strings.Split(want, "\n"), 199)
	// Every server of B, read locally, converges on A's KV.
	for _, s := range b.Servers {
		testutil.Retry(t, 30*time.Second, 50*time.Millisecond, func() error {
			got, err := staleKVFull(s, "snap/")
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s: KV differs from the source cluster:\n%s", s.Name, firstDiff(want, got))
			}
			return nil
		})
	}
	p, _, err = bcl.KV().Get("only-in-b", &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.Nil(t, p, "a restore replaces the whole state")

	// The external node, its service and check came along.
	svcs, _, err := bcl.Health().Service("db", "primary", true, &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.Len(t, svcs, 1)
	require.Equal(t, "ext1", svcs[0].Node.Node)
	require.Equal(t, "192.0.2.10", svcs[0].Node.Address)
	require.Equal(t, "r1", svcs[0].Node.Meta["rack"])
	require.Equal(t, 5432, svcs[0].Service.Port)
	var found bool
	for _, c := range svcs[0].Checks {
		if c.CheckID == "db-alive" {
			found = true
			require.Equal(t, api.HealthPassing, c.Status)
		}
	}
	require.True(t, found, "check db-alive missing after restore: %+v", svcs[0].Checks)

	// Consul forwards snapshot requests to the leader: any server, or a
	// client agent, can save and restore.
	t.Run("through a follower", func(t *testing.T) {
		var follower *testutil.Agent
		for _, s := range a.Servers {
			if s != aLeader {
				follower = s
				break
			}
		}
		snap, _, err := follower.Client().Snapshot().Save(nil)
		require.NoError(t, err, "snapshot save through follower %s", follower.Name)
		data, err := io.ReadAll(snap)
		require.NoError(t, snap.Close())
		require.NoError(t, err)
		require.NotEmpty(t, data)
		require.NoError(t, follower.Client().Snapshot().Restore(nil, bytes.NewReader(data)), "snapshot restore through follower %s", follower.Name)
	})

	// B still works as a cluster after the restore.
	require.NoError(t, put(b.Servers[0], "after-restore", "ok"))
	_, err = b.WaitLeader(30 * time.Second)
	require.NoError(t, err)
}

// kvDump lists prefix with a consistent read as "key=value|flags|create|modify" lines.
func kvDump(t *testing.T, c *api.Client, prefix string) string {
	t.Helper()
	pairs, _, err := c.KV().List(prefix, &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	return formatPairs(pairs)
}

func staleKVFull(a *testutil.Agent, prefix string) (string, error) {
	pairs, _, err := a.Client().KV().List(prefix, &api.QueryOptions{AllowStale: true})
	if err != nil {
		return "", fmt.Errorf("%s: stale list: %w", a.Name, err)
	}
	return formatPairs(pairs), nil
}

func formatPairs(pairs api.KVPairs) string {
	lines := make([]string, 0, len(pairs))
	for _, p := range pairs {
		lines = append(lines, fmt.Sprintf("%s=%s|%d|%d|%d", p.Key, p.Value, p.Flags, p.CreateIndex, p.ModifyIndex))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d: want %q, got %q (%d vs %d lines)", i, wl, gl, len(w), len(g))
		}
	}
	return "identical"
}

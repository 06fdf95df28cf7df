package agent

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/snapshot"
)

// TestCluster_SnapshotThroughClientAndFollower: GET and PUT /v1/snapshot
// work on a client agent (streamed to a server, relayed to the leader) and
// on a follower; a corrupt archive sent through the client is a 400 with
// the archive's message and changes nothing.
func TestCluster_SnapshotThroughClientAndFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	// Registered first, so it runs after the agents' shutdowns: memberlist
	// ends a probe in flight only at its timeout, and this may be the
	// package's last test before goleak's check.
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if goleak.Find() == nil { // Find itself retries with backoff
				return
			}
		}
	})
	s1 := startClusterAgent(t, clusterConfig(t, "s1", true, nil))
	join := []string{s1.serfAddr()}
	s2 := startClusterAgent(t, clusterConfig(t, "s2", true, join))
	s3 := startClusterAgent(t, clusterConfig(t, "s3", true, join))
	servers := []*clusterNode{s1, s2, s3}
	c1 := startClusterAgent(t, clusterConfig(t, "c1", false, join))
	for _, n := range append(servers, c1) {
		select {
		case <-n.a.Ready():
		case <-time.After(20 * time.Second):
			t.Fatalf("%s not ready", n.a.cfg.NodeName)
		}
	}
	kv := c1.client.KV()
	for _, k := range []string{"a", "b", "c"} {
		_, err := kv.Put(&api.KVPair{Key: "snap/" + k, Value: []byte("v-" + k)}, nil)
		require.NoError(t, err)
	}

	// Save through the client agent.
	rc, qm, err := c1.client.Snapshot().Save(nil)
	require.NoError(t, err)
	arch, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	meta, err := snapshot.Verify(bytes.NewReader(arch))
	require.NoError(t, err)
	require.Equal(t, meta.Index, qm.LastIndex)
	require.True(t, qm.KnownLeader)

	// A stale save through the client is answered by whichever server it
	// reaches.
	rc, _, err = c1.client.Snapshot().Save(&api.QueryOptions{AllowStale: true})
	require.NoError(t, err)
	stale, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	_, err = snapshot.Verify(bytes.NewReader(stale))
	require.NoError(t, err)

	_, err = kv.Put(&api.KVPair{Key: "snap/a", Value: []byte("changed")}, nil)
	require.NoError(t, err)
	_, err = kv.Put(&api.KVPair{Key: "snap/z", Value: []byte("new")}, nil)
	require.NoError(t, err)

	// A corrupt archive through the client: 400 with the archive's
	// message, nothing applied.
	bad := bytes.Clone(arch)
	bad[len(bad)/2] ^= 0xff
	err = c1.client.Snapshot().Restore(nil, bytes.NewReader(bad))
	require.Error(t, err)
	require.Contains(t, err.Error(), "400")
	_, verr := snapshot.Verify(bytes.NewReader(bad))
	require.Contains(t, err.Error(), verr.Error())
	p, _, err := kv.Get("snap/z", &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.NotNil(t, p, "a refused restore changed the state")

	// The good archive through the client restores the saved state.
	require.NoError(t, c1.client.Snapshot().Restore(nil, bytes.NewReader(arch)))
	p, _, err = kv.Get("snap/z", &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.Nil(t, p)
	p, _, err = kv.Get("snap/a", &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.NotNil(t, p)
	require.Equal(t, "v-a", string(p.Value))

	// And through a follower's HTTP API.
	var follower *clusterNode
	for _, s := range servers {
		if !s.a.srv.IsLeader() {
			follower = s
			break
		}
	}
	rc, _, err = follower.client.Snapshot().Save(nil)
	require.NoError(t, err)
	fromFollower, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	_, err = snapshot.Verify(bytes.NewReader(fromFollower))
	require.NoError(t, err)
	require.NoError(t, follower.client.Snapshot().Restore(nil, bytes.NewReader(fromFollower)))
	err = follower.client.Snapshot().Restore(nil, bytes.NewReader(fromFollower[:len(fromFollower)/2]))
	require.Error(t, err)
	require.Contains(t, err.Error(), "400")
	require.Contains(t, err.Error(), "truncated")
}

package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// TestRunFailover starts a real 3-server cluster from the built binary,
// kills its leader once and checks the window was measured and the killed
// server came back.
func TestRunFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster")
	}
	bin, err := testutil.Binary()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Writes = 1
	r, err := RunFailover(ctx, cfg, ClusterOptions{Binary: bin, Dir: t.TempDir()})
	require.NoError(t, err)
	require.EqualValues(t, 1, r.Ops)
	require.Greater(t, r.Latency.Max, 0.0)
	require.Less(t, r.Latency.Max, 60_000.0, "first write within a minute of the kill")
	require.Equal(t, "failover", r.Workload)
	require.Len(t, r.Targets, 3)
}

// TestStartCluster_RefusesUsedDir: a data dir from an earlier run would
// make the new servers wait for the old run's peers; StartCluster says so
// at once instead of timing out without a leader.
func TestStartCluster_RefusesUsedDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bench-s1", "raft"), 0o755))
	start := time.Now()
	_, err := StartCluster(context.Background(), ClusterOptions{Binary: "/nonexistent", Dir: dir})
	require.ErrorIs(t, err, ErrCluster)
	require.ErrorContains(t, err, "earlier run")
	require.Less(t, time.Since(start), 5*time.Second)
}

package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/config"
)

// singleServerConfig is a one-server datacenter with a data dir (not -dev,
// so registrations persist).
func singleServerConfig(t *testing.T, dir string) *config.RuntimeConfig {
	cfg := clusterConfig(t, "solo", true, nil)
	cfg.BootstrapExpect = 1
	cfg.DataDir = dir
	return cfg
}

func startReady(t *testing.T, cfg *config.RuntimeConfig) *clusterNode {
	t.Helper()
	n := startClusterAgent(t, cfg)
	select {
	case <-n.a.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("agent not ready within 15s")
	}
	return n
}

func stopNode(t *testing.T, n *clusterNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, n.a.Shutdown(ctx))
	n.tr.CloseIdleConnections()
}

func TestAgent_PersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := singleServerConfig(t, dir)
	cfg.Services = []map[string]any{{"name": "fromfile", "port": 1}}
	n := startReady(t, cfg)
	ag := n.client.Agent()

	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Port: 8080, Tags: []string{"v1"}, Meta: map[string]string{"k": "v"},
		Check: &api.AgentServiceCheck{TTL: "1h"},
	}))
	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{
		ID: "web1-extra", Name: "extra", ServiceID: "web1", Notes: "added later",
		AgentServiceCheck: api.AgentServiceCheck{TTL: "1h"},
	}))
	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{
		ID: "node-ttl", Name: "node ttl", AgentServiceCheck: api.AgentServiceCheck{TTL: "1h"},
	}))
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{ID: "gone", Name: "gone"}))
	require.NoError(t, ag.UpdateTTL("service:web1", "all good", api.HealthPassing))
	require.NoError(t, ag.UpdateTTL("node-ttl", "meh", api.HealthWarning))
	require.NoError(t, ag.ServiceDeregister("gone"))

	// One file per entry registered over HTTP, named by the ID's SHA-256;
	// nothing for the config-file service or the deregistered one.
	require.FileExists(t, filepath.Join(dir, servicesDir, fileName("web1")))
	require.NoFileExists(t, filepath.Join(dir, servicesDir, fileName("gone")))
	require.NoFileExists(t, filepath.Join(dir, servicesDir, fileName("fromfile")))
	for _, id := range []string{"service:web1", "web1-extra", "node-ttl"} {
		require.FileExists(t, filepath.Join(dir, checksDir, fileName(id)), id)
	}
	require.FileExists(t, filepath.Join(dir, checkStateDir, fileName("service:web1")))
	info, err := os.Stat(filepath.Join(dir, servicesDir, fileName("web1")))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "files may hold tokens")
	stopNode(t, n)

	// Restart on the same data dir: everything is back, the TTL statuses
	// pushed before the restart included (their TTL has not run out).
	n = startReady(t, singleServerConfig(t, dir))
	svcs, err := n.client.Agent().Services()
	require.NoError(t, err)
	require.Contains(t, svcs, "web1")
	require.NotContains(t, svcs, "gone")
	require.NotContains(t, svcs, "fromfile", "config definitions come from config, not the data dir")
	require.Equal(t, 8080, svcs["web1"].Port)
	require.Equal(t, []string{"v1"}, svcs["web1"].Tags)
	require.Equal(t, "v", svcs["web1"].Meta["k"])
	checks, err := n.client.Agent().Checks()
	require.NoError(t, err)
	require.Contains(t, checks, "web1-extra")
	require.Equal(t, "added later", checks["web1-extra"].Notes)
	require.Equal(t, api.HealthPassing, checks["service:web1"].Status)
	require.Equal(t, "all good", checks["service:web1"].Output)
	require.Equal(t, api.HealthWarning, checks["node-ttl"].Status)
	require.Equal(t, api.HealthCritical, checks["web1-extra"].Status, "never updated: starts critical")
	waitUntil(t, 10*time.Second, "restored service in catalog", func() bool {
		e, _, err := n.client.Health().Service("web", "", true, nil)
		return err == nil && len(e) == 0 // web1-extra is critical
	})
	waitUntil(t, 10*time.Second, "restored service in catalog", func() bool {
		e, _, err := n.client.Catalog().Service("web", "", nil)
		return err == nil && len(e) == 1
	})

	// Deregistration removes the files.
	require.NoError(t, n.client.Agent().ServiceDeregister("web1"))
	require.NoFileExists(t, filepath.Join(dir, servicesDir, fileName("web1")))
	require.NoFileExists(t, filepath.Join(dir, checksDir, fileName("web1-extra")))
	require.NoFileExists(t, filepath.Join(dir, checkStateDir, fileName("service:web1")))
	require.NoError(t, n.client.Agent().CheckDeregister("node-ttl"))
	require.NoFileExists(t, filepath.Join(dir, checksDir, fileName("node-ttl")))
}

func TestAgent_PersistedCheckStateExpires(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{cfg: &config.RuntimeConfig{DataDir: dir}, logger: testLogger(t)}
	require.NoError(t, a.persistCheckState("c1", "passing", "ok", time.Hour))
	st, ok := a.loadCheckState("c1")
	require.True(t, ok)
	require.Equal(t, "passing", st.Status)
	require.Equal(t, "ok", st.Output)

	require.NoError(t, a.persistCheckState("c2", "passing", "", time.Nanosecond))
	time.Sleep(time.Millisecond) // let the nanosecond pass; not a wait for another goroutine
	_, ok = a.loadCheckState("c2")
	require.False(t, ok, "expired state is ignored")
	require.NoFileExists(t, filepath.Join(dir, checkStateDir, fileName("c2")), "and removed")

	require.NoError(t, os.WriteFile(filepath.Join(dir, checkStateDir, fileName("c3")), []byte("{garbage"), 0o600))
	_, ok = a.loadCheckState("c3")
	require.False(t, ok)

	// -dev has no data dir: nothing is written.
	dev := &Agent{cfg: &config.RuntimeConfig{Dev: true, DataDir: dir}, logger: testLogger(t)}
	require.NoError(t, dev.persistCheckState("c4", "passing", "", time.Hour))
	require.NoFileExists(t, filepath.Join(dir, checkStateDir, fileName("c4")))
}

func TestWriteFileAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	path := filepath.Join(dir, "f")
	require.NoError(t, writeFileAtomic(path, []byte("one")))
	require.NoError(t, writeFileAtomic(path, []byte("two")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temp files left behind")
}

func TestAEScale(t *testing.T) {
	base := time.Minute
	for _, tt := range []struct {
		nodes int
		want  time.Duration
	}{
		{0, base}, {1, base}, {128, base},
		{129, 2 * base}, {256, 2 * base},
		{257, 3 * base}, {512, 3 * base},
		{513, 4 * base}, {1024, 4 * base},
		{10000, 8 * base},
	} {
		t.Run(time.Duration(tt.nodes).String(), func(t *testing.T) {
			require.Equal(t, tt.want, aeScale(base, tt.nodes), "nodes=%d", tt.nodes)
		})
	}
}

// TestAgent_ReloadKeepsCheckStatus: a reload that adds, changes and
// removes config definitions leaves the status of untouched checks alone
// (no reset to critical), and a changed service keeps the status of checks
// whose own definition did not change.
func TestAgent_ReloadKeepsCheckStatus(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(target.Close)

	httpSvc := map[string]any{"id": "api", "name": "api", "port": 80,
		"check": map[string]any{"http": target.URL, "interval": "1s"}}
	ttlSvc := map[string]any{"id": "worker", "name": "worker",
		"check": map[string]any{"id": "worker-ttl", "name": "worker ttl", "ttl": "1h"}}
	changing := map[string]any{"id": "changing", "name": "changing", "tags": []any{"v1"},
		"check": map[string]any{"id": "changing-ttl", "name": "changing ttl", "ttl": "1h"}}
	cfg := devConfig()
	cfg.Services = []map[string]any{httpSvc, ttlSvc, changing, {"id": "doomed", "name": "doomed"}}
	cfg.Checks = []map[string]any{{"id": "node-ttl", "name": "node ttl", "ttl": "1h"}}

	next := cfg.Clone()
	changed := map[string]any{"id": "changing", "name": "changing", "tags": []any{"v2"},
		"check": map[string]any{"id": "changing-ttl", "name": "changing ttl", "ttl": "1h"}}
	next.Services = []map[string]any{httpSvc, ttlSvc, changed, {"id": "added", "name": "added"}}
	next.Checks = []map[string]any{{"id": "node-ttl", "name": "node ttl", "ttl": "1h"}}

	a, client := startAgent(t, cfg, func(a *Agent) {
		a.opts.Reload = func() (*config.RuntimeConfig, []string, error) { return next, nil, nil }
	})
	waitFor(t, "http check passing", func() bool { return a.Checks()["service:api"].Status == "passing" })
	for _, id := range []string{"worker-ttl", "changing-ttl", "node-ttl"} {
		require.NoError(t, a.UpdateTTLCheck(id, "passing", "pushed "+id))
	}
	waitFor(t, "passing in the catalog", func() bool {
		e, _, err := client.Health().Service("worker", "", true, nil)
		return err == nil && len(e) == 1
	})

	require.NoError(t, a.Reload())

	checks := a.Checks()
	require.Equal(t, "passing", checks["service:api"].Status, "untouched HTTP check")
	require.Equal(t, "passing", checks["worker-ttl"].Status, "untouched TTL check")
	require.Equal(t, "pushed worker-ttl", checks["worker-ttl"].Output)
	require.Equal(t, "passing", checks["node-ttl"].Status, "untouched node check")
	require.Equal(t, "passing", checks["changing-ttl"].Status, "unchanged check of a changed service")
	require.Equal(t, []string{"v2"}, a.Services()["changing"].Tags)
	require.Contains(t, a.Services(), "added")
	require.NotContains(t, a.Services(), "doomed")
	require.Positive(t, hits.Load())

	// The catalog never saw a critical worker: still passing after the
	// reload's sync.
	waitFor(t, "reload synced", func() bool {
		e, _, err := client.Health().Service("changing", "v2", true, nil)
		return err == nil && len(e) == 1
	})
	e, _, err := client.Health().Service("worker", "", true, nil)
	require.NoError(t, err)
	require.Len(t, e, 1)
}

// TestAgent_PersistedLosesToConfig: a service persisted from HTTP that a
// config file now defines is taken from the config, and its file removed.
func TestAgent_PersistedLosesToConfig(t *testing.T) {
	dir := t.TempDir()
	n := startReady(t, singleServerConfig(t, dir))
	require.NoError(t, n.client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "dup", Name: "dup", Port: 1}))
	require.FileExists(t, filepath.Join(dir, servicesDir, fileName("dup")))
	stopNode(t, n)

	cfg := singleServerConfig(t, dir)
	cfg.Services = []map[string]any{{"id": "dup", "name": "dup", "port": 2}}
	n = startReady(t, cfg)
	require.Equal(t, 2, n.a.Services()["dup"].Port)
	require.NoFileExists(t, filepath.Join(dir, servicesDir, fileName("dup")))
}

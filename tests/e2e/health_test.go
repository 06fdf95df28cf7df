package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// TestE2E_HealthPersistAcrossRestart: services and checks registered over
// HTTP on a server with a data dir come back after a restart of the real
// binary, a TTL check with the status pushed before the restart (its TTL
// has not run out); a deregistered service stays gone.
func TestE2E_HealthPersistAcrossRestart(t *testing.T) {
	a := testutil.StartAgent(t, testutil.AgentOptions{Server: true, Bootstrap: true})
	a.WaitReady(readyTimeout)
	ag := a.Client().Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Port: 8080, Tags: []string{"v1"},
		Check: &api.AgentServiceCheck{CheckID: "web1-ttl", TTL: "10m"},
	}))
	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{
		ID: "disk", Name: "disk", AgentServiceCheck: api.AgentServiceCheck{TTL: "10m"},
	}))
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{ID: "gone", Name: "gone"}))
	require.NoError(t, ag.UpdateTTL("web1-ttl", "serving", api.HealthPassing))
	require.NoError(t, ag.UpdateTTL("disk", "", api.HealthPassing)) // a critical node check would hide web
	require.NoError(t, ag.ServiceDeregister("gone"))
	entries, err := os.ReadDir(filepath.Join(a.DataDir, "services"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "one file for web1")

	a.Restart(t)
	a.WaitReady(readyTimeout)
	ag = a.Client().Agent()
	svcs, err := ag.Services()
	require.NoError(t, err)
	require.Contains(t, svcs, "web1")
	require.NotContains(t, svcs, "gone")
	require.Equal(t, []string{"v1"}, svcs["web1"].Tags)
	checks, err := ag.Checks()
	require.NoError(t, err)
	require.Contains(t, checks, "disk")
	require.Equal(t, api.HealthPassing, checks["web1-ttl"].Status, "TTL status survives a restart within the TTL")
	require.Equal(t, "serving", checks["web1-ttl"].Output)
	testutil.Retry(t, 15*time.Second, 50*time.Millisecond, func() error {
		e, _, err := a.Client().Health().Service("web", "", true, nil)
		if err != nil || len(e) != 1 {
			return fmt.Errorf("web passing in the catalog after restart: %d entries, %v", len(e), err)
		}
		return nil
	})
}

// TestE2E_ReloadKeepsCheckStatus: SIGHUP and PUT /v1/agent/reload apply
// added, changed and removed config-file services, and the checks they do
// not touch stay passing throughout (sampled every 10 ms; never critical).
func TestE2E_ReloadKeepsCheckStatus(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "ok")
	}))
	t.Cleanup(target.Close)

	cfgFile := filepath.Join(t.TempDir(), "services.json")
	write := func(extra string) {
		body := fmt.Sprintf(`{"services": [
  {"id": "api", "name": "api", "port": 80, "check": {"id": "api-http", "name": "api http", "http": %q, "interval": "1s"}},
  {"id": "worker", "name": "worker", "check": {"id": "worker-ttl", "name": "worker ttl", "ttl": "10m"}}%s
]}`, target.URL, extra)
		require.NoError(t, os.WriteFile(cfgFile, []byte(body), 0o600))
	}
	write(`, {"id": "doomed", "name": "doomed"}`)
	a := startDev(t, "-config-file", cfgFile)
	c := a.Client()
	require.NoError(t, c.Agent().UpdateTTL("worker-ttl", "pushed", api.HealthPassing))
	testutil.Retry(t, 10*time.Second, 20*time.Millisecond, func() error {
		checks, err := c.Agent().Checks()
		if err != nil {
			return err
		}
		for _, id := range []string{"api-http", "worker-ttl"} {
			if checks[id] == nil || checks[id].Status != api.HealthPassing {
				return fmt.Errorf("%s not passing yet", id)
			}
		}
		return nil
	})

	reloads := []struct {
		name    string
		extra   string
		trigger func() error
		wantSvc string
	}{
		{"SIGHUP", `, {"id": "added", "name": "added"}`, func() error { return a.Signal(syscall.SIGHUP) }, "added"},
		{"HTTP reload", `, {"id": "added2", "name": "added2", "tags": ["v2"]}`, func() error { return c.Agent().Reload() }, "added2"},
	}
	for _, rl := range reloads {
		t.Run(rl.name, func(t *testing.T) {
			write(rl.extra)
			require.NoError(t, rl.trigger())
			// Sample until the reload is visible and for a second after it.
			var seenAt time.Time
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				checks, err := c.Agent().Checks()
				require.NoError(t, err)
				for _, id := range []string{"api-http", "worker-ttl"} {
					require.NotNil(t, checks[id], id)
					require.Equal(t, api.HealthPassing, checks[id].Status, "%s during %s", id, rl.name)
				}
				if seenAt.IsZero() {
					svcs, err := c.Agent().Services()
					require.NoError(t, err)
					if svcs[rl.wantSvc] != nil {
						require.NotContains(t, svcs, "doomed")
						seenAt = time.Now()
					}
				} else if time.Since(seenAt) > time.Second {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			require.False(t, seenAt.IsZero(), "reload did not apply within 15s")
			checks, err := c.Agent().Checks()
			require.NoError(t, err)
			require.Equal(t, "pushed", checks["worker-ttl"].Output)
		})
	}
}

// TestE2E_AgentHealthServiceEndpoints: /v1/agent/health/service/id/:id
// and /name/:name answer 200 passing, 429 warning, 503 critical and 503
// maintenance (JSON and format=text), 404 for unknown ones, and the
// official client reads them.
func TestE2E_AgentHealthServiceEndpoints(t *testing.T) {
	a := startDev(t)
	c := a.Client()
	require.NoError(t, c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Check: &api.AgentServiceCheck{CheckID: "web1-ttl", TTL: "10m"},
	}))
	require.NoError(t, c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web2", Name: "web", Check: &api.AgentServiceCheck{CheckID: "web2-ttl", TTL: "10m", Status: api.HealthPassing},
	}))

	expect := func(path string, code int, text string) {
		t.Helper()
		r := do(t, a, "GET", path+"?format=text", nil)
		require.Equal(t, code, r.Status, "%s: %s", path, r.Body)
		require.Equal(t, text, r.Body, path)
		r = do(t, a, "GET", path, nil)
		require.Equal(t, code, r.Status, "%s (JSON): %s", path, r.Body)
	}
	expect("/v1/agent/health/service/id/web1", 503, "critical")
	expect("/v1/agent/health/service/id/web2", 200, "passing")
	expect("/v1/agent/health/service/name/web", 503, "critical")

	require.NoError(t, c.Agent().UpdateTTL("web1-ttl", "", api.HealthWarning))
	expect("/v1/agent/health/service/id/web1", 429, "warning")
	expect("/v1/agent/health/service/name/web", 429, "warning")
	status, info, err := c.Agent().AgentHealthServiceByID("web1")
	require.NoError(t, err)
	require.Equal(t, api.HealthWarning, status)
	require.Equal(t, "web1", info.Service.ID)
	require.Len(t, info.Checks, 1)

	require.NoError(t, c.Agent().UpdateTTL("web1-ttl", "", api.HealthPassing))
	expect("/v1/agent/health/service/id/web1", 200, "passing")
	expect("/v1/agent/health/service/name/web", 200, "passing")
	status, list, err := c.Agent().AgentHealthServiceByName("web")
	require.NoError(t, err)
	require.Equal(t, api.HealthPassing, status)
	require.Len(t, list, 2)

	require.NoError(t, c.Agent().EnableServiceMaintenance("web1", "upgrade"))
	expect("/v1/agent/health/service/id/web1", 503, "maintenance")
	expect("/v1/agent/health/service/id/web2", 200, "passing")
	require.NoError(t, c.Agent().DisableServiceMaintenance("web1"))
	require.NoError(t, c.Agent().EnableNodeMaintenance("rack swap"))
	expect("/v1/agent/health/service/id/web2", 503, "maintenance")
	require.NoError(t, c.Agent().DisableNodeMaintenance())
	expect("/v1/agent/health/service/id/web2", 200, "passing")

	expect("/v1/agent/health/service/id/nope", 404, "ServiceId nope not found")
	expect("/v1/agent/health/service/name/nope", 404, "ServiceName nope Not Found")
}

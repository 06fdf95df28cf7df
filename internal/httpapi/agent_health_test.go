package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/state"
)

// setChecks replaces the fake agent's checks.
func (a *fakeAgent) setChecks(checks ...*state.HealthCheck) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = map[string]*state.HealthCheck{}
	for _, c := range checks {
		a.checks[c.CheckID] = c
	}
}

func TestAgentHealthService_StatusCodes(t *testing.T) {
	env := newTestEnv(t)
	env.agent.services["web1"] = &state.NodeService{ID: "web1", Service: "web", Port: 80}
	env.agent.services["web2"] = &state.NodeService{ID: "web2", Service: "web", Port: 81}
	env.agent.services["db"] = &state.NodeService{ID: "db", Service: "db", Port: 5432}

	chk := func(id, svc, status string) *state.HealthCheck {
		return &state.HealthCheck{Node: "node1", CheckID: id, Name: id, ServiceID: svc, Status: status}
	}
	tests := []struct {
		name       string
		checks     []*state.HealthCheck
		path       string
		wantCode   int
		wantStatus string
	}{
		{"no checks is passing", nil, "/v1/agent/health/service/id/web1", 200, "passing"},
		{"passing", []*state.HealthCheck{chk("c1", "web1", "passing")}, "/v1/agent/health/service/id/web1", 200, "passing"},
		{"warning", []*state.HealthCheck{chk("c1", "web1", "passing"), chk("c2", "web1", "warning")}, "/v1/agent/health/service/id/web1", 429, "warning"},
		{"critical beats warning", []*state.HealthCheck{chk("c1", "web1", "critical"), chk("c2", "web1", "warning")}, "/v1/agent/health/service/id/web1", 503, "critical"},
		{"other service's check ignored", []*state.HealthCheck{chk("c1", "db", "critical")}, "/v1/agent/health/service/id/web1", 200, "passing"},
		{"node check counts", []*state.HealthCheck{chk("node", "", "critical")}, "/v1/agent/health/service/id/web1", 503, "critical"},
		{"service maintenance", []*state.HealthCheck{chk("_service_maintenance:web1", "web1", "critical")}, "/v1/agent/health/service/id/web1", 503, "maintenance"},
		{"node maintenance", []*state.HealthCheck{chk("_node_maintenance", "", "critical")}, "/v1/agent/health/service/id/db", 503, "maintenance"},
		{"name: worst instance", []*state.HealthCheck{chk("c1", "web1", "passing"), chk("c2", "web2", "warning")}, "/v1/agent/health/service/name/web", 429, "warning"},
		{"name: all passing", []*state.HealthCheck{chk("c1", "web1", "passing")}, "/v1/agent/health/service/name/web", 200, "passing"},
		{"name: one critical", []*state.HealthCheck{chk("c1", "web1", "critical")}, "/v1/agent/health/service/name/web", 503, "critical"},
		{"unknown id", nil, "/v1/agent/health/service/id/nope", 404, "ServiceId nope not found"},
		{"unknown name", nil, "/v1/agent/health/service/name/nope", 404, "ServiceName nope Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.agent.setChecks(tt.checks...)

			rec := env.do("GET", tt.path+"?format=text", "")
			require.Equal(t, tt.wantCode, rec.Code)
			require.Equal(t, tt.wantStatus, rec.Body.String())
			require.Contains(t, rec.Header().Get("Content-Type"), "text/plain")

			rec = env.do("GET", tt.path, "", "Accept", "text/plain")
			require.Equal(t, tt.wantCode, rec.Code)
			require.Equal(t, tt.wantStatus, rec.Body.String(), "Accept: text/plain selects the text form")

			rec = env.do("GET", tt.path, "")
			require.Equal(t, tt.wantCode, rec.Code)
			require.Contains(t, rec.Header().Get("Content-Type"), "application/json")
			if tt.wantCode == 404 {
				return
			}
			if strings.Contains(tt.path, "/service/name/") {
				var list []api.AgentServiceChecksInfo
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
				require.Len(t, list, 2)
				return
			}
			var one api.AgentServiceChecksInfo
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &one))
			require.Equal(t, tt.wantStatus, one.AggregatedStatus)
			require.NotNil(t, one.Service)
			require.NotNil(t, one.Checks)
		})
	}
}

func TestAgentHealthService_OfficialClient(t *testing.T) {
	env := newTestEnv(t)
	env.agent.services["web1"] = &state.NodeService{ID: "web1", Service: "web", Port: 80, Tags: []string{"v1"}}
	env.agent.setChecks(&state.HealthCheck{Node: "node1", CheckID: "service:web1", Name: "http", ServiceID: "web1", ServiceName: "web", Status: "warning", Output: "slow"})
	ag := newOfficialClient(t, env).Agent()

	status, info, err := ag.AgentHealthServiceByID("web1")
	require.NoError(t, err)
	require.Equal(t, api.HealthWarning, status)
	require.Equal(t, api.HealthWarning, info.AggregatedStatus)
	require.Equal(t, "web1", info.Service.ID)
	require.Equal(t, "web", info.Service.Service)
	require.Equal(t, []string{"v1"}, info.Service.Tags)
	require.Len(t, info.Checks, 1)
	require.Equal(t, "slow", info.Checks[0].Output)
	require.Equal(t, api.HealthWarning, info.Checks.AggregatedStatus(), "the client's own aggregation agrees")

	status, list, err := ag.AgentHealthServiceByName("web")
	require.NoError(t, err)
	require.Equal(t, api.HealthWarning, status)
	require.Len(t, list, 1)

	status, info, err = ag.AgentHealthServiceByID("nope")
	require.NoError(t, err)
	require.Equal(t, api.HealthCritical, status)
	require.Nil(t, info)
	status, list, err = ag.AgentHealthServiceByName("nope")
	require.NoError(t, err)
	require.Equal(t, api.HealthCritical, status)
	require.Empty(t, list)
}

func TestAgent_ServicesHashBlocking(t *testing.T) {
	wa := &watchingAgent{fakeAgent: newFakeAgent(), ch: make(chan struct{})}
	env := newTestEnv(t, func(c *Config) { c.Agent = wa })
	require.Equal(t, 200, env.do("PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`).Code)
	rec := env.do("GET", "/v1/agent/services", "")
	require.Equal(t, 200, rec.Code)
	hash := rec.Header().Get("X-Consul-ContentHash")
	require.NotEmpty(t, hash)
	require.Equal(t, hash, env.do("GET", "/v1/agent/services", "").Header().Get("X-Consul-ContentHash"), "same content, same hash")

	t.Run("times out with the same hash", func(t *testing.T) {
		start := time.Now()
		rec := env.do("GET", "/v1/agent/services?hash="+hash+"&wait=50ms", "")
		require.Equal(t, 200, rec.Code)
		require.Equal(t, hash, rec.Header().Get("X-Consul-ContentHash"))
		require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})

	t.Run("wakes on change", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			done <- env.do("GET", "/v1/agent/services?hash="+hash+"&wait=1m", "").Header().Get("X-Consul-ContentHash")
		}()
		require.Equal(t, 200, env.do("PUT", "/v1/agent/service/register", `{"Name":"db","Port":5432}`).Code)
		select {
		case got := <-done:
			require.NotEqual(t, hash, got)
		case <-time.After(10 * time.Second):
			t.Fatal("blocking query did not wake on change")
		}
	})

	t.Run("other hash answers at once", func(t *testing.T) {
		start := time.Now()
		rec := env.do("GET", "/v1/agent/services?hash=stale&wait=1m", "")
		require.Equal(t, 200, rec.Code)
		require.Less(t, time.Since(start), 10*time.Second)
	})
}

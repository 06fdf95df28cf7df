package httpapi

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/state"
)

func TestAgent_ServiceLifecycle(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do("PUT", "/v1/agent/service/register", `{"name":"web","id":"web1","port":80,"check":{"ttl":"10s"}}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	require.Empty(t, rec.Body.String())

	rec = env.do("GET", "/v1/agent/services", "")
	require.Equal(t, 200, rec.Code)
	var svcs map[string]map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &svcs))
	require.Equal(t, "web", svcs["web1"]["Service"])
	require.Equal(t, "dc1", svcs["web1"]["Datacenter"])
	require.Equal(t, []any{}, svcs["web1"]["Tags"])
	require.Equal(t, map[string]any{"Passing": 1.0, "Warning": 1.0}, svcs["web1"]["Weights"])

	rec = env.do("GET", "/v1/agent/services?filter="+`Service+%3D%3D+"nope"`, "")
	require.Equal(t, "{}", rec.Body.String())
	rec = env.do("GET", "/v1/agent/services?filter="+`Port+%3D%3D+80`, "")
	require.Contains(t, rec.Body.String(), "web1")

	rec = env.do("GET", "/v1/agent/service/web1", "")
	require.Equal(t, 200, rec.Code)
	require.NotEmpty(t, rec.Header().Get("X-Consul-ContentHash"))
	require.Contains(t, rec.Body.String(), `"ContentHash":"`+rec.Header().Get("X-Consul-ContentHash")+`"`)
	require.Equal(t, 404, env.do("GET", "/v1/agent/service/nope", "").Code)

	rec = env.do("GET", "/v1/agent/checks", "")
	require.Contains(t, rec.Body.String(), `"service:web1"`)

	rec = env.do("PUT", "/v1/agent/service/maintenance/web1?enable=true&reason=patching", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "patching", env.agent.svcMaint["web1"])
	require.Equal(t, 400, env.do("PUT", "/v1/agent/service/maintenance/web1", "").Code)
	require.Equal(t, 400, env.do("PUT", "/v1/agent/service/maintenance/web1?enable=perhaps", "").Code)
	require.Equal(t, 404, env.do("PUT", "/v1/agent/service/maintenance/nope?enable=false", "").Code)

	require.Equal(t, 200, env.do("PUT", "/v1/agent/service/deregister/web1", "").Code)
	require.Equal(t, 404, env.do("PUT", "/v1/agent/service/deregister/web1", "").Code)
}

func TestAgent_ReplaceExistingChecks(t *testing.T) {
	env := newTestEnv(t)
	env.do("PUT", "/v1/agent/service/register", `{"Name":"web","Checks":[{"TTL":"1s"},{"TTL":"2s"}]}`)
	require.Len(t, env.agent.Checks(), 2)
	env.agent.checks["extra"] = &state.HealthCheck{CheckID: "extra", ServiceID: "web"}
	env.agent.checks["node-check"] = &state.HealthCheck{CheckID: "node-check"}

	// Without the flag stale checks stay.
	env.do("PUT", "/v1/agent/service/register", `{"Name":"web","Check":{"TTL":"1s"}}`)
	require.Len(t, env.agent.Checks(), 5)

	rec := env.do("PUT", "/v1/agent/service/register?replace-existing-checks", `{"Name":"web","Check":{"TTL":"1s"}}`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	ids := []string{}
	for id := range env.agent.Checks() {
		ids = append(ids, id)
	}
	require.ElementsMatch(t, []string{"service:web", "node-check"}, ids)
	require.Equal(t, 400, env.do("PUT", "/v1/agent/service/register?replace-existing-checks=sure", `{"Name":"web"}`).Code)
}

func TestAgent_Checks(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, 200, env.do("PUT", "/v1/agent/check/register", `{"Name":"mem","ID":"mem","TTL":"10s"}`).Code)
	rec := env.do("PUT", "/v1/agent/check/register", `{"Name":"nokind"}`)
	require.Equal(t, 400, rec.Code, "backend validation maps to 400")

	for path, status := range map[string]string{"pass": "passing", "warn": "warning", "fail": "critical"} {
		rec = env.do("PUT", "/v1/agent/check/"+path+"/mem?note=hi+"+path, "")
		require.Equal(t, 200, rec.Code)
		c := env.agent.Checks()["mem"]
		require.Equal(t, status, c.Status)
		require.Equal(t, "hi "+path, c.Output)
	}
	rec = env.do("PUT", "/v1/agent/check/update/mem", `{"Status":"warning","Output":"slow"}`)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "slow", env.agent.Checks()["mem"].Output)
	require.Equal(t, 404, env.do("PUT", "/v1/agent/check/pass/nope", "").Code)
	require.Equal(t, 404, env.do("PUT", "/v1/agent/check/update/nope", `{"Status":"passing"}`).Code)

	rec = env.do("GET", "/v1/agent/checks?filter=Status+%3D%3D+warning", "")
	require.Contains(t, rec.Body.String(), `"mem"`)
	rec = env.do("GET", "/v1/agent/checks?filter=Status+%3D%3D+passing", "")
	require.Equal(t, "{}", rec.Body.String())

	require.Equal(t, 200, env.do("PUT", "/v1/agent/check/deregister/mem", "").Code)
	require.Equal(t, 404, env.do("PUT", "/v1/agent/check/deregister/mem", "").Code)
}

func TestAgent_Misc(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do("GET", "/v1/agent/version", "")
	require.JSONEq(t, `{"SHA":"","BuildDate":"","HumanVersion":"1.0.0-dev","FIPS":""}`, rec.Body.String())

	rec = env.do("GET", "/v1/agent/members", "")
	var members []Member
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &members))
	require.Len(t, members, 2)
	rec = env.do("GET", "/v1/agent/members?wan=1", "")
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &members))
	require.Len(t, members, 1)
	rec = env.do("GET", "/v1/agent/members?filter=Status+%3D%3D+4", "")
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &members))
	require.Equal(t, "node2", members[0].Name)
	require.Equal(t, 400, env.do("GET", "/v1/agent/members?filter=%3D%3D", "").Code)

	rec = env.do("GET", "/v1/agent/self", "")
	require.Contains(t, rec.Body.String(), `"NodeName":"node1"`)
	require.Equal(t, 200, env.do("GET", "/v1/agent/host", "").Code)

	require.Equal(t, 200, env.do("PUT", "/v1/agent/maintenance?enable=true&reason=x", "").Code)
	require.True(t, env.agent.nodeMaint)
	require.Equal(t, 200, env.do("PUT", "/v1/agent/maintenance?enable=false", "").Code)
	require.False(t, env.agent.nodeMaint)
	rec = env.do("PUT", "/v1/agent/maintenance", "")
	require.Equal(t, 400, rec.Code)
	require.Equal(t, "Missing value for enable", rec.Body.String())

	require.Equal(t, 200, env.do("PUT", "/v1/agent/reload", "").Code)
	require.Equal(t, 200, env.do("PUT", "/v1/agent/leave", "").Code)
	require.Equal(t, 1, env.agent.reloaded)
	require.Equal(t, 1, env.agent.left)
}

// watchingAgent adds LocalStateWatcher to fakeAgent.
type watchingAgent struct {
	*fakeAgent
	wmu sync.Mutex
	ch  chan struct{}
}

func (w *watchingAgent) LocalStateChanged() <-chan struct{} {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.ch
}

func (w *watchingAgent) AddService(def *local.ServiceDefinition, token string) error {
	err := w.fakeAgent.AddService(def, token)
	w.wmu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.wmu.Unlock()
	return err
}

func TestAgent_ServiceHashBlocking(t *testing.T) {
	wa := &watchingAgent{fakeAgent: newFakeAgent(), ch: make(chan struct{})}
	env := newTestEnv(t, func(c *Config) { c.Agent = wa })
	require.Equal(t, 200, env.do("PUT", "/v1/agent/service/register", `{"Name":"web","Port":80}`).Code)
	hash := env.do("GET", "/v1/agent/service/web", "").Header().Get("X-Consul-ContentHash")
	require.NotEmpty(t, hash)

	t.Run("times out with the same hash", func(t *testing.T) {
		start := time.Now()
		rec := env.do("GET", "/v1/agent/service/web?hash="+hash+"&wait=50ms", "")
		require.Equal(t, 200, rec.Code)
		require.Equal(t, hash, rec.Header().Get("X-Consul-ContentHash"))
		require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})

	t.Run("wakes on change", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			done <- env.do("GET", "/v1/agent/service/web?hash="+hash+"&wait=1m", "").Header().Get("X-Consul-ContentHash")
		}()
		require.Equal(t, 200, env.do("PUT", "/v1/agent/service/register", `{"Name":"web","Port":81}`).Code)
		select {
		case got := <-done:
			require.NotEqual(t, hash, got)
		case <-time.After(10 * time.Second):
			t.Fatal("blocking query did not wake on change")
		}
	})

	t.Run("other hash answers at once", func(t *testing.T) {
		rec := env.do("GET", "/v1/agent/service/web?hash=stale&wait=1m", "")
		require.Equal(t, 200, rec.Code)
	})
}

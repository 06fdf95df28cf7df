package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// newOfficialClient serves env over a real HTTP listener and returns the
// official Consul client pointed at it.
func newOfficialClient(t *testing.T, env *testEnv) *api.Client {
	t.Helper()
	srv := httptest.NewServer(env.h)
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	cfg := api.DefaultConfig()
	cfg.Address = srv.Listener.Addr().String()
	cfg.Token = "client-token"
	cfg.Transport = tr
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	return c
}

func TestOfficialClient_KV(t *testing.T) {
	env := newTestEnv(t)
	kv := newOfficialClient(t, env).KV()

	_, err := kv.Put(&api.KVPair{Key: "app/a", Value: []byte("1"), Flags: 7}, nil)
	require.NoError(t, err)
	_, err = kv.Put(&api.KVPair{Key: "app/b/c", Value: []byte("2")}, nil)
	require.NoError(t, err)

	pair, meta, err := kv.Get("app/a", nil)
	require.NoError(t, err)
	require.NotNil(t, pair)
	require.Equal(t, []byte("1"), pair.Value)
	require.EqualValues(t, 7, pair.Flags)
	require.True(t, meta.KnownLeader)
	require.NotZero(t, meta.LastIndex)
	require.Equal(t, "client-token", env.caller.lastCall(rpc.MethodKVSGet).(*rpc.KeyRequest).Token)

	pair, meta, err = kv.Get("nope", &api.QueryOptions{AllowStale: true})
	require.NoError(t, err)
	require.Nil(t, pair)
	require.NotZero(t, meta.LastIndex, "404 still carries X-Consul-Index")

	pairs, _, err := kv.List("app/", nil)
	require.NoError(t, err)
	require.Len(t, pairs, 2)

	keys, _, err := kv.Keys("app/", "/", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"app/a", "app/b/"}, keys)

	ok, _, err := kv.CAS(&api.KVPair{Key: "app/a", Value: []byte("x"), ModifyIndex: 1}, nil)
	require.NoError(t, err)
	require.False(t, ok)
	ok, _, err = kv.CAS(&api.KVPair{Key: "app/a", Value: []byte("x"), ModifyIndex: pair0Index(t, kv, "app/a")}, nil)
	require.NoError(t, err)
	require.True(t, ok)

	// Blocking query parameters arrive as the client sends them.
	_, _, err = kv.Get("app/a", &api.QueryOptions{WaitIndex: 99, WaitTime: 3 * time.Second})
	require.NoError(t, err)
	req := env.caller.lastCall(rpc.MethodKVSGet).(*rpc.KeyRequest)
	require.EqualValues(t, 99, req.MinQueryIndex)
	require.Equal(t, 3*time.Second, req.MaxQueryTime)

	_, err = kv.Delete("app/a", nil)
	require.NoError(t, err)
	_, err = kv.DeleteTree("app/", nil)
	require.NoError(t, err)
	pairs, _, err = kv.List("app/", nil)
	require.NoError(t, err)
	require.Empty(t, pairs)

	_, _, err = kv.Acquire(&api.KVPair{Key: "lock", Session: "s", Flags: 3}, nil)
	require.NoError(t, err)
	lock := env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest)
	require.Equal(t, rpc.KVLock, lock.Op)
	require.Equal(t, "s", lock.Entry.Session)
	require.EqualValues(t, 3, lock.Entry.Flags)
}

func pair0Index(t *testing.T, kv *api.KV, key string) uint64 {
	t.Helper()
	p, _, err := kv.Get(key, nil)
	require.NoError(t, err)
	require.NotNil(t, p)
	return p.ModifyIndex
}

func TestOfficialClient_CatalogHealthStatus(t *testing.T) {
	env := newTestEnv(t)
	c := newOfficialClient(t, env)

	_, err := c.Catalog().Register(&api.CatalogRegistration{
		Node: "n1", Address: "10.0.0.1",
		Service: &api.AgentService{ID: "web1", Service: "web", Tags: []string{"v1"}, Port: 80},
		Check:   &api.AgentCheck{CheckID: "c1", Name: "c", Status: api.HealthPassing, ServiceID: "web1"},
	}, nil)
	require.NoError(t, err)

	services, meta, err := c.Catalog().Services(nil)
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"web": {"v1"}}, services)
	require.NotZero(t, meta.LastIndex)

	nodes, _, err := c.Catalog().Nodes(nil)
	require.NoError(t, err)
	require.Empty(t, nodes)

	node, _, err := c.Catalog().Node("missing", nil)
	require.NoError(t, err)
	require.Nil(t, node)

	env.caller.healthOut = []*state.CheckServiceNode{{
		Node:    &state.Node{Node: "n1", Address: "10.0.0.1"},
		Service: &state.NodeService{ID: "web1", Service: "web", Port: 80},
		Checks:  []*state.HealthCheck{{CheckID: "c1", Status: "passing", Definition: state.HealthCheckDefinition{Interval: state.Duration(10 * time.Second)}}},
	}}
	entries, _, err := c.Health().Service("web", "", true, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, 80, entries[0].Service.Port)
	require.Equal(t, 10*time.Second, entries[0].Checks[0].Definition.IntervalDuration)

	_, _, err = c.Health().State("bogus", nil)
	require.Error(t, err)
	checks, _, err := c.Health().State(api.HealthAny, nil)
	require.NoError(t, err)
	require.Empty(t, checks)

	leader, err := c.Status().Leader()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8300", leader)
	peers, err := c.Status().Peers()
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:8300"}, peers)

	dcs, err := c.Catalog().Datacenters()
	require.NoError(t, err)
	require.Equal(t, []string{"dc1"}, dcs)
}

func TestOfficialClient_Agent(t *testing.T) {
	env := newTestEnv(t)
	a := newOfficialClient(t, env).Agent()

	err := a.ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Port: 80, Tags: []string{"v1"}, Meta: map[string]string{"k": "v"},
		Check: &api.AgentServiceCheck{TTL: "10s", DeregisterCriticalServiceAfter: "1m"},
	})
	require.NoError(t, err)

	services, err := a.Services()
	require.NoError(t, err)
	require.Contains(t, services, "web1")
	require.Equal(t, "web", services["web1"].Service)
	require.Equal(t, "dc1", services["web1"].Datacenter)
	require.Equal(t, api.AgentWeights{Passing: 1, Warning: 1}, services["web1"].Weights)

	svc, _, err := a.Service("web1", nil)
	require.NoError(t, err)
	require.NotEmpty(t, svc.ContentHash)
	_, _, err = a.Service("nope", nil)
	require.Error(t, err)

	filtered, err := a.ServicesWithFilter(`Service == "other"`)
	require.NoError(t, err)
	require.Empty(t, filtered)

	require.NoError(t, a.UpdateTTL("service:web1", "all good", api.HealthPassing))
	checks, err := a.Checks()
	require.NoError(t, err)
	require.Equal(t, api.HealthPassing, checks["service:web1"].Status)
	require.Equal(t, "all good", checks["service:web1"].Output)
	require.NoError(t, a.FailTTL("service:web1", "bad"))
	require.Error(t, a.PassTTL("nope", ""))

	require.NoError(t, a.CheckRegister(&api.AgentCheckRegistration{ID: "mem", Name: "mem", AgentServiceCheck: api.AgentServiceCheck{TTL: "5s"}}))
	require.NoError(t, a.CheckDeregister("mem"))

	require.NoError(t, a.EnableServiceMaintenance("web1", "patch"))
	require.NoError(t, a.DisableServiceMaintenance("web1"))
	require.NoError(t, a.EnableNodeMaintenance("patch"))
	require.NoError(t, a.DisableNodeMaintenance())

	members, err := a.Members(false)
	require.NoError(t, err)
	require.Len(t, members, 2)
	wan, err := a.Members(true)
	require.NoError(t, err)
	require.Len(t, wan, 1)

	name, err := a.NodeName()
	require.NoError(t, err)
	require.Equal(t, "node1", name)
	ver, err := a.Version()
	require.NoError(t, err)
	require.Equal(t, "1.0.0-dev", ver["HumanVersion"])

	require.NoError(t, a.ServiceDeregister("web1"))
	require.Error(t, a.ServiceDeregister("web1"))
	require.NoError(t, a.Reload())
}

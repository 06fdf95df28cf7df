package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestCatalog_RegisterDecode(t *testing.T) {
	tests := []struct {
		name, path, body, msg string
	}{
		{"catalog malformed", "/v1/catalog/register", `{"Node":`, "Request decode failed"},
		{"catalog wrong type", "/v1/catalog/register", `{"Node":"n","Address":"a","Service":{"Port":"80"}}`, "Request decode failed"},
		{"catalog trailing data", "/v1/catalog/register", `{"Node":"n","Address":"a"} {}`, "Request decode failed"},
		{"catalog array", "/v1/catalog/register", `[1,2]`, "Request decode failed"},
		{"catalog no node", "/v1/catalog/register", `{"Address":"a"}`, "Must provide node"},
		{"catalog no address", "/v1/catalog/register", `{"Node":"n"}`, "Must provide address"},
		{"catalog bad check status", "/v1/catalog/register", `{"Node":"n","Address":"a","Check":{"Status":"meh"}}`, "Invalid check status"},
		{"deregister malformed", "/v1/catalog/deregister", `nope`, "Request decode failed"},
		{"deregister no node", "/v1/catalog/deregister", `{}`, "Must provide node"},
		{"service malformed", "/v1/agent/service/register", `{"Name":"web",`, "Request decode failed"},
		{"service wrong type", "/v1/agent/service/register", `{"Name":"web","Port":"eighty"}`, "Request decode failed"},
		{"service bad duration", "/v1/agent/service/register", `{"Name":"web","Check":{"TTL":"ten"}}`, "Request decode failed"},
		{"service empty body", "/v1/agent/service/register", ``, "Request decode failed"},
		{"service no name", "/v1/agent/service/register", `{"Port":80}`, "Missing service name"},
		{"check malformed", "/v1/agent/check/register", `{"Name":1}`, "Request decode failed"},
		{"check no name", "/v1/agent/check/register", `{"TTL":"10s"}`, "Missing check name"},
		{"check bad status", "/v1/agent/check/register", `{"Name":"c","TTL":"10s","Status":"great"}`, "Invalid check status"},
		{"check update malformed", "/v1/agent/check/update/c", `{"Status":`, "Request decode failed"},
		{"check update bad status", "/v1/agent/check/update/c", `{"Status":"fine"}`, "Invalid check status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.do("PUT", tc.path, tc.body)
			require.Equal(t, 400, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.msg)
			require.Zero(t, env.caller.writeCalls())
			require.Empty(t, env.agent.tokens)
		})
	}
}

func TestCatalog_RegisterAndRead(t *testing.T) {
	env := newTestEnv(t)
	body := `{"Node":"n1","Address":"10.0.0.1","Datacenter":"dc1","NodeMeta":{"Some_Key":"v"},
		"Service":{"ID":"web1","Service":"web","Tags":["a"],"Port":80,"Meta":{"x_y":"z"}},
		"Check":{"CheckID":"c1","Name":"c","Status":"passing","ServiceID":"web1"}}`
	rec := env.do("PUT", "/v1/catalog/register?token=t1", body)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	require.Equal(t, "true", rec.Body.String())
	req := env.caller.lastCall(rpc.MethodCatalogRegister).(*rpc.RegisterRequest)
	require.Equal(t, "n1", req.Node)
	require.Equal(t, "t1", req.Token)
	require.Equal(t, "dc1", req.WriteRequest.Datacenter)
	require.Equal(t, map[string]string{"Some_Key": "v"}, req.NodeMeta, "map keys are user data")
	require.Equal(t, map[string]string{"x_y": "z"}, req.Service.Meta)
	require.Equal(t, "passing", req.Check.Status)

	rec = env.do("GET", "/v1/catalog/services", "")
	require.Equal(t, 200, rec.Code)
	requireReadHeaders(t, rec)
	require.JSONEq(t, `{"web":["a"]}`, rec.Body.String())
}

func TestCatalog_EmptyListsAreArrays(t *testing.T) {
	env := newTestEnv(t)
	for target, want := range map[string]string{
		"/v1/catalog/nodes":           "[]",
		"/v1/catalog/services":        "{}",
		"/v1/catalog/service/web":     "[]",
		"/v1/catalog/node/nope":       "null",
		"/v1/catalog/node-services/n": "null",
		"/v1/health/node/n":           "[]",
		"/v1/health/checks/web":       "[]",
		"/v1/health/service/web":      "[]",
		"/v1/health/state/any":        "[]",
		"/v1/status/peers":            `["127.0.0.1:8300"]`,
		"/v1/status/leader":           `"127.0.0.1:8300"`,
		"/v1/catalog/datacenters":     `["dc1"]`,
	} {
		t.Run(target, func(t *testing.T) {
			rec := env.do("GET", target, "")
			require.Equal(t, 200, rec.Code, rec.Body.String())
			require.Equal(t, want, rec.Body.String())
			require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		})
	}
}

func TestCatalog_ParamsReachTheCaller(t *testing.T) {
	env := newTestEnv(t)
	env.do("GET", "/v1/catalog/service/web?tag=a&tag=b&node-meta=env:prod&dc=dc2&index=5&wait=2s&filter=ServicePort+%3D%3D+80", "")
	req := env.caller.lastCall(rpc.MethodCatalogServiceNodes).(*rpc.ServiceSpecificRequest)
	require.Equal(t, "web", req.ServiceName)
	require.Equal(t, []string{"a", "b"}, req.ServiceTags)
	require.Equal(t, map[string]string{"env": "prod"}, req.NodeMetaFilters)
	require.Equal(t, "dc2", req.Datacenter)
	require.EqualValues(t, 5, req.MinQueryIndex)
	require.Equal(t, "ServicePort == 80", req.Filter)

	rec := env.do("GET", "/v1/catalog/node/", "")
	require.Equal(t, 400, rec.Code)
}

func TestCatalog_NodeServicesShapes(t *testing.T) {
	env := newTestEnv(t)
	env.caller.on(rpc.MethodCatalogNodeServices, func(args, reply any) error {
		reply.(*rpc.IndexedNodeServices).NodeServices = &state.NodeServices{
			Node:     &state.Node{Node: "n1"},
			Services: map[string]*state.NodeService{"web": {ID: "web", Service: "web"}},
		}
		return nil
	})
	rec := env.do("GET", "/v1/catalog/node/n1", "")
	var out struct {
		Node     state.Node
		Services map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.Contains(t, string(out.Services["web"]), `"Tags":[]`)
}

func TestHealth_ServicePassingAndState(t *testing.T) {
	env := newTestEnv(t)
	env.caller.healthOut = []*state.CheckServiceNode{
		{Node: &state.Node{Node: "a"}, Service: &state.NodeService{ID: "web", Service: "web"},
			Checks: []*state.HealthCheck{{CheckID: "c1", Status: "passing"}}},
		{Node: &state.Node{Node: "b"}, Service: &state.NodeService{ID: "web", Service: "web"},
			Checks: []*state.HealthCheck{{CheckID: "c1", Status: "passing"}, {CheckID: "c2", Status: "warning"}}},
		{Node: &state.Node{Node: "c"}, Service: &state.NodeService{ID: "web", Service: "web"}},
	}
	var out []state.CheckServiceNode
	rec := env.do("GET", "/v1/health/service/web", "")
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.Len(t, out, 3)
	require.Contains(t, rec.Body.String(), `"Checks":[]`)

	for _, q := range []string{"?passing", "?passing=true", "?passing=1"} {
		rec = env.do("GET", "/v1/health/service/web"+q, "")
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		require.Len(t, out, 2, q)
		require.Equal(t, "a", out[0].Node.Node)
		require.Equal(t, "c", out[1].Node.Node)
	}
	rec = env.do("GET", "/v1/health/service/web?passing=false", "")
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.Len(t, out, 3)

	for _, st := range []string{"any", "passing", "warning", "critical"} {
		require.Equal(t, 200, env.do("GET", "/v1/health/state/"+st, "").Code)
		require.Equal(t, st, env.caller.lastCall(rpc.MethodHealthChecksInState).(*rpc.ChecksInStateRequest).State)
	}
	rec = env.do("GET", "/v1/health/state/maintenance", "")
	require.Equal(t, 400, rec.Code)
	require.Contains(t, rec.Body.String(), "Invalid check state")
}

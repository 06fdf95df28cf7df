package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// stateSnapshot renders everything a bad request could have written:
// KV, catalog nodes/services/checks, and the agent's local services/checks.
func stateSnapshot(t *testing.T, c *api.Client) string {
	t.Helper()
	var lines []string
	pairs, _, err := c.KV().List("", nil)
	require.NoError(t, err)
	for _, p := range pairs {
		lines = append(lines, fmt.Sprintf("kv %s=%q flags=%d", p.Key, p.Value, p.Flags))
	}
	nodes, _, err := c.Catalog().Nodes(nil)
	require.NoError(t, err)
	for _, n := range nodes {
		lines = append(lines, fmt.Sprintf("node %s %s", n.Node, n.Address))
	}
	svcs, _, err := c.Catalog().Services(nil)
	require.NoError(t, err)
	for name, tags := range svcs {
		lines = append(lines, fmt.Sprintf("service %s %v", name, tags))
	}
	checks, _, err := c.Health().State(api.HealthAny, nil)
	require.NoError(t, err)
	for _, ch := range checks {
		lines = append(lines, fmt.Sprintf("check %s/%s %s %q", ch.Node, ch.CheckID, ch.Status, ch.Output))
	}
	asvcs, err := c.Agent().Services()
	require.NoError(t, err)
	for id, s := range asvcs {
		lines = append(lines, fmt.Sprintf("agent-service %s %s %d", id, s.Service, s.Port))
	}
	achecks, err := c.Agent().Checks()
	require.NoError(t, err)
	for id, ch := range achecks {
		lines = append(lines, fmt.Sprintf("agent-check %s %s %q", id, ch.Status, ch.Output))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()

	// Fixture the bad requests must leave untouched.
	_, err := c.KV().Put(&api.KVPair{Key: "keep/x", Value: []byte("keep"), Flags: 7}, nil)
	require.NoError(t, err)
	require.NoError(t, c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "good", Name: "good", Port: 1,
		Check: &api.AgentServiceCheck{CheckID: "good-check", TTL: "10m", Status: api.HealthPassing},
	}))
	waitCheck(t, c, a.Name, "good-check", api.HealthPassing)

	cases := []struct {
		name   string
		method string
		path   string
		body   string
		want   int
	}{
		// catalog/register
		{"catalog malformed json", "PUT", "/v1/catalog/register", `{"Node": "bad1", "Address": `, 400},
		{"catalog empty body", "PUT", "/v1/catalog/register", ``, 400},
		{"catalog node wrong type", "PUT", "/v1/catalog/register", `{"Node": 123, "Address": "10.9.0.1"}`, 400},
		{"catalog port wrong type", "PUT", "/v1/catalog/register",
			`{"Node": "bad2", "Address": "10.9.0.2", "Service": {"Service": "badsvc", "Port": "eighty"}}`, 400},
		{"catalog missing node", "PUT", "/v1/catalog/register", `{"Address": "10.9.0.3"}`, 400},
		{"catalog missing address", "PUT", "/v1/catalog/register", `{"Node": "bad4"}`, 400},
		{"catalog service missing name", "PUT", "/v1/catalog/register",
			`{"Node": "bad5", "Address": "10.9.0.5", "Service": {"ID": "x", "Port": 1}}`, 400},
		{"catalog check bad status", "PUT", "/v1/catalog/register",
			`{"Node": "bad6", "Address": "10.9.0.6", "Check": {"CheckID": "c", "Name": "c", "Status": "weird"}}`, 400},
		{"catalog deregister malformed", "PUT", "/v1/catalog/deregister", `{"Node": `, 400},
		{"catalog deregister missing node", "PUT", "/v1/catalog/deregister", `{}`, 400},

		// agent/service/register
		{"agent service malformed json", "PUT", "/v1/agent/service/register", `{"Name": "bad"`, 400},
		{"agent service port wrong type", "PUT", "/v1/agent/service/register", `{"Name": "bad", "Port": "abc"}`, 400},
		{"agent service tags wrong type", "PUT", "/v1/agent/service/register", `{"Name": "bad", "Tags": "a,b"}`, 400},
		{"agent service missing name", "PUT", "/v1/agent/service/register", `{"Port": 80}`, 400},
		{"agent service bad ttl", "PUT", "/v1/agent/service/register",
			`{"Name": "bad", "Check": {"TTL": "notaduration"}}`, 400},

		// agent checks
		{"agent check malformed json", "PUT", "/v1/agent/check/register", `{"Name": `, 400},
		{"agent check bad ttl", "PUT", "/v1/agent/check/register", `{"Name": "c", "TTL": "abc"}`, 400},
		{"agent check missing name", "PUT", "/v1/agent/check/register", `{"TTL": "10s"}`, 400},
		{"agent check update malformed", "PUT", "/v1/agent/check/update/good-check", `{"Status": `, 400},
		{"agent check update bad status", "PUT", "/v1/agent/check/update/good-check", `{"Status": "bogus"}`, 400},
		{"agent check pass unknown", "PUT", "/v1/agent/check/pass/no-such-check", ``, 404},
		{"agent service deregister unknown", "PUT", "/v1/agent/service/deregister/no-such-service", ``, 404},

		// query parameters
		{"index not a number", "GET", "/v1/kv/keep/x?index=abc", ``, 400},
		{"index negative", "GET", "/v1/catalog/services?index=-1", ``, 400},
		{"wait not a duration", "GET", "/v1/kv/keep/x?index=1&wait=xyz", ``, 400},
		{"wait on catalog", "GET", "/v1/catalog/nodes?index=1&wait=10parsecs", ``, 400},
		{"kv flags not a number", "PUT", "/v1/kv/bad/flags?flags=abc", `v`, 400},
		{"kv flags negative", "PUT", "/v1/kv/bad/flags2?flags=-1", `v`, 400},
		{"kv cas not a number", "PUT", "/v1/kv/bad/cas?cas=abc", `v`, 400},
		{"kv delete cas not a number", "DELETE", "/v1/kv/keep/x?cas=abc", ``, 400},
		{"kv put overwrite bad flags", "PUT", "/v1/kv/keep/x?flags=zz", `changed`, 400},
		{"kv missing key name", "PUT", "/v1/kv/", `v`, 400},
		{"stale and consistent", "GET", "/v1/kv/keep/x?stale&consistent", ``, 400},

		// routing
		{"wrong method", "DELETE", "/v1/catalog/services", ``, 405},
		{"unknown path", "GET", "/v1/no-such-endpoint", ``, 404},
	}

	before := stateSnapshot(t, c)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := doString(t, a, tc.method, tc.path, tc.body)
			require.Equal(t, tc.want, r.Status, "%s %s %q -> body %q", tc.method, tc.path, tc.body, r.Body)
			if tc.want == http.StatusBadRequest {
				msg := strings.TrimSpace(r.Body)
				require.NotEmpty(t, msg, "a 400 must say what was wrong")
				require.NotContains(t, msg, "\n", "the message should be one line: %q", msg)
				require.NotContains(t, strings.ToLower(msg), "panic")
			}
			after := stateSnapshot(t, c)
			require.Equal(t, before, after, "%s %s %q changed state", tc.method, tc.path, tc.body)
		})
	}

	// The agent survived all of it.
	require.NoError(t, a.Ready())
	require.Equal(t, "keep", string(mustKV(t, c, "keep/x").Value))
}

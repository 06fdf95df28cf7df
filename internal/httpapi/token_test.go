package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestToken_Extraction(t *testing.T) {
	tests := []struct {
		name   string
		target string
		hdr    []string
		want   string
	}{
		{"none", "/v1/kv/k", nil, ""},
		{"header", "/v1/kv/k", []string{"X-Consul-Token", "hdr-tok"}, "hdr-tok"},
		{"bearer", "/v1/kv/k", []string{"Authorization", "Bearer bear-tok"}, "bear-tok"},
		{"bearer lowercase scheme", "/v1/kv/k", []string{"Authorization", "bearer bear-tok"}, "bear-tok"},
		{"basic auth ignored", "/v1/kv/k", []string{"Authorization", "Basic abc"}, ""},
		{"query", "/v1/kv/k?token=q-tok", nil, "q-tok"},
		{"query beats header", "/v1/kv/k?token=q-tok", []string{"X-Consul-Token", "hdr-tok"}, "q-tok"},
		{"header beats bearer", "/v1/kv/k", []string{"X-Consul-Token", "hdr-tok", "Authorization", "Bearer b"}, "hdr-tok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resolved []string
			env := newTestEnv(t, func(c *Config) {
				c.ACL = acl.ResolverFunc(func(tok string) (acl.Authorizer, error) {
					resolved = append(resolved, tok)
					return acl.AllowAll(), nil
				})
			})
			// Read: token in QueryOptions and resolved once.
			env.do("GET", tc.target, "", tc.hdr...)
			require.Equal(t, tc.want, env.caller.lastCall(rpc.MethodKVSGet).(*rpc.KeyRequest).Token)
			require.Equal(t, []string{tc.want}, resolved)
			// Write: token in WriteRequest.
			env.do("PUT", tc.target, "v", tc.hdr...)
			require.Equal(t, tc.want, env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest).Token)
			// Agent: token handed to the backend.
			env.do("PUT", "/v1/agent/service/register"+queryOf(tc.target), `{"Name":"web"}`, tc.hdr...)
			require.Equal(t, tc.want, env.agent.tokens[len(env.agent.tokens)-1])
		})
	}
}

func queryOf(target string) string {
	for i := range target {
		if target[i] == '?' {
			return target[i:]
		}
	}
	return ""
}

func TestToken_Denied(t *testing.T) {
	tests := []struct{ method, target, body string }{
		{"GET", "/v1/kv/k", ""},
		{"GET", "/v1/kv/k?keys", ""},
		{"PUT", "/v1/kv/k", "v"},
		{"DELETE", "/v1/kv/k", ""},
		{"DELETE", "/v1/kv/k?recurse", ""},
		{"PUT", "/v1/catalog/register", `{"Node":"n","Address":"1.2.3.4"}`},
		{"PUT", "/v1/catalog/deregister", `{"Node":"n"}`},
		{"GET", "/v1/catalog/service/web", ""},
		{"GET", "/v1/catalog/node/n", ""},
		{"GET", "/v1/health/service/web", ""},
		{"GET", "/v1/health/node/n", ""},
		{"GET", "/v1/agent/self", ""},
		{"GET", "/v1/agent/host", ""},
		{"PUT", "/v1/agent/service/register", `{"Name":"web"}`},
		{"PUT", "/v1/agent/check/register", `{"Name":"c","TTL":"10s"}`},
		{"PUT", "/v1/agent/check/pass/c", ""},
		{"PUT", "/v1/agent/maintenance?enable=true", ""},
		{"PUT", "/v1/agent/reload", ""},
		{"PUT", "/v1/agent/leave", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config) { c.ACL = acl.StaticResolver(acl.DenyAll()) })
			rec := env.do(tc.method, tc.target, tc.body)
			require.Equal(t, http.StatusForbidden, rec.Code)
			require.Equal(t, "Permission denied", rec.Body.String())
			require.Empty(t, env.caller.Calls())
			require.Empty(t, env.agent.tokens)
		})
	}

	t.Run("lists are filtered, not refused", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.ACL = acl.StaticResolver(acl.DenyAll()) })
		env.agent.services["web"] = &state.NodeService{ID: "web", Service: "web"}
		rec := env.do("GET", "/v1/agent/services", "")
		require.Equal(t, 200, rec.Code)
		require.Equal(t, "{}", rec.Body.String())
		rec = env.do("GET", "/v1/agent/members", "")
		require.Equal(t, "[]", rec.Body.String())
	})

	t.Run("unknown token", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) {
			c.ACL = acl.ResolverFunc(func(string) (acl.Authorizer, error) {
				return nil, fmt.Errorf("resolve: %w", acl.ErrTokenNotFound)
			})
		})
		rec := env.do("GET", "/v1/kv/k", "", "X-Consul-Token", "bogus")
		require.Equal(t, 403, rec.Code)
		require.Equal(t, "ACL not found", rec.Body.String())
		// Endpoints that need no authorization do not resolve the token.
		require.Equal(t, 200, env.do("GET", "/v1/status/leader", "", "X-Consul-Token", "bogus").Code)
	})
}

func TestErrors_Mapping(t *testing.T) {
	tests := []struct {
		err  error
		code int
		msg  string
	}{
		{fmt.Errorf("kv: %w: key too long", rpc.ErrBadRequest), 400, "kv: bad request: key too long"},
		{fmt.Errorf("x: %w", rpc.ErrNotFound), 404, "x: rpc: not found"},
		{rpc.ErrPermissionDenied, 403, "Permission denied"},
		{fmt.Errorf("value: %w", rpc.ErrTooLarge), 413, "value: request entity too large"},
		{fmt.Errorf("apply: %w", rpc.ErrNoLeader), 500, "No cluster leader"},
		{errors.New("disk on fire"), 500, "disk on fire"},
		{acl.ErrTokenNotFound, 403, "ACL not found"},
		{badRequest("Missing key name"), 400, "Missing key name"},
	}
	for _, tc := range tests {
		t.Run(tc.msg, func(t *testing.T) {
			code, msg := errorStatus(tc.err)
			require.Equal(t, tc.code, code)
			require.Equal(t, tc.msg, msg)

			// The same error returned by the Caller reaches the client.
			env := newTestEnv(t)
			env.caller.on(rpc.MethodKVSGet, func(args, reply any) error { return tc.err })
			rec := env.do("GET", "/v1/kv/k", "")
			require.Equal(t, tc.code, rec.Code)
			require.Equal(t, tc.msg, rec.Body.String())
		})
	}
}

// TestQueryParams_ParsedOnce: the query string is parsed once per request
// (in ServeHTTP) and every handler reads the same values.
func TestQueryParams_ParsedOnce(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/kv/k?index=7&token=secret&wait=5s", nil)
	// Without ServeHTTP the values are parsed on demand.
	require.Equal(t, "7", queryParams(r).Get("index"))

	r = withToken(r, acl.AllowAllResolver())
	first := queryParams(r)
	require.Equal(t, "7", first.Get("index"))
	require.Equal(t, "secret", tokenOf(r))
	r.URL.RawQuery = "index=8" // not parsed again
	require.Equal(t, reflect.ValueOf(first).Pointer(), reflect.ValueOf(queryParams(r)).Pointer())
	require.Equal(t, "7", queryParams(r).Get("index"))
}

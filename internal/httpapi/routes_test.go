package httpapi

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoutes_NotFoundAndMethodNotAllowed(t *testing.T) {
	env := newTestEnv(t)
	tests := []struct {
		name   string
		method string
		path   string
		code   int
		allow  string
		body   string
	}{
		{"unknown path", "GET", "/v1/nope", 404, "", "Not found"},
		{"no prefix slash", "GET", "/v1/kv", 404, "", ""},
		{"root", "GET", "/", 404, "", ""},
		{"wrong method exact", "GET", "/v1/catalog/register", 405, "PUT", "method GET not allowed"},
		{"wrong method prefix", "POST", "/v1/kv/foo", 405, "GET,PUT,DELETE", "method POST not allowed"},
		{"longest prefix wins", "GET", "/v1/agent/service/deregister/x", 405, "PUT", ""},
		{"exact beats prefix", "GET", "/v1/agent/service/register", 405, "PUT", ""},
		{"options", "OPTIONS", "/v1/kv/foo", 200, "GET,PUT,DELETE,OPTIONS", ""},
		{"ok", "GET", "/v1/status/leader", 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := env.do(tc.method, tc.path, "")
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			if tc.allow != "" {
				require.Equal(t, tc.allow, rec.Header().Get("Allow"))
			}
			require.Contains(t, rec.Body.String(), tc.body)
		})
	}
}

func TestRoutes_EveryRouteReachable(t *testing.T) {
	env := newTestEnv(t)
	h := env.h.(*handler)
	for _, rt := range h.routes {
		path := rt.path
		if rt.prefix() {
			path += "x"
		}
		got, _, ok := h.match(path)
		require.True(t, ok, path)
		require.Equal(t, rt.path, got.path, "route %s shadowed", rt.path)
	}
}

func TestRoutes_PanicBecomes500(t *testing.T) {
	env := newTestEnv(t)
	env.caller.on("Status.Leader", func(args, reply any) error { panic("boom") })
	rec := env.do("GET", "/v1/status/leader", "")
	require.Equal(t, http.StatusInternalServerError, rec.Code)
}

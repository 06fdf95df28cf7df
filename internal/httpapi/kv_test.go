package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func requireReadHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for _, h := range []string{"X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact", "X-Consul-Effective-Consistency"} {
		require.NotEmpty(t, rec.Header().Get(h), h)
	}
	require.NotEqual(t, "0", rec.Header().Get("X-Consul-Index"))
}

func TestKV_GetHeadersAlsoOn404(t *testing.T) {
	env := newTestEnv(t)
	env.caller.meta.LastContact = 1500_000_000 // 1.5s
	rec := env.do("GET", "/v1/kv/missing", "")
	require.Equal(t, 404, rec.Code)
	requireReadHeaders(t, rec)
	require.Equal(t, "10", rec.Header().Get("X-Consul-Index"))
	require.Equal(t, "true", rec.Header().Get("X-Consul-KnownLeader"))
	require.Equal(t, "1500", rec.Header().Get("X-Consul-LastContact"))
	require.Equal(t, "leader", rec.Header().Get("X-Consul-Effective-Consistency"))

	rec = env.do("GET", "/v1/kv/missing?stale", "")
	require.Equal(t, "stale", rec.Header().Get("X-Consul-Effective-Consistency"))
}

func TestKV_IndexNeverZero(t *testing.T) {
	env := newTestEnv(t)
	env.caller.index = 0
	rec := env.do("GET", "/v1/kv/missing", "")
	require.Equal(t, "1", rec.Header().Get("X-Consul-Index"))
}

func TestKV_PutGetRawKeysDelete(t *testing.T) {
	env := newTestEnv(t)
	rec := env.do("PUT", "/v1/kv/app/config?flags=42", "hello")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	require.Equal(t, "true", rec.Body.String())
	put := env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest)
	require.Equal(t, rpc.KVSet, put.Op)
	require.EqualValues(t, 42, put.Entry.Flags)
	require.Equal(t, "dc1", put.Datacenter)

	rec = env.do("GET", "/v1/kv/app/config", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	requireReadHeaders(t, rec)
	var entries []state.KVEntry
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &entries))
	require.Len(t, entries, 1)
	require.Equal(t, "hello", string(entries[0].Value))
	require.Contains(t, rec.Body.String(), `"Value":"aGVsbG8="`)

	rec = env.do("GET", "/v1/kv/app/config?raw", "")
	require.Equal(t, "hello", rec.Body.String())
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))

	env.do("PUT", "/v1/kv/app/other", "x")
	env.do("PUT", "/v1/kv/app/sub/deep", "y")
	rec = env.do("GET", "/v1/kv/app/?keys&separator=/", "")
	require.Equal(t, 200, rec.Code)
	require.JSONEq(t, `["app/config","app/other","app/sub/"]`, rec.Body.String())

	rec = env.do("GET", "/v1/kv/app/?recurse", "")
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &entries))
	require.Len(t, entries, 3)

	rec = env.do("GET", "/v1/kv/nothing/?keys", "")
	require.Equal(t, 404, rec.Code)
	requireReadHeaders(t, rec)
	env2 := newTestEnv(t)
	rec = env2.do("GET", "/v1/kv/?keys", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "[]", rec.Body.String())

	rec = env.do("DELETE", "/v1/kv/app/config", "")
	require.Equal(t, "true", rec.Body.String())
	rec = env.do("DELETE", "/v1/kv/app?recurse", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, rpc.KVDeleteTree, env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest).Op)
	rec = env.do("GET", "/v1/kv/app?recurse", "")
	require.Equal(t, 404, rec.Code)
}

func TestKV_CAS(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, "true", env.do("PUT", "/v1/kv/k?cas=0", "v1").Body.String())
	require.Equal(t, "false", env.do("PUT", "/v1/kv/k?cas=0", "v2").Body.String())
	req := env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest)
	require.Equal(t, rpc.KVCAS, req.Op)
	require.Equal(t, "false", env.do("DELETE", "/v1/kv/k?cas=1", "").Body.String())
	require.Equal(t, rpc.KVDeleteCAS, env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest).Op)
}

func TestKV_BadWritesNeverReachTheCaller(t *testing.T) {
	tests := []struct {
		name, method, target, body, msg string
		code                            int
	}{
		{"bad flags", "PUT", "/v1/kv/k?flags=x", "v", "Invalid flags", 400},
		{"negative flags", "PUT", "/v1/kv/k?flags=-1", "v", "Invalid flags", 400},
		{"bad cas", "PUT", "/v1/kv/k?cas=abc", "v", "Invalid cas index", 400},
		{"empty cas", "PUT", "/v1/kv/k?cas=", "v", "Invalid cas index", 400},
		{"missing key put", "PUT", "/v1/kv/", "v", "Missing key name", 400},
		{"missing key delete", "DELETE", "/v1/kv/", "", "Missing key name", 400},
		{"acquire without session", "PUT", "/v1/kv/k?acquire=", "v", "Missing session", 400},
		{"release without session", "PUT", "/v1/kv/k?release", "v", "Missing session", 400},
		{"acquire and release", "PUT", "/v1/kv/k?acquire=s&release=s", "v", "Conflicting flags", 400},
		{"recurse and cas", "DELETE", "/v1/kv/k?recurse&cas=1", "", "Conflicting flags", 400},
		{"bad delete cas", "DELETE", "/v1/kv/k?cas=z", "", "Invalid cas index", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.do(tc.method, tc.target, tc.body)
			require.Equal(t, tc.code, rec.Code)
			require.Contains(t, rec.Body.String(), tc.msg)
			require.Zero(t, env.caller.writeCalls())
		})
	}
}

func TestKV_BadReadParams(t *testing.T) {
	for _, target := range []string{
		"/v1/kv/k?index=abc", "/v1/kv/k?wait=forever", "/v1/kv/k?stale&consistent",
		"/v1/catalog/services?index=x", "/v1/health/service/web?wait=1y",
		"/v1/health/service/web?passing=maybe", "/v1/catalog/nodes?filter=%3D%3D",
	} {
		t.Run(target, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.do("GET", target, "")
			require.Equal(t, 400, rec.Code, rec.Body.String())
			require.Empty(t, env.caller.Calls())
		})
	}
}

func TestKV_Oversize(t *testing.T) {
	const limit = 16
	t.Run("content-length", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.KVMaxValueSize = limit })
		rec := env.do("PUT", "/v1/kv/k", strings.Repeat("a", limit+1))
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		require.Equal(t, "Request body(17 bytes) too large, max size: 16 bytes", rec.Body.String())
		require.Zero(t, env.caller.writeCalls())
	})
	t.Run("chunked", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.KVMaxValueSize = limit })
		// An unknown length forces the limit to be enforced while reading.
		req := httptest.NewRequest("PUT", "/v1/kv/k", io.MultiReader(strings.NewReader(strings.Repeat("a", 10)), strings.NewReader(strings.Repeat("b", 10))))
		req.ContentLength = -1
		rec := httptest.NewRecorder()
		env.h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
		require.Contains(t, rec.Body.String(), "too large, max size: 16 bytes")
		require.Zero(t, env.caller.writeCalls())
	})
	t.Run("exactly at limit", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.KVMaxValueSize = limit })
		rec := env.do("PUT", "/v1/kv/k", strings.Repeat("a", limit))
		require.Equal(t, 200, rec.Code)
		require.Equal(t, 1, env.caller.writeCalls())
	})
	t.Run("default limit", func(t *testing.T) {
		env := newTestEnv(t)
		rec := env.do("PUT", "/v1/kv/k", strings.Repeat("a", DefaultKVMaxValueSize+1))
		require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	})
}

func TestKV_Pretty(t *testing.T) {
	env := newTestEnv(t)
	env.do("PUT", "/v1/kv/k", "v")
	rec := env.do("GET", "/v1/kv/k?pretty", "")
	require.Contains(t, rec.Body.String(), "\n    ")
}

package httpapi

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
)

func TestQuery_Parse(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  rpc.QueryOptions
		err   string
	}{
		{"defaults", "", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute}, ""},
		{"dc", "dc=dc2", rpc.QueryOptions{Datacenter: "dc2", Token: "tok", MaxQueryTime: 5 * time.Minute}, ""},
		{"index wait", "index=42&wait=10s", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MinQueryIndex: 42, MaxQueryTime: 10 * time.Second}, ""},
		{"client ms wait", "index=1&wait=1500ms", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MinQueryIndex: 1, MaxQueryTime: 1500 * time.Millisecond}, ""},
		{"wait capped", "wait=1h", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 10 * time.Minute}, ""},
		{"wait 5m", "wait=5m", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute}, ""},
		{"stale", "stale", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute, AllowStale: true}, ""},
		{"consistent", "consistent=", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute, RequireConsistent: true}, ""},
		{"filter", "filter=" + url.QueryEscape(`Service == "web"`), rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute, Filter: `Service == "web"`}, ""},
		{"near ignored", "near=_agent", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute}, ""},
		{"bad index", "index=abc", rpc.QueryOptions{}, "Invalid index"},
		{"negative index", "index=-1", rpc.QueryOptions{}, "Invalid index"},
		{"empty index ignored", "index=&wait=", rpc.QueryOptions{Datacenter: "dc1", Token: "tok", MaxQueryTime: 5 * time.Minute}, ""},
		{"bad wait", "wait=soon", rpc.QueryOptions{}, "Invalid wait time"},
		{"bare number wait", "wait=10", rpc.QueryOptions{}, "Invalid wait time"},
		{"negative wait", "wait=-5s", rpc.QueryOptions{}, "Invalid wait time"},
		{"stale and consistent", "stale&consistent", rpc.QueryOptions{}, "Cannot specify ?stale with ?consistent"},
		{"bad filter", "filter=" + url.QueryEscape("Service =="), rpc.QueryOptions{}, "Failed to create boolean expression evaluator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			require.NoError(t, err)
			got, err := parseQuery(q, "dc1", "tok")
			if tc.err != "" {
				require.Error(t, err)
				code, msg := errorStatus(err)
				require.Equal(t, 400, code)
				require.Contains(t, msg, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestQuery_BoolAndUintParams(t *testing.T) {
	q, _ := url.ParseQuery("a&b=true&c=0&d=maybe&n=7&m=x")
	for name, want := range map[string]bool{"a": true, "b": true, "c": false, "zz": false} {
		got, err := boolParam(q, name)
		require.NoError(t, err)
		require.Equal(t, want, got, name)
	}
	_, err := boolParam(q, "d")
	require.ErrorContains(t, err, "?d")

	n, present, err := uintParam(q, "n", "n")
	require.NoError(t, err)
	require.True(t, present)
	require.EqualValues(t, 7, n)
	_, _, err = uintParam(q, "m", "flags")
	require.ErrorContains(t, err, "Invalid flags")
	_, present, err = uintParam(q, "absent", "x")
	require.NoError(t, err)
	require.False(t, present)
}

func TestQuery_NodeMeta(t *testing.T) {
	q, _ := url.ParseQuery("node-meta=env:prod&node-meta=rack:r1:a&node-meta=bare")
	require.Equal(t, map[string]string{"env": "prod", "rack": "r1:a", "bare": ""}, nodeMetaFilters(q))
	require.Nil(t, nodeMetaFilters(url.Values{}))
}

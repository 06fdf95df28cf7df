package e2e

import (
	"net/http"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestConsistencyModes(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	_, err := a.Client().KV().Put(&api.KVPair{Key: "cons/a", Value: []byte("x")}, nil)
	require.NoError(t, err)

	paths := []string{"/v1/kv/cons/a", "/v1/catalog/nodes", "/v1/health/service/consul", "/v1/catalog/services"}
	modes := []struct {
		query string
		want  string
	}{
		{"", "leader"},
		{"consistent", "consistent"},
		{"stale", "stale"},
	}
	for _, p := range paths {
		for _, m := range modes {
			path := p
			if m.query != "" {
				path += "?" + m.query
			}
			t.Run(path, func(t *testing.T) {
				r := do(t, a, http.MethodGet, path, nil)
				require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
				require.Equal(t, "true", r.Header.Get("X-Consul-KnownLeader"))
				require.NotEmpty(t, r.Header.Values("X-Consul-LastContact"), "X-Consul-LastContact must be set")
				require.Equal(t, "0", r.Header.Get("X-Consul-LastContact"), "the leader itself has contact 0")
				require.Equal(t, m.want, r.Header.Get("X-Consul-Effective-Consistency"))
				idx, ok := r.index()
				require.True(t, ok)
				require.GreaterOrEqual(t, idx, uint64(1))
			})
		}
		t.Run(p+"?stale&consistent", func(t *testing.T) {
			r := do(t, a, http.MethodGet, p+"?stale&consistent", nil)
			require.Equal(t, http.StatusBadRequest, r.Status, "body: %s", r.Body)
			require.NotEmpty(t, r.Body)
		})
	}

	// The API client sees the same through QueryMeta.
	c := a.Client()
	for _, q := range []*api.QueryOptions{nil, {RequireConsistent: true}, {AllowStale: true}} {
		_, meta, err := c.KV().Get("cons/a", q)
		require.NoError(t, err)
		require.True(t, meta.KnownLeader)
		require.Zero(t, meta.LastContact)
	}
	_, _, err = c.KV().Get("cons/a", &api.QueryOptions{RequireConsistent: true, AllowStale: true})
	require.Error(t, err, "stale+consistent must be rejected")
}

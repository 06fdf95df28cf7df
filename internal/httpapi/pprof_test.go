package httpapi

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPprof(t *testing.T) {
	t.Run("off without enable_debug", func(t *testing.T) {
		env := newTestEnv(t)
		rec := env.do(http.MethodGet, "/debug/pprof/", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		rec = env.do(http.MethodGet, "/debug/pprof/heap", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
	})
	t.Run("on with enable_debug", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.EnableDebug = true })
		tests := []struct {
			path, want string
		}{
			{"/debug/pprof/", "goroutine"},
			{"/debug/pprof/heap?debug=1", "heap profile"},
			{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
			{"/debug/pprof/cmdline", ""},
		}
		for _, tc := range tests {
			t.Run(tc.path, func(t *testing.T) {
				rec := env.do(http.MethodGet, tc.path, "")
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				require.Contains(t, rec.Body.String(), tc.want)
			})
		}
	})
}

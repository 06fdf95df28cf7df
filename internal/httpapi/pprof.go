package httpapi

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/cairn-io/cairn/internal/acl"
)

// debugPprof serves Go's runtime profiles under /debug/pprof/ when the
// agent runs with enable_debug; without it the path does not exist. The
// caller also needs operator:read, since profiles reveal internals.
func (h *handler) debugPprof(w http.ResponseWriter, r *http.Request, rest string) error {
	if !h.cfg.EnableDebug {
		writeText(w, http.StatusNotFound, fmt.Sprintf("Not found: %s", r.URL.Path))
		return nil
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.OperatorRead() }); err != nil {
		return err
	}
	switch strings.TrimSuffix(rest, "/") {
	case "":
		pprof.Index(w, r)
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		// Named profiles: heap, goroutine, allocs, block, mutex, ...
		pprof.Handler(rest).ServeHTTP(w, r)
	}
	return nil
}

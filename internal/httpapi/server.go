package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
)

// DefaultKVMaxValueSize is Consul's default limit on a KV value (512 KiB).
const DefaultKVMaxValueSize = 512 * 1024

// maxJSONBodySize bounds request bodies that are decoded as JSON
// (registrations, check updates) so that a client cannot make the agent
// buffer unbounded input.
const maxJSONBodySize = 4 << 20

// Config is everything the HTTP API needs. Caller and Agent are required.
type Config struct {
	// Caller carries every catalog, KV, health and status read and write.
	Caller rpc.Caller
	// Agent serves the /v1/agent/* endpoints.
	Agent AgentBackend
	// Snapshot serves /v1/snapshot; nil (a client agent) answers 501.
	Snapshot SnapshotBackend
	// ACL resolves request tokens; nil means allow-all.
	ACL acl.Resolver
	// Datacenter is this agent's datacenter, used when ?dc= is absent.
	Datacenter string
	// NodeName is this agent's node name (for agent:read/write checks).
	NodeName string
	// KVMaxValueSize is the largest accepted KV value in bytes; 0 means
	// DefaultKVMaxValueSize.
	KVMaxValueSize uint64
	// TxnMaxReqLen bounds a /v1/txn body (limits.txn_max_req_len); 0
	// means 512 KiB or KVMaxValueSize, whichever is larger.
	TxnMaxReqLen uint64
	// Version is reported by /v1/agent/version, e.g. "1.0.0-dev".
	Version string
	// Logger receives request failures; nil discards.
	Logger *slog.Logger
	// EnableDebug serves /debug/pprof/ (the agent's enable_debug).
	EnableDebug bool
}

// handler is the http.Handler returned by New. It is immutable after New,
// but for kvBodies, which is safe for concurrent use.
type handler struct {
	cfg    Config
	logger *slog.Logger
	routes []route
	// kvBodies shares the JSON body of identical KV reads (kvcache.go).
	kvBodies *kvBodyCache
}

// New returns the /v1 API handler. It does no I/O. It panics if Caller or
// Agent is nil, which is a wiring bug, not a runtime condition.
func New(cfg Config) http.Handler {
	if cfg.Caller == nil {
		panic("httpapi: Config.Caller is required")
	}
	if cfg.Agent == nil {
		panic("httpapi: Config.Agent is required")
	}
	if cfg.ACL == nil {
		cfg.ACL = acl.AllowAllResolver()
	}
	if cfg.KVMaxValueSize == 0 {
		cfg.KVMaxValueSize = DefaultKVMaxValueSize
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg, logger: logger, kvBodies: newKVBodyCache()}
	h.routes = h.routeTable()
	return h
}

// ServeHTTP dispatches through the route table. Unknown paths get 404, a
// known path with the wrong method 405 with an Allow header.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			h.logger.Error("http handler panic", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			http.Error(w, "Internal error", http.StatusInternalServerError)
		}
	}()

	rt, rest, ok := h.match(r.URL.Path)
	if !ok {
		writeText(w, http.StatusNotFound, fmt.Sprintf("Not found: %s", r.URL.Path))
		return
	}
	if r.Method == http.MethodOptions {
		w.Header().Set("Allow", strings.Join(rt.methods, ",")+",OPTIONS")
		w.WriteHeader(http.StatusOK)
		return
	}
	if !rt.allows(r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ","))
		writeText(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method))
		return
	}

	r = withToken(r, h.cfg.ACL)
	if err := rt.fn(w, r, rest); err != nil {
		h.writeError(w, r, err)
	}
}

package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-bexpr"

	"github.com/cairn-io/cairn/internal/rpc"
)

// Blocking query limits, as Consul documents them.
const (
	defaultQueryTime = 5 * time.Minute
	maxQueryTime     = 10 * time.Minute
)

// queryOptions parses the common read parameters of r into rpc.QueryOptions.
func (h *handler) queryOptions(r *http.Request) (rpc.QueryOptions, error) {
	return parseQuery(queryParams(r), h.cfg.Datacenter, tokenOf(r))
}

// parseQuery parses dc, index, wait, stale, consistent and filter. A value
// that does not parse is a 400 naming the parameter; near, cached and
// pretty are accepted and handled elsewhere (or ignored).
func parseQuery(q url.Values, defaultDC, token string) (rpc.QueryOptions, error) {
	opts := rpc.QueryOptions{
		Datacenter:   q.Get("dc"),
		Token:        token,
		MaxQueryTime: defaultQueryTime,
	}
	if opts.Datacenter == "" {
		opts.Datacenter = defaultDC
	}

	if v := q.Get("index"); v != "" {
		idx, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return opts, badRequest("Invalid index")
		}
		opts.MinQueryIndex = idx
	}

	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return opts, badRequest("Invalid wait time")
		}
		if d > maxQueryTime {
			d = maxQueryTime
		}
		if d > 0 {
			opts.MaxQueryTime = d
		}
	}

	_, opts.AllowStale = q["stale"]
	_, opts.RequireConsistent = q["consistent"]
	if opts.AllowStale && opts.RequireConsistent {
		return opts, badRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
	}

	if f := q.Get("filter"); f != "" {
		if _, err := bexpr.CreateEvaluator(f); err != nil {
			return opts, badRequest("Failed to create boolean expression evaluator: %v", err)
		}
		opts.Filter = f
	}
	return opts, nil
}

// writeRequest parses the common write parameters (dc, token).
func (h *handler) writeRequest(r *http.Request) rpc.WriteRequest {
	dc := queryParams(r).Get("dc")
	if dc == "" {
		dc = h.cfg.Datacenter
	}
	return rpc.WriteRequest{Datacenter: dc, Token: tokenOf(r)}
}

// flagParam reports whether a value-less flag such as ?recurse is present.
func flagParam(q url.Values, name string) bool {
	_, ok := q[name]
	return ok
}

// boolParam parses a boolean parameter: absent is false, present without a
// value is true, otherwise the value must parse as a bool.
func boolParam(q url.Values, name string) (bool, error) {
	vals, ok := q[name]
	if !ok {
		return false, nil
	}
	if len(vals) == 0 || vals[0] == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, badRequest("Invalid value for ?%s: %q is not a boolean", name, vals[0])
	}
	return b, nil
}

// uintParam parses an unsigned integer parameter; present reports whether
// it was given at all.
func uintParam(q url.Values, name, what string) (val uint64, present bool, err error) {
	vals, ok := q[name]
	if !ok {
		return 0, false, nil
	}
	v := ""
	if len(vals) > 0 {
		v = vals[0]
	}
	n, perr := strconv.ParseUint(v, 10, 64)
	if perr != nil {
		return 0, true, badRequest("Invalid %s: %q is not an unsigned integer", what, v)
	}
	return n, true, nil
}

// nodeMetaFilters parses repeated ?node-meta=key:value parameters.
func nodeMetaFilters(q url.Values) map[string]string {
	vals := q["node-meta"]
	if len(vals) == 0 {
		return nil
	}
	out := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, _ := strings.Cut(kv, ":")
		out[k] = v
	}
	return out
}

// The read headers under the names net/http writes on the wire: Header.Set
// canonicalizes X-Consul-KnownLeader to X-Consul-Knownleader (and
// LastContact likewise) at the cost of an allocation per call; setMeta sets
// the canonical names directly.
const (
	hdrIndex                = "X-Consul-Index"
	hdrKnownLeader          = "X-Consul-Knownleader"
	hdrLastContact          = "X-Consul-Lastcontact"
	hdrEffectiveConsistency = "X-Consul-Effective-Consistency"
)

// setMeta writes the read headers every blocking endpoint returns.
// X-Consul-Index is never below 1 so clients can always block on it.
func setMeta(w http.ResponseWriter, meta rpc.QueryMeta, opts rpc.QueryOptions) {
	idx := meta.Index
	if idx < 1 {
		idx = 1
	}
	// One allocation for the four values; each header gets a slice of
	// capacity 1, so a later Add cannot write into its neighbour.
	vals := make([]string, 4)
	vals[0] = strconv.FormatUint(idx, 10)
	vals[1] = strconv.FormatBool(meta.KnownLeader)
	vals[2] = strconv.FormatInt(meta.LastContact.Milliseconds(), 10)
	vals[3] = effectiveConsistency(meta, opts)
	hdr := w.Header()
	hdr[hdrIndex] = vals[0:1:1]
	hdr[hdrKnownLeader] = vals[1:2:2]
	hdr[hdrLastContact] = vals[2:3:3]
	hdr[hdrEffectiveConsistency] = vals[3:4:4]
}

func effectiveConsistency(meta rpc.QueryMeta, opts rpc.QueryOptions) string {
	switch {
	case meta.ConsistencyLevel != "":
		return meta.ConsistencyLevel
	case opts.AllowStale:
		return rpc.ConsistencyStale
	case opts.RequireConsistent:
		return rpc.ConsistencyConsistent
	default:
		return rpc.ConsistencyLeader
	}
}

// writeJSON sends v as JSON with status 200, indented when ?pretty is set.
func writeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	var (
		b   []byte
		err error
	)
	if flagParam(queryParams(r), "pretty") {
		b, err = json.MarshalIndent(v, "", "    ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// writeEmpty sends a 200 with no body, as Consul's agent writes do.
func writeEmpty(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusOK)
	return nil
}

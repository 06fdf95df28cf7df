package httpapi

import (
	"bytes"
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// kv serves /v1/kv/<key> for GET, PUT and DELETE.
func (h *handler) kv(w http.ResponseWriter, r *http.Request, key string) error {
	switch r.Method {
	case http.MethodGet:
		if flagParam(queryParams(r), "keys") {
			return h.kvKeys(w, r, key)
		}
		return h.kvGet(w, r, key)
	case http.MethodPut:
		return h.kvPut(w, r, key)
	default:
		return h.kvDelete(w, r, key)
	}
}

// kvGet returns one entry, or with ?recurse every entry under the prefix;
// ?raw returns the bare value of one entry. Nothing found is a 404 that still
// carries X-Consul-Index so clients can block on the key appearing.
func (h *handler) kvGet(w http.ResponseWriter, r *http.Request, key string) error {
	q := queryParams(r)
	recurse := flagParam(q, "recurse")
	if err := authorize(r, func(a acl.Authorizer) bool { return a.KeyRead(key) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	method := rpc.MethodKVSGet
	if recurse {
		method = rpc.MethodKVSList
	}
	var out rpc.IndexedKVEntries
	if err := h.cfg.Caller.RPC(r.Context(), method, &rpc.KeyRequest{Key: key, QueryOptions: opts}, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	if len(out.Entries) == 0 {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	if !recurse && flagParam(q, "raw") {
		// The value is arbitrary user bytes: never let a browser sniff it
		// into HTML.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out.Entries[0].Value)
		return nil
	}
	entries := out.Entries
	if !recurse {
		entries = entries[:1]
	}
	if flagParam(q, "pretty") {
		return writeJSON(w, r, entries)
	}
	// Every watcher of a key woken by one write gets the same entries:
	// encode them once (kvcache.go).
	body, err := h.kvBodies.encode(entries)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// kvKeys lists the keys under a prefix, rolled up at ?separator.
func (h *handler) kvKeys(w http.ResponseWriter, r *http.Request, prefix string) error {
	if err := authorize(r, func(a acl.Authorizer) bool { return a.KeyList(prefix) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	args := &rpc.KeyListRequest{Prefix: prefix, Separator: queryParams(r).Get("separator"), QueryOptions: opts}
	var out rpc.IndexedKeyList
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodKVSListKeys, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	// Like Consul: an empty listing of the root is [], of a prefix a 404.
	if len(out.Keys) == 0 && prefix != "" {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	keys := out.Keys
	if keys == nil {
		keys = []string{}
	}
	return writeJSON(w, r, keys)
}

// kvPut writes the request body as the key's value: a plain set, or with
// ?cas=N a check-and-set. The reply body is true or false.
func (h *handler) kvPut(w http.ResponseWriter, r *http.Request, key string) error {
	q := queryParams(r)
	if key == "" {
		return badRequest("Missing key name")
	}
	if err := conflictingFlags(q, "acquire", "release"); err != nil {
		return err
	}
	flags, _, err := uintParam(q, "flags", "flags")
	if err != nil {
		return err
	}
	cas, isCAS, err := uintParam(q, "cas", "cas index")
	if err != nil {
		return err
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.KeyWrite(key) }); err != nil {
		return err
	}
	value, err := h.readKVValue(w, r)
	if err != nil {
		return err
	}

	req := &rpc.KVSRequest{
		Op:           rpc.KVSet,
		Entry:        state.KVEntry{Key: key, Flags: flags, Value: value},
		WriteRequest: h.writeRequest(r),
	}
	if isCAS {
		req.Op = rpc.KVCAS
		req.Entry.ModifyIndex = cas
	}
	// ?acquire and ?release take precedence over ?cas, as in Consul: the
	// lock operation decides by the session, not the index.
	for _, lk := range []struct {
		param string
		op    rpc.KVOp
	}{{"acquire", rpc.KVLock}, {"release", rpc.KVUnlock}} {
		if flagParam(q, lk.param) {
			if q.Get(lk.param) == "" {
				return badRequest("Missing session for ?%s", lk.param)
			}
			req.Op, req.Entry.Session, req.Entry.ModifyIndex = lk.op, q.Get(lk.param), 0
		}
	}
	var ok bool
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodKVSApply, req, &ok); err != nil {
		return err
	}
	return writeJSON(w, r, ok)
}

// readKVValue reads the body up to the configured value limit without
// buffering more than that.
func (h *handler) readKVValue(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.cfg.KVMaxValueSize
	if r.ContentLength > 0 && uint64(r.ContentLength) > limit {
		return nil, tooLarge("Request body(%d bytes) too large, max size: %d bytes", r.ContentLength, limit)
	}
	if limit > uint64(1<<62) {
		limit = 1 << 62
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(limit))); err != nil {
		if isMaxBytes(err) {
			return nil, tooLarge("Request body too large, max size: %d bytes", limit)
		}
		return nil, badRequest("Failed to read request body: %v", err)
	}
	return buf.Bytes(), nil
}

// kvDelete deletes one key, with ?recurse a whole prefix, or with ?cas=N
// only if the key's ModifyIndex is N. The reply body is true or false.
func (h *handler) kvDelete(w http.ResponseWriter, r *http.Request, key string) error {
	q := queryParams(r)
	if err := conflictingFlags(q, "recurse", "cas"); err != nil {
		return err
	}
	req := &rpc.KVSRequest{Op: rpc.KVDelete, Entry: state.KVEntry{Key: key}, WriteRequest: h.writeRequest(r)}
	switch {
	case flagParam(q, "recurse"):
		req.Op = rpc.KVDeleteTree
		if err := authorize(r, func(a acl.Authorizer) bool { return a.KeyWritePrefix(key) }); err != nil {
			return err
		}
	default:
		if key == "" {
			return badRequest("Missing key name")
		}
		cas, isCAS, err := uintParam(q, "cas", "cas index")
		if err != nil {
			return err
		}
		if isCAS {
			req.Op = rpc.KVDeleteCAS
			req.Entry.ModifyIndex = cas
		}
		if err := authorize(r, func(a acl.Authorizer) bool { return a.KeyWrite(key) }); err != nil {
			return err
		}
	}
	var ok bool
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodKVSApply, req, &ok); err != nil {
		return err
	}
	return writeJSON(w, r, ok)
}

// conflictingFlags rejects requests that set more than one of flags.
func conflictingFlags(q map[string][]string, flags ...string) error {
	var set []string
	for _, f := range flags {
		if _, ok := q[f]; ok {
			set = append(set, "?"+f)
		}
	}
	if len(set) > 1 {
		return badRequest("Conflicting flags: %v cannot be used together", set)
	}
	return nil
}

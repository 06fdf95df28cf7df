package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// minTxnMaxReqLen is Consul's default txn_max_req_len (512 KiB); without a
// configured limit it is raised to kv_max_value_size when that is larger.
const minTxnMaxReqLen = 512 * 1024

// txnOpBody is one operation of /v1/txn's body, in the official client's
// shape (KV values base64, KV Index for the CAS verbs).
type txnOpBody struct {
	KV *struct {
		Verb    string
		Key     string
		Value   []byte
		Flags   uint64
		Index   uint64
		Session string
	}
	Node    *state.TxnNodeOp
	Service *state.TxnServiceOp
	Check   *state.TxnCheckOp
}

// txnReply is /v1/txn's response body (Consul's shape).
type txnReply struct {
	Results []*state.TxnResult
	Errors  []*state.TxnError
}

func (h *handler) txnMaxReqLen() uint64 {
	if h.cfg.TxnMaxReqLen > 0 {
		return h.cfg.TxnMaxReqLen
	}
	return max(uint64(minTxnMaxReqLen), h.cfg.KVMaxValueSize)
}

// txn serves PUT /v1/txn: all operations apply or none. A transaction with
// only reads is served without Raft under the request's consistency mode;
// any failed (or denied) operation makes it a 409 with per-operation
// errors.
func (h *handler) txn(w http.ResponseWriter, r *http.Request, _ string) error {
	limit := h.txnMaxReqLen()
	if r.ContentLength > 0 && uint64(r.ContentLength) > limit {
		return tooLarge("Request body(%d bytes) too large, max size: %d bytes", r.ContentLength, limit)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(limit))); err != nil {
		if isMaxBytes(err) {
			return tooLarge("Request body too large, max size: %d bytes", limit)
		}
		return badRequest("Failed to read request body: %v", err)
	}
	var body []txnOpBody
	if err := json.Unmarshal(buf.Bytes(), &body); err != nil {
		return badRequest("Failed to parse body: %v", err)
	}
	if len(body) > rpc.MaxTxnOps {
		return tooLarge("Transaction contains too many operations (%d > %d)", len(body), rpc.MaxTxnOps)
	}
	ops := make([]*state.TxnOp, len(body))
	for i, b := range body {
		op, err := h.txnOp(i, b)
		if err != nil {
			return err
		}
		ops[i] = op
	}

	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	var denied []*state.TxnError
	for i, op := range ops {
		if !txnAllowed(authz, op) {
			denied = append(denied, &state.TxnError{OpIndex: i, What: rpc.ErrPermissionDenied.Error()})
		}
	}
	if len(denied) > 0 {
		return writeTxn(w, r, txnReply{Errors: denied})
	}

	var out txnReply
	if state.TxnReadOnly(ops) {
		opts, err := h.queryOptions(r)
		if err != nil {
			return err
		}
		var rr rpc.TxnReadResponse
		if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodTxnRead, &rpc.TxnReadRequest{Ops: ops, QueryOptions: opts}, &rr); err != nil {
			return err
		}
		setMeta(w, rr.QueryMeta, opts)
		out = txnReply{Results: rr.Results, Errors: rr.Errors}
	} else {
		var resp rpc.TxnResponse
		if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodTxnApply, &rpc.TxnRequest{Ops: ops, WriteRequest: h.writeRequest(r)}, &resp); err != nil {
			return err
		}
		out = txnReply{Results: resp.Results, Errors: resp.Errors}
	}
	// Keys the token may not read are left out of the results, as a
	// recursive GET of /v1/kv would.
	if len(out.Errors) == 0 {
		kept := out.Results[:0]
		for _, res := range out.Results {
			if res.KV != nil && !authz.KeyRead(res.KV.Key) {
				continue
			}
			kept = append(kept, res)
		}
		out.Results = kept
	}
	return writeTxn(w, r, out)
}

// writeTxn sends 200 with the results, or 409 when the transaction was
// rolled back.
func writeTxn(w http.ResponseWriter, r *http.Request, out txnReply) error {
	if len(out.Errors) == 0 {
		if out.Results == nil {
			out.Results = []*state.TxnResult{}
		}
		return writeJSON(w, r, out)
	}
	out.Results = nil
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusConflict)
	_, _ = w.Write(b)
	return nil
}

// txnOp converts one operation of the body, rejecting malformed ones with
// a 400 (or 413 for a value over the limit) naming the operation.
func (h *handler) txnOp(i int, b txnOpBody) (*state.TxnOp, error) {
	set := 0
	for _, p := range []bool{b.KV != nil, b.Node != nil, b.Service != nil, b.Check != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return nil, badRequest("Operation %d must have exactly one of KV, Node, Service or Check", i)
	}
	switch {
	case b.KV != nil:
		if n := uint64(len(b.KV.Value)); n > h.cfg.KVMaxValueSize {
			return nil, tooLarge("Value for key %q is too large (%d > %d bytes)", b.KV.Key, n, h.cfg.KVMaxValueSize)
		}
		switch b.KV.Verb {
		case state.TxnSet, state.TxnCAS, state.TxnLock, state.TxnUnlock, state.TxnGet, state.TxnGetOrEmpty,
			state.TxnGetTree, state.TxnCheckIndex, state.TxnCheckSession, state.TxnCheckNotExists,
			state.TxnDelete, state.TxnDeleteTree, state.TxnDeleteCAS:
		default:
			return nil, badRequest("Operation %d: unknown KV verb %q", i, b.KV.Verb)
		}
		return &state.TxnOp{KV: &state.TxnKVOp{Verb: b.KV.Verb, Entry: state.KVEntry{
			Key: b.KV.Key, Value: b.KV.Value, Flags: b.KV.Flags, ModifyIndex: b.KV.Index, Session: b.KV.Session,
		}}}, nil
	case b.Node != nil:
		if !catalogVerb(b.Node.Verb) {
			return nil, badRequest("Operation %d: unknown Node verb %q", i, b.Node.Verb)
		}
		return &state.TxnOp{Node: b.Node}, nil
	case b.Service != nil:
		if !catalogVerb(b.Service.Verb) {
			return nil, badRequest("Operation %d: unknown Service verb %q", i, b.Service.Verb)
		}
		if (b.Service.Verb == state.TxnSet || b.Service.Verb == state.TxnCAS) && b.Service.Service.Service == "" {
			return nil, badRequest("Operation %d: must provide service name", i)
		}
		if b.Service.Service.ID == "" {
			b.Service.Service.ID = b.Service.Service.Service
		}
		return &state.TxnOp{Service: b.Service}, nil
	default:
		if !catalogVerb(b.Check.Verb) {
			return nil, badRequest("Operation %d: unknown Check verb %q", i, b.Check.Verb)
		}
		return &state.TxnOp{Check: b.Check}, nil
	}
}

func catalogVerb(v string) bool {
	switch v {
	case state.TxnSet, state.TxnCAS, state.TxnGet, state.TxnDelete, state.TxnDeleteCAS:
		return true
	}
	return false
}

// txnAllowed authorizes one operation exactly as its single-endpoint twin:
// KV reads need key:read, writes key:write (a tree delete write on the
// whole prefix); catalog reads need node/service read, writes node or
// service write.
func txnAllowed(a acl.Authorizer, op *state.TxnOp) bool {
	switch {
	case op.KV != nil:
		key := op.KV.Entry.Key
		switch op.KV.Verb {
		case state.TxnGet, state.TxnGetOrEmpty, state.TxnGetTree, state.TxnCheckIndex,
			state.TxnCheckSession, state.TxnCheckNotExists:
			return a.KeyRead(key)
		case state.TxnDeleteTree:
			return a.KeyWritePrefix(key)
		default:
			return a.KeyWrite(key)
		}
	case op.Node != nil:
		if op.Node.Verb == state.TxnGet {
			return a.NodeRead(op.Node.Node.Node)
		}
		return a.NodeWrite(op.Node.Node.Node)
	case op.Service != nil:
		name := op.Service.Service.Service
		if op.Service.Verb == state.TxnGet {
			if name == "" {
				return a.NodeRead(op.Service.Node)
			}
			return a.ServiceRead(name)
		}
		if name == "" {
			return a.NodeWrite(op.Service.Node)
		}
		return a.ServiceWrite(name)
	case op.Check != nil:
		c := &op.Check.Check
		if op.Check.Verb == state.TxnGet {
			return a.NodeRead(c.Node)
		}
		if c.ServiceID != "" && c.ServiceName != "" {
			return a.ServiceWrite(c.ServiceName)
		}
		return a.NodeWrite(c.Node)
	}
	return false
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// defaultLockDelay is a session's lock delay when the request names none.
const defaultLockDelay = 15 * time.Second

// lockDelaySecondsBelow: a numeric LockDelay below this is a number of
// seconds, otherwise nanoseconds (Consul's rule, so that both 15 and
// 15000000000 mean 15s).
const lockDelaySecondsBelow = 1000

// sessionCreateBody is /v1/session/create's body. LockDelay is a duration
// string or a number; a nil check list means "not given".
type sessionCreateBody struct {
	Name          string
	Node          string
	LockDelay     json.RawMessage
	Checks        []string
	NodeChecks    []string
	ServiceChecks []state.ServiceCheck
	Behavior      string
	TTL           string
}

// sessionCreate serves PUT /v1/session/create. Node defaults to this
// agent's node, the checks to serfHealth and LockDelay to 15s.
func (h *handler) sessionCreate(w http.ResponseWriter, r *http.Request, _ string) error {
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	var in sessionCreateBody
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return badRequest("Request decode failed: %v", err)
		}
	}
	sess := state.Session{
		Name:          in.Name,
		Node:          in.Node,
		Behavior:      in.Behavior,
		TTL:           in.TTL,
		NodeChecks:    in.NodeChecks,
		ServiceChecks: in.ServiceChecks,
		LockDelay:     defaultLockDelay,
	}
	if sess.Node == "" {
		sess.Node = h.cfg.NodeName
	}
	if in.LockDelay != nil {
		if sess.LockDelay, err = parseLockDelay(in.LockDelay); err != nil {
			return err
		}
	}
	if in.NodeChecks == nil && in.Checks != nil {
		sess.NodeChecks = in.Checks
	}
	if in.Checks == nil && in.NodeChecks == nil && in.ServiceChecks == nil {
		sess.NodeChecks = []string{state.SerfCheckID}
	}
	if err := authorizeSession(r, sess.Node, true); err != nil {
		return err
	}
	req := &rpc.SessionRequest{Op: rpc.SessionCreate, Session: sess, WriteRequest: h.writeRequest(r)}
	var id string
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodSessionApply, req, &id); err != nil {
		return err
	}
	return writeJSON(w, r, struct{ ID string }{id})
}

// parseLockDelay accepts "15s" or a number (seconds below 1000, else
// nanoseconds).
func parseLockDelay(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, badRequest("Request decode failed: invalid LockDelay %q: %v", s, err)
		}
		return d, nil
	}
	var n float64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, badRequest("Request decode failed: LockDelay must be a duration string or a number, got %s", string(raw))
	}
	d := time.Duration(n)
	if d < lockDelaySecondsBelow {
		d *= time.Second
	}
	return d, nil
}

// sessionID extracts the session ID from the rest of the path.
func sessionID(rest string) (string, error) {
	id := strings.Trim(rest, "/")
	if id == "" {
		return "", badRequest("Missing session")
	}
	return id, nil
}

// sessionDestroy serves PUT /v1/session/destroy/:id; destroying a missing
// session succeeds.
func (h *handler) sessionDestroy(w http.ResponseWriter, r *http.Request, rest string) error {
	id, err := sessionID(rest)
	if err != nil {
		return err
	}
	if err := h.authorizeSessionID(r, id); err != nil {
		return err
	}
	req := &rpc.SessionRequest{Op: rpc.SessionDestroy, Session: state.Session{ID: id}, WriteRequest: h.writeRequest(r)}
	var out string
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodSessionApply, req, &out); err != nil {
		return err
	}
	return writeJSON(w, r, true)
}

// sessionRenew serves PUT /v1/session/renew/:id: the session in a list, or
// 404 when it does not exist.
func (h *handler) sessionRenew(w http.ResponseWriter, r *http.Request, rest string) error {
	id, err := sessionID(rest)
	if err != nil {
		return err
	}
	if err := h.authorizeSessionID(r, id); err != nil {
		return err
	}
	wr := h.writeRequest(r)
	args := &rpc.SessionSpecificRequest{SessionID: id,
		QueryOptions: rpc.QueryOptions{Datacenter: wr.Datacenter, Token: wr.Token}}
	var out rpc.IndexedSessions
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodSessionRenew, args, &out); err != nil {
		if errors.Is(err, rpc.ErrNotFound) {
			return notFound("Session id '%s' not found", id)
		}
		return err
	}
	return writeJSON(w, r, nonNilSessions(out.Sessions))
}

// sessionInfo serves GET /v1/session/info/:id ([] when missing).
func (h *handler) sessionInfo(w http.ResponseWriter, r *http.Request, rest string) error {
	id, err := sessionID(rest)
	if err != nil {
		return err
	}
	return h.sessionRead(w, r, rpc.MethodSessionGet, func(opts rpc.QueryOptions) any {
		return &rpc.SessionSpecificRequest{SessionID: id, QueryOptions: opts}
	})
}

// sessionNode serves GET /v1/session/node/:node.
func (h *handler) sessionNode(w http.ResponseWriter, r *http.Request, rest string) error {
	node := strings.Trim(rest, "/")
	if node == "" {
		return badRequest("Missing node name")
	}
	return h.sessionRead(w, r, rpc.MethodSessionNodeSessions, func(opts rpc.QueryOptions) any {
		return &rpc.NodeSpecificRequest{Node: node, QueryOptions: opts}
	})
}

// sessionList serves GET /v1/session/list.
func (h *handler) sessionList(w http.ResponseWriter, r *http.Request, _ string) error {
	return h.sessionRead(w, r, rpc.MethodSessionList, func(opts rpc.QueryOptions) any {
		return &rpc.DCSpecificRequest{QueryOptions: opts}
	})
}

// sessionRead runs one blocking session read and writes the list.
func (h *handler) sessionRead(w http.ResponseWriter, r *http.Request, method string, args func(rpc.QueryOptions) any) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.IndexedSessions
	if err := h.cfg.Caller.RPC(r.Context(), method, args(opts), &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	// Sessions on nodes the token may not read are left out, as Consul
	// filters them.
	if sa, ok := authz.(SessionAuthorizer); ok {
		kept := out.Sessions[:0]
		for _, sess := range out.Sessions {
			if sa.SessionRead(sess.Node) {
				kept = append(kept, sess)
			}
		}
		out.Sessions = kept
	}
	return writeJSON(w, r, nonNilSessions(out.Sessions))
}

// SessionAuthorizer is implemented by an acl.Authorizer that knows
// Consul's session rules (session:read/write on a node). The acl package
// has no session rules yet; with an Authorizer that lacks them, session
// endpoints only need a token that resolves.
type SessionAuthorizer interface {
	SessionRead(node string) bool
	SessionWrite(node string) bool
}

// authorizeSession checks session:write (or read) on node when the
// request's Authorizer has session rules.
func authorizeSession(r *http.Request, node string, write bool) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	sa, ok := authz.(SessionAuthorizer)
	if !ok {
		return nil
	}
	if (write && !sa.SessionWrite(node)) || (!write && !sa.SessionRead(node)) {
		return errPermissionDenied
	}
	return nil
}

// authorizeSessionID checks session:write on the node of session id (a
// missing session needs no permission: there is nothing to change).
func (h *handler) authorizeSessionID(r *http.Request, id string) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	sa, ok := authz.(SessionAuthorizer)
	if !ok {
		return nil
	}
	wr := h.writeRequest(r)
	var out rpc.IndexedSessions
	args := &rpc.SessionSpecificRequest{SessionID: id, QueryOptions: rpc.QueryOptions{Datacenter: wr.Datacenter, Token: wr.Token}}
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodSessionGet, args, &out); err != nil {
		return err
	}
	if len(out.Sessions) > 0 && !sa.SessionWrite(out.Sessions[0].Node) {
		return errPermissionDenied
	}
	return nil
}

func nonNilSessions(l []*state.Session) []*state.Session {
	if l == nil {
		return []*state.Session{}
	}
	return l
}

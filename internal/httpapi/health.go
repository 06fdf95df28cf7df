package httpapi

import (
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Check statuses a client may set.
const (
	statusPassing  = state.HealthPassing
	statusWarning  = state.HealthWarning
	statusCritical = state.HealthCritical
)

func validCheckStatus(s string) bool {
	return s == statusPassing || s == statusWarning || s == statusCritical
}

// healthNodeChecks serves GET /v1/health/node/:node.
func (h *handler) healthNodeChecks(w http.ResponseWriter, r *http.Request, node string) error {
	if node == "" {
		return badRequest("Missing node name")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.NodeRead(node) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.IndexedHealthChecks
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodHealthNodeChecks, &rpc.NodeSpecificRequest{Node: node, QueryOptions: opts}, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	return writeJSON(w, r, checksOut(out.HealthChecks))
}

// healthServiceChecks serves GET /v1/health/checks/:service.
func (h *handler) healthServiceChecks(w http.ResponseWriter, r *http.Request, service string) error {
	if service == "" {
		return badRequest("Missing service name")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceRead(service) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	args := &rpc.ServiceSpecificRequest{ServiceName: service, NodeMetaFilters: nodeMetaFilters(queryParams(r)), QueryOptions: opts}
	var out rpc.IndexedHealthChecks
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodHealthServiceChecks, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	return writeJSON(w, r, checksOut(out.HealthChecks))
}

// healthServiceNodes serves GET /v1/health/service/:service; ?passing drops
// every instance with a check that is not passing.
func (h *handler) healthServiceNodes(w http.ResponseWriter, r *http.Request, service string) error {
	if service == "" {
		return badRequest("Missing service name")
	}
	q := queryParams(r)
	passing, err := boolParam(q, "passing")
	if err != nil {
		return err
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceRead(service) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	args := &rpc.ServiceSpecificRequest{
		ServiceName:     service,
		ServiceTags:     q["tag"],
		NodeMetaFilters: nodeMetaFilters(q),
		QueryOptions:    opts,
	}
	var out rpc.IndexedCheckServiceNodes
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodHealthServiceNodes, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	nodes := make([]*state.CheckServiceNode, 0, len(out.Nodes))
	for _, csn := range out.Nodes {
		if csn == nil || (passing && !allPassing(csn.Checks)) {
			continue
		}
		nodes = append(nodes, &state.CheckServiceNode{
			Node:    csn.Node,
			Service: withTags(csn.Service),
			Checks:  checksOut(csn.Checks),
		})
	}
	return writeJSON(w, r, nodes)
}

// healthChecksInState serves GET /v1/health/state/:state.
func (h *handler) healthChecksInState(w http.ResponseWriter, r *http.Request, st string) error {
	switch st {
	case state.HealthAny, statusPassing, statusWarning, statusCritical:
	case "":
		return badRequest("Missing check state")
	default:
		return badRequest("Invalid check state %q: must be any, passing, warning or critical", st)
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	args := &rpc.ChecksInStateRequest{State: st, NodeMetaFilters: nodeMetaFilters(queryParams(r)), QueryOptions: opts}
	var out rpc.IndexedHealthChecks
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodHealthChecksInState, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	return writeJSON(w, r, checksOut(out.HealthChecks))
}

func allPassing(checks []*state.HealthCheck) bool {
	for _, c := range checks {
		if c != nil && c.Status != statusPassing {
			return false
		}
	}
	return true
}

// checksOut returns checks as a non-nil list with non-nil ServiceTags.
func checksOut(checks []*state.HealthCheck) []*state.HealthCheck {
	out := make([]*state.HealthCheck, 0, len(checks))
	for _, c := range checks {
		if c == nil {
			continue
		}
		cc := *c
		cc.ServiceTags = nonNilStrings(cc.ServiceTags)
		out = append(out, &cc)
	}
	return out
}

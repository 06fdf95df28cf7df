package httpapi

import (
	"net/http"
	"net/url"

	"github.com/cairn-io/cairn/internal/acl"
)

// ClusterBackend is implemented by agents that take part in gossip. The
// /v1/agent/join and /v1/agent/force-leave endpoints use it through a type
// assertion on the AgentBackend; an agent without it answers 501.
type ClusterBackend interface {
	// Join contacts the given gossip addresses ("host" or "host:port") and
	// joins the LAN pool (or the WAN pool when wan is true), returning how
	// many were joined; an error when none could be.
	Join(addrs []string, wan bool) (int, error)
	// ForceLeave moves a failed member to the left state (prune: forget it
	// at once); wanOnly restricts it to the WAN pool.
	ForceLeave(node string, prune, wanOnly bool) error
}

var errNoCluster = &httpError{code: http.StatusNotImplemented, msg: "this agent does not take part in gossip"}

func (h *handler) clusterBackend() (ClusterBackend, error) {
	cb, ok := h.cfg.Agent.(ClusterBackend)
	if !ok {
		return nil, errNoCluster
	}
	return cb, nil
}

// agentJoin serves PUT /v1/agent/join/:address (?wan).
func (h *handler) agentJoin(w http.ResponseWriter, r *http.Request, rest string) error {
	addr, err := url.PathUnescape(rest)
	if err != nil || addr == "" {
		return badRequest("missing address to join")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.AgentWrite(h.cfg.NodeName) }); err != nil {
		return err
	}
	cb, err := h.clusterBackend()
	if err != nil {
		return err
	}
	if _, err := cb.Join([]string{addr}, flagParam(queryParams(r), "wan")); err != nil {
		return err
	}
	return writeEmpty(w)
}

// agentForceLeave serves PUT /v1/agent/force-leave/:node (?prune, ?wan).
func (h *handler) agentForceLeave(w http.ResponseWriter, r *http.Request, rest string) error {
	node, err := url.PathUnescape(rest)
	if err != nil || node == "" {
		return badRequest("missing node name to force-leave")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.OperatorWrite() }); err != nil {
		return err
	}
	cb, err := h.clusterBackend()
	if err != nil {
		return err
	}
	q := queryParams(r)
	if err := cb.ForceLeave(node, flagParam(q, "prune"), flagParam(q, "wan")); err != nil {
		return err
	}
	return writeEmpty(w)
}

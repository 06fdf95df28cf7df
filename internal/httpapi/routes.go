package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// handlerFunc serves one route. rest is the part of the path after a prefix
// route's prefix ("" for exact routes). A returned error is written by
// writeError (errors.go), so handlers never format error responses.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rest string) error

// route maps a path (exact, or a prefix when it ends in "/") to a handler.
type route struct {
	methods []string
	path    string
	fn      handlerFunc
}

func (rt route) prefix() bool { return strings.HasSuffix(rt.path, "/") }

func (rt route) allows(method string) bool { return slices.Contains(rt.methods, method) }

const (
	get = http.MethodGet
	put = http.MethodPut
	del = http.MethodDelete
)

// routeTable is the whole /v1 API. Paths ending in "/" are prefixes whose
// remainder is passed to the handler; the longest matching path wins, and an
// exact path beats a prefix.
func (h *handler) routeTable() []route {
	return []route{
		// KV store.
		{[]string{get, put, del}, "/v1/kv/", h.kv},

		// Sessions (session.go) and transactions (txn.go).
		{[]string{put}, "/v1/session/create", h.sessionCreate},
		{[]string{put}, "/v1/session/destroy/", h.sessionDestroy},
		{[]string{put}, "/v1/session/renew/", h.sessionRenew},
		{[]string{get}, "/v1/session/info/", h.sessionInfo},
		{[]string{get}, "/v1/session/node/", h.sessionNode},
		{[]string{get}, "/v1/session/list", h.sessionList},
		{[]string{put}, "/v1/txn", h.txn},

		// User events over gossip (event.go).
		{[]string{put}, "/v1/event/fire/", h.eventFire},
		{[]string{get}, "/v1/event/list", h.eventList},

		// Catalog.
		{[]string{put}, "/v1/catalog/register", h.catalogRegister},
		{[]string{put}, "/v1/catalog/deregister", h.catalogDeregister},
		{[]string{get}, "/v1/catalog/datacenters", h.catalogDatacenters},
		{[]string{get}, "/v1/catalog/nodes", h.catalogNodes},
		{[]string{get}, "/v1/catalog/services", h.catalogServices},
		{[]string{get}, "/v1/catalog/service/", h.catalogServiceNodes},
		{[]string{get}, "/v1/catalog/node/", h.catalogNodeServices},
		{[]string{get}, "/v1/catalog/node-services/", h.catalogNodeServiceList},

		// Health.
		{[]string{get}, "/v1/health/node/", h.healthNodeChecks},
		{[]string{get}, "/v1/health/checks/", h.healthServiceChecks},
		{[]string{get}, "/v1/health/service/", h.healthServiceNodes},
		{[]string{get}, "/v1/health/state/", h.healthChecksInState},

		// Runtime profiles, only with enable_debug (pprof.go).
		{[]string{get, http.MethodPost}, "/debug/pprof/", h.debugPprof},

		// Status.
		{[]string{get}, "/v1/status/leader", h.statusLeader},
		{[]string{get}, "/v1/status/peers", h.statusPeers},

		// Snapshots (snapshot.go).
		{[]string{get, put}, "/v1/snapshot", h.snapshot},

		// Operator (operator.go).
		{[]string{get}, "/v1/operator/raft/configuration", h.operatorRaftConfiguration},
		{[]string{del}, "/v1/operator/raft/peer", h.operatorRaftPeer},
		{[]string{http.MethodPost}, "/v1/operator/raft/transfer-leader", h.operatorTransferLeader},
		{[]string{get, put}, "/v1/operator/autopilot/configuration", h.operatorAutopilotConfiguration},
		{[]string{get}, "/v1/operator/autopilot/health", h.operatorAutopilotHealth},
		{[]string{get}, "/v1/operator/autopilot/state", h.operatorAutopilotState},

		// Agent (local state, through AgentBackend).
		{[]string{get}, "/v1/agent/self", h.agentSelf},
		{[]string{get}, "/v1/agent/version", h.agentVersion},
		{[]string{get}, "/v1/agent/host", h.agentHost},
		{[]string{get}, "/v1/agent/members", h.agentMembers},
		{[]string{get}, "/v1/agent/services", h.agentServices},
		{[]string{get}, "/v1/agent/service/", h.agentService},
		{[]string{put}, "/v1/agent/service/register", h.agentServiceRegister},
		{[]string{put}, "/v1/agent/service/deregister/", h.agentServiceDeregister},
		{[]string{put}, "/v1/agent/service/maintenance/", h.agentServiceMaintenance},
		{[]string{get}, "/v1/agent/health/service/id/", h.agentHealthServiceID},
		{[]string{get}, "/v1/agent/health/service/name/", h.agentHealthServiceName},
		{[]string{get}, "/v1/agent/checks", h.agentChecks},
		{[]string{put}, "/v1/agent/check/register", h.agentCheckRegister},
		{[]string{put}, "/v1/agent/check/deregister/", h.agentCheckDeregister},
		{[]string{put}, "/v1/agent/check/pass/", h.agentCheckTTL(statusPassing)},
		{[]string{put}, "/v1/agent/check/warn/", h.agentCheckTTL(statusWarning)},
		{[]string{put}, "/v1/agent/check/fail/", h.agentCheckTTL(statusCritical)},
		{[]string{put}, "/v1/agent/check/update/", h.agentCheckUpdate},
		{[]string{put}, "/v1/agent/maintenance", h.agentMaintenance},
		{[]string{put}, "/v1/agent/reload", h.agentReload},
		{[]string{put}, "/v1/agent/leave", h.agentLeave},
		{[]string{put}, "/v1/agent/join/", h.agentJoin},
		{[]string{put}, "/v1/agent/force-leave/", h.agentForceLeave},
	}
}

// match finds the route for path: an exact match first, else the longest
// prefix route. rest is the path after the prefix.
func (h *handler) match(path string) (route, string, bool) {
	best, bestLen := -1, -1
	for i, rt := range h.routes {
		if rt.path == path {
			return rt, "", true
		}
		if rt.prefix() && strings.HasPrefix(path, rt.path) && len(rt.path) > bestLen {
			best, bestLen = i, len(rt.path)
		}
	}
	if best < 0 {
		return route{}, "", false
	}
	return h.routes[best], path[bestLen:], true
}

package httpapi

import (
	"encoding/json"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/state"
)

// Aggregated statuses of /v1/agent/health/service/*.
const (
	statusMaintenance = "maintenance"

	nodeMaintCheckID     = "_node_maintenance"
	serviceMaintCheckPfx = "_service_maintenance:"
)

// agentServiceHealth is one entry of /v1/agent/health/service/* (the
// official client's AgentServiceChecksInfo).
type agentServiceHealth struct {
	AggregatedStatus string
	Service          *agentService
	Checks           []*state.HealthCheck
}

// aggregateStatus folds a service's checks (its own and the node's) into
// one status: maintenance if a maintenance check is present, else the
// worst of critical, warning, passing; passing when there are no checks.
func aggregateStatus(checks []*state.HealthCheck) string {
	var warning, critical bool
	for _, c := range checks {
		if c.CheckID == nodeMaintCheckID || strings.HasPrefix(c.CheckID, serviceMaintCheckPfx) {
			return statusMaintenance
		}
		switch c.Status {
		case state.HealthCritical:
			critical = true
		case state.HealthWarning:
			warning = true
		}
	}
	switch {
	case critical:
		return state.HealthCritical
	case warning:
		return state.HealthWarning
	}
	return state.HealthPassing
}

// healthCode is the HTTP status of an aggregated status: 200 passing, 429
// warning, 503 critical or maintenance.
func healthCode(status string) int {
	switch status {
	case state.HealthPassing:
		return http.StatusOK
	case state.HealthWarning:
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// serviceHealth builds the health entry of one local service from a
// snapshot of the agent's checks.
func (h *handler) serviceHealth(svc *state.NodeService, checks map[string]*state.HealthCheck) *agentServiceHealth {
	out := &agentServiceHealth{Service: h.agentServiceOut(svc), Checks: []*state.HealthCheck{}}
	for _, id := range slices.Sorted(maps.Keys(checks)) {
		c := checks[id]
		if c == nil || c.ServiceID != "" && c.ServiceID != svc.ID {
			continue
		}
		cp := *c
		cp.ServiceTags = nonNilStrings(cp.ServiceTags)
		out.Checks = append(out.Checks, &cp)
	}
	out.AggregatedStatus = aggregateStatus(out.Checks)
	return out
}

// wantsText reports whether the caller asked for the plain-text form:
// ?format=text, or no format and an Accept of text/plain.
func wantsText(r *http.Request) bool {
	switch queryParams(r).Get("format") {
	case "text":
		return true
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/plain")
	}
	return false
}

// agentHealthServiceID serves GET /v1/agent/health/service/id/:id: the
// service's aggregated health from this agent's local state (no server
// involved), with the status in the HTTP code.
func (h *handler) agentHealthServiceID(w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		return badRequest("Missing serviceID")
	}
	svc := h.cfg.Agent.Services()[id]
	if svc == nil {
		msg := "ServiceId " + id + " not found"
		if wantsText(r) {
			writeText(w, http.StatusNotFound, msg)
			return nil
		}
		return writeJSONStatus(w, http.StatusNotFound, &agentServiceHealth{AggregatedStatus: state.HealthCritical, Checks: []*state.HealthCheck{}})
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceRead(svc.Service) }); err != nil {
		return err
	}
	out := h.serviceHealth(svc, h.cfg.Agent.Checks())
	code := healthCode(out.AggregatedStatus)
	if wantsText(r) {
		writeText(w, code, out.AggregatedStatus)
		return nil
	}
	return writeJSONStatus(w, code, out)
}

// agentHealthServiceName serves GET /v1/agent/health/service/name/:name:
// the health of every local instance of the service; the HTTP code is the
// worst instance's.
func (h *handler) agentHealthServiceName(w http.ResponseWriter, r *http.Request, name string) error {
	if name == "" {
		return badRequest("Missing service Name")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceRead(name) }); err != nil {
		return err
	}
	svcs := h.cfg.Agent.Services()
	checks := h.cfg.Agent.Checks()
	out := []*agentServiceHealth{}
	code, status := http.StatusNotFound, "ServiceName "+name+" Not Found"
	for _, id := range slices.Sorted(maps.Keys(svcs)) {
		svc := svcs[id]
		if svc == nil || svc.Service != name {
			continue
		}
		e := h.serviceHealth(svc, checks)
		out = append(out, e)
		// 200 < 429 < 503: keep the worst; any instance beats "not found".
		if c := healthCode(e.AggregatedStatus); code == http.StatusNotFound || c > code {
			code, status = c, e.AggregatedStatus
		}
	}
	if wantsText(r) {
		writeText(w, code, status)
		return nil
	}
	return writeJSONStatus(w, code, out)
}

// agentServices serves GET /v1/agent/services (ID -> service) with an
// X-Consul-ContentHash; with ?hash= it blocks (up to ?wait) until the
// content hash differs, like /v1/agent/service/:id.
func (h *handler) agentServices(w http.ResponseWriter, r *http.Request, _ string) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	return h.hashBlocking(w, r, func() (any, string, error) {
		out := make(map[string]*agentService)
		for id, svc := range h.cfg.Agent.Services() {
			if svc != nil && authz.ServiceRead(svc.Service) {
				out[id] = h.agentServiceOut(svc)
			}
		}
		out, err := applyFilter(r, out)
		if err != nil {
			return nil, "", err
		}
		return out, hashOf(out), nil
	})
}

// hashBlocking answers with read's value and its content hash in
// X-Consul-ContentHash. With ?hash= (and an agent that reports local
// state changes) it blocks, up to ?wait, while the hash equals the one
// given, re-reading after every local state change.
func (h *handler) hashBlocking(w http.ResponseWriter, r *http.Request, read func() (out any, hash string, err error)) error {
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	wantHash := queryParams(r).Get("hash")
	watcher, canWatch := h.cfg.Agent.(LocalStateWatcher)
	var timeout <-chan time.Time
	if wantHash != "" && canWatch {
		t := time.NewTimer(opts.MaxQueryTime)
		defer t.Stop()
		timeout = t.C
	}
	for {
		// Take the change channel before reading so no change is missed.
		var changed <-chan struct{}
		if timeout != nil {
			changed = watcher.LocalStateChanged()
		}
		out, hash, err := read()
		if err != nil {
			return err
		}
		if timeout == nil || hash != wantHash {
			w.Header().Set("X-Consul-ContentHash", hash)
			return writeJSON(w, r, out)
		}
		select {
		case <-changed:
		case <-timeout:
			timeout = nil // answer with the current state
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// hashOf identifies a value's JSON form for hash-based blocking
// (encoding/json sorts map keys, so equal content hashes equally).
func hashOf(v any) string {
	b, _ := json.Marshal(v)
	f := fnv.New64a()
	_, _ = f.Write(b)
	return strconv.FormatUint(f.Sum64(), 16)
}

package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/local"
)

// ServiceCheckReplacer is optionally implemented by an AgentBackend that can
// register a service and drop, in the same step, the service's checks that
// the definition no longer lists (?replace-existing-checks). Backends that
// do not implement it get the same result from AddService followed by
// RemoveCheck of the stale checks.
type ServiceCheckReplacer interface {
	AddServiceReplacingChecks(def *local.ServiceDefinition, token string) error
}

// agentServiceRegister serves PUT /v1/agent/service/register.
func (h *handler) agentServiceRegister(w http.ResponseWriter, r *http.Request, _ string) error {
	replace, err := boolParam(queryParams(r), "replace-existing-checks")
	if err != nil {
		return err
	}
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	def, err := decodeServiceDefinition(body)
	if err != nil {
		return err
	}
	if def.Name == "" {
		return badRequest("Missing service name")
	}
	for _, chk := range serviceChecks(def) {
		if chk.Status != "" && !validCheckStatus(chk.Status) {
			return badRequest("Invalid check status %q: must be passing, warning or critical", chk.Status)
		}
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceWrite(def.Name) }); err != nil {
		return err
	}
	token := tokenOf(r)
	if !replace {
		if err := h.cfg.Agent.AddService(def, token); err != nil {
			return err
		}
		return writeEmpty(w)
	}
	if rep, ok := h.cfg.Agent.(ServiceCheckReplacer); ok {
		if err := rep.AddServiceReplacingChecks(def, token); err != nil {
			return err
		}
		return writeEmpty(w)
	}
	if err := h.cfg.Agent.AddService(def, token); err != nil {
		return err
	}
	if err := h.removeStaleServiceChecks(def); err != nil {
		return err
	}
	return writeEmpty(w)
}

// serviceChecks returns a definition's checks in Consul's order (Check
// first, then Checks), skipping nil entries.
func serviceChecks(def *local.ServiceDefinition) []*local.CheckDefinition {
	var out []*local.CheckDefinition
	if def.Check != nil {
		out = append(out, def.Check)
	}
	for _, c := range def.Checks {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// removeStaleServiceChecks deregisters the checks of def's service that def
// does not list. Checks without an explicit ID get Consul's generated IDs:
// "service:<id>" for a single check, "service:<id>:<n>" for several.
func (h *handler) removeStaleServiceChecks(def *local.ServiceDefinition) error {
	svcID := def.ID
	if svcID == "" {
		svcID = def.Name
	}
	checks := serviceChecks(def)
	keep := make(map[string]bool, len(checks))
	for i, c := range checks {
		switch {
		case c.ID != "":
			keep[c.ID] = true
		case c.CheckID != "":
			keep[c.CheckID] = true
		case len(checks) == 1:
			keep["service:"+svcID] = true
		default:
			keep[fmt.Sprintf("service:%s:%d", svcID, i+1)] = true
		}
	}
	for id, chk := range h.cfg.Agent.Checks() {
		if chk != nil && chk.ServiceID == svcID && !keep[id] {
			if err := h.cfg.Agent.RemoveCheck(id); err != nil {
				return fmt.Errorf("httpapi: remove stale check %q of service %q: %w", id, svcID, err)
			}
		}
	}
	return nil
}

// agentServiceDeregister serves PUT /v1/agent/service/deregister/:id.
func (h *handler) agentServiceDeregister(w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		return badRequest("Missing service ID")
	}
	if err := h.authorizeLocalService(r, id); err != nil {
		return err
	}
	if err := h.cfg.Agent.RemoveService(id); err != nil {
		return err
	}
	return writeEmpty(w)
}

// agentServiceMaintenance serves PUT /v1/agent/service/maintenance/:id.
func (h *handler) agentServiceMaintenance(w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		return badRequest("Missing service ID")
	}
	enable, err := enableParam(r)
	if err != nil {
		return err
	}
	if err := h.authorizeLocalService(r, id); err != nil {
		return err
	}
	if enable {
		err = h.cfg.Agent.EnableServiceMaintenance(id, queryParams(r).Get("reason"), tokenOf(r))
	} else {
		err = h.cfg.Agent.DisableServiceMaintenance(id)
	}
	if err != nil {
		return err
	}
	return writeEmpty(w)
}

// authorizeLocalService asks for service:write on the service registered
// here under id. An unknown id is left for the backend to report as 404.
func (h *handler) authorizeLocalService(r *http.Request, id string) error {
	name := id
	if svc, ok := h.cfg.Agent.Services()[id]; ok && svc != nil {
		name = svc.Service
	}
	return authorize(r, func(a acl.Authorizer) bool { return a.ServiceWrite(name) })
}

// authorizeLocalCheck asks for service:write on a service check's service,
// node:write on a node check.
func (h *handler) authorizeLocalCheck(r *http.Request, id string) error {
	if chk, ok := h.cfg.Agent.Checks()[id]; ok && chk != nil && chk.ServiceID != "" {
		return authorize(r, func(a acl.Authorizer) bool { return a.ServiceWrite(chk.ServiceName) })
	}
	return authorize(r, func(a acl.Authorizer) bool { return a.NodeWrite(h.cfg.NodeName) })
}

// agentCheckRegister serves PUT /v1/agent/check/register.
func (h *handler) agentCheckRegister(w http.ResponseWriter, r *http.Request, _ string) error {
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	def, err := decodeCheckDefinition(body)
	if err != nil {
		return err
	}
	if def.Name == "" {
		return badRequest("Missing check name")
	}
	if def.Status != "" && !validCheckStatus(def.Status) {
		return badRequest("Invalid check status %q: must be passing, warning or critical", def.Status)
	}
	if def.ServiceID != "" {
		svcName := def.ServiceID
		if svc, ok := h.cfg.Agent.Services()[def.ServiceID]; ok && svc != nil {
			svcName = svc.Service
		}
		err = authorize(r, func(a acl.Authorizer) bool { return a.ServiceWrite(svcName) })
	} else {
		err = authorize(r, func(a acl.Authorizer) bool { return a.NodeWrite(h.cfg.NodeName) })
	}
	if err != nil {
		return err
	}
	if err := h.cfg.Agent.AddCheck(def, tokenOf(r)); err != nil {
		return err
	}
	return writeEmpty(w)
}

// agentCheckDeregister serves PUT /v1/agent/check/deregister/:id.
func (h *handler) agentCheckDeregister(w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		return badRequest("Missing check ID")
	}
	if err := h.authorizeLocalCheck(r, id); err != nil {
		return err
	}
	if err := h.cfg.Agent.RemoveCheck(id); err != nil {
		return err
	}
	return writeEmpty(w)
}

// agentCheckTTL serves the legacy PUT /v1/agent/check/{pass,warn,fail}/:id
// (?note= becomes the output).
func (h *handler) agentCheckTTL(status string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id string) error {
		if id == "" {
			return badRequest("Missing check ID")
		}
		if err := h.authorizeLocalCheck(r, id); err != nil {
			return err
		}
		if err := h.cfg.Agent.UpdateTTLCheck(id, status, queryParams(r).Get("note")); err != nil {
			return err
		}
		return writeEmpty(w)
	}
}

// checkUpdate is the body of PUT /v1/agent/check/update/:id.
type checkUpdate struct {
	Status string
	Output string
}

// agentCheckUpdate serves PUT /v1/agent/check/update/:id.
func (h *handler) agentCheckUpdate(w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		return badRequest("Missing check ID")
	}
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	var upd checkUpdate
	if err := json.Unmarshal(body, &upd); err != nil {
		return badRequest("Request decode failed: %v", err)
	}
	if !validCheckStatus(upd.Status) {
		return badRequest("Invalid check status: '%s'", upd.Status)
	}
	if err := h.authorizeLocalCheck(r, id); err != nil {
		return err
	}
	if err := h.cfg.Agent.UpdateTTLCheck(id, upd.Status, upd.Output); err != nil {
		return err
	}
	return writeEmpty(w)
}

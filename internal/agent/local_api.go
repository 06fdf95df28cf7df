package agent

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/cairn-io/cairn/internal/checks"
	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Maintenance check IDs and names.
const (
	NodeMaintCheckID        = "_node_maintenance"
	ServiceMaintCheckPrefix = "_service_maintenance:"
	nodeMaintName           = "Node Maintenance Mode"
	serviceMaintName        = "Service Maintenance Mode"
	defaultNodeMaintReason  = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
	defaultSvcMaintReason   = "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)

// Backend adapts an Agent to httpapi.AgentBackend. It is the Agent itself
// except for Leave, which for HTTP callers must return before the shutdown
// it starts.
type Backend struct{ *Agent }

var (
	_ httpapi.AgentBackend      = Backend{}
	_ httpapi.LocalStateWatcher = Backend{}
)

// Backend returns the agent as the HTTP layer sees it.
func (a *Agent) Backend() httpapi.AgentBackend { return Backend{a} }

// Leave starts a graceful leave and shutdown in the background, so the
// HTTP reply can be sent first (the shutdown waits for in-flight requests).
func (b Backend) Leave() error {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Agent.Leave(ctx); err != nil {
			b.logger.Error("leave failed", "error", err)
		}
	}()
	return nil
}

// checkOpts are the policies for definitions from the HTTP API (config
// files also allow enable_local_script_checks).
func (a *Agent) checkOpts(fromConfig bool) local.ValidateOptions {
	allow := a.cfg.EnableScriptChecks || (fromConfig && a.cfg.EnableLocalScriptChecks)
	return local.ValidateOptions{AllowScripts: allow}
}

func (a *Agent) running() error {
	if a.state != stateStarted || a.local == nil {
		if a.state == stateStopping {
			return ErrShutdown
		}
		return ErrNotStarted
	}
	return nil
}

// Services returns the services registered at this agent by ID.
func (a *Agent) Services() map[string]*state.NodeService {
	if a.local == nil {
		return map[string]*state.NodeService{}
	}
	return a.local.Services()
}

// Checks returns the checks registered at this agent by ID.
func (a *Agent) Checks() map[string]*state.HealthCheck {
	if a.local == nil {
		return map[string]*state.HealthCheck{}
	}
	return a.local.Checks()
}

// AddService registers or replaces a service with its checks. Checks the
// service had before and does not list any more are removed.
func (a *Agent) AddService(def *local.ServiceDefinition, token string) error {
	return a.addService(def, token, false)
}

func (a *Agent) addService(def *local.ServiceDefinition, token string, fromConfig bool) error {
	svc, cdefs, err := local.BuildService(def)
	if err != nil {
		return err
	}
	hcs := make([]*state.HealthCheck, 0, len(cdefs))
	runners := map[string]*runner{}
	for _, cd := range cdefs {
		hc, err := local.BuildCheck(cd, a.checkOpts(fromConfig))
		if err != nil {
			return err
		}
		r, err := a.newRunner(hc, cd)
		if err != nil {
			return err
		}
		hcs = append(hcs, hc)
		if r != nil {
			r.ttl = time.Duration(cd.TTL)
			runners[hc.CheckID] = r
		}
	}
	if token == "" {
		token = def.Token
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.running(); err != nil {
		return err
	}
	keep := map[string]bool{}
	for i, hc := range hcs {
		keep[hc.CheckID] = true
		a.keepCheckStatus(hc, cdefs[i])
	}
	// Stop the runners being replaced before the new entries exist, so a
	// late result of an old runner cannot land on a new check.
	var dropped []string
	for id, chk := range a.local.Checks() {
		if chk.ServiceID == svc.ID || keep[id] {
			if r := a.runners[id]; r != nil {
				r.check.Stop()
				delete(a.runners, id)
			}
			if chk.ServiceID == svc.ID && !keep[id] && !isMaintCheck(id) {
				_ = a.local.RemoveCheck(id)
				dropped = append(dropped, id)
			}
		}
	}
	if err := a.local.AddService(svc, hcs, token); err != nil {
		return err
	}
	for _, id := range dropped {
		delete(a.configChecks, id)
		if err := a.unpersistCheck(id); err != nil {
			a.logger.Warn("remove persisted check failed", "check_id", id, "error", err)
		}
	}
	if !fromConfig {
		// The local state has the service either way; a failed write only
		// means it will not survive a restart, which the log says.
		if err := a.persistService(def, cdefs, token); err != nil {
			a.logger.Error("persist service failed", "service_id", svc.ID, "error", err)
		}
	}
	for id, r := range runners {
		a.runners[id] = r
		r.check.Start()
	}
	a.logger.Debug("service registered", "service_id", svc.ID, "checks", len(hcs))
	return nil
}

// RemoveService deregisters a service and its checks.
func (a *Agent) RemoveService(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.running(); err != nil {
		return err
	}
	removed, err := a.local.RemoveService(id)
	if err != nil {
		return err
	}
	for _, cid := range removed {
		if r := a.runners[cid]; r != nil {
			r.check.Stop()
			delete(a.runners, cid)
		}
		delete(a.configChecks, cid)
		if err := a.unpersistCheck(cid); err != nil {
			a.logger.Warn("remove persisted check failed", "check_id", cid, "error", err)
		}
	}
	delete(a.configServices, id)
	if err := a.unpersistService(id); err != nil {
		a.logger.Warn("remove persisted service failed", "service_id", id, "error", err)
	}
	a.logger.Debug("service deregistered", "service_id", id)
	return nil
}

// AddCheck registers or replaces a check.
func (a *Agent) AddCheck(def *local.CheckDefinition, token string) error {
	return a.addCheck(def, token, false)
}

func (a *Agent) addCheck(def *local.CheckDefinition, token string, fromConfig bool) error {
	hc, err := local.BuildCheck(def, a.checkOpts(fromConfig))
	if err != nil {
		return err
	}
	r, err := a.newRunner(hc, def)
	if err != nil {
		return err
	}
	if r != nil {
		r.ttl = time.Duration(def.TTL)
	}
	if token == "" {
		token = def.Token
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.running(); err != nil {
		return err
	}
	if hc.ServiceID != "" && a.local.Service(hc.ServiceID) == nil {
		return fmt.Errorf("%w: ServiceID %q does not exist", rpc.ErrBadRequest, hc.ServiceID)
	}
	a.keepCheckStatus(hc, def)
	if old := a.runners[hc.CheckID]; old != nil {
		old.check.Stop()
		delete(a.runners, hc.CheckID)
	}
	if err := a.local.AddCheck(hc, token); err != nil {
		return err
	}
	if !fromConfig {
		if err := a.persistCheck(def, token); err != nil {
			a.logger.Error("persist check failed", "check_id", hc.CheckID, "error", err)
		}
	}
	if r != nil {
		a.runners[hc.CheckID] = r
		r.check.Start()
	}
	a.logger.Debug("check registered", "check_id", hc.CheckID, "type", hc.Type)
	return nil
}

// RemoveCheck deregisters a check.
func (a *Agent) RemoveCheck(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.running(); err != nil {
		return err
	}
	if err := a.local.RemoveCheck(id); err != nil {
		return err
	}
	if r := a.runners[id]; r != nil {
		r.check.Stop()
		delete(a.runners, id)
	}
	delete(a.configChecks, id)
	if err := a.unpersistCheck(id); err != nil {
		a.logger.Warn("remove persisted check failed", "check_id", id, "error", err)
	}
	return nil
}

// keepCheckStatus decides the status a check being (re)registered starts
// with, unless its definition sets one: a check that exists with the same
// kind and target keeps its current status and output (a reload or a
// re-registration does not reset it to critical); a TTL check new to this
// process takes the status saved before a restart while it is unexpired.
// Caller holds a.mu.
func (a *Agent) keepCheckStatus(hc *state.HealthCheck, def *local.CheckDefinition) {
	if def.Status != "" {
		return
	}
	old := a.local.Check(hc.CheckID)
	if old == nil {
		a.restoreTTLState(hc)
		return
	}
	if old.Type == hc.Type && old.ServiceID == hc.ServiceID && reflect.DeepEqual(old.Definition, hc.Definition) {
		hc.Status, hc.Output = old.Status, old.Output
	}
}

// UpdateTTLCheck sets a TTL check's status and output and re-arms its TTL.
func (a *Agent) UpdateTTLCheck(id, status, output string) error {
	if !local.ValidStatus(status) {
		return fmt.Errorf("%w: invalid check status %q (want passing, warning or critical)", rpc.ErrBadRequest, status)
	}
	a.mu.Lock()
	if err := a.running(); err != nil {
		a.mu.Unlock()
		return err
	}
	r := a.runners[id]
	exists := a.local.Check(id) != nil
	a.mu.Unlock()
	if !exists {
		return fmt.Errorf("%w: Unknown check ID %q (pass the check ID, not the check name)", rpc.ErrNotFound, id)
	}
	var ttl *checks.TTL
	if r != nil {
		ttl, _ = r.check.(*checks.TTL)
	}
	if ttl == nil {
		return fmt.Errorf("%w: CheckID %q does not have associated TTL", rpc.ErrBadRequest, id)
	}
	if len(output) > r.outputMax {
		output = output[:r.outputMax]
	}
	ttl.SetStatus(status, output)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runners[id] == r { // not deregistered or replaced meanwhile
		if err := a.persistCheckState(id, status, output, r.ttl); err != nil {
			a.logger.Warn("persist check state failed", "check_id", id, "error", err)
		}
	}
	return nil
}

func isMaintCheck(id string) bool {
	return id == NodeMaintCheckID || len(id) > len(ServiceMaintCheckPrefix) && id[:len(ServiceMaintCheckPrefix)] == ServiceMaintCheckPrefix
}

// EnableNodeMaintenance registers the critical _node_maintenance check
// (once; a second call keeps the first reason).
func (a *Agent) EnableNodeMaintenance(reason, token string) {
	if reason == "" {
		reason = defaultNodeMaintReason
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running() != nil || a.local.Check(NodeMaintCheckID) != nil {
		return
	}
	_ = a.local.AddCheck(&state.HealthCheck{
		CheckID: NodeMaintCheckID,
		Name:    nodeMaintName,
		Notes:   reason,
		Status:  state.HealthCritical,
		Type:    local.KindMaintenance,
	}, token)
	a.logger.Info("node entered maintenance mode")
}

// DisableNodeMaintenance removes the _node_maintenance check.
func (a *Agent) DisableNodeMaintenance() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running() != nil {
		return
	}
	if a.local.RemoveCheck(NodeMaintCheckID) == nil {
		a.logger.Info("node left maintenance mode")
	}
}

// EnableServiceMaintenance registers the critical
// _service_maintenance:<id> check of a service.
func (a *Agent) EnableServiceMaintenance(id, reason, token string) error {
	if reason == "" {
		reason = defaultSvcMaintReason
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.running(); err != nil {
		return err
	}
	svc := a.local.Service(id)
	if svc == nil {
		return fmt.Errorf("%w: No service registered with ID %q", rpc.ErrNotFound, id)
	}
	cid := ServiceMaintCheckPrefix + id
	if a.local.Check(cid) != nil {
		return nil
	}
	if token == "" {
		token = a.local.ServiceToken(id)
	}
	if err := a.local.AddCheck(&state.HealthCheck{
		CheckID:   cid,
		Name:      serviceMaintName,
		Notes:     reason,
		Status:    state.HealthCritical,
		ServiceID: id,
		Type:      local.KindMaintenance,
	}, token); err != nil {
		return err
	}
	a.logger.Info("service entered maintenance mode", "service_id", id)
	return nil
}

// DisableServiceMaintenance removes a service's maintenance check.
func (a *Agent) DisableServiceMaintenance(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.running(); err != nil {
		return err
	}
	if a.local.Service(id) == nil {
		return fmt.Errorf("%w: No service registered with ID %q", rpc.ErrNotFound, id)
	}
	if a.local.RemoveCheck(ServiceMaintCheckPrefix+id) == nil {
		a.logger.Info("service left maintenance mode", "service_id", id)
	}
	return nil
}

// LocalStateChanged implements httpapi.LocalStateWatcher: the channel is
// closed at the next change of the local services or checks.
func (a *Agent) LocalStateChanged() <-chan struct{} {
	if a.local == nil {
		return make(chan struct{}) // never changes before Start
	}
	return a.local.Changed()
}

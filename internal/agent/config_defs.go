package agent

import (
	"encoding/json"
	"fmt"

	"github.com/cairn-io/cairn/internal/config"
	"github.com/cairn-io/cairn/internal/local"
)

// configDefs are the services and checks of a config, decoded and
// validated.
type configDefs struct {
	services []*local.ServiceDefinition
	checks   []*local.CheckDefinition
}

func decodeConfigDefs(cfg *config.RuntimeConfig, opts local.ValidateOptions) (*configDefs, error) {
	out := &configDefs{}
	for i, m := range cfg.Services {
		def, err := local.DecodeServiceDefinition(m)
		if err != nil {
			return nil, fmt.Errorf("agent: services[%d]: %w", i, err)
		}
		// Validate now, so a bad file fails the (re)load as a whole.
		_, cdefs, err := local.BuildService(def)
		if err != nil {
			return nil, fmt.Errorf("agent: services[%d]: %w", i, err)
		}
		for _, cd := range cdefs {
			if _, err := local.BuildCheck(cd, opts); err != nil {
				return nil, fmt.Errorf("agent: services[%d]: %w", i, err)
			}
		}
		out.services = append(out.services, def)
	}
	for i, m := range cfg.Checks {
		def, err := local.DecodeCheckDefinition(m)
		if err != nil {
			return nil, fmt.Errorf("agent: checks[%d]: %w", i, err)
		}
		if _, err := local.BuildCheck(def, opts); err != nil {
			return nil, fmt.Errorf("agent: checks[%d]: %w", i, err)
		}
		out.checks = append(out.checks, def)
	}
	return out, nil
}

// loadConfigDefinitions registers the services and checks of config files
// at start.
func (a *Agent) loadConfigDefinitions(cfg *config.RuntimeConfig) error {
	defs, err := decodeConfigDefs(cfg, a.checkOpts(true))
	if err != nil {
		return err
	}
	return a.applyConfigDefs(defs)
}

// reloadConfigDefinitions replaces the config-file services and checks:
// new and changed ones are registered, vanished ones removed.
func (a *Agent) reloadConfigDefinitions(cfg *config.RuntimeConfig) error {
	defs, err := decodeConfigDefs(cfg, a.checkOpts(true))
	if err != nil {
		return err
	}
	wantSvc, wantChk := map[string]bool{}, map[string]bool{}
	for _, d := range defs.services {
		wantSvc[serviceID(d)] = true
	}
	for _, d := range defs.checks {
		wantChk[checkID(d)] = true
	}
	a.mu.Lock()
	var goneSvc, goneChk []string
	for id := range a.configServices {
		if !wantSvc[id] {
			goneSvc = append(goneSvc, id)
		}
	}
	for id := range a.configChecks {
		if !wantChk[id] {
			goneChk = append(goneChk, id)
		}
	}
	a.mu.Unlock()
	for _, id := range goneChk {
		if err := a.RemoveCheck(id); err != nil {
			a.logger.Warn("reload: remove check", "check_id", id, "error", err)
		}
	}
	for _, id := range goneSvc {
		if err := a.RemoveService(id); err != nil {
			a.logger.Warn("reload: remove service", "service_id", id, "error", err)
		}
	}
	return a.applyConfigDefs(defs)
}

// applyConfigDefs registers the config definitions. One whose definition
// is unchanged since it was last applied, and which is still registered, is
// left alone: its checks keep running with their status (a reload must not
// reset them). Changed ones are re-registered; their checks whose own
// definition did not change keep their status too (keepCheckStatus).
func (a *Agent) applyConfigDefs(defs *configDefs) error {
	for _, d := range defs.services {
		id := serviceID(d)
		key, enc := "service:"+id, encodeDef(d)
		if a.unchangedDef(key, enc, a.serviceComplete(d)) {
			continue
		}
		if err := a.addService(d, d.Token, true); err != nil {
			return fmt.Errorf("agent: register service %q from config: %w", id, err)
		}
		a.mu.Lock()
		a.configServices[id] = true
		a.setAppliedDef(key, enc)
		a.mu.Unlock()
	}
	for _, d := range defs.checks {
		id := checkID(d)
		key, enc := "check:"+id, encodeDef(d)
		if a.unchangedDef(key, enc, a.local.Check(id) != nil) {
			continue
		}
		if err := a.addCheck(d, d.Token, true); err != nil {
			return fmt.Errorf("agent: register check %q from config: %w", id, err)
		}
		a.mu.Lock()
		a.configChecks[id] = true
		a.setAppliedDef(key, enc)
		a.mu.Unlock()
	}
	return nil
}

// unchangedDef reports whether key was last applied with the same encoded
// definition and is still registered.
func (a *Agent) unchangedDef(key, enc string, registered bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.appliedDefs[key]
	return ok && registered && enc != "" && prev == enc
}

// serviceComplete reports whether a service and all the checks its
// definition lists are registered.
func (a *Agent) serviceComplete(d *local.ServiceDefinition) bool {
	if a.local.Service(serviceID(d)) == nil {
		return false
	}
	_, cdefs, err := local.BuildService(d)
	if err != nil {
		return false
	}
	for _, cd := range cdefs {
		if a.local.Check(checkID(cd)) == nil {
			return false
		}
	}
	return true
}

// setAppliedDef records a definition as applied. Caller holds a.mu.
func (a *Agent) setAppliedDef(key, enc string) {
	if a.appliedDefs == nil {
		a.appliedDefs = map[string]string{}
	}
	a.appliedDefs[key] = enc
}

// encodeDef is a definition's comparable form ("" if it cannot be encoded,
// which never compares equal to an applied one).
func encodeDef(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func serviceID(d *local.ServiceDefinition) string {
	if d.ID != "" {
		return d.ID
	}
	return d.Name
}

func checkID(d *local.CheckDefinition) string {
	switch {
	case d.ID != "":
		return d.ID
	case d.CheckID != "":
		return d.CheckID
	}
	return d.Name
}

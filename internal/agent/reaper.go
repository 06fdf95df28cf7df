package agent

import (
	"time"
)

// defaultReapInterval is how often services whose checks have been
// critical for longer than their DeregisterCriticalServiceAfter are removed.
const defaultReapInterval = 30 * time.Second

// minDeregisterCriticalAfter is the smallest deregister_critical_service_after
// the reaper honours: shorter values count as one minute, as in Consul, so a
// brief outage never removes a service.
const minDeregisterCriticalAfter = time.Minute

// reapLoop removes services with a check that has been critical for longer
// than the check's DeregisterCriticalServiceAfter.
func (a *Agent) reapLoop() {
	defer a.wg.Done()
	t := time.NewTicker(envDuration(EnvCheckReapInterval, a.reapInterval))
	defer t.Stop()
	for {
		select {
		case <-a.stopCh:
			return
		case <-t.C:
			a.reapServices(time.Now())
		}
	}
}

func (a *Agent) reapServices(now time.Time) {
	reaped := map[string]bool{}
	for id, cc := range a.local.CriticalChecks() {
		after := time.Duration(cc.Check.Definition.DeregisterCriticalServiceAfter)
		if after > 0 {
			after = max(after, a.reapMinimum)
		}
		svcID := cc.Check.ServiceID
		if after <= 0 || svcID == "" || reaped[svcID] || now.Sub(cc.CriticalSince) <= after {
			continue
		}
		reaped[svcID] = true
		if err := a.RemoveService(svcID); err != nil {
			a.logger.Warn("deregister critical service failed", "service_id", svcID, "check_id", id, "error", err)
			continue
		}
		a.logger.Info("deregistered service with critical check", "service_id", svcID, "check_id", id, "critical_for", now.Sub(cc.CriticalSince).Round(time.Second))
	}
}

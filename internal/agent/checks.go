package agent

import (
	"fmt"
	"time"

	"github.com/cairn-io/cairn/internal/checks"
	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// minCheckInterval is the shortest interval an interval check runs at;
// shorter ones are raised to it (as Consul does).
const minCheckInterval = time.Second

// notifier feeds check results into the local state. It only takes the
// local state's lock, never Agent.mu, so runners may be stopped while
// Agent.mu is held.
func (a *Agent) notifier() checks.Notifier {
	return checks.NotifierFunc(func(id, status, output string) {
		a.local.UpdateCheck(id, status, output)
	})
}

// newRunner builds (but does not start) the runner of a validated check.
// Maintenance checks have none (nil, nil). A kind this agent cannot run yet
// wraps rpc.ErrBadRequest.
func (a *Agent) newRunner(hc *state.HealthCheck, def *local.CheckDefinition) (*runner, error) {
	outputMax := def.OutputMaxSize
	if outputMax <= 0 {
		outputMax = checks.DefaultOutputMaxSize
	}
	var n checks.Notifier = a.notifier()
	if def.SuccessBeforePassing > 0 || def.FailuresBeforeCritical > 0 || def.FailuresBeforeWarning > 0 {
		n = checks.NewStatusHandler(n, def.SuccessBeforePassing, def.FailuresBeforeWarning, def.FailuresBeforeCritical)
	}
	interval := time.Duration(def.Interval)
	if interval > 0 && interval < minCheckInterval {
		a.logger.Warn("check interval too short, using the minimum", "check_id", hc.CheckID, "interval", interval, "minimum", minCheckInterval)
		interval = minCheckInterval
	}
	switch hc.Type {
	case local.KindTTL:
		return &runner{check: checks.NewTTL(hc.CheckID, time.Duration(def.TTL), a.notifier()), outputMax: outputMax}, nil
	case local.KindHTTP:
		return &runner{check: checks.NewHTTP(checks.HTTPConfig{
			ID:              hc.CheckID,
			URL:             def.HTTP,
			Method:          def.Method,
			Header:          def.Header,
			Body:            def.Body,
			Interval:        interval,
			Timeout:         time.Duration(def.Timeout),
			TLSServerName:   def.TLSServerName,
			TLSSkipVerify:   def.TLSSkipVerify,
			FollowRedirects: def.DisableRedirects != nil && !*def.DisableRedirects,
			OutputMaxSize:   outputMax,
		}, n), outputMax: outputMax}, nil
	case local.KindTCP:
		return &runner{check: checks.NewTCP(checks.TCPConfig{
			ID:            hc.CheckID,
			Address:       def.TCP,
			Interval:      interval,
			Timeout:       time.Duration(def.Timeout),
			UseTLS:        def.TCPUseTLS,
			TLSServerName: def.TLSServerName,
			TLSSkipVerify: def.TLSSkipVerify,
		}, n), outputMax: outputMax}, nil
	case local.KindMaintenance:
		return nil, nil
	}
	return nil, fmt.Errorf("%w: check %q: %s checks are not supported by this agent yet", rpc.ErrBadRequest, hc.CheckID, hc.Type)
}

package agent

import (
	"fmt"
	"os"
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
// Maintenance checks have none (nil, nil). An unknown kind
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
	case local.KindUDP:
		return &runner{check: checks.NewUDP(checks.UDPConfig{
			ID:       hc.CheckID,
			Address:  def.UDP,
			Interval: interval,
			Timeout:  time.Duration(def.Timeout),
		}, n), outputMax: outputMax}, nil
	case local.KindGRPC:
		return &runner{check: checks.NewGRPC(checks.GRPCConfig{
			ID:            hc.CheckID,
			Target:        def.GRPC,
			Interval:      interval,
			Timeout:       time.Duration(def.Timeout),
			UseTLS:        def.GRPCUseTLS,
			TLSServerName: def.TLSServerName,
			TLSSkipVerify: def.TLSSkipVerify,
		}, n), outputMax: outputMax}, nil
	case local.KindH2Ping:
		return &runner{check: checks.NewH2Ping(checks.H2PingConfig{
			ID:            hc.CheckID,
			Address:       def.H2PING,
			Interval:      interval,
			Timeout:       time.Duration(def.Timeout),
			UseTLS:        def.H2PingUseTLS,
			TLSServerName: def.TLSServerName,
			TLSSkipVerify: def.TLSSkipVerify,
		}, n), outputMax: outputMax}, nil
	case local.KindScript:
		// Whether scripts may run was decided by BuildCheck (ValidateOptions).
		return &runner{check: checks.NewScript(checks.ScriptConfig{
			ID:            hc.CheckID,
			Args:          def.Args,
			Interval:      interval,
			Timeout:       time.Duration(def.Timeout),
			OutputMaxSize: outputMax,
		}, n), outputMax: outputMax}, nil
	case local.KindDocker:
		return &runner{check: checks.NewDocker(checks.DockerConfig{
			ID:            hc.CheckID,
			ContainerID:   def.DockerContainerID,
			Args:          def.Args,
			Shell:         def.Shell,
			Interval:      interval,
			Timeout:       time.Duration(def.Timeout),
			OutputMaxSize: outputMax,
			Host:          os.Getenv("DOCKER_HOST"),
		}, n), outputMax: outputMax}, nil
	case local.KindAlias:
		return &runner{check: checks.NewAlias(a.aliasConfig(hc.CheckID, def), n), outputMax: outputMax}, nil
	case local.KindMaintenance:
		return nil, nil
	}
	return nil, fmt.Errorf("%w: check %q: unknown check kind %q", rpc.ErrBadRequest, hc.CheckID, hc.Type)
}

// aliasConfig wires an alias check to what it watches: the local state for
// a service of this agent, else the RPC caller (blocking queries).
func (a *Agent) aliasConfig(id string, def *local.CheckDefinition) checks.AliasConfig {
	cfg := checks.AliasConfig{
		ID:         id,
		Node:       def.AliasNode,
		ServiceID:  def.AliasService,
		LocalNode:  a.cfg.NodeName,
		Caller:     a.Caller(),
		Datacenter: a.cfg.Datacenter,
		Token:      def.Token,
	}
	if cfg.Token == "" {
		cfg.Token = a.cfg.ACL.Tokens.Default
	}
	if a.local != nil { // never a typed nil in the interface
		cfg.Local = a.local
	}
	return cfg
}

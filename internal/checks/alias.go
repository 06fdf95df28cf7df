package checks

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// AliasLocal is the agent's local state as an alias check of a local
// service reads it. Changed's channel is closed at the next change of any
// service or check; the other methods return copies.
type AliasLocal interface {
	Changed() <-chan struct{}
	Service(id string) *state.NodeService
	Checks() map[string]*state.HealthCheck
}

// AliasConfig configures an alias check.
type AliasConfig struct {
	ID string
	// Node is the aliased node (alias_node); empty means this agent's node.
	Node string
	// ServiceID is the aliased service instance (alias_service); empty
	// aliases the node as a whole.
	ServiceID string

	// LocalNode is this agent's node name. An alias of this node is read
	// from Local without network traffic; any other through Caller with
	// blocking, stale-allowed queries.
	LocalNode  string
	Local      AliasLocal
	Caller     rpc.Caller
	Datacenter string
	Token      string

	// RetryMin and RetryMax bound the backoff after a failed query;
	// defaults 1 s and 1 min.
	RetryMin, RetryMax time.Duration
	// MaxQueryTime is the wait of each blocking query; default 5 min.
	MaxQueryTime time.Duration
}

// Alias is a check that mirrors the health of another service instance or
// node: critical if any of its checks (service and node-level) is
// critical, else warning if any is warning, else passing. A missing service
// or node, or a failed query, is critical.
type Alias struct {
	cfg    AliasConfig
	notify Notifier

	startOnce, stopOnce sync.Once
	ctx                 context.Context
	cancel              context.CancelFunc
	wg                  sync.WaitGroup

	last [2]string // last status and output sent; owned by run's goroutine
}

// NewAlias returns an alias check; it runs from Start until Stop.
func NewAlias(cfg AliasConfig, n Notifier) *Alias {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(time.Minute, cfg.RetryMin)
	}
	if cfg.MaxQueryTime <= 0 {
		cfg.MaxQueryTime = 5 * time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Alias{cfg: cfg, notify: n, ctx: ctx, cancel: cancel}
}

// Start begins watching.
func (a *Alias) Start() {
	a.startOnce.Do(func() {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if a.isLocal() {
				a.runLocal()
			} else {
				a.runRemote()
			}
		}()
	})
}

// Stop ends watching and waits for it; it is idempotent.
func (a *Alias) Stop() {
	a.stopOnce.Do(func() {
		a.cancel()
		a.wg.Wait()
	})
}

func (a *Alias) isLocal() bool {
	return a.cfg.Local != nil && (a.cfg.Node == "" || a.cfg.Node == a.cfg.LocalNode)
}

func (a *Alias) target() string {
	node := a.cfg.Node
	if node == "" {
		node = a.cfg.LocalNode
	}
	if a.cfg.ServiceID == "" {
		return fmt.Sprintf("node %q", node)
	}
	return fmt.Sprintf("service %q on node %q", a.cfg.ServiceID, node)
}

// report sends a result unless it equals the last one sent.
func (a *Alias) report(status, output string) {
	if a.ctx.Err() != nil || (a.last == [2]string{status, output}) {
		return
	}
	a.last = [2]string{status, output}
	a.notify.UpdateCheck(a.cfg.ID, status, output)
}

func (a *Alias) runLocal() {
	for {
		changed := a.cfg.Local.Changed() // before reading, so no change is missed
		if a.cfg.ServiceID != "" && a.cfg.Local.Service(a.cfg.ServiceID) == nil {
			a.report("critical", fmt.Sprintf("Alias: %s is not registered", a.target()))
		} else {
			var list []*state.HealthCheck
			for id, c := range a.cfg.Local.Checks() {
				if id != a.cfg.ID { // never alias ourselves
					list = append(list, c)
				}
			}
			a.report(aliasStatus(list, a.cfg.ServiceID, a.target()))
		}
		select {
		case <-a.ctx.Done():
			return
		case <-changed:
		}
	}
}

func (a *Alias) runRemote() {
	if a.cfg.Caller == nil {
		a.report("critical", fmt.Sprintf("Alias: cannot watch %s: no RPC caller", a.target()))
		<-a.ctx.Done()
		return
	}
	var index uint64
	failures := 0
	for a.ctx.Err() == nil {
		status, output, next, err := a.queryRemote(index)
		if a.ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			a.report("critical", fmt.Sprintf("Alias: watching %s failed: %v", a.target(), err))
			wait := a.cfg.RetryMin << min(failures-1, 16)
			if wait > a.cfg.RetryMax || wait <= 0 {
				wait = a.cfg.RetryMax
			}
			if !a.sleep(wait) {
				return
			}
			continue
		}
		failures = 0
		a.report(status, output)
		switch {
		case next == 0:
			// No index to block on: poll instead of spinning.
			if !a.sleep(a.cfg.RetryMin) {
				return
			}
		case next < index:
			index = 0 // the index went backwards (e.g. restored snapshot): start over
		default:
			index = next
		}
	}
}

func (a *Alias) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// queryRemote does one (blocking, when index > 0) read of the aliased
// node's checks and returns the resulting status and the index to block
// on next.
func (a *Alias) queryRemote(index uint64) (string, string, uint64, error) {
	opts := rpc.QueryOptions{
		Datacenter:    a.cfg.Datacenter,
		Token:         a.cfg.Token,
		MinQueryIndex: index,
		MaxQueryTime:  a.cfg.MaxQueryTime,
		AllowStale:    true,
	}
	var reply rpc.IndexedHealthChecks
	if err := a.cfg.Caller.RPC(a.ctx, rpc.MethodHealthNodeChecks, &rpc.NodeSpecificRequest{Node: a.cfg.Node, QueryOptions: opts}, &reply); err != nil {
		return "", "", 0, fmt.Errorf("read checks of node %q: %w", a.cfg.Node, err)
	}
	found := a.cfg.ServiceID == "" && len(reply.HealthChecks) > 0
	for _, c := range reply.HealthChecks {
		if a.cfg.ServiceID != "" && c.ServiceID == a.cfg.ServiceID {
			found = true
		}
	}
	if !found {
		// No check names the target: it may exist without checks, or not
		// at all. Ask the catalog (not blocking).
		opts.MinQueryIndex = 0
		var ns rpc.IndexedNodeServices
		if err := a.cfg.Caller.RPC(a.ctx, rpc.MethodCatalogNodeServices, &rpc.NodeSpecificRequest{Node: a.cfg.Node, QueryOptions: opts}, &ns); err != nil {
			return "", "", 0, fmt.Errorf("read services of node %q: %w", a.cfg.Node, err)
		}
		switch {
		case ns.NodeServices == nil || ns.NodeServices.Node == nil:
			return "critical", fmt.Sprintf("Alias: node %q is not registered", a.cfg.Node), reply.Index, nil
		case a.cfg.ServiceID != "" && ns.NodeServices.Services[a.cfg.ServiceID] == nil:
			return "critical", fmt.Sprintf("Alias: %s is not registered", a.target()), reply.Index, nil
		}
	}
	status, output := aliasStatus(reply.HealthChecks, a.cfg.ServiceID, a.target())
	return status, output, reply.Index, nil
}

// aliasStatus is the worst status of the checks that count for the target:
// with a service, its checks and the node-level ones; without, all of the
// node's checks.
func aliasStatus(list []*state.HealthCheck, serviceID, target string) (string, string) {
	var passing, warning, critical int
	var worst *state.HealthCheck
	for _, c := range list {
		if serviceID != "" && c.ServiceID != "" && c.ServiceID != serviceID {
			continue
		}
		switch c.Status {
		case state.HealthPassing:
			passing++
		case state.HealthWarning:
			warning++
			if worst == nil || worst.Status != state.HealthCritical {
				worst = c
			}
		default:
			critical++
			if worst == nil || worst.Status != state.HealthCritical {
				worst = c
			}
		}
	}
	switch {
	case critical > 0:
		return state.HealthCritical, fmt.Sprintf("Alias: %s has %d critical check(s), e.g. %q", target, critical, worst.CheckID)
	case warning > 0:
		return state.HealthWarning, fmt.Sprintf("Alias: %s has %d warning check(s), e.g. %q", target, warning, worst.CheckID)
	case passing == 0:
		return state.HealthPassing, fmt.Sprintf("Alias: %s has no checks", target)
	}
	return state.HealthPassing, fmt.Sprintf("Alias: all %d check(s) of %s passing", passing, target)
}

package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestAlias_LocalService(t *testing.T) {
	fl := newFakeLocal()
	r := &recorder{}
	c := NewAlias(AliasConfig{ID: "c", ServiceID: "web", LocalNode: "n1", Local: fl}, r)
	c.Start()
	defer c.Stop()

	out := waitStatus(t, r, "c", "critical")
	require.Contains(t, out, "not registered")

	fl.setService("web")
	out = waitStatus(t, r, "c", "passing")
	require.Contains(t, out, "no checks")

	fl.setCheck("web-1", "web", "passing")
	fl.setCheck("web-2", "web", "warning")
	fl.setCheck("other", "db", "critical") // another service's check does not count
	fl.setCheck("c", "", "critical")       // nor does the alias check itself
	waitStatus(t, r, "c", "warning")

	fl.setCheck("node-disk", "", "critical") // a node-level check does
	out = waitStatus(t, r, "c", "critical")
	require.Contains(t, out, "node-disk")

	fl.setCheck("node-disk", "", "passing")
	fl.setCheck("web-2", "web", "passing")
	out = waitStatus(t, r, "c", "passing")
	require.Contains(t, out, "all 3 check(s)")
}

// fakeCatalog is an rpc.Caller answering Health.NodeChecks (blocking) and
// Catalog.NodeServices from an in-memory catalog.
type fakeCatalog struct {
	mu       sync.Mutex
	index    uint64
	changed  chan struct{}
	checks   map[string][]*state.HealthCheck // by node
	services map[string]map[string]bool      // node -> service IDs
	fail     error
	calls    atomic.Int64
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{index: 1, changed: make(chan struct{}), checks: map[string][]*state.HealthCheck{}, services: map[string]map[string]bool{}}
}

func (f *fakeCatalog) update(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCatalog) setCheck(node, id, serviceID, status string) {
	f.update(func() {
		if f.services[node] == nil {
			f.services[node] = map[string]bool{}
		}
		if serviceID != "" {
			f.services[node][serviceID] = true
		}
		list := f.checks[node][:0:0]
		for _, c := range f.checks[node] {
			if c.CheckID != id {
				list = append(list, c)
			}
		}
		f.checks[node] = append(list, &state.HealthCheck{Node: node, CheckID: id, ServiceID: serviceID, Status: status})
	})
}

func (f *fakeCatalog) RPC(ctx context.Context, method string, args, reply any) error {
	f.calls.Add(1)
	req := args.(*rpc.NodeSpecificRequest)
	for {
		f.mu.Lock()
		if f.fail != nil {
			err := f.fail
			f.mu.Unlock()
			return err
		}
		if method == rpc.MethodCatalogNodeServices {
			out := reply.(*rpc.IndexedNodeServices)
			out.Index = f.index
			if svcs, ok := f.services[req.Node]; ok {
				ns := &state.NodeServices{Node: &state.Node{Node: req.Node}, Services: map[string]*state.NodeService{}}
				for id := range svcs {
					ns.Services[id] = &state.NodeService{ID: id}
				}
				out.NodeServices = ns
			}
			f.mu.Unlock()
			return nil
		}
		if method != rpc.MethodHealthNodeChecks {
			f.mu.Unlock()
			return fmt.Errorf("fake: unexpected method %s", method)
		}
		if !req.AllowStale {
			f.mu.Unlock()
			return errors.New("fake: alias queries must allow stale reads")
		}
		if f.index > req.MinQueryIndex {
			out := reply.(*rpc.IndexedHealthChecks)
			out.Index = f.index
			for _, c := range f.checks[req.Node] {
				cc := *c
				out.HealthChecks = append(out.HealthChecks, &cc)
			}
			f.mu.Unlock()
			return nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func TestAlias_RemoteService(t *testing.T) {
	fc := newFakeCatalog()
	r := &recorder{}
	c := NewAlias(AliasConfig{ID: "c", Node: "n2", ServiceID: "web", LocalNode: "n1", Local: newFakeLocal(), Caller: fc, RetryMin: 10 * time.Millisecond}, r)
	c.Start()
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()

	out := waitStatus(t, r, "c", "critical")
	require.Contains(t, out, `node "n2" is not registered`)

	fc.update(func() { fc.services["n2"] = map[string]bool{"db": true} })
	waitOutput(t, r, "c", "critical", `service "web" on node "n2" is not registered`)

	fc.setCheck("n2", "web-check", "web", "passing")
	fc.setCheck("n2", "db-check", "db", "critical") // another service's check
	waitStatus(t, r, "c", "passing")
	fc.setCheck("n2", "web-check", "web", "warning")
	waitStatus(t, r, "c", "warning")
	fc.setCheck("n2", "serfHealth", "", "critical") // node-level
	waitStatus(t, r, "c", "critical")
	fc.setCheck("n2", "serfHealth", "", "passing")
	fc.setCheck("n2", "web-check", "web", "passing")
	waitStatus(t, r, "c", "passing")

	// Steady state blocks instead of polling.
	before := fc.calls.Load()
	time.Sleep(200 * time.Millisecond) // measuring that nothing happens needs a wait
	require.LessOrEqual(t, fc.calls.Load()-before, int64(1), "alias check polls instead of blocking")

	// A failing query is critical, and the check recovers.
	fc.update(func() { fc.fail = errors.New("no leader") })
	out = waitStatus(t, r, "c", "critical")
	require.Contains(t, out, "no leader")
	fc.update(func() { fc.fail = nil })
	waitStatus(t, r, "c", "passing")

	// Stop ends a blocking query at once.
	start := time.Now()
	c.Stop()
	stopped = true
	require.Less(t, time.Since(start), time.Second)
}

func TestAlias_RemoteNode(t *testing.T) {
	fc := newFakeCatalog()
	fc.setCheck("n2", "serfHealth", "", "passing")
	fc.setCheck("n2", "web-check", "web", "passing")
	r := &recorder{}
	c := NewAlias(AliasConfig{ID: "c", Node: "n2", LocalNode: "n1", Caller: fc}, r)
	c.Start()
	defer c.Stop()
	waitStatus(t, r, "c", "passing")
	fc.setCheck("n2", "web-check", "web", "critical") // a node alias counts every check of the node
	waitStatus(t, r, "c", "critical")
}

func TestAlias_NoCaller(t *testing.T) {
	r := &recorder{}
	c := NewAlias(AliasConfig{ID: "c", Node: "n2", LocalNode: "n1"}, r)
	c.Start()
	defer c.Stop()
	out := waitStatus(t, r, "c", "critical")
	require.Contains(t, out, "no RPC caller")
}

// waitOutput waits until the check reports status with output containing
// sub.
func waitOutput(t *testing.T, r *recorder, id, status, sub string) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, out, _ := r.get(id)
		return st == status && strings.Contains(out, sub)
	}, 5*time.Second, 5*time.Millisecond, "check %s never reported %s with %q", id, status, sub)
}

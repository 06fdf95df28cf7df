package local

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// fakeCatalog is an in-memory catalog behind rpc.Caller, enough for sync.
type fakeCatalog struct {
	mu       sync.Mutex
	node     *state.Node
	services map[string]*state.NodeService
	checks   map[string]*state.HealthCheck
	writes   int
	fail     error
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{services: map[string]*state.NodeService{}, checks: map[string]*state.HealthCheck{}}
}

func (f *fakeCatalog) RPC(_ context.Context, method string, args, reply any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	switch method {
	case rpc.MethodCatalogRegister:
		f.writes++
		r := args.(*rpc.RegisterRequest)
		if !r.SkipNodeUpdate || f.node == nil {
			f.node = &state.Node{ID: r.ID, Node: r.Node, Address: r.Address, TaggedAddresses: r.TaggedAddresses, Meta: r.NodeMeta}
		}
		if r.Service != nil {
			s := *r.Service
			f.services[s.ID] = &s
		}
		for _, c := range append(r.Checks, r.Check) {
			if c != nil {
				cc := *c
				f.checks[c.CheckID] = &cc
			}
		}
	case rpc.MethodCatalogDeregister:
		f.writes++
		r := args.(*rpc.DeregisterRequest)
		if r.ServiceID != "" {
			delete(f.services, r.ServiceID)
			for id, c := range f.checks {
				if c.ServiceID == r.ServiceID {
					delete(f.checks, id)
				}
			}
		}
		if r.CheckID != "" {
			delete(f.checks, r.CheckID)
		}
	case rpc.MethodCatalogNodeServices:
		out := reply.(*rpc.IndexedNodeServices)
		if f.node != nil {
			ns := &state.NodeServices{Node: f.node, Services: map[string]*state.NodeService{}}
			for id, s := range f.services {
				c := *s
				ns.Services[id] = &c
			}
			out.NodeServices = ns
		}
	case rpc.MethodHealthNodeChecks:
		out := reply.(*rpc.IndexedHealthChecks)
		for _, c := range f.checks {
			cc := *c
			out.HealthChecks = append(out.HealthChecks, &cc)
		}
	default:
		return fmt.Errorf("%w: %s", rpc.ErrUnknownMethod, method)
	}
	return nil
}

func (f *fakeCatalog) snapshot() (map[string]*state.NodeService, map[string]*state.HealthCheck, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := map[string]*state.NodeService{}
	for k, v := range f.services {
		s[k] = v
	}
	c := map[string]*state.HealthCheck{}
	for k, v := range f.checks {
		c[k] = v
	}
	return s, c, f.writes
}

func testState() *State {
	return NewState(Config{
		NodeName: "n1", NodeID: "11111111-2222-3333-4444-555555555555", Datacenter: "dc1",
		Address: "127.0.0.1", TaggedAddresses: map[string]string{"lan": "127.0.0.1", "wan": "127.0.0.1"},
		ReservedCheckIDs: []string{state.SerfCheckID}, ReservedServiceIDs: []string{"consul"},
	})
}

func TestState_SyncChangesRegistersAndDeregisters(t *testing.T) {
	ctx := context.Background()
	s, cat := testState(), newFakeCatalog()
	require.NoError(t, s.SyncFull(ctx, cat))
	require.NotNil(t, cat.node)
	require.True(t, s.InSync())

	svc := &state.NodeService{ID: "web1", Service: "web", Tags: []string{"v1"}, Port: 80, Weights: state.Weights{Passing: 1, Warning: 1}}
	chk := &state.HealthCheck{CheckID: "service:web1", Name: "c", Status: state.HealthCritical, ServiceID: "web1", Type: KindTTL}
	require.NoError(t, s.AddService(svc, []*state.HealthCheck{chk}, ""))
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after AddService")
	}
	require.NoError(t, s.SyncChanges(ctx, cat))
	svcs, chks, _ := cat.snapshot()
	require.Contains(t, svcs, "web1")
	require.Equal(t, "web", chks["service:web1"].ServiceName)
	require.Equal(t, []string{"v1"}, chks["service:web1"].ServiceTags)
	require.True(t, s.InSync())

	require.True(t, s.UpdateCheck("service:web1", state.HealthPassing, "ok"))
	require.NoError(t, s.SyncChanges(ctx, cat))
	_, chks, _ = cat.snapshot()
	require.Equal(t, state.HealthPassing, chks["service:web1"].Status)

	removed, err := s.RemoveService("web1")
	require.NoError(t, err)
	require.Equal(t, []string{"service:web1"}, removed)
	require.NoError(t, s.SyncChanges(ctx, cat))
	svcs, chks, _ = cat.snapshot()
	require.Empty(t, svcs)
	require.Empty(t, chks)
	require.True(t, s.InSync())

	_, err = s.RemoveService("web1")
	require.ErrorIs(t, err, rpc.ErrNotFound)
	require.ErrorIs(t, s.RemoveCheck("nope"), rpc.ErrNotFound)
	require.ErrorIs(t, s.AddCheck(&state.HealthCheck{CheckID: "x", ServiceID: "missing"}, ""), rpc.ErrBadRequest)
}

func TestState_SyncFullRepairsBothWays(t *testing.T) {
	ctx := context.Background()
	s, cat := testState(), newFakeCatalog()
	svc := &state.NodeService{ID: "web", Service: "web", Weights: state.Weights{Passing: 1, Warning: 1}}
	require.NoError(t, s.AddService(svc, nil, ""))
	require.NoError(t, s.AddCheck(&state.HealthCheck{CheckID: "mine", Name: "mine", Status: state.HealthPassing}, ""))
	require.NoError(t, s.SyncFull(ctx, cat))

	// Behind the agent's back: its service vanishes, a foreign one appears,
	// its check's status is changed, and the reserved entries are present.
	cat.mu.Lock()
	delete(cat.services, "web")
	cat.services["intruder"] = &state.NodeService{ID: "intruder", Service: "intruder"}
	cat.services["consul"] = &state.NodeService{ID: "consul", Service: "consul"}
	cat.checks["mine"].Status = state.HealthCritical
	cat.checks["foreign"] = &state.HealthCheck{CheckID: "foreign", Status: state.HealthPassing}
	cat.checks[state.SerfCheckID] = &state.HealthCheck{CheckID: state.SerfCheckID, Status: state.HealthPassing}
	cat.mu.Unlock()

	require.NoError(t, s.SyncFull(ctx, cat))
	svcs, chks, _ := cat.snapshot()
	require.Contains(t, svcs, "web")
	require.NotContains(t, svcs, "intruder")
	require.Contains(t, svcs, "consul")
	require.Equal(t, state.HealthPassing, chks["mine"].Status)
	require.NotContains(t, chks, "foreign")
	require.Contains(t, chks, state.SerfCheckID)
	// The foreign service is not adopted into the local state.
	require.NotContains(t, s.Services(), "intruder")

	// A second full sync with nothing changed writes nothing.
	_, _, before := cat.snapshot()
	require.NoError(t, s.SyncFull(ctx, cat))
	_, _, after := cat.snapshot()
	require.Equal(t, before, after)
}

func TestState_SyncErrorKeepsOutOfSync(t *testing.T) {
	ctx := context.Background()
	s, cat := testState(), newFakeCatalog()
	cat.fail = rpc.ErrNoLeader
	require.NoError(t, s.AddService(&state.NodeService{ID: "a", Service: "a"}, nil, ""))
	err := s.SyncFull(ctx, cat)
	require.True(t, errors.Is(err, rpc.ErrNoLeader))
	require.False(t, s.InSync())
	cat.fail = nil
	require.NoError(t, s.SyncFull(ctx, cat))
	require.True(t, s.InSync())
}

func TestState_OutputOnlyChangeDeferred(t *testing.T) {
	ctx := context.Background()
	s := NewState(Config{NodeName: "n1", CheckUpdateInterval: 50 * time.Millisecond})
	defer s.Stop()
	cat := newFakeCatalog()
	require.NoError(t, s.AddCheck(&state.HealthCheck{CheckID: "c", Name: "c", Status: state.HealthPassing}, ""))
	require.NoError(t, s.SyncChanges(ctx, cat))
	<-s.Notify()

	s.UpdateCheck("c", state.HealthPassing, "new output")
	require.True(t, s.InSync(), "output-only change must wait")
	select {
	case <-s.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("deferred output never synced")
	}
	require.False(t, s.InSync())
	require.NoError(t, s.SyncChanges(ctx, cat))
	_, chks, _ := cat.snapshot()
	require.Equal(t, "new output", chks["c"].Output)

	// A status change goes at once.
	s.UpdateCheck("c", state.HealthCritical, "x")
	require.False(t, s.InSync())
}

func TestState_ServiceTagsFlowToChecks(t *testing.T) {
	s := testState()
	require.NoError(t, s.AddService(&state.NodeService{ID: "w", Service: "web", Tags: []string{"a"}}, nil, ""))
	require.NoError(t, s.AddCheck(&state.HealthCheck{CheckID: "c", ServiceID: "w"}, ""))
	require.Equal(t, []string{"a"}, s.Check("c").ServiceTags)
	require.NoError(t, s.AddService(&state.NodeService{ID: "w", Service: "web", Tags: []string{"b"}}, nil, ""))
	require.Equal(t, []string{"b"}, s.Check("c").ServiceTags)
	require.Equal(t, "web", s.Check("c").ServiceName)
}

func TestState_CriticalSince(t *testing.T) {
	s := testState()
	require.NoError(t, s.AddCheck(&state.HealthCheck{CheckID: "c", Status: state.HealthCritical}, ""))
	cc := s.CriticalChecks()
	require.Contains(t, cc, "c")
	since := cc["c"].CriticalSince
	require.False(t, since.IsZero())

	s.UpdateCheck("c", state.HealthCritical, "still")
	require.Equal(t, since, s.CriticalChecks()["c"].CriticalSince)
	s.UpdateCheck("c", state.HealthPassing, "")
	require.Empty(t, s.CriticalChecks())
	s.UpdateCheck("c", state.HealthCritical, "")
	require.True(t, s.CriticalChecks()["c"].CriticalSince.After(since) || s.CriticalChecks()["c"].CriticalSince.Equal(since))
}

func TestState_ChangedBroadcast(t *testing.T) {
	s := NewState(Config{NodeName: "n1", CheckUpdateInterval: time.Hour})
	defer s.Stop()
	ch := s.Changed()
	require.NoError(t, s.AddCheck(&state.HealthCheck{CheckID: "c", Status: state.HealthPassing}, ""))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by AddCheck")
	}
	ch = s.Changed()
	s.UpdateCheck("c", state.HealthPassing, "output only")
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by an output-only update")
	}
}

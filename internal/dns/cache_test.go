package dns

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// setStatus sets the status of every service check of service instance id.
func setStatus(dcs map[string]*fakeDC, id, status string) {
	for _, in := range dcs["dc1"].instances {
		if in.Service.ID != id {
			continue
		}
		checks := make([]*state.HealthCheck, 0, len(in.Checks))
		for _, c := range in.Checks {
			cp := *c
			if cp.ServiceID == id {
				cp.Status = status
			}
			checks = append(checks, &cp)
		}
		in.Checks = checks
	}
}

func TestCache_HealthChangeVisible(t *testing.T) {
	fake := newFixture()
	s := startServer(t, fake, nil)
	r := exchange(t, s, "udp", query("web.service.consul.", dns.TypeSRV))
	require.Len(t, r.Answer, 3) // web1, web2 (warning), web4
	require.Equal(t, 1, s.cache.len())
	reads := len(fake.callsFor(rpc.MethodHealthServiceNodes))

	// Answers come from memory: no further reads.
	for range 20 {
		exchange(t, s, "udp", query("web.service.consul.", dns.TypeSRV))
	}
	require.Len(t, fake.callsFor(rpc.MethodHealthServiceNodes), reads)
	require.Eventually(t, func() bool { return fake.blockingCalls(rpc.MethodHealthServiceNodes) > 0 }, 5*time.Second, time.Millisecond)

	cases := []struct {
		name   string
		id     string
		status string
		want   int
	}{
		{"critical goes", "web1", state.HealthCritical, 2},
		{"passing comes back", "web1", state.HealthPassing, 3},
		{"critical recovers", "web3", state.HealthPassing, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			fake.update(func(dcs map[string]*fakeDC) { setStatus(dcs, tc.id, tc.status) })
			require.Eventually(t, func() bool {
				r := exchange(t, s, "tcp", query("web.service.consul.", dns.TypeSRV)) // no UDP answer limit
				return len(r.Answer) == tc.want
			}, time.Second, time.Millisecond)
			t.Logf("visible after %s", time.Since(start))
		})
	}
}

func TestCache_NodeLookups(t *testing.T) {
	fake := newFixture()
	s := startServer(t, fake, nil)
	r := exchange(t, s, "udp", query("node2.node.consul.", dns.TypeA))
	require.Equal(t, []string{"A 10.0.0.2"}, rrs(r.Answer))
	fake.update(func(dcs map[string]*fakeDC) {
		// Replaced, not changed in place: readers hold the old one.
		n := *dcs["dc1"].nodes["node2"]
		n.Address = "10.0.0.22"
		dcs["dc1"].nodes["node2"] = &n
	})
	require.Eventually(t, func() bool {
		r := exchange(t, s, "udp", query("node2.node.consul.", dns.TypeA))
		return len(r.Answer) == 1 && rrs(r.Answer)[0] == "A 10.0.0.22"
	}, time.Second, time.Millisecond)

	// An unknown node is cached as unknown and appears when registered.
	r = exchange(t, s, "udp", query("node9.node.consul.", dns.TypeA))
	require.Equal(t, dns.RcodeNameError, r.Rcode)
	fake.update(func(dcs map[string]*fakeDC) { dcs["dc1"].addNode("node9", "10.0.0.9", nil) })
	require.Eventually(t, func() bool {
		r := exchange(t, s, "udp", query("node9.node.consul.", dns.TypeA))
		return r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	}, time.Second, time.Millisecond)
}

func TestCache_Bounded(t *testing.T) {
	fake := newFixture()
	s := startServer(t, fake, func(c *Config) { c.CacheMaxEntries = 3 })
	for _, name := range []string{"web", "db", "ext", "big", "maint", "consul", "web"} {
		exchange(t, s, "udp", query(name+".service.consul.", dns.TypeA))
		require.LessOrEqual(t, s.cache.len(), 3)
	}
	// Evicted entries stop their watchers (goleak checks the rest).
	s.cache.mu.RLock()
	_, ok := s.cache.entries[cacheKey{kind: cacheService, name: "web"}]
	s.cache.mu.RUnlock()
	require.True(t, ok, "the most recent lookup stays cached")
}

func TestCache_IdleEntriesStop(t *testing.T) {
	fake := newFixture()
	s := startServer(t, fake, func(c *Config) { c.CacheIdleTimeout = 50 * time.Millisecond })
	exchange(t, s, "udp", query("web.service.consul.", dns.TypeA))
	require.Equal(t, 1, s.cache.len())
	// The watcher blocks for at most the idle timeout, then finds the
	// entry idle and removes it.
	require.Eventually(t, func() bool { return s.cache.len() == 0 }, 5*time.Second, 5*time.Millisecond)
	r := exchange(t, s, "udp", query("web.service.consul.", dns.TypeA))
	require.Len(t, r.Answer, 2)
}

// flakyCaller fails every read with a server error while fail is set.
type flakyCaller struct {
	*fakeCatalog
	fail atomic.Bool
}

func (f *flakyCaller) RPC(ctx context.Context, method string, args, reply any) error {
	if f.fail.Load() {
		return errors.New("rpc error: no cluster leader")
	}
	return f.fakeCatalog.RPC(ctx, method, args, reply)
}

func TestCache_ErrorsAreNotCached(t *testing.T) {
	fake := &flakyCaller{fakeCatalog: newFixture()}
	cfg := DefaultConfig()
	cfg.Caller, cfg.Datacenter = fake, "dc1"
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Shutdown(context.Background())) })

	w := &recordWriter{}
	s.ServeDNS(w, query("web.service.consul.", dns.TypeA))
	require.Len(t, w.msg.Answer, 2)

	// A failing refresh drops the entry; lookups then read directly and
	// report the failure instead of serving an answer nobody refreshes.
	fake.fail.Store(true)
	fake.update(func(map[string]*fakeDC) {})
	require.Eventually(t, func() bool { return s.cache.len() == 0 }, 5*time.Second, time.Millisecond)
	s.ServeDNS(w, query("web.service.consul.", dns.TypeA))
	require.Equal(t, dns.RcodeServerFailure, w.msg.Rcode)
	require.Equal(t, 0, s.cache.len())

	fake.fail.Store(false)
	s.ServeDNS(w, query("web.service.consul.", dns.TypeA))
	require.Len(t, w.msg.Answer, 2)
}

// nonBlockingCaller answers blocking reads at once with the same index.
type nonBlockingCaller struct {
	*fakeCatalog
	reads atomic.Int64
}

func (n *nonBlockingCaller) RPC(ctx context.Context, method string, args, reply any) error {
	n.reads.Add(1)
	if a, ok := args.(*rpc.ServiceSpecificRequest); ok {
		cp := *a
		cp.MinQueryIndex = 0
		args = &cp
	}
	return n.fakeCatalog.RPC(ctx, method, args, reply)
}

func TestCache_WatcherDoesNotSpin(t *testing.T) {
	caller := &nonBlockingCaller{fakeCatalog: newFixture()}
	cfg := DefaultConfig()
	cfg.Caller, cfg.Datacenter = caller, "dc1"
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Shutdown(context.Background())) })
	start := time.Now()
	s.ServeDNS(&recordWriter{}, query("web.service.consul.", dns.TypeA))
	// The first read, then watcher reads paced 10, 20, 40 ms apart.
	require.Eventually(t, func() bool { return caller.reads.Load() >= 5 }, 5*time.Second, time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), 70*time.Millisecond)
}

func TestCache_ShutdownStopsWatchers(t *testing.T) {
	fake := newFixture()
	cfg := DefaultConfig()
	cfg.Caller, cfg.Datacenter = fake, "dc1"
	s, err := New(cfg)
	require.NoError(t, err)
	w := &recordWriter{}
	for i := range 50 {
		s.ServeDNS(w, query(fmt.Sprintf("svc%d.service.consul.", i), dns.TypeA))
	}
	s.ServeDNS(w, query("web.service.consul.", dns.TypeA))
	require.Equal(t, 51, s.cache.len())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	// After shutdown lookups read directly (and fail: the context is gone)
	// without starting watchers.
	s.ServeDNS(w, query("db.service.consul.", dns.TypeA))
	require.Equal(t, dns.RcodeServerFailure, w.msg.Rcode)
	require.Equal(t, 0, s.cache.len())
}

func TestCache_Disabled(t *testing.T) {
	fake := newFixture()
	s := startServer(t, fake, func(c *Config) { c.DisableCache = true })
	for range 3 {
		r := exchange(t, s, "udp", query("web.service.consul.", dns.TypeA))
		require.Len(t, r.Answer, 2)
	}
	require.Nil(t, s.cache)
	require.Len(t, fake.callsFor(rpc.MethodHealthServiceNodes), 3)
}

// TestCache_SharedRecordsConcurrently serves many answers built from the
// same cached records at once (packing, trimming to the UDP size, EDNS):
// the race detector checks that nothing writes to what they share.
func TestCache_SharedRecordsConcurrently(t *testing.T) {
	s, err := New(Config{Caller: newFixture(), Datacenter: "dc1", EnableNodeMetaTXT: true, AllowStale: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Shutdown(context.Background())) })
	names := []string{"big.service.consul.", "web.service.consul.", "primary.web.service.consul.", "db.service.consul.", "ext.service.consul."}
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeSRV}
	done := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 200 {
				m := query(names[(g+i)%len(names)], qtypes[i%len(qtypes)])
				if i%3 == 0 {
					m.SetEdns0(1232, false)
				}
				w := &recordWriter{tcp: i%5 == 0}
				s.ServeDNS(w, m)
				if w.msg == nil || w.msg.Rcode != dns.RcodeSuccess {
					done <- fmt.Errorf("%s %s: no answer: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], w.msg)
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		require.NoError(t, <-done)
	}
}

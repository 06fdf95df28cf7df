package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/agent"
	"github.com/cairn-io/cairn/internal/testutil"
)

// Test knobs for this file's cluster: a full anti-entropy sync every
// second and the critical-service reaper every 250 ms (defaults: 1 min
// scaled with the cluster size, 30 s).
const (
	healthAEInterval   = time.Second
	healthReapInterval = 250 * time.Millisecond
)

// TestCluster_Health: on 3 servers + 1 client (real processes), a service
// registered at the client with an HTTP check (interval 1 s, timeout 1 s)
// drops out of ?passing, read through a server, within interval + timeout
// + 1 s of its endpoint starting to fail; deregister_critical_service_after
// removes it from the catalog; anti-entropy repairs both kinds of
// out-of-band catalog change within one sync interval.
func TestCluster_Health(t *testing.T) {
	skipShort(t)
	c := testutil.StartCluster(t, testutil.ClusterOptions{
		Servers: 3, Clients: 1, LogLevel: "info",
		Env: []string{
			agent.EnvAEInterval + "=" + healthAEInterval.String(),
			agent.EnvCheckReapInterval + "=" + healthReapInterval.String(),
			// The test's deregister_critical_service_after is under the
			// 1-minute floor.
			agent.EnvDeregisterCriticalMinimum + "=1ms",
		},
	})
	c.WaitReady(readyTimeout)
	owner := c.Clients[0]
	reader := c.Servers[1]

	t.Run("failing HTTP check leaves ?passing", func(t *testing.T) { checkHTTPFailure(t, owner, reader) })
	t.Run("anti-entropy repairs the catalog", func(t *testing.T) { checkAntiEntropy(t, owner, reader) })
}

// passingCount is how many instances of service reader reports passing.
func passingCount(reader *testutil.Agent, service string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, _, err := reader.Client().Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	return len(e), err
}

func catalogCount(reader *testutil.Agent, service string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, _, err := reader.Client().Catalog().Service(service, "", (&api.QueryOptions{}).WithContext(ctx))
	return len(s), err
}

// waitCount polls until count() returns want and reports how long it took.
func waitCount(t *testing.T, timeout time.Duration, what string, want int, count func() (int, error)) time.Duration {
	t.Helper()
	start := time.Now()
	var last int
	var lastErr error
	for time.Since(start) < timeout {
		last, lastErr = count()
		if lastErr == nil && last == want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: still %d after %s (want %d), last error %v", what, last, timeout, want, lastErr)
	return 0
}

func checkHTTPFailure(t *testing.T, owner, reader *testutil.Agent) {
	var failing atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprint(w, "ok")
	}))
	defer target.Close()

	const (
		interval   = time.Second
		timeout    = time.Second
		deregAfter = 3 * time.Second
	)
	require.NoError(t, owner.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "x1", Name: "x", Port: 8080,
		Check: &api.AgentServiceCheck{
			HTTP: target.URL, Interval: interval.String(), Timeout: timeout.String(),
			DeregisterCriticalServiceAfter: deregAfter.String(),
		},
	}))
	waitCount(t, 15*time.Second, "x passing via "+reader.Name, 1, func() (int, error) { return passingCount(reader, "x") })

	failing.Store(true)
	flipped := time.Now()
	bound := interval + timeout + time.Second
	took := waitCount(t, 10*time.Second, "x leaves ?passing via "+reader.Name, 0, func() (int, error) { return passingCount(reader, "x") })
	t.Logf("MEASURE HTTP check failure -> gone from /v1/health/service/x?passing via another agent: %s (bound interval+timeout+1s = %s)", took.Round(time.Millisecond), bound)
	require.LessOrEqual(t, took, bound)

	// Still in the catalog (critical) until deregister_critical_service_after.
	n, err := catalogCount(reader, "x")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	waitCount(t, deregAfter+10*time.Second, "x deregistered", 0, func() (int, error) { return catalogCount(reader, "x") })
	t.Logf("MEASURE deregister_critical_service_after=%s: removed from the catalog %s after the endpoint failed (reaper every %s)",
		deregAfter, time.Since(flipped).Round(time.Millisecond), healthReapInterval)
	require.GreaterOrEqual(t, time.Since(flipped), deregAfter, "not before the check was critical for deregister_critical_service_after")
	svcs, err := owner.Client().Agent().Services()
	require.NoError(t, err)
	require.NotContains(t, svcs, "x1", "the owning agent deregistered it")
}

func checkAntiEntropy(t *testing.T, owner, reader *testutil.Agent) {
	rc := reader.Client()
	require.NoError(t, owner.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "mine", Name: "mine", Port: 1}))
	waitCount(t, 10*time.Second, "mine in the catalog", 1, func() (int, error) { return catalogCount(reader, "mine") })

	// One sync interval plus its jitter (10%), plus slack for the round
	// trips of a sync (read the node, write the difference).
	bound := healthAEInterval + healthAEInterval/10 + time.Second

	// Deleted behind the owner's back: the owner puts it back.
	_, err := rc.Catalog().Deregister(&api.CatalogDeregistration{Node: owner.Name, ServiceID: "mine"}, nil)
	require.NoError(t, err)
	took := waitCount(t, 30*time.Second, "mine restored", 1, func() (int, error) { return catalogCount(reader, "mine") })
	t.Logf("MEASURE anti-entropy restored a service deleted from the catalog in %s (sync interval %s)", took.Round(time.Millisecond), healthAEInterval)
	require.LessOrEqual(t, took, bound)

	// Registered for the owner's node behind its back: the owner removes it.
	_, err = rc.Catalog().Register(&api.CatalogRegistration{
		Node: owner.Name, Address: "127.0.0.1", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: "intruder", Service: "intruder", Port: 2},
	}, nil)
	require.NoError(t, err)
	n, err := catalogCount(reader, "intruder")
	require.NoError(t, err)
	require.Equal(t, 1, n, "the out-of-band registration landed")
	took = waitCount(t, 30*time.Second, "intruder removed", 0, func() (int, error) { return catalogCount(reader, "intruder") })
	t.Logf("MEASURE anti-entropy removed a service registered behind the agent's back in %s (sync interval %s)", took.Round(time.Millisecond), healthAEInterval)
	require.LessOrEqual(t, took, bound)

	// A check deleted behind the owner's back also comes back.
	require.NoError(t, owner.Client().Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: "mine-ttl", Name: "mine ttl", ServiceID: "mine",
		AgentServiceCheck: api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing},
	}))
	hasCheck := func() (int, error) {
		checks, _, err := rc.Health().Checks("mine", nil)
		n := 0
		for _, c := range checks {
			if c.CheckID == "mine-ttl" {
				n++
			}
		}
		return n, err
	}
	waitCount(t, 10*time.Second, "mine-ttl in the catalog", 1, hasCheck)
	_, err = rc.Catalog().Deregister(&api.CatalogDeregistration{Node: owner.Name, CheckID: "mine-ttl"}, nil)
	require.NoError(t, err)
	took = waitCount(t, 30*time.Second, "mine-ttl restored", 1, hasCheck)
	t.Logf("MEASURE anti-entropy restored a check deleted from the catalog in %s", took.Round(time.Millisecond))
	require.LessOrEqual(t, took, bound)
}

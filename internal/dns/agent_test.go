package dns_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/agent"
	"github.com/cairn-io/cairn/internal/config"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// startDevAgent runs an in-process dev agent (one server, DNS on a free
// port) and waits until it is ready.
func startDevAgent(tb testing.TB) *agent.Agent {
	tb.Helper()
	cfg := config.DevConfig()
	cfg.NodeName = "dns-node"
	cfg.PortHTTP, cfg.PortServer, cfg.PortDNS = 0, 0, 0
	cfg.PortSerfLAN, cfg.PortSerfWAN = 0, 0
	cfg.PortGRPC = -1
	reload := func() (*config.RuntimeConfig, []string, error) { return cfg.Clone(), nil, nil }
	a, err := agent.New(agent.Options{Config: cfg, Reload: reload, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	require.NoError(tb, err)
	require.NoError(tb, a.Start(context.Background()))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(tb, a.Shutdown(ctx))
	})
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		tb.Fatal("agent not ready")
	}
	require.NotEmpty(tb, a.DNSAddr())
	return a
}

// register puts one instance of service on node with one service check.
func register(tb testing.TB, a *agent.Agent, node, addr, service string, port int, status string) {
	tb.Helper()
	id := fmt.Sprintf("%s-%s", service, node)
	req := &rpc.RegisterRequest{
		Node: node, Address: addr,
		Service: &state.NodeService{ID: id, Service: service, Port: port},
		Check: &state.HealthCheck{Node: node, CheckID: "check:" + id, Name: "check", Status: status,
			ServiceID: id, ServiceName: service},
	}
	require.NoError(tb, a.Caller().RPC(context.Background(), rpc.MethodCatalogRegister, req, &struct{}{}))
}

func lookup(tb testing.TB, c *dns.Client, addr, name string, qtype uint16) *dns.Msg {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr)
	require.NoError(tb, err)
	return r
}

// TestAgent_HealthChangeVisibleInDNS runs DNS over the real agent: an
// instance marked critical leaves the answers, and comes back when passing,
// within the wake latency of a blocking query (a few ms; the deadline is
// generous for -race on a loaded machine).
func TestAgent_HealthChangeVisibleInDNS(t *testing.T) {
	a := startDevAgent(t)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second} // DNSAddr is the UDP port
	register(t, a, "web-a", "10.0.0.1", "web", 80, state.HealthPassing)
	register(t, a, "web-b", "10.0.0.2", "web", 80, state.HealthPassing)

	r := lookup(t, c, a.DNSAddr(), "web.service.consul.", dns.TypeA)
	require.Equal(t, dns.RcodeSuccess, r.Rcode)
	require.Len(t, r.Answer, 2)

	for _, tc := range []struct {
		status string
		want   int
	}{{state.HealthCritical, 1}, {state.HealthPassing, 2}, {state.HealthCritical, 1}} {
		start := time.Now()
		register(t, a, "web-b", "10.0.0.2", "web", 80, tc.status)
		require.Eventually(t, func() bool {
			return len(lookup(t, c, a.DNSAddr(), "web.service.consul.", dns.TypeA).Answer) == tc.want
		}, time.Second, time.Millisecond, "web-b %s", tc.status)
		t.Logf("web-b %s: visible in DNS %s after the write was acknowledged", tc.status, time.Since(start))
	}

	// A service registered after its name was looked up (and cached as
	// unknown) resolves as soon as it exists.
	r = lookup(t, c, a.DNSAddr(), "db.service.consul.", dns.TypeSRV)
	require.Equal(t, dns.RcodeNameError, r.Rcode)
	register(t, a, "db-a", "10.0.1.1", "db", 5432, state.HealthPassing)
	require.Eventually(t, func() bool {
		return len(lookup(t, c, a.DNSAddr(), "db.service.consul.", dns.TypeSRV).Answer) == 1
	}, time.Second, time.Millisecond)
}

// BenchmarkAgentServeDNS measures lookups through a real dev agent over
// UDP (the network path dnsperf takes, one query at a time).
func BenchmarkAgentServeDNS(b *testing.B) {
	a := startDevAgent(b)
	for i := range 3 {
		register(b, a, fmt.Sprintf("n%d", i), fmt.Sprintf("10.0.0.%d", i+1), "web", 80, state.HealthPassing)
	}
	conn, err := net.Dial("udp", a.DNSAddr())
	require.NoError(b, err)
	defer conn.Close()
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		b.Run(dns.TypeToString[qtype], func(b *testing.B) {
			m := new(dns.Msg)
			m.SetQuestion("web.service.consul.", qtype)
			req, err := m.Pack()
			require.NoError(b, err)
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package cluster

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// TestCluster_DNS: 3 servers and 2 client agents (real processes), the
// service "web" on three nodes — passing on c1, critical on c2, warning on
// s1 — and "db" on c2. Every query form is asked of a client agent (which
// reads the catalog through a server) over UDP and TCP with the miekg/dns
// client, and the main forms again with dig. Only instances without a
// critical check are answered; a check turning passing brings its instance
// back.
func TestCluster_DNS(t *testing.T) {
	skipShort(t)
	c := testutil.StartCluster(t, testutil.ClusterOptions{
		Servers: 3, Clients: 2, LogLevel: "info",
		ExtraArgs: []string{"-node-meta", "rack:r1"},
	})
	c.WaitReady(readyTimeout)
	require.NoError(t, c.WaitMembers(5, readyTimeout))
	c1, c2, s1 := c.Clients[0], c.Clients[1], c.Servers[0]

	register := func(a *testutil.Agent, reg *api.AgentServiceRegistration, status string) {
		t.Helper()
		require.NoError(t, a.Client().Agent().ServiceRegister(reg))
		if reg.Check != nil {
			require.NoError(t, a.Client().Agent().UpdateTTL("service:"+reg.ID, "set by the test", status))
		}
	}
	ttl := &api.AgentServiceCheck{TTL: "10m"}
	register(c1, &api.AgentServiceRegistration{ID: "web", Name: "web", Address: "10.1.0.1", Port: 80, Tags: []string{"primary"}, Check: ttl}, api.HealthPassing)
	register(c2, &api.AgentServiceRegistration{ID: "web", Name: "web", Address: "10.1.0.2", Port: 81, Tags: []string{"secondary"}, Check: ttl}, api.HealthCritical)
	register(s1, &api.AgentServiceRegistration{ID: "web", Name: "web", Address: "10.1.0.3", Port: 82, Tags: []string{"secondary"}, Check: ttl}, api.HealthWarning)
	register(c2, &api.AgentServiceRegistration{ID: "db", Name: "db", Address: "10.1.0.4", Port: 5432}, "")

	dnsAddr := c1.DNSAddr()
	// Anti-entropy pushes each registration and check status at once; wait
	// until the catalog (as DNS sees it) holds them all.
	waitDNS(t, dnsAddr, "web.service.consul.", dns.TypeA, []string{"10.1.0.1", "10.1.0.3"})
	waitDNS(t, dnsAddr, "db.service.consul.", dns.TypeA, []string{"10.1.0.4"})

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			ask := func(t *testing.T, name string, qtype uint16) *dns.Msg {
				t.Helper()
				return exchange(t, network, dnsAddr, name, qtype)
			}
			t.Run("service A skips critical", func(t *testing.T) {
				require.Equal(t, []string{"10.1.0.1", "10.1.0.3"}, answers(ask(t, "web.service.consul.", dns.TypeA)))
			})
			t.Run("service SRV with additional", func(t *testing.T) {
				r := ask(t, "web.service.dc1.consul.", dns.TypeSRV)
				require.Equal(t, []string{"80", "82"}, srvPorts(r))
				require.Len(t, r.Extra, 2, "one address record per target: %v", r.Extra)
				for _, rr := range r.Extra {
					require.IsType(t, &dns.A{}, rr)
				}
			})
			t.Run("tag", func(t *testing.T) {
				require.Equal(t, []string{"10.1.0.1"}, answers(ask(t, "primary.web.service.consul.", dns.TypeA)))
				// The critical instance is tagged secondary too; only s1's is left.
				require.Equal(t, []string{"10.1.0.3"}, answers(ask(t, "secondary.web.service.consul.", dns.TypeA)))
			})
			t.Run("rfc2782", func(t *testing.T) {
				require.Equal(t, []string{"80"}, srvPorts(ask(t, "_web._primary.service.consul.", dns.TypeSRV)))
				require.Equal(t, []string{"80", "82"}, srvPorts(ask(t, "_web._tcp.service.consul.", dns.TypeSRV)))
			})
			t.Run("node A and TXT", func(t *testing.T) {
				require.Equal(t, []string{testutil.LoopbackAddr}, answers(ask(t, c2.Name+".node.consul.", dns.TypeA)))
				require.Contains(t, answers(ask(t, s1.Name+".node.dc1.consul.", dns.TypeTXT)), "rack=r1")
			})
			t.Run("addr", func(t *testing.T) {
				require.Equal(t, []string{"127.0.0.1"}, answers(ask(t, "7f000001.addr.dc1.consul.", dns.TypeA)))
			})
			t.Run("PTR names every node at the address", func(t *testing.T) {
				got := answers(ask(t, "1.0.0.127.in-addr.arpa.", dns.TypePTR))
				for _, a := range []*testutil.Agent{c1, c2, s1} {
					require.Contains(t, got, a.Name+".node.dc1.consul.")
				}
			})
			t.Run("SOA and NS", func(t *testing.T) {
				r := ask(t, "consul.", dns.TypeSOA)
				require.Len(t, r.Answer, 1)
				require.IsType(t, &dns.SOA{}, r.Answer[0])
				r = ask(t, "consul.", dns.TypeNS)
				require.NotEmpty(t, r.Answer)
				require.IsType(t, &dns.NS{}, r.Answer[0])
			})
			t.Run("unknown name is NXDOMAIN with the SOA", func(t *testing.T) {
				r := ask(t, "nope.service.consul.", dns.TypeA)
				require.Equal(t, dns.RcodeNameError, r.Rcode)
				require.Len(t, r.Ns, 1)
				require.IsType(t, &dns.SOA{}, r.Ns[0])
			})
		})
	}

	if dig, err := exec.LookPath("dig"); err == nil {
		host, port, err := net.SplitHostPort(dnsAddr)
		require.NoError(t, err)
		for _, tcp := range []bool{false, true} {
			args := []string{"@" + host, "-p", port, "+short", "+time=3", "+tries=1"}
			if tcp {
				args = append(args, "+tcp")
			}
			t.Run(fmt.Sprintf("dig tcp=%v", tcp), func(t *testing.T) {
				require.Equal(t, []string{"10.1.0.1", "10.1.0.3"}, digLines(t, dig, append(args, "web.service.consul", "A")...))
				srv := digLines(t, dig, append(args, "web.service.consul", "SRV")...)
				require.Len(t, srv, 2)
				require.Equal(t, []string{"10.1.0.1"}, digLines(t, dig, append(args, "_web._primary.service.consul", "A")...))
				require.Equal(t, []string{"10.1.0.4"}, digLines(t, dig, append(args, "db.service.dc1.consul", "A")...))
			})
		}
	} else {
		t.Log("dig not installed: dig checks skipped (apt-get install bind9-dnsutils)")
	}

	t.Run("a check turning passing brings the instance back", func(t *testing.T) {
		start := time.Now()
		require.NoError(t, c2.Client().Agent().UpdateTTL("service:web", "", api.HealthPassing))
		waitDNS(t, dnsAddr, "web.service.consul.", dns.TypeA, []string{"10.1.0.1", "10.1.0.2", "10.1.0.3"})
		t.Logf("MEASURE dns_visible_after_check_pass=%s", time.Since(start))
		require.NoError(t, c1.Client().Agent().UpdateTTL("service:web", "", api.HealthCritical))
		waitDNS(t, dnsAddr, "web.service.consul.", dns.TypeA, []string{"10.1.0.2", "10.1.0.3"})
	})
}

// exchange asks addr one question over network, with a deadline.
func exchange(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	cl := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := cl.Exchange(m, addr)
	require.NoError(t, err, "%s %s over %s", name, dns.TypeToString[qtype], network)
	return r
}

// answers renders the answer section's values, sorted.
func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.PTR:
			out = append(out, v.Ptr)
		case *dns.TXT:
			out = append(out, v.Txt...)
		default:
			out = append(out, rr.String())
		}
	}
	sort.Strings(out)
	return out
}

// srvPorts lists the SRV answers' ports, sorted.
func srvPorts(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			out = append(out, fmt.Sprint(s.Port))
		}
	}
	sort.Strings(out)
	return out
}

// waitDNS polls until name's answers over UDP equal want.
func waitDNS(t *testing.T, addr, name string, qtype uint16, want []string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []string
	for time.Now().Before(deadline) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
		if err == nil {
			last = answers(r)
			if strings.Join(last, ",") == strings.Join(want, ",") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: answers %v, want %v", name, last, want)
}

// digLines runs dig and returns its non-empty output lines, sorted.
func digLines(t *testing.T, dig string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
	require.NoError(t, err, string(out))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

package dns

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

// upstream is a local resolver the tests start: it answers example.com A
// with 192.0.2.1 and everything else with rcode.
type upstream struct {
	udp, tcp *dns.Server
	hits     atomic.Int64
}

func startUpstream(t *testing.T, rcode int) (*upstream, string) {
	t.Helper()
	u := &upstream{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.hits.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if r.Question[0].Name == "example.com." && rcode == dns.RcodeSuccess {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr("example.com.", dns.TypeA, 60), A: net.IPv4(192, 0, 2, 1)})
		} else {
			m.Rcode = rcode
			if rcode == dns.RcodeSuccess {
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoaPort(port)))
	if err != nil { // the TCP port is taken: fall back to any port, UDP only matters most
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
	}
	u.udp = &dns.Server{PacketConn: pc, Handler: handler}
	u.tcp = &dns.Server{Listener: ln, Handler: handler}
	for _, srv := range []*dns.Server{u.udp, u.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
	}
	t.Cleanup(func() {
		_ = u.udp.Shutdown()
		_ = u.tcp.Shutdown()
	})
	return u, pc.LocalAddr().String()
}

func itoaPort(p int) string { return (&net.UDPAddr{Port: p}).String()[1:] }

// blackhole is a UDP socket that never answers (for the timeout case).
func blackhole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

func TestServer_Recursors(t *testing.T) {
	good, goodAddr := startUpstream(t, dns.RcodeSuccess)
	_, refusingAddr := startUpstream(t, dns.RcodeRefused)
	holeAddr := blackhole(t)

	t.Run("forwards outside the domain", func(t *testing.T) {
		s := startServer(t, newFixture(), func(c *Config) { c.Recursors = []string{goodAddr} })
		for _, network := range []string{"udp", "tcp"} {
			if network == "tcp" && good.tcp.Listener.Addr().String() != goodAddr {
				continue // the upstream could not get the same TCP port
			}
			r := exchange(t, s, network, query("example.com.", dns.TypeA))
			require.Equal(t, dns.RcodeSuccess, r.Rcode, network)
			require.Equal(t, []string{"A 192.0.2.1"}, rrs(r.Answer))
			require.True(t, r.RecursionAvailable)
		}
		// NXDOMAIN from upstream is an answer too.
		r := exchange(t, s, "udp", query("nope.example.com.", dns.TypeA))
		require.Equal(t, dns.RcodeNameError, r.Rcode)
		// Names in the domain are never forwarded.
		before := good.hits.Load()
		r = exchange(t, s, "udp", query("nope.node.consul.", dns.TypeA))
		require.Equal(t, dns.RcodeNameError, r.Rcode)
		require.True(t, r.RecursionAvailable)
		require.Equal(t, before, good.hits.Load())
	})
	t.Run("skips a refusing and a timing-out recursor", func(t *testing.T) {
		s := startServer(t, newFixture(), func(c *Config) {
			c.Recursors = []string{refusingAddr, holeAddr, goodAddr}
			c.RecursorTimeout = 200 * time.Millisecond
		})
		start := time.Now()
		r := exchange(t, s, "udp", query("example.com.", dns.TypeA))
		require.Equal(t, dns.RcodeSuccess, r.Rcode)
		require.Equal(t, []string{"A 192.0.2.1"}, rrs(r.Answer))
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	})
	t.Run("all recursors fail: SERVFAIL", func(t *testing.T) {
		s := startServer(t, newFixture(), func(c *Config) {
			c.Recursors = []string{holeAddr, refusingAddr}
			c.RecursorTimeout = 100 * time.Millisecond
		})
		r := exchange(t, s, "udp", query("example.com.", dns.TypeA))
		require.Equal(t, dns.RcodeServerFailure, r.Rcode)
	})
	t.Run("unknown PTR is recursed when recursion is desired", func(t *testing.T) {
		s := startServer(t, newFixture(), func(c *Config) { c.Recursors = []string{goodAddr} })
		before := good.hits.Load()
		m := query("9.9.9.9.in-addr.arpa.", dns.TypePTR)
		m.RecursionDesired = true
		r := exchange(t, s, "udp", m)
		require.Equal(t, dns.RcodeNameError, r.Rcode) // the upstream's answer
		require.Equal(t, before+1, good.hits.Load())
		m.RecursionDesired = false
		r = exchange(t, s, "udp", m)
		require.Equal(t, dns.RcodeNameError, r.Rcode)
		require.Equal(t, before+1, good.hits.Load())
	})
	t.Run("shutdown cancels a pending recursion", func(t *testing.T) {
		s, err := New(Config{Caller: newFixture(), Datacenter: "dc1", Recursors: []string{holeAddr}, RecursorTimeout: time.Minute})
		require.NoError(t, err)
		require.NoError(t, s.ListenAndServe("127.0.0.1:0", ""))
		c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
		_, _, _ = c.Exchange(query("example.com.", dns.TypeA), s.UDPAddr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		require.NoError(t, s.Shutdown(ctx))
		require.Less(t, time.Since(start), 3*time.Second)
	})
}

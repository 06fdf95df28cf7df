package dns

import (
	"context"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/rpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs a server over the fixture on 127.0.0.1:0 (UDP and TCP).
func startServer(t *testing.T, fake *fakeCatalog, mutate func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Caller = fake
	cfg.Datacenter = "dc1"
	cfg.NodeName = "agent1"
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.ListenAndServe("127.0.0.1:0", "127.0.0.1:0"))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s
}

// exchange sends m to s over network ("udp" or "tcp").
func exchange(t *testing.T, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	addr := s.UDPAddr().String()
	if network == "tcp" {
		addr = s.TCPAddr().String()
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	require.NoError(t, err)
	require.Equal(t, m.Id, r.Id)
	return r
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rrs renders records as "TYPE data" (no owner or TTL), sorted.
func rrs(records []dns.RR) []string {
	out := make([]string, 0, len(records))
	for _, rr := range records {
		if _, ok := rr.(*dns.OPT); ok {
			continue
		}
		h := rr.Header()
		data := strings.TrimPrefix(rr.String(), h.String())
		out = append(out, dns.TypeToString[h.Rrtype]+" "+data)
	}
	sort.Strings(out)
	return out
}

func hasSOA(records []dns.RR, domain string) bool {
	for _, rr := range records {
		if soa, ok := rr.(*dns.SOA); ok && soa.Hdr.Name == domain {
			return true
		}
	}
	return false
}

func TestServer_Lookups(t *testing.T) {
	fake := newFixture()
	s := startServer(t, fake, func(c *Config) { c.AltDomain = "alt.test" })

	cases := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string // nil = not checked; SOA presence is checked for empty answers
		extra  []string // nil = not checked
	}{
		{name: "node A", qname: "node1.node.consul.", qtype: dns.TypeA,
			answer: []string{"A 10.0.0.1"}, extra: []string{`TXT "hello world"`, `TXT "rack=r1"`}},
		{name: "node A with dc, mixed case", qname: "NODE1.Node.DC1.consul.", qtype: dns.TypeA,
			answer: []string{"A 10.0.0.1"}},
		{name: "node A with dc.dc", qname: "node1.node.dc1.dc.consul.", qtype: dns.TypeA,
			answer: []string{"A 10.0.0.1"}},
		{name: "node TXT meta", qname: "node1.node.consul.", qtype: dns.TypeTXT,
			answer: []string{`TXT "hello world"`, `TXT "rack=r1"`}},
		{name: "node ANY", qname: "node1.node.consul.", qtype: dns.TypeANY,
			answer: []string{"A 10.0.0.1", `TXT "hello world"`, `TXT "rack=r1"`}},
		{name: "node AAAA", qname: "node4.node.consul.", qtype: dns.TypeAAAA,
			answer: []string{"AAAA 2001:db8::4"}},
		{name: "node A of IPv6 node is NODATA", qname: "node4.node.consul.", qtype: dns.TypeA},
		{name: "node MX is NODATA", qname: "node1.node.consul.", qtype: dns.TypeMX},
		{name: "unknown node", qname: "nope.node.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "remote node", qname: "remote1.node.dc2.consul.", qtype: dns.TypeA, answer: []string{"A 10.9.0.1"}},

		{name: "service A skips critical", qname: "web.service.consul.", qtype: dns.TypeA,
			answer: []string{"A 10.0.0.1", "A 10.0.0.2"}},
		{name: "service AAAA", qname: "web.service.consul.", qtype: dns.TypeAAAA,
			answer: []string{"AAAA 2001:db8::4"}},
		{name: "service SRV", qname: "web.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"SRV 1 1 8080 node4.node.dc1.consul.",
				"SRV 1 2 80 node2.node.dc1.consul.",
				"SRV 1 5 80 node1.node.dc1.consul.",
			},
			extra: []string{"A 10.0.0.1", "A 10.0.0.2", "AAAA 2001:db8::4", `TXT "hello world"`, `TXT "rack=r1"`}},
		{name: "service SRV mixed case", qname: "WEB.Service.Consul.", qtype: dns.TypeSRV,
			answer: []string{
				"SRV 1 1 8080 node4.node.dc1.consul.",
				"SRV 1 2 80 node2.node.dc1.consul.",
				"SRV 1 5 80 node1.node.dc1.consul.",
			}},
		{name: "tag filter", qname: "primary.web.service.consul.", qtype: dns.TypeA,
			answer: []string{"A 10.0.0.1"}},
		{name: "tag filter, no healthy", qname: "nosuchtag.web.service.consul.", qtype: dns.TypeA,
			rcode: dns.RcodeNameError},
		{name: "rfc2782 with tag", qname: "_web._primary.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"SRV 1 5 80 node1.node.dc1.consul."}},
		{name: "rfc2782 tcp = no tag", qname: "_web._tcp.service.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"SRV 1 1 8080 node4.node.dc1.consul.",
				"SRV 1 2 80 node2.node.dc1.consul.",
				"SRV 1 5 80 node1.node.dc1.consul.",
			}},
		{name: "rfc2782 udp with dc", qname: "_web._udp.service.dc1.consul.", qtype: dns.TypeSRV,
			answer: []string{
				"SRV 1 1 8080 node4.node.dc1.consul.",
				"SRV 1 2 80 node2.node.dc1.consul.",
				"SRV 1 5 80 node1.node.dc1.consul.",
			}},
		{name: "service address SRV uses addr target", qname: "db.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"SRV 1 1 5432 0a010005.addr.dc1.consul."}, extra: []string{"A 10.1.0.5"}},
		{name: "service address A, tag case-insensitive", qname: "primary.db.service.consul.", qtype: dns.TypeA,
			answer: []string{"A 10.1.0.5"}},
		{name: "hostname service A is CNAME", qname: "ext.service.consul.", qtype: dns.TypeA,
			answer: []string{"CNAME ext.example.com."}},
		{name: "hostname service SRV", qname: "ext.service.consul.", qtype: dns.TypeSRV,
			answer: []string{"SRV 1 1 443 ext.example.com."}, extra: []string{}},
		{name: "maintenance excluded", qname: "maint.service.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "unknown service", qname: "nope.service.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "remote dc service", qname: "web.service.dc2.consul.", qtype: dns.TypeSRV,
			answer: []string{"SRV 1 1 80 remote1.node.dc2.consul."}, extra: []string{"A 10.9.0.1"}},
		{name: "unknown dc", qname: "web.service.nodc.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "backend error", qname: "broken.service.consul.", qtype: dns.TypeA, rcode: dns.RcodeServerFailure},
		{name: "too many labels", qname: "a.b.web.service.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "unknown form", qname: "foo.bar.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},

		{name: "addr v4", qname: "0a000001.addr.dc1.consul.", qtype: dns.TypeA, answer: []string{"A 10.0.0.1"}},
		{name: "addr v6", qname: "20010db8000000000000000000000004.addr.consul.", qtype: dns.TypeAAAA,
			answer: []string{"AAAA 2001:db8::4"}},
		{name: "addr bad hex", qname: "zz000001.addr.consul.", qtype: dns.TypeA, rcode: dns.RcodeNameError},

		{name: "SOA", qname: "consul.", qtype: dns.TypeSOA,
			answer: []string{"SOA ns.consul. hostmaster.consul. SERIAL 3600 600 86400 0"},
			ns:     []string{"NS srv1.node.dc1.consul."}, extra: []string{"A 10.0.0.10"}},
		{name: "NS", qname: "Consul.", qtype: dns.TypeNS,
			answer: []string{"NS srv1.node.dc1.consul."}, extra: []string{"A 10.0.0.10"}},
		{name: "prepared query seam", qname: "myquery.query.consul.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError},

		{name: "PTR node", qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"PTR node1.node.dc1.consul."}},
		{name: "PTR service address", qname: "5.0.1.10.in-addr.arpa.", qtype: dns.TypePTR,
			answer: []string{"PTR db.service.dc1.consul."}},
		{name: "PTR ipv6 node", qname: "4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", qtype: dns.TypePTR,
			answer: []string{"PTR node4.node.dc1.consul."}},
		{name: "PTR unknown", qname: "9.9.9.9.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeNameError},

		{name: "outside domain without recursors", qname: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},

		{name: "alt domain SRV", qname: "web.service.alt.test.", qtype: dns.TypeSRV,
			answer: []string{
				"SRV 1 1 8080 node4.node.dc1.alt.test.",
				"SRV 1 2 80 node2.node.dc1.alt.test.",
				"SRV 1 5 80 node1.node.dc1.alt.test.",
			}},
		{name: "alt domain NXDOMAIN SOA", qname: "nope.node.alt.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				m := query(tc.qname, tc.qtype)
				m.SetEdns0(4096, false)
				r := exchange(t, s, network, m)
				require.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[r.Rcode])
				got := rrs(r.Answer)
				for i, g := range got {
					if strings.HasPrefix(g, "SOA ") {
						f := strings.Fields(g)
						f[3] = "SERIAL"
						got[i] = strings.Join(f, " ")
					}
				}
				want := append([]string(nil), tc.answer...)
				sort.Strings(want)
				if len(want) == 0 {
					want = []string{}
				}
				require.Equal(t, want, got)
				for _, rr := range r.Answer {
					require.Equal(t, strings.ToLower(tc.qname), strings.ToLower(rr.Header().Name))
				}
				if tc.rcode != dns.RcodeRefused && tc.rcode != dns.RcodeServerFailure {
					require.True(t, r.Authoritative)
				}
				if len(tc.answer) == 0 && (tc.rcode == dns.RcodeSuccess || tc.rcode == dns.RcodeNameError) {
					domain := "consul."
					if strings.HasSuffix(tc.qname, "alt.test.") {
						domain = "alt.test."
					}
					require.True(t, hasSOA(r.Ns, domain), "negative answer needs the SOA: %v", r.Ns)
				}
				if tc.ns != nil {
					require.Equal(t, tc.ns, rrs(r.Ns))
				}
				if tc.extra != nil {
					require.Equal(t, tc.extra, rrs(r.Extra))
				}
				require.NotNil(t, r.IsEdns0(), "EDNS must be echoed")
			})
		}
	}
}

func TestServer_OnlyPassing(t *testing.T) {
	s := startServer(t, newFixture(), func(c *Config) { c.OnlyPassing = true })
	r := exchange(t, s, "udp", query("web.service.consul.", dns.TypeA))
	require.Equal(t, []string{"A 10.0.0.1"}, rrs(r.Answer))
	r = exchange(t, s, "udp", query("secondary.web.service.consul.", dns.TypeA))
	require.Equal(t, dns.RcodeNameError, r.Rcode)
}

func TestServer_TTLs(t *testing.T) {
	s := startServer(t, newFixture(), func(c *Config) {
		c.NodeTTL = 10 * time.Second
		c.ServiceTTL = map[string]time.Duration{"*": 5 * time.Second, "we*": 20 * time.Second, "web": 30 * time.Second}
	})
	cases := []struct {
		qname string
		qtype uint16
		ttl   uint32
	}{
		{"node1.node.consul.", dns.TypeA, 10},
		{"web.service.consul.", dns.TypeSRV, 30},
		{"db.service.consul.", dns.TypeA, 5},
	}
	for _, tc := range cases {
		t.Run(tc.qname, func(t *testing.T) {
			r := exchange(t, s, "udp", query(tc.qname, tc.qtype))
			require.NotEmpty(t, r.Answer)
			for _, rr := range r.Answer {
				require.Equal(t, tc.ttl, rr.Header().Ttl)
			}
		})
	}
	tbl := newTTLTable(map[string]time.Duration{"*": 5 * time.Second, "we*": 20 * time.Second, "web": 30 * time.Second, "w*": time.Second})
	require.Equal(t, uint32(30), tbl.lookup("web"))
	require.Equal(t, uint32(20), tbl.lookup("webby"))
	require.Equal(t, uint32(1), tbl.lookup("wx"))
	require.Equal(t, uint32(5), tbl.lookup("db"))
	require.Equal(t, uint32(0), newTTLTable(nil).lookup("db"))
}

func TestServer_UDPLimitsAndTruncation(t *testing.T) {
	plain := startServer(t, newFixture(), nil)
	truncating := startServer(t, newFixture(), func(c *Config) { c.EnableTruncate = true })
	limited := startServer(t, newFixture(), func(c *Config) { c.ARecordLimit = 5 })

	t.Run("no EDNS: udp_answer_limit, no TC by default", func(t *testing.T) {
		r := exchange(t, plain, "udp", query("big.service.consul.", dns.TypeA))
		require.Len(t, r.Answer, DefaultUDPAnswerLimit)
		require.False(t, r.Truncated)
		require.Nil(t, r.IsEdns0())
	})
	t.Run("no EDNS: TC with enable_truncate", func(t *testing.T) {
		r := exchange(t, truncating, "udp", query("big.service.consul.", dns.TypeA))
		require.Len(t, r.Answer, DefaultUDPAnswerLimit)
		require.True(t, r.Truncated)
	})
	t.Run("small answers are not truncated", func(t *testing.T) {
		r := exchange(t, truncating, "udp", query("web.service.consul.", dns.TypeA))
		require.Len(t, r.Answer, 2)
		require.False(t, r.Truncated)
	})
	t.Run("EDNS 4096 lifts the answer limit", func(t *testing.T) {
		m := query("big.service.consul.", dns.TypeA)
		m.SetEdns0(4096, false)
		r := exchange(t, truncating, "udp", m)
		require.Len(t, r.Answer, bigInstances)
		require.False(t, r.Truncated)
		require.Equal(t, uint16(4096), r.IsEdns0().UDPSize())
	})
	t.Run("EDNS size honoured for SRV with additionals", func(t *testing.T) {
		m := query("big.service.consul.", dns.TypeSRV)
		m.SetEdns0(1232, false)
		r := exchange(t, truncating, "udp", m)
		require.True(t, r.Truncated)
		require.Greater(t, len(r.Answer), DefaultUDPAnswerLimit)
		require.Less(t, len(r.Answer), bigInstances)
		r.Compress = true
		require.LessOrEqual(t, r.Len(), 1232)
		targets := map[string]bool{}
		for _, rr := range r.Answer {
			targets[rr.(*dns.SRV).Target] = true
		}
		extras := 0
		for _, rr := range r.Extra {
			if _, ok := rr.(*dns.OPT); ok {
				continue
			}
			extras++
			require.True(t, targets[rr.Header().Name], "additional %s has no SRV", rr.Header().Name)
		}
		require.Equal(t, len(r.Answer), extras)
	})
	t.Run("no EDNS SRV fits 512", func(t *testing.T) {
		r := exchange(t, plain, "udp", query("big.service.consul.", dns.TypeSRV))
		r.Compress = true
		require.LessOrEqual(t, r.Len(), 512)
		require.Len(t, r.Answer, DefaultUDPAnswerLimit)
	})
	t.Run("TCP gets everything", func(t *testing.T) {
		r := exchange(t, truncating, "tcp", query("big.service.consul.", dns.TypeSRV))
		require.Len(t, r.Answer, bigInstances)
		require.Len(t, r.Extra, bigInstances)
		require.False(t, r.Truncated)
	})
	t.Run("a_record_limit over TCP and UDP", func(t *testing.T) {
		r := exchange(t, limited, "tcp", query("big.service.consul.", dns.TypeA))
		require.Len(t, r.Answer, 5)
		m := query("big.service.consul.", dns.TypeA)
		m.SetEdns0(4096, false)
		r = exchange(t, limited, "udp", m)
		require.Len(t, r.Answer, 5)
		// SRV is not limited by a_record_limit.
		r = exchange(t, limited, "tcp", query("big.service.consul.", dns.TypeSRV))
		require.Len(t, r.Answer, bigInstances)
	})
}

func TestServer_Shuffle(t *testing.T) {
	s := startServer(t, newFixture(), nil)
	firsts := map[string]int{}
	orders := map[string]bool{}
	for range 50 {
		m := query("big.service.consul.", dns.TypeA)
		m.SetEdns0(4096, false)
		r := exchange(t, s, "udp", m)
		require.Len(t, r.Answer, bigInstances)
		firsts[r.Answer[0].(*dns.A).A.String()]++
		var order []string
		for _, rr := range r.Answer {
			order = append(order, rr.(*dns.A).A.String())
		}
		orders[strings.Join(order, ",")] = true
	}
	require.Greater(t, len(firsts), 5, "first answer should vary: %v", firsts)
	require.Greater(t, len(orders), 40)
	// Without EDNS the 3 answers are a varying subset.
	subsets := map[string]bool{}
	for range 30 {
		r := exchange(t, s, "udp", query("big.service.consul.", dns.TypeA))
		subsets[strings.Join(rrs(r.Answer), ",")] = true
	}
	require.Greater(t, len(subsets), 5)
}

func TestServer_MaxStale(t *testing.T) {
	fake := newFixture()
	fake.lastContact = time.Minute
	s := startServer(t, fake, func(c *Config) { c.MaxStale = 10 * time.Second })
	r := exchange(t, s, "udp", query("web.service.consul.", dns.TypeA))
	require.Len(t, r.Answer, 2)
	calls := fake.callsFor(rpc.MethodHealthServiceNodes)
	require.Len(t, calls, 2)
	require.True(t, calls[0].allowStale)
	require.False(t, calls[1].allowStale)

	fresh := newFixture()
	s2 := startServer(t, fresh, nil)
	exchange(t, s2, "udp", query("web.service.consul.", dns.TypeA))
	calls = fresh.callsFor(rpc.MethodHealthServiceNodes)
	require.Len(t, calls, 1)
	require.True(t, calls[0].allowStale)

	consistent := newFixture()
	s3 := startServer(t, consistent, func(c *Config) { c.AllowStale = false })
	exchange(t, s3, "udp", query("node1.node.consul.", dns.TypeA))
	calls = consistent.callsFor(rpc.MethodCatalogNodeServices)
	require.Len(t, calls, 1)
	require.False(t, calls[0].allowStale)
}

func TestServer_Malformed(t *testing.T) {
	s, err := New(Config{Caller: newFixture(), Datacenter: "dc1"})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()

	twoQ := query("web.service.consul.", dns.TypeA)
	twoQ.Question = append(twoQ.Question, twoQ.Question[0])
	noQ := query("web.service.consul.", dns.TypeA)
	noQ.Question = nil
	update := query("consul.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	resp := query("web.service.consul.", dns.TypeA)
	resp.Response = true
	weird := query(`a\.b\000.node.consul.`, dns.TypeA)

	cases := []struct {
		name  string
		msg   *dns.Msg
		rcode int // -1: no reply
	}{
		{"two questions", twoQ, dns.RcodeFormatError},
		{"no question", noQ, dns.RcodeFormatError},
		{"update opcode", update, dns.RcodeNotImplemented},
		{"chaos class", chaos, dns.RcodeNotImplemented},
		{"a response", resp, -1},
		{"escaped name", weird, dns.RcodeNameError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &recordWriter{}
			s.ServeDNS(w, tc.msg)
			if tc.rcode < 0 {
				require.Nil(t, w.msg)
				return
			}
			require.NotNil(t, w.msg)
			require.Equal(t, dns.RcodeToString[tc.rcode], dns.RcodeToString[w.msg.Rcode])
		})
	}
	// A nil request is ignored.
	w := &recordWriter{}
	s.ServeDNS(w, nil)
	require.Nil(t, w.msg)
}

// panicCaller panics on every call: the handler must answer SERVFAIL.
type panicCaller struct{}

func (panicCaller) RPC(context.Context, string, any, any) error { panic("boom") }

func TestServer_RecoversFromPanic(t *testing.T) {
	s, err := New(Config{Caller: panicCaller{}, Datacenter: "dc1"})
	require.NoError(t, err)
	w := &recordWriter{}
	s.ServeDNS(w, query("web.service.consul.", dns.TypeA))
	require.NotNil(t, w.msg)
	require.Equal(t, dns.RcodeServerFailure, w.msg.Rcode)
	require.NoError(t, s.Shutdown(context.Background()))
}

func TestNew_Validation(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Caller = newFixture()
		c.Datacenter = "dc1"
		return c
	}
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"no caller", func(c *Config) { c.Caller = nil }, "Caller is required"},
		{"no dc", func(c *Config) { c.Datacenter = "" }, "Datacenter is required"},
		{"root domain", func(c *Config) { c.Domain = "." }, "must not be the root"},
		{"bad domain", func(c *Config) { c.Domain = "a..b" }, "not a valid domain"},
		{"alt equals domain", func(c *Config) { c.AltDomain = "CONSUL" }, "equals domain"},
		{"bad recursor port", func(c *Config) { c.Recursors = []string{"1.2.3.4:99999"} }, "invalid port"},
		{"empty recursor", func(c *Config) { c.Recursors = []string{""} }, "empty recursor"},
		{"negative timeout", func(c *Config) { c.RecursorTimeout = -1 }, "recursor_timeout"},
		{"negative udp limit", func(c *Config) { c.UDPAnswerLimit = -1 }, "udp_answer_limit"},
		{"negative a limit", func(c *Config) { c.ARecordLimit = -1 }, "a_record_limit"},
		{"bad ttl wildcard", func(c *Config) { c.ServiceTTL = map[string]time.Duration{"a*b": time.Second} }, "only allowed at the end"},
		{"negative ttl", func(c *Config) { c.NodeTTL = -time.Second }, "node_ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			s, err := New(c)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, s.Shutdown(context.Background()))
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	c := base()
	c.Domain, c.AltDomain = "Example.COM", "other"
	c.Recursors = []string{"127.0.0.1", "[::1]:5353", "::1", "10.0.0.1:53"}
	c.UDPAnswerLimit, c.RecursorTimeout, c.MaxStale = 0, 0, 0
	s, err := New(c)
	require.NoError(t, err)
	require.Equal(t, []string{"example.com.", "other."}, s.domains)
	require.Equal(t, []string{"127.0.0.1:53", "[::1]:5353", "[::1]:53", "10.0.0.1:53"}, s.recursors)
	require.Equal(t, DefaultUDPAnswerLimit, s.cfg.UDPAnswerLimit)
	require.Equal(t, DefaultRecursorTimeout, s.cfg.RecursorTimeout)
	require.Equal(t, DefaultMaxStale, s.cfg.MaxStale)
	require.NoError(t, s.Shutdown(context.Background()))
}

func TestServer_Lifecycle(t *testing.T) {
	s, err := New(Config{Caller: newFixture(), Datacenter: "dc1"})
	require.NoError(t, err)
	require.Nil(t, s.UDPAddr())
	require.Error(t, s.ListenAndServe("", ""))
	require.NoError(t, s.ListenAndServe("127.0.0.1:0", "127.0.0.1:0"))
	require.NotZero(t, s.UDPAddr().(*net.UDPAddr).Port)
	require.NotZero(t, s.TCPAddr().(*net.TCPAddr).Port)
	require.ErrorIs(t, s.ListenAndServe("127.0.0.1:0", "127.0.0.1:0"), ErrAlreadyStarted)

	// A TCP client holding an idle connection must not block shutdown.
	conn, err := net.Dial("tcp", s.TCPAddr().String())
	require.NoError(t, err)
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	require.NoError(t, s.Shutdown(ctx), "idempotent")
	require.ErrorIs(t, s.ListenAndServe("127.0.0.1:0", "127.0.0.1:0"), ErrServerClosed)

	// The port is taken: a clear error, nothing left running.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	s2, err := New(Config{Caller: newFixture(), Datacenter: "dc1"})
	require.NoError(t, err)
	err = s2.ListenAndServe(busy.LocalAddr().String(), "127.0.0.1:0")
	require.ErrorContains(t, err, "listen udp")
	require.NoError(t, s2.Shutdown(ctx))
}

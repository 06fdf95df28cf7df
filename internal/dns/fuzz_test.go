package dns

import (
	"context"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func FuzzParseName(f *testing.F) {
	for _, seed := range []string{
		"web.service.consul.", "primary.web.service.dc1.consul.", "_web._tcp.service.consul.",
		"node1.node.dc2.dc.consul.", "0a000001.addr.dc1.consul.", "q.query.consul.", "consul.",
		"a..b.consul.", "..", ".", "", "service.consul.", "_._.service.consul.",
		"1.0.0.10.in-addr.arpa.", "4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
		`a\.b.node.consul.`, "x.service.alt.test", "256.1.1.1.in-addr.arpa.", "01.1.1.1.in-addr.arpa.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, in := parseName(name, "consul.", "alt.test.")
		if !in {
			if p != (parsedName{}) {
				t.Fatalf("outside the domain but parsed: %+v", p)
			}
		} else {
			if p.domain != "consul." && p.domain != "alt.test." {
				t.Fatalf("bad domain %q", p.domain)
			}
			switch p.kind {
			case kindNode, kindQuery:
				if p.name == "" {
					t.Fatalf("%s lookup without a name: %q", p.kind, name)
				}
			case kindService:
				if p.name == "" || strings.Contains(p.name, ".") || strings.Contains(p.tag, ".") {
					t.Fatalf("bad service parse of %q: %+v", name, p)
				}
			case kindAddr:
				if !p.addr.IsValid() {
					t.Fatalf("addr lookup without an address: %q", name)
				}
				if got := hexAddr(p.addr); !strings.Contains(strings.ToLower(name), got) {
					t.Fatalf("addr %s does not round-trip from %q", got, name)
				}
			}
		}
		if ip, ok := parseReverse(name); ok {
			if !ip.IsValid() {
				t.Fatalf("reverse ok without an address: %q", name)
			}
			rev, err := dns.ReverseAddr(ip.String())
			if err != nil || !strings.EqualFold(rev, strings.TrimSuffix(name, ".")+".") {
				t.Fatalf("reverse of %q gave %s (%s), err %v", name, ip, rev, err)
			}
		}
	})
}

func FuzzServeDNS(f *testing.F) {
	seeds := []*dns.Msg{
		query("web.service.consul.", dns.TypeSRV),
		query("node1.node.consul.", dns.TypeANY),
		query("big.service.consul.", dns.TypeA),
		query("1.0.0.10.in-addr.arpa.", dns.TypePTR),
		query("consul.", dns.TypeSOA),
		query("0a000001.addr.consul.", dns.TypeA),
		query("example.com.", dns.TypeA),
	}
	edns := query("big.service.consul.", dns.TypeSRV)
	edns.SetEdns0(1232, false)
	seeds = append(seeds, edns)
	for _, m := range seeds {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	s, err := New(Config{Caller: newFixture(), Datacenter: "dc1", AltDomain: "alt.test", EnableTruncate: true, EnableNodeMetaTXT: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Shutdown(t0ctx()) })
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(wire); err != nil {
			return
		}
		w := &recordWriter{tcp: tcp}
		s.ServeDNS(w, req)
		if w.msg == nil {
			return
		}
		b, err := w.msg.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\n%s", err, w.msg)
		}
		if w.msg.Rcode == dns.RcodeServerFailure && len(req.Question) == 1 &&
			!strings.Contains(strings.ToLower(req.Question[0].Name), "broken") {
			// SERVFAIL comes only from the fake's "broken" service.
			if _, in := parseName(req.Question[0].Name, s.domains...); in {
				t.Fatalf("unexpected SERVFAIL for %q", req.Question[0].Name)
			}
		}
		if !tcp && len(req.Question) == 1 && len(b) > int(udpSizeFor(req)) {
			t.Fatalf("UDP response of %d bytes exceeds %d", len(b), udpSizeFor(req))
		}
	})
}

func t0ctx() context.Context { return context.Background() }

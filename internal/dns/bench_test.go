package dns

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS measures the handler alone (parse, read, records, pack).
func BenchmarkServeDNS(b *testing.B) {
	s, err := New(Config{Caller: newFixture(), Datacenter: "dc1", EnableNodeMetaTXT: true, AllowStale: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Shutdown(b.Context()) })
	for _, tc := range []struct {
		name  string
		qtype uint16
	}{{"web.service.consul.", dns.TypeA}, {"web.service.consul.", dns.TypeSRV}, {"node1.node.consul.", dns.TypeA}} {
		b.Run(tc.name+dns.TypeToString[tc.qtype], func(b *testing.B) {
			req := query(tc.name, tc.qtype)
			w := &recordWriter{}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, req)
			}
		})
	}
}

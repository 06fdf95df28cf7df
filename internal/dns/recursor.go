package dns

import (
	"context"

	"github.com/miekg/dns"
)

// recurse forwards req to the recursors in order and relays the first
// answer that is NOERROR or NXDOMAIN; when none gives one the client gets
// SERVFAIL. The upstream exchange uses the client's transport.
func (s *Server) recurse(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	client := s.clients[network]
	fwd := req.Copy()
	for _, addr := range s.recursors {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RecursorTimeout)
		r, rtt, err := client.ExchangeContext(rctx, fwd, addr)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("dns recurse failed", "recursor", addr, "name", req.Question[0].Name, "error", err)
			continue
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			s.cfg.Logger.Debug("dns recursor refused", "recursor", addr, "rcode", dns.RcodeToString[r.Rcode])
			continue
		}
		s.cfg.Logger.Debug("dns recursed", "recursor", addr, "rtt", rtt)
		r.Id = req.Id
		r.Compress = true
		if network == "udp" {
			if size := int(udpSizeFor(req)); r.Len() > size {
				r.Truncate(size)
			}
		}
		return r
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	setEDNS(req, m)
	return m
}

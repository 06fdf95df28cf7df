package dns

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// recurse forwards req to the recursors in order and relays the first
// answer that is NOERROR or NXDOMAIN; when none gives one the client gets
// SERVFAIL. The upstream exchange uses the client's transport.
func (s *Server) recurse(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	client := s.clients[network]
	fwd := req.Copy()
	for _, addr := range s.recursors {
		r, rtt, err := exchangeUpstream(ctx, client, fwd, addr, s.cfg.RecursorTimeout)
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

// exchangeUpstream is one upstream round trip bounded by timeout. miekg/dns only
// takes a deadline from its context, so cancellation (Shutdown) is wired to
// the connection's deadline here.
func exchangeUpstream(ctx context.Context, c *dns.Client, m *dns.Msg, addr string, timeout time.Duration) (*dns.Msg, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.DialContext(ctx, addr)
	if err != nil {
		return nil, 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	r, rtt, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		return nil, rtt, fmt.Errorf("exchange with %s: %w", addr, err)
	}
	return r, rtt, nil
}

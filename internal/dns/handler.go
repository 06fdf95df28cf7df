package dns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/cairn-io/cairn/internal/rpc"
)

// ServeDNS answers one request. It is the miekg/dns handler of both
// listeners and is exported for tests and fuzzing; it never panics.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	network := "udp"
	if isTCPAddr(w.LocalAddr()) {
		network = "tcp"
	}
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Logger.Error("dns handler panic", "panic", r, "stack", string(debug.Stack()))
			if req != nil {
				m := new(dns.Msg)
				m.SetRcode(req, dns.RcodeServerFailure)
				_ = w.WriteMsg(m)
			}
		}
	}()
	if req == nil {
		return
	}
	resp := s.handle(s.ctx, req, network)
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Warn("dns write failed", "error", err, "network", network)
	}
	if s.cfg.Logger.Enabled(s.ctx, slog.LevelDebug) && len(req.Question) > 0 {
		q := req.Question[0]
		s.cfg.Logger.Debug("dns request", "name", q.Name, "type", dns.TypeToString[q.Qtype],
			"network", network, "rcode", dns.RcodeToString[resp.Rcode], "latency", time.Since(start))
	}
}

// handle builds the response to req, or nil when none must be sent.
func (s *Server) handle(ctx context.Context, req *dns.Msg, network string) *dns.Msg {
	if req.Response {
		return nil
	}
	if req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(req)
		return m
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNotImplemented)
		return m
	}

	if p, ok := parseName(q.Name, s.domains...); ok {
		resp := s.newReply(req)
		s.answer(ctx, resp, q, p)
		return s.finalize(req, resp, network)
	}
	if ip, ok := parseReverse(q.Name); ok {
		resp := s.newReply(req)
		if s.ptrLookup(ctx, resp, q, ip) {
			return s.finalize(req, resp, network)
		}
		if len(s.recursors) > 0 && req.RecursionDesired {
			return s.recurse(ctx, req, network)
		}
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, s.soa(s.cfg.Domain))
		return s.finalize(req, resp, network)
	}
	if len(s.recursors) > 0 {
		return s.recurse(ctx, req, network)
	}
	// Without recursors the server is authoritative for its domains only.
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeRefused)
	setEDNS(req, m)
	return m
}

// newReply starts an authoritative answer to req.
func (s *Server) newReply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = len(s.recursors) > 0
	m.Compress = true
	return m
}

// answer fills resp for a name inside one of the domains.
func (s *Server) answer(ctx context.Context, resp *dns.Msg, q dns.Question, p parsedName) {
	var err error
	switch p.kind {
	case kindApex:
		err = s.apexLookup(ctx, resp, q, p)
	case kindNode:
		err = s.nodeLookup(ctx, resp, q, p)
	case kindService:
		err = s.serviceLookup(ctx, resp, q, p)
	case kindAddr:
		s.addrLookup(resp, q, p)
	case kindQuery:
		s.preparedQueryLookup(resp, p)
	default:
		resp.Rcode = dns.RcodeNameError
	}
	if err != nil {
		resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
		resp.Rcode = rcodeFor(err)
		if resp.Rcode == dns.RcodeServerFailure {
			s.cfg.Logger.Warn("dns lookup failed", "name", q.Name, "kind", p.kind.String(), "error", err)
		}
	}
	// NXDOMAIN and NODATA carry the zone's SOA for negative caching.
	if len(resp.Answer) == 0 && (resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError) &&
		!(p.kind == kindApex && q.Qtype == dns.TypeNS) {
		resp.Ns = append(resp.Ns, s.soa(p.domain))
	}
}

// preparedQueryLookup answers <query>.query.<domain>. Prepared queries do
// not exist yet, so every name is unknown: NXDOMAIN, as Consul answers for a
// query that is not defined.
func (s *Server) preparedQueryLookup(resp *dns.Msg, _ parsedName) {
	resp.Rcode = dns.RcodeNameError
}

// errNoSuchName makes a lookup answer NXDOMAIN.
var errNoSuchName = errors.New("dns: no such name")

// rcodeFor maps a lookup error to a response code: unknown names and
// datacenters are NXDOMAIN, anything else a server failure.
func rcodeFor(err error) int {
	switch {
	case errors.Is(err, errNoSuchName), errors.Is(err, rpc.ErrNotFound):
		return dns.RcodeNameError
	case strings.Contains(strings.ToLower(err.Error()), "no path to datacenter"):
		return dns.RcodeNameError
	default:
		return dns.RcodeServerFailure
	}
}

// setEDNS echoes the client's OPT record (RFC 6891) with our payload size.
func setEDNS(req, resp *dns.Msg) {
	opt := req.IsEdns0()
	if opt == nil || resp.IsEdns0() != nil {
		return
	}
	resp.SetEdns0(udpSizeFor(req), false)
}

// udpSizeFor is the largest UDP response req's sender accepts.
func udpSizeFor(req *dns.Msg) uint16 {
	if opt := req.IsEdns0(); opt != nil && opt.UDPSize() > dns.MinMsgSize {
		return opt.UDPSize()
	}
	return dns.MinMsgSize
}

// finalize applies EDNS, the answer limits and the size limit of the
// transport.
func (s *Server) finalize(req, resp *dns.Msg, network string) *dns.Msg {
	setEDNS(req, resp)
	if network == "udp" {
		s.trimUDP(req, resp)
	} else if resp.Len() > dns.MaxMsgSize {
		resp.Truncate(dns.MaxMsgSize)
	}
	return resp
}

// trimUDP makes resp fit the client's UDP payload size: without EDNS at
// most UDPAnswerLimit answers, then as many answers (with their additional
// records) as fit. The TC bit is set when answers were dropped and
// EnableTruncate is on (Consul's behaviour; by default clients silently get
// a shuffled subset).
func (s *Server) trimUDP(req, resp *dns.Msg) {
	maxSize := int(udpSizeFor(req))
	total := len(resp.Answer)
	if req.IsEdns0() == nil && len(resp.Answer) > s.cfg.UDPAnswerLimit {
		keepAnswers(resp, s.cfg.UDPAnswerLimit)
	}
	// Most answers fit uncompressed; they are sent so, which saves the
	// name compression pass (a third of the packing cost) on the hot path.
	// Answers that do not fit are compressed before anything is dropped.
	resp.Compress = false
	if resp.Len() <= maxSize {
		if len(resp.Answer) < total && s.cfg.EnableTruncate {
			resp.Truncated = true
		}
		return
	}
	resp.Compress = true
	if resp.Len() > maxSize && len(resp.Answer) > 1 {
		// Binary search for the most answers that fit.
		all := resp.Answer
		extra := resp.Extra
		lo, hi := 1, len(all)-1
		best := 1
		for lo <= hi {
			mid := (lo + hi) / 2
			resp.Answer, resp.Extra = all, extra
			keepAnswers(resp, mid)
			if resp.Len() <= maxSize {
				best, lo = mid, mid+1
			} else {
				hi = mid - 1
			}
		}
		resp.Answer, resp.Extra = all, extra
		keepAnswers(resp, best)
	}
	if len(resp.Answer) < total && s.cfg.EnableTruncate {
		resp.Truncated = true
	}
	if resp.Len() > maxSize {
		// Even one answer is too big: drop the additional records, and as
		// a last resort let miekg/dns truncate (it sets TC).
		resp.Extra = keepOPT(resp.Extra)
		if resp.Len() > maxSize {
			resp.Truncate(maxSize)
		}
	}
}

// keepAnswers keeps the first n answers and only the additional records
// that belong to them (SRV targets), plus the OPT record.
func keepAnswers(resp *dns.Msg, n int) {
	if n >= len(resp.Answer) {
		return
	}
	resp.Answer = resp.Answer[:n]
	if len(resp.Extra) == 0 {
		return
	}
	targets := make(map[string]struct{}, n)
	for _, rr := range resp.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			targets[strings.ToLower(srv.Target)] = struct{}{}
		}
	}
	kept := make([]dns.RR, 0, len(resp.Extra))
	for _, rr := range resp.Extra {
		if _, ok := rr.(*dns.OPT); ok {
			kept = append(kept, rr)
			continue
		}
		if _, ok := targets[strings.ToLower(rr.Header().Name)]; ok {
			kept = append(kept, rr)
		}
	}
	resp.Extra = kept
}

func keepOPT(extra []dns.RR) []dns.RR {
	var kept []dns.RR
	for _, rr := range extra {
		if _, ok := rr.(*dns.OPT); ok {
			kept = append(kept, rr)
		}
	}
	return kept
}

// isTCPAddr reports whether a is a TCP address.
func isTCPAddr(a net.Addr) bool {
	return a != nil && strings.HasPrefix(a.Network(), "tcp")
}

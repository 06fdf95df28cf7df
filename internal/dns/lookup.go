package dns

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// SOA timers, as Consul's dns_config.soa defaults.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
	soaMinTTL  = 0
)

// consulService is the service every server registers; NS names them.
const consulService = "consul"

// read makes one catalog read honouring allow_stale and max_stale: a stale
// answer older than MaxStale is re-read from the leader.
func (s *Server) read(ctx context.Context, method string, opts *rpc.QueryOptions, args any, reply any, meta *rpc.QueryMeta) error {
	opts.AllowStale = s.cfg.AllowStale
	if err := s.cfg.Caller.RPC(ctx, method, args, reply); err != nil {
		return err
	}
	if opts.AllowStale && meta.LastContact > s.cfg.MaxStale {
		opts.AllowStale = false
		return s.cfg.Caller.RPC(ctx, method, args, reply)
	}
	return nil
}

// dcName is the datacenter used in generated names.
func (s *Server) dcName(p parsedName) string {
	if p.dc != "" {
		return p.dc
	}
	return s.cfg.Datacenter
}

func (s *Server) soa(domain string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: soaMinTTL},
		Ns:      "ns." + domain,
		Mbox:    "hostmaster." + domain,
		Serial:  uint32(time.Now().Unix()),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  soaMinTTL,
	}
}

// apexLookup answers SOA and NS for the domain itself.
func (s *Server) apexLookup(ctx context.Context, resp *dns.Msg, q dns.Question, p parsedName) error {
	switch q.Qtype {
	case dns.TypeSOA, dns.TypeNS, dns.TypeANY:
	default:
		return nil // NODATA
	}
	ns, glue, err := s.nameservers(ctx, p.domain)
	if err != nil {
		return err
	}
	switch q.Qtype {
	case dns.TypeSOA:
		resp.Answer = append(resp.Answer, s.soa(p.domain))
		resp.Ns = append(resp.Ns, ns...)
	case dns.TypeNS:
		resp.Answer = append(resp.Answer, ns...)
	case dns.TypeANY:
		resp.Answer = append(resp.Answer, s.soa(p.domain))
		resp.Answer = append(resp.Answer, ns...)
	}
	resp.Extra = append(resp.Extra, glue...)
	return nil
}

// nameservers are the healthy servers of the local datacenter (the
// instances of the "consul" service), named <node>.node.<dc>.<domain>,
// with their addresses as glue. Without any, the local agent is named.
func (s *Server) nameservers(ctx context.Context, domain string) (ns, glue []dns.RR, err error) {
	insts, err := s.healthyInstances(ctx, "", consulService, "")
	if err != nil && rcodeFor(err) != dns.RcodeNameError {
		return nil, nil, err
	}
	seen := make(map[string]struct{}, len(insts))
	for _, in := range insts {
		if in.Node == nil {
			continue
		}
		target := nodeFQDN(in.Node.Node, s.cfg.Datacenter, domain)
		if _, dup := seen[target]; dup || !validName(target) {
			continue
		}
		seen[target] = struct{}{}
		ns = append(ns, &dns.NS{Hdr: hdr(domain, dns.TypeNS, 0), Ns: target})
		glue = append(glue, addrRecords(target, in.Node.Address, dns.TypeANY, 0)...)
	}
	if len(ns) == 0 && s.cfg.NodeName != "" {
		if target := nodeFQDN(s.cfg.NodeName, s.cfg.Datacenter, domain); validName(target) {
			ns = append(ns, &dns.NS{Hdr: hdr(domain, dns.TypeNS, 0), Ns: target})
		}
	}
	return ns, glue, nil
}

// nodeLookup answers <node>.node[.<dc>].<domain>.
func (s *Server) nodeLookup(ctx context.Context, resp *dns.Msg, q dns.Question, p parsedName) error {
	args := rpc.NodeSpecificRequest{Node: p.name, QueryOptions: rpc.QueryOptions{Datacenter: p.dc}}
	var reply rpc.IndexedNodeServices
	if err := s.read(ctx, rpc.MethodCatalogNodeServices, &args.QueryOptions, &args, &reply, &reply.QueryMeta); err != nil {
		return err
	}
	if reply.NodeServices == nil || reply.NodeServices.Node == nil {
		return errNoSuchName
	}
	n := reply.NodeServices.Node
	ttl := seconds(s.cfg.NodeTTL)
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		resp.Answer = append(resp.Answer, nodeAddrRecords(q.Name, n, q.Qtype, ttl)...)
	}
	meta := metaTXT(q.Name, n.Meta, ttl)
	switch q.Qtype {
	case dns.TypeTXT, dns.TypeANY:
		resp.Answer = append(resp.Answer, meta...)
	case dns.TypeA, dns.TypeAAAA:
		if s.cfg.EnableNodeMetaTXT && len(resp.Answer) > 0 {
			resp.Extra = append(resp.Extra, meta...)
		}
	}
	return nil
}

// addrLookup answers <hex>.addr[.<dc>].<domain> without reading anything.
func (s *Server) addrLookup(resp *dns.Msg, q dns.Question, p parsedName) {
	a := p.addr.Unmap()
	switch {
	case a.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(q.Name, dns.TypeA, 0), A: a.AsSlice()})
	case a.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
		resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(q.Name, dns.TypeAAAA, 0), AAAA: a.AsSlice()})
	}
}

// healthyInstances reads a service's instances (in dc, "" = local) and keeps
// those without a critical check (and without a warning when OnlyPassing)
// and, when tag is set, those carrying it. The result is shuffled.
func (s *Server) healthyInstances(ctx context.Context, dc, service, tag string) ([]*state.CheckServiceNode, error) {
	args := rpc.ServiceSpecificRequest{ServiceName: service, QueryOptions: rpc.QueryOptions{Datacenter: dc}}
	var reply rpc.IndexedCheckServiceNodes
	if err := s.read(ctx, rpc.MethodHealthServiceNodes, &args.QueryOptions, &args, &reply, &reply.QueryMeta); err != nil {
		return nil, err
	}
	out := reply.Nodes[:0:0]
	for _, in := range reply.Nodes {
		if in == nil || in.Node == nil || in.Service == nil {
			continue
		}
		if tag != "" && !hasTag(in.Service.Tags, tag) {
			continue
		}
		if s.excluded(in.Checks) {
			continue
		}
		out = append(out, in)
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, nil
}

// excluded reports whether checks keep an instance out of DNS answers.
func (s *Server) excluded(checks []*state.HealthCheck) bool {
	for _, c := range checks {
		if c == nil {
			continue
		}
		switch c.Status {
		case state.HealthPassing:
		case state.HealthWarning:
			if s.cfg.OnlyPassing {
				return true
			}
		default: // critical, maintenance and anything unknown
			return true
		}
	}
	return false
}

func hasWarning(checks []*state.HealthCheck) bool {
	for _, c := range checks {
		if c != nil && c.Status == state.HealthWarning {
			return true
		}
	}
	return false
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// serviceLookup answers [<tag>.]<service>.service[.<dc>].<domain> and the
// RFC 2782 form.
func (s *Server) serviceLookup(ctx context.Context, resp *dns.Msg, q dns.Question, p parsedName) error {
	insts, err := s.healthyInstances(ctx, p.dc, p.name, p.tag)
	if err != nil {
		return err
	}
	if len(insts) == 0 {
		return errNoSuchName
	}
	ttl := s.ttl.lookup(p.name)
	switch q.Qtype {
	case dns.TypeSRV:
		s.serviceSRV(resp, q, p, insts, ttl)
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		s.serviceAddrs(resp, q, insts, ttl)
	case dns.TypeTXT:
		seen := make(map[string]struct{}, len(insts))
		for _, in := range insts {
			if _, dup := seen[in.Node.Node]; dup {
				continue
			}
			seen[in.Node.Node] = struct{}{}
			resp.Answer = append(resp.Answer, metaTXT(q.Name, in.Node.Meta, ttl)...)
		}
	}
	return nil
}

// serviceAddrs adds one address record per distinct instance address,
// capped by ARecordLimit.
func (s *Server) serviceAddrs(resp *dns.Msg, q dns.Question, insts []*state.CheckServiceNode, ttl uint32) {
	seen := make(map[string]struct{}, len(insts))
	for _, in := range insts {
		if s.cfg.ARecordLimit > 0 && len(resp.Answer) >= s.cfg.ARecordLimit {
			return
		}
		addr := in.Service.Address
		if addr == "" {
			addr = in.Node.Address
		}
		if _, dup := seen[addr]; dup {
			continue
		}
		seen[addr] = struct{}{}
		var rrs []dns.RR
		if in.Service.Address == "" {
			rrs = nodeAddrRecords(q.Name, in.Node, q.Qtype, ttl)
		} else {
			rrs = addrRecords(q.Name, addr, q.Qtype, ttl)
		}
		resp.Answer = append(resp.Answer, rrs...)
	}
}

// serviceSRV adds one SRV record per instance. The target is the node's
// name, or <hex>.addr.<dc>.<domain> when the service has its own IP, or the
// service's host name; address records of targets go to the additional
// section.
func (s *Server) serviceSRV(resp *dns.Msg, q dns.Question, p parsedName, insts []*state.CheckServiceNode, ttl uint32) {
	dc := s.dcName(p)
	seen := make(map[string]struct{}, len(insts))
	extraSeen := make(map[string]struct{}, len(insts))
	for _, in := range insts {
		var target string
		var extra []dns.RR
		svcAddr := in.Service.Address
		switch {
		case svcAddr != "" && svcAddr != in.Node.Address:
			if a, err := netip.ParseAddr(svcAddr); err == nil {
				target = hexAddr(a) + ".addr." + dc + "." + p.domain
				extra = addrRecords(target, svcAddr, dns.TypeANY, ttl)
			} else {
				target = dns.Fqdn(svcAddr)
			}
		default:
			target = nodeFQDN(in.Node.Node, dc, p.domain)
			extra = nodeAddrRecords(target, in.Node, dns.TypeANY, ttl)
			if s.cfg.EnableNodeMetaTXT {
				extra = append(extra, metaTXT(target, in.Node.Meta, ttl)...)
			}
		}
		if !validName(target) || in.Service.Port < 0 || in.Service.Port > 65535 {
			continue
		}
		key := target + ":" + strconv.Itoa(in.Service.Port)
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		resp.Answer = append(resp.Answer, &dns.SRV{
			Hdr:      hdr(q.Name, dns.TypeSRV, ttl),
			Priority: 1,
			Weight:   srvWeight(in),
			Port:     uint16(in.Service.Port),
			Target:   target,
		})
		if _, dup := extraSeen[target]; !dup {
			extraSeen[target] = struct{}{}
			resp.Extra = append(resp.Extra, extra...)
		}
	}
}

// srvWeight is the instance's Weights entry for its health (1 when unset).
func srvWeight(in *state.CheckServiceNode) uint16 {
	w := in.Service.Weights.Passing
	if hasWarning(in.Checks) {
		w = in.Service.Weights.Warning
	}
	if w <= 0 {
		return 1
	}
	if w > 65535 {
		return 65535
	}
	return uint16(w)
}

func nodeFQDN(node, dc, domain string) string {
	return node + ".node." + dc + "." + domain
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// nodeAddrRecords answers for a node's address, falling back to its
// lan_ipv4 / lan_ipv6 tagged addresses for the other family.
func nodeAddrRecords(owner string, n *state.Node, qtype uint16, ttl uint32) []dns.RR {
	rrs := addrRecords(owner, n.Address, qtype, ttl)
	if len(rrs) > 0 || len(n.TaggedAddresses) == 0 {
		return rrs
	}
	switch qtype {
	case dns.TypeA:
		return addrRecords(owner, n.TaggedAddresses["lan_ipv4"], qtype, ttl)
	case dns.TypeAAAA:
		return addrRecords(owner, n.TaggedAddresses["lan_ipv6"], qtype, ttl)
	}
	return nil
}

// addrRecords is the A or AAAA record for an IP address matching qtype
// (ANY matches both), or a CNAME when addr is a host name.
func addrRecords(owner, addr string, qtype uint16, ttl uint32) []dns.RR {
	if addr == "" {
		return nil
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		target := dns.Fqdn(addr)
		if !validName(target) || strings.EqualFold(target, owner) {
			return nil
		}
		return []dns.RR{&dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, ttl), Target: target}}
	}
	a = a.Unmap()
	switch {
	case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		return []dns.RR{&dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: a.AsSlice()}}
	case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		return []dns.RR{&dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: a.AsSlice()}}
	}
	return nil
}

// metaTXT is one TXT record per node meta entry: "key=value", or just the
// value for keys prefixed "rfc1035-". Keys are sorted for stable output.
func metaTXT(owner string, meta map[string]string, ttl uint32) []dns.RR {
	if len(meta) == 0 {
		return nil
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rrs := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		txt := k + "=" + meta[k]
		if v, ok := strings.CutPrefix(k, "rfc1035-"); ok && v != "" {
			txt = meta[k]
		}
		rrs = append(rrs, &dns.TXT{Hdr: hdr(owner, dns.TypeTXT, ttl), Txt: txtStrings(txt)})
	}
	return rrs
}

// txtStrings escapes s for miekg/dns (which reads TXT data in presentation
// form) and splits it into character-strings of at most 255 bytes.
func txtStrings(s string) []string {
	var out []string
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if n == 255 {
			out = append(out, b.String())
			b.Reset()
			n = 0
		}
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		default:
			b.WriteByte(c)
		}
		n++
	}
	return append(out, b.String())
}

// validName reports whether name can be packed as a domain name.
func validName(name string) bool {
	if _, ok := dns.IsDomainName(name); !ok {
		return false
	}
	// Presentation-form escapes in catalog data are not ours to interpret.
	return !strings.ContainsAny(name, "\\ \"();")
}

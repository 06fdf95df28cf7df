package dns

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sort"
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

// lookup returns the read behind key: from the lookup cache, or read
// directly when the cache is disabled.
func (s *Server) lookup(ctx context.Context, key cacheKey) (*cacheResult, error) {
	if s.cache == nil {
		r, _, err := s.fetch(ctx, key)
		return r, err
	}
	return s.cache.get(ctx, key)
}

// fetch reads key once without the cache (allow_stale and max_stale
// honoured).
func (s *Server) fetch(ctx context.Context, key cacheKey) (*cacheResult, rpc.QueryMeta, error) {
	return (&lookupCache{s: s}).fetch(ctx, key, 0, 0)
}

// read makes one uncached catalog read honouring allow_stale and max_stale:
// a stale answer older than MaxStale is re-read from the leader.
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
	r, err := s.lookup(ctx, cacheKey{kind: cacheNode, dc: p.dc, name: p.name})
	if err != nil {
		return err
	}
	if r.node == nil || r.node.Node == nil {
		return errNoSuchName
	}
	n := r.node.Node
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

// healthyInstances reads a service's instances (in dc, "" = local) without
// a critical check (and without a warning when OnlyPassing) and, when tag is
// set, keeps those carrying it. The result is the caller's own, shuffled.
func (s *Server) healthyInstances(ctx context.Context, dc, service, tag string) ([]*state.CheckServiceNode, error) {
	r, idx, err := s.serviceInstances(ctx, dc, service, tag)
	if err != nil {
		return nil, err
	}
	out := make([]*state.CheckServiceNode, len(idx))
	for i, j := range idx {
		out[i] = r.insts[j]
	}
	return out, nil
}

// serviceInstances is healthyInstances as the read and a shuffled list of
// indexes into its instances.
func (s *Server) serviceInstances(ctx context.Context, dc, service, tag string) (*cacheResult, []int, error) {
	r, err := s.lookup(ctx, cacheKey{kind: cacheService, dc: dc, name: service})
	if err != nil {
		return nil, nil, err
	}
	idx := make([]int, 0, len(r.insts))
	for i, in := range r.insts {
		if tag == "" || hasTag(in.Service.Tags, tag) {
			idx = append(idx, i)
		}
	}
	rand.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return r, idx, nil
}

// healthy keeps the complete instances that DNS may return.
func (s *Server) healthy(nodes []*state.CheckServiceNode) []*state.CheckServiceNode {
	out := make([]*state.CheckServiceNode, 0, len(nodes))
	for _, in := range nodes {
		if in == nil || in.Node == nil || in.Service == nil || s.excluded(in.Checks) {
			continue
		}
		out = append(out, in)
	}
	return out
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
	r, idx, err := s.serviceInstances(ctx, p.dc, p.name, p.tag)
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		return errNoSuchName
	}
	ttl := s.ttl.lookup(p.name)
	switch q.Qtype {
	case dns.TypeSRV:
		s.serviceSRV(resp, q, p, r, idx, ttl)
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		s.serviceAddrs(resp, q, r, idx, ttl)
	case dns.TypeTXT:
		var seen seenSet
		for _, i := range idx {
			in := r.insts[i]
			if seen.add(in.Node.Node) {
				resp.Answer = append(resp.Answer, metaTXT(q.Name, in.Node.Meta, ttl)...)
			}
		}
	}
	return nil
}

// serviceAddrs adds one address record per distinct instance address,
// capped by ARecordLimit.
func (s *Server) serviceAddrs(resp *dns.Msg, q dns.Question, r *cacheResult, idx []int, ttl uint32) {
	items := r.addrItems(q.Qtype)
	var seen seenSet
	resp.Answer = make([]dns.RR, 0, len(idx))
	for _, i := range idx {
		if s.cfg.ARecordLimit > 0 && len(resp.Answer) >= s.cfg.ARecordLimit {
			return
		}
		it := &items[i]
		if !seen.add(it.key) {
			continue
		}
		for _, t := range it.rrs {
			if rr := ownedRR(t, q.Name, ttl); rr != nil {
				resp.Answer = append(resp.Answer, rr)
			}
		}
	}
}

// serviceSRV adds one SRV record per instance. The target is the node's
// name, or <hex>.addr.<dc>.<domain> when the service has its own IP, or the
// service's host name; address records of targets go to the additional
// section.
func (s *Server) serviceSRV(resp *dns.Msg, q dns.Question, p parsedName, r *cacheResult, idx []int, ttl uint32) {
	set := r.srvRecords(s.dcName(p), p.domain, ttl, s.cfg.EnableNodeMetaTXT)
	var seen, extraSeen seenSet
	resp.Answer = make([]dns.RR, 0, len(idx))
	resp.Extra = make([]dns.RR, 0, len(idx)+1) // +1: room for the OPT record
	for _, i := range idx {
		it := &set.items[i]
		if !it.ok || !seen.add(it.key) {
			continue
		}
		resp.Answer = append(resp.Answer, &dns.SRV{
			Hdr:      hdr(q.Name, dns.TypeSRV, ttl),
			Priority: 1,
			Weight:   it.weight,
			Port:     it.port,
			Target:   it.target,
		})
		if extraSeen.add(it.target) {
			resp.Extra = append(resp.Extra, it.extra...)
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

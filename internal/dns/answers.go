package dns

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Records that depend only on a cached read (and the server's config) are
// built once per read and shared by every answer served from it, instead of
// once per query: SRV targets with their additional records, and address
// templates that only need the query's owner name. Shared records are never
// modified (miekg/dns packs without writing to them), and every response
// gets its own slices.

// srvSet is what SRV answers from one read need, for one datacenter name and
// domain (the target names contain both).
type srvSet struct {
	dc, domain string
	ttl        uint32
	meta       bool
	items      []srvItem // parallel to cacheResult.insts
}

type srvItem struct {
	ok     bool   // false: the instance cannot be named (skipped)
	target string // node FQDN, <hex>.addr name or the service's host name
	key    string // target:port, for duplicates
	port   uint16
	weight uint16
	extra  []dns.RR // the target's address (and meta TXT) records
}

// srvRecords returns the SRV data of r for dc and domain, building it on
// first use. The last variant built is kept (one per read in practice).
func (r *cacheResult) srvRecords(dc, domain string, ttl uint32, withMeta bool) *srvSet {
	if set := r.srv.Load(); set != nil && set.dc == dc && set.domain == domain && set.ttl == ttl && set.meta == withMeta {
		return set
	}
	set := &srvSet{dc: dc, domain: domain, ttl: ttl, meta: withMeta, items: make([]srvItem, len(r.insts))}
	for i, in := range r.insts {
		var target string
		var extra []dns.RR
		svcAddr := in.Service.Address
		switch {
		case svcAddr != "" && svcAddr != in.Node.Address:
			if a, err := netip.ParseAddr(svcAddr); err == nil {
				target = hexAddr(a) + ".addr." + dc + "." + domain
				extra = addrRecords(target, svcAddr, dns.TypeANY, ttl)
			} else {
				target = dns.Fqdn(svcAddr)
			}
		default:
			target = nodeFQDN(in.Node.Node, dc, domain)
			extra = nodeAddrRecords(target, in.Node, dns.TypeANY, ttl)
			if withMeta {
				extra = append(extra, metaTXT(target, in.Node.Meta, ttl)...)
			}
		}
		if !validName(target) || in.Service.Port < 0 || in.Service.Port > 65535 {
			continue
		}
		set.items[i] = srvItem{
			ok:     true,
			target: target,
			key:    target + ":" + strconv.Itoa(in.Service.Port),
			port:   uint16(in.Service.Port),
			weight: srvWeight(in),
			extra:  extra,
		}
	}
	r.srv.Store(set)
	return set
}

// addrItem is one instance's address records for one query type, with an
// empty owner and TTL 0: answers copy them with their own (ownedRR).
type addrItem struct {
	key string // the address, for duplicates
	rrs []dns.RR
}

// addrSlot maps the query types with address answers to r.addrs.
func addrSlot(qtype uint16) int {
	switch qtype {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	default:
		return 2 // ANY
	}
}

// addrItems returns the address templates of r's instances for qtype
// (A, AAAA or ANY), building them on first use.
func (r *cacheResult) addrItems(qtype uint16) []addrItem {
	slot := &r.addrs[addrSlot(qtype)]
	if items := slot.Load(); items != nil {
		return *items
	}
	items := make([]addrItem, len(r.insts))
	for i, in := range r.insts {
		addr := in.Service.Address
		if addr == "" {
			addr = in.Node.Address
			items[i] = addrItem{key: addr, rrs: nodeAddrRecords("", in.Node, qtype, 0)}
		} else {
			items[i] = addrItem{key: addr, rrs: addrRecords("", addr, qtype, 0)}
		}
	}
	slot.Store(&items)
	return items
}

// ownedRR copies an address template for owner and ttl; nil when the
// template is a CNAME to owner itself.
func ownedRR(t dns.RR, owner string, ttl uint32) dns.RR {
	switch t := t.(type) {
	case *dns.A:
		return &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: t.A}
	case *dns.AAAA:
		return &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: t.AAAA}
	case *dns.CNAME:
		if strings.EqualFold(t.Target, owner) {
			return nil
		}
		return &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME, ttl), Target: t.Target}
	}
	return nil
}

// seenSet tracks strings already answered: a linear scan for the handful
// of instances most answers have, a map beyond.
type seenSet struct {
	small [8]string
	n     int
	big   map[string]struct{}
}

// add reports whether k is new, recording it.
func (s *seenSet) add(k string) bool {
	if s.big != nil {
		if _, dup := s.big[k]; dup {
			return false
		}
		s.big[k] = struct{}{}
		return true
	}
	for _, v := range s.small[:s.n] {
		if v == k {
			return false
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = k
		s.n++
		return true
	}
	s.big = make(map[string]struct{}, 2*len(s.small))
	for _, v := range s.small {
		s.big[v] = struct{}{}
	}
	s.big[k] = struct{}{}
	return true
}

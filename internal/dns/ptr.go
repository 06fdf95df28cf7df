package dns

import (
	"context"
	"net/netip"
	"sort"

	"github.com/miekg/dns"

	"github.com/cairn-io/cairn/internal/rpc"
)

// ptrLookup answers a reverse name for the address of a known node of the
// local datacenter (<node>.node.<dc>.<domain>) or, failing that, of a
// service instance (<service>.service.<dc>.<domain>). It reports whether it
// found anything; lookup errors count as nothing found.
func (s *Server) ptrLookup(ctx context.Context, resp *dns.Msg, q dns.Question, ip netip.Addr) bool {
	if q.Qtype != dns.TypePTR && q.Qtype != dns.TypeANY {
		return false
	}
	ip = ip.Unmap()
	domain, dc := s.cfg.Domain, s.cfg.Datacenter
	ttl := seconds(s.cfg.NodeTTL)

	nodesArgs := rpc.DCSpecificRequest{}
	var nodes rpc.IndexedNodes
	if err := s.read(ctx, rpc.MethodCatalogListNodes, &nodesArgs.QueryOptions, &nodesArgs, &nodes, &nodes.QueryMeta); err != nil {
		s.cfg.Logger.Warn("dns ptr lookup failed", "name", q.Name, "error", err)
		return false
	}
	for _, n := range nodes.Nodes {
		if n == nil || !sameAddr(n.Address, ip) {
			continue
		}
		if target := nodeFQDN(n.Node, dc, domain); validName(target) {
			resp.Answer = append(resp.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR, ttl), Ptr: target})
		}
	}
	if len(resp.Answer) > 0 {
		return true
	}

	svcArgs := rpc.DCSpecificRequest{}
	var svcs rpc.IndexedServices
	if err := s.read(ctx, rpc.MethodCatalogListServices, &svcArgs.QueryOptions, &svcArgs, &svcs, &svcs.QueryMeta); err != nil {
		s.cfg.Logger.Warn("dns ptr lookup failed", "name", q.Name, "error", err)
		return false
	}
	names := make([]string, 0, len(svcs.Services))
	for name := range svcs.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	filter := `ServiceAddress == "` + ip.String() + `"`
	for _, name := range names {
		if ctx.Err() != nil {
			return false
		}
		args := rpc.ServiceSpecificRequest{ServiceName: name, QueryOptions: rpc.QueryOptions{Filter: filter}}
		var reply rpc.IndexedServiceNodes
		if err := s.read(ctx, rpc.MethodCatalogServiceNodes, &args.QueryOptions, &args, &reply, &reply.QueryMeta); err != nil {
			continue
		}
		for _, sn := range reply.ServiceNodes {
			if sn == nil || !sameAddr(sn.ServiceAddress, ip) {
				continue
			}
			if target := name + ".service." + dc + "." + domain; validName(target) {
				resp.Answer = append(resp.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR, s.ttl.lookup(name)), Ptr: target})
			}
			break
		}
	}
	return len(resp.Answer) > 0
}

func sameAddr(s string, ip netip.Addr) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Unmap() == ip
}

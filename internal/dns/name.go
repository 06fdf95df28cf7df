package dns

import (
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
)

// lookupKind is the form of a name inside one of the server's domains.
type lookupKind uint8

const (
	kindInvalid lookupKind = iota // in the domain, but no known form: NXDOMAIN
	kindApex                      // the domain itself: SOA, NS
	kindNode
	kindService
	kindAddr
	kindQuery
)

func (k lookupKind) String() string {
	switch k {
	case kindApex:
		return "apex"
	case kindNode:
		return "node"
	case kindService:
		return "service"
	case kindAddr:
		return "addr"
	case kindQuery:
		return "query"
	default:
		return "invalid"
	}
}

// parsedName is a name inside one of the server's domains, lowercased.
type parsedName struct {
	kind    lookupKind
	domain  string // the matched domain ("consul.")
	dc      string // "" = the local datacenter
	name    string // node, service or prepared query name
	tag     string // service tag filter, "" = none
	rfc2782 bool
	addr    netip.Addr // kindAddr
}

// parseName classifies qname. inDomain is false when qname is under none of
// domains (lowercase FQDNs); then the other result is meaningless. It never
// panics, whatever the input.
func parseName(qname string, domains ...string) (p parsedName, inDomain bool) {
	lname := strings.ToLower(qname)
	if !strings.HasSuffix(lname, ".") {
		lname += "."
	}
	var rest string
	for _, d := range domains {
		if d == "" {
			continue
		}
		if lname == d {
			return parsedName{kind: kindApex, domain: d}, true
		}
		if len(lname) > len(d) && strings.HasSuffix(lname, d) && lname[len(lname)-len(d)-1] == '.' {
			p.domain = d
			rest = lname[:len(lname)-len(d)-1]
			break
		}
	}
	if p.domain == "" {
		return parsedName{}, false
	}
	labels := strings.Split(rest, ".")
	for _, l := range labels {
		if l == "" {
			return p, true // "a..b": kindInvalid
		}
	}

	// The rightmost keyword decides the form; what follows it names the
	// datacenter: "<dc>" or "<dc>.dc".
	kw := -1
	for i := len(labels) - 1; i >= 0 && i >= len(labels)-3; i-- {
		switch labels[i] {
		case "node", "service", "addr", "query":
			kw = i
		}
		if kw >= 0 {
			break
		}
	}
	if kw < 0 {
		return p, true
	}
	switch suffix := labels[kw+1:]; {
	case len(suffix) == 0:
	case len(suffix) == 1:
		p.dc = suffix[0]
	case len(suffix) == 2 && suffix[1] == "dc":
		p.dc = suffix[0]
	default:
		return p, true
	}
	prefix := labels[:kw]
	if len(prefix) == 0 {
		return p, true
	}

	switch labels[kw] {
	case "node":
		p.kind, p.name = kindNode, strings.Join(prefix, ".")
	case "query":
		p.kind, p.name = kindQuery, strings.Join(prefix, ".")
	case "addr":
		if len(prefix) != 1 {
			return p, true
		}
		a, ok := parseHexAddr(prefix[0])
		if !ok {
			return p, true
		}
		p.kind, p.addr = kindAddr, a
	case "service":
		switch len(prefix) {
		case 1:
			p.name = prefix[0]
		case 2:
			if strings.HasPrefix(prefix[0], "_") && strings.HasPrefix(prefix[1], "_") {
				p.rfc2782 = true
				p.name, p.tag = prefix[0][1:], prefix[1][1:]
				if p.tag == "tcp" || p.tag == "udp" {
					p.tag = ""
				}
			} else {
				p.tag, p.name = prefix[0], prefix[1]
			}
		default:
			return p, true
		}
		if p.name == "" || (p.rfc2782 && p.tag == "" && prefix[1] == "_") {
			return p, true
		}
		p.kind = kindService
	}
	return p, true
}

// parseHexAddr decodes the label of an addr lookup: 8 hex digits for IPv4,
// 32 for IPv6.
func parseHexAddr(label string) (netip.Addr, bool) {
	if len(label) != 8 && len(label) != 32 {
		return netip.Addr{}, false
	}
	b, err := hex.DecodeString(label)
	if err != nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

// hexAddr is the label an addr lookup uses for a.
func hexAddr(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// parseReverse decodes a PTR name (d.c.b.a.in-addr.arpa. or the 32 nibbles
// of ip6.arpa.). ok is false for anything else, including partial names.
func parseReverse(qname string) (netip.Addr, bool) {
	lname := strings.TrimSuffix(strings.ToLower(qname), ".")
	if rest, ok := strings.CutSuffix(lname, ".in-addr.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.Atoi(l)
			if err != nil || n < 0 || n > 255 || l[0] == '+' || l[0] == '-' {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(lname, ".ip6.arpa"); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var nibbles [32]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(l, 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			nibbles[31-i] = byte(v)
		}
		var b [16]byte
		for i := range b {
			b[i] = nibbles[2*i]<<4 | nibbles[2*i+1]
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

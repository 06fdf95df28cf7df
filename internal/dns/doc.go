// Package dns is Cairn's DNS interface: a miekg/dns server (UDP and TCP)
// that answers Consul's query forms under the configured domain (default
// "consul.") and alt domain:
//
//	<node>.node[.<dc>].<domain>                      A, AAAA, TXT (node meta)
//	[<tag>.]<service>.service[.<dc>].<domain>       A, AAAA, SRV
//	_<service>._<tag|tcp|udp>.service[.<dc>].<domain> (RFC 2782)
//	<hex-ip>.addr[.<dc>].<domain>                    A or AAAA
//	<query>.query[.<dc>].<domain>                    prepared queries (NXDOMAIN until they exist)
//	<domain>                                         SOA, NS
//	<reversed-ip>.in-addr.arpa / ip6.arpa            PTR for known node and service addresses
//
// It reads the catalog only through an rpc.Caller (the same reads as the HTTP
// API, stale by default), returns only instances without a critical check
// (without a warning either when OnlyPassing), shuffles every answer, and
// forwards names outside its domains to the configured recursors.
//
// Service and node reads are served from a bounded in-memory cache kept
// fresh by background blocking queries (cache.go; Config.DisableCache turns
// it off): a catalog or health change is visible as soon as the blocking
// query wakes, and records derived from a read are built once and shared by
// the answers served from it (answers.go).
//
// It owns the listeners and the goroutines serving them; it must not touch
// the state store, the local agent state or the configuration loader.
package dns

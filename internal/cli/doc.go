// Package cli implements the cairn command line: one file per command group.
// Commands other than `agent` and `validate` talk to an agent only through
// the official client github.com/hashicorp/consul/api, honoring
// CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, -http-addr and -token, exactly as
// Consul's CLI does. Flags use Consul's single-dash Go flag syntax, so cobra
// provides the command tree and help while each command parses its own flags
// with the standard library. This package holds no agent logic.
package cli

package local

import (
	"net"
	"strings"
)

// validateKindFields checks the fields that only matter to one kind: an
// address that can be dialled, a command that can be run.
func validateKindFields(id, kind string, def *CheckDefinition) error {
	switch kind {
	case KindTCP:
		return validHostPort(id, "TCP", def.TCP)
	case KindUDP:
		return validHostPort(id, "UDP", def.UDP)
	case KindH2Ping:
		return validHostPort(id, "H2PING", def.H2PING)
	case KindGRPC:
		addr, _, _ := strings.Cut(def.GRPC, "/")
		return validHostPort(id, "GRPC", addr)
	case KindDocker:
		if len(def.Args) == 0 {
			return badRequest("check %q: Args (the command to run in the container) is required for docker checks", id)
		}
	case KindScript:
		if def.Args[0] == "" {
			return badRequest("check %q: Args[0] (the command to run) must not be empty", id)
		}
	case KindAlias:
		if def.AliasService == "" && def.AliasNode == "" {
			return badRequest("check %q: alias checks need AliasService or AliasNode", id)
		}
	}
	return nil
}

func validHostPort(id, field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return badRequest("check %q: %s must be host:port, got %q", id, field, addr)
	}
	_ = host // an empty host means this machine, as for net.Dial
	return nil
}

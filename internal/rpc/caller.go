package rpc

import (
	"context"
	"errors"
)

// Caller makes one internal RPC. args is a pointer to the method's request
// type and reply a pointer to its response type (see types.go and the method
// table in methods.go).
//
// The HTTP API and DNS server depend on this interface only, never on the
// concrete server: in a single-server agent it dispatches in-process; on a
// client agent (clustering issue) it goes over the network to a server.
// Implementations must be safe for concurrent use.
type Caller interface {
	RPC(ctx context.Context, method string, args any, reply any) error
}

// Sentinel errors shared by every Caller implementation. The HTTP layer maps
// them to status codes in one place.
var (
	ErrNoLeader      = errors.New("rpc: no cluster leader")
	ErrUnknownMethod = errors.New("rpc: unknown method")
	// ErrPermissionDenied keeps Consul's exact text: clients match on it.
	//lint:ignore ST1005 Consul clients match this exact capitalized text
	ErrPermissionDenied = errors.New("Permission denied")
	ErrNotFound         = errors.New("rpc: not found")
	// ErrBadRequest wraps validation failures of a request (400).
	ErrBadRequest = errors.New("bad request")
	// ErrTooLarge wraps values over a configured limit (413).
	ErrTooLarge = errors.New("request entity too large")
)

package rpc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// Registry maps each RPC method to constructors of its request and reply
// types, and each shared sentinel error to the code that carries it over the
// wire. Both ends of a connection must use equivalent registries. It is safe
// for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	methods map[string]methodTypes
	codes   map[uint16]error
}

type methodTypes struct {
	newArgs  func() any
	newReply func() any
}

func method[A, R any]() methodTypes {
	return methodTypes{
		newArgs:  func() any { return new(A) },
		newReply: func() any { return new(R) },
	}
}

// Wire codes of the shared sentinel errors. Packages that add sentinels register codes from
// FirstCustomErrorCode up with RegisterError.
const (
	codeNoLeader         uint16 = 1
	codeUnknownMethod    uint16 = 2
	codePermissionDenied uint16 = 3
	codeNotFound         uint16 = 4
	codeBadRequest       uint16 = 5
	codeTooLarge         uint16 = 6
	codeCanceled         uint16 = 7
	codeDeadlineExceeded uint16 = 8

	// FirstCustomErrorCode is the lowest code RegisterError accepts.
	FirstCustomErrorCode uint16 = 64
)

// DefaultRegistry returns a registry with every method of methods.go and
// the sentinel errors of caller.go. Each call returns a new registry.
func DefaultRegistry() *Registry {
	r := &Registry{
		methods: map[string]methodTypes{
			MethodKVSApply:    method[KVSRequest, bool](),
			MethodKVSGet:      method[KeyRequest, IndexedKVEntries](),
			MethodKVSList:     method[KeyRequest, IndexedKVEntries](),
			MethodKVSListKeys: method[KeyListRequest, IndexedKeyList](),

			MethodCatalogRegister:        method[RegisterRequest, struct{}](),
			MethodCatalogDeregister:      method[DeregisterRequest, struct{}](),
			MethodCatalogListDatacenters: method[DCSpecificRequest, []string](),
			MethodCatalogListNodes:       method[DCSpecificRequest, IndexedNodes](),
			MethodCatalogListServices:    method[DCSpecificRequest, IndexedServices](),
			MethodCatalogServiceNodes:    method[ServiceSpecificRequest, IndexedServiceNodes](),
			MethodCatalogNodeServices:    method[NodeSpecificRequest, IndexedNodeServices](),
			MethodCatalogNodeServiceList: method[NodeSpecificRequest, IndexedNodeServiceList](),

			MethodHealthNodeChecks:    method[NodeSpecificRequest, IndexedHealthChecks](),
			MethodHealthServiceChecks: method[ServiceSpecificRequest, IndexedHealthChecks](),
			MethodHealthChecksInState: method[ChecksInStateRequest, IndexedHealthChecks](),
			MethodHealthServiceNodes:  method[ServiceSpecificRequest, IndexedCheckServiceNodes](),

			MethodStatusLeader: method[struct{}, string](),
			MethodStatusPeers:  method[struct{}, []string](),
		},
		codes: map[uint16]error{
			codeNoLeader:         ErrNoLeader,
			codeUnknownMethod:    ErrUnknownMethod,
			codePermissionDenied: ErrPermissionDenied,
			codeNotFound:         ErrNotFound,
			codeBadRequest:       ErrBadRequest,
			codeTooLarge:         ErrTooLarge,
			codeCanceled:         context.Canceled,
			codeDeadlineExceeded: context.DeadlineExceeded,
		},
	}
	for m, t := range operatorMethods() { // operator.go
		r.methods[m] = t
	}
	for m, t := range sessionMethods() { // session.go
		r.methods[m] = t
	}
	for m, t := range txnMethods() { // txn.go
		r.methods[m] = t
	}
	return r
}

// Register adds a method. newArgs and newReply must return fresh pointers
// (e.g. func() any { return new(MyRequest) }).
func (r *Registry) Register(method string, newArgs, newReply func() any) error {
	if method == "" || newArgs == nil || newReply == nil {
		return fmt.Errorf("rpc: register %q: method name and constructors are required", method)
	}
	for _, v := range []any{newArgs(), newReply()} {
		if v == nil || reflect.TypeOf(v).Kind() != reflect.Pointer {
			return fmt.Errorf("rpc: register %q: constructors must return pointers, got %T", method, v)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.methods[method]; ok {
		return fmt.Errorf("rpc: register %q: method already registered", method)
	}
	r.methods[method] = methodTypes{newArgs: newArgs, newReply: newReply}
	return nil
}

// RegisterError assigns a wire code (>= FirstCustomErrorCode) to a sentinel
// error so that errors.Is(err, sentinel) holds on the calling side.
func (r *Registry) RegisterError(code uint16, sentinel error) error {
	if code < FirstCustomErrorCode {
		return fmt.Errorf("rpc: register error %q: code %d is reserved (use %d or more)", sentinel, code, FirstCustomErrorCode)
	}
	if sentinel == nil {
		return errors.New("rpc: register error: nil sentinel")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.codes[code]; ok {
		return fmt.Errorf("rpc: register error %q: code %d already used by %q", sentinel, code, old)
	}
	r.codes[code] = sentinel
	return nil
}

// NewArgs returns a new request value (a pointer) for method.
func (r *Registry) NewArgs(method string) (any, error) {
	t, err := r.lookup(method)
	if err != nil {
		return nil, err
	}
	return t.newArgs(), nil
}

// NewReply returns a new reply value (a pointer) for method.
func (r *Registry) NewReply(method string) (any, error) {
	t, err := r.lookup(method)
	if err != nil {
		return nil, err
	}
	return t.newReply(), nil
}

// Methods lists the registered method names, sorted.
func (r *Registry) Methods() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.methods))
	for m := range r.methods {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func (r *Registry) lookup(method string) (methodTypes, error) {
	r.mu.RLock()
	t, ok := r.methods[method]
	r.mu.RUnlock()
	if !ok {
		return methodTypes{}, fmt.Errorf("%w: %q", ErrUnknownMethod, method)
	}
	return t, nil
}

// checkTypes reports a clear error when args or reply are not the types
// registered for method. Unknown methods pass: the server decides.
func (r *Registry) checkTypes(method string, args, reply any) error {
	t, err := r.lookup(method)
	if err != nil {
		return nil
	}
	if want := reflect.TypeOf(t.newArgs()); reflect.TypeOf(args) != want {
		return fmt.Errorf("%w: %s wants args %s, got %T", ErrBadRequest, method, want, args)
	}
	if want := reflect.TypeOf(t.newReply()); reflect.TypeOf(reply) != want {
		return fmt.Errorf("%w: %s wants reply %s, got %T", ErrBadRequest, method, want, reply)
	}
	return nil
}

// errorCodes returns the wire codes of every registered sentinel that err
// matches, sorted (nil when none does).
func (r *Registry) errorCodes(err error) []uint16 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []uint16
	for code, sentinel := range r.codes {
		if errors.Is(err, sentinel) {
			out = append(out, code)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// sentinel returns the error registered for code, or nil (unknown codes
// from a newer peer are ignored).
func (r *Registry) sentinel(code uint16) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.codes[code]
}

// NewArgs returns a new request value for one of the built-in methods.
func NewArgs(method string) (any, error) { return builtin.NewArgs(method) }

// NewReply returns a new reply value for one of the built-in methods.
func NewReply(method string) (any, error) { return builtin.NewReply(method) }

// builtin backs the package-level NewArgs/NewReply; it is never mutated.
var builtin = DefaultRegistry()

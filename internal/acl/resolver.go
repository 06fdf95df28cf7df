package acl

import "errors"

// ErrTokenNotFound is returned by a Resolver for a token it does not know.
// Its text is Consul's, which clients match on.
var ErrTokenNotFound = errors.New("ACL not found")

// Resolver turns a secret token ("" for anonymous) into the Authorizer of
// its policies. Implementations must be safe for concurrent use; they may
// block briefly (e.g. to fetch a token from the servers), so callers resolve
// once per request and pass the Authorizer on.
type Resolver interface {
	ResolveToken(token string) (Authorizer, error)
}

// ResolverFunc adapts a function to the Resolver interface.
type ResolverFunc func(token string) (Authorizer, error)

// ResolveToken implements Resolver.
func (f ResolverFunc) ResolveToken(token string) (Authorizer, error) { return f(token) }

// AllowAllResolver resolves every token, including the empty one, to
// AllowAll (ACLs disabled).
func AllowAllResolver() Resolver {
	return ResolverFunc(func(string) (Authorizer, error) { return AllowAll(), nil })
}

// StaticResolver resolves every token to a. Useful in tests.
func StaticResolver(a Authorizer) Resolver {
	return ResolverFunc(func(string) (Authorizer, error) { return a, nil })
}

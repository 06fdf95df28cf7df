// Package acl owns authorization: tokens resolve to an Authorizer, and every
// HTTP route (and later every RPC endpoint and /v1/txn) asks that Authorizer
// before it reads or writes.
//
// Today only the seam exists: AllowAllResolver resolves every token to an
// Authorizer that permits everything, which is Consul's behaviour with ACLs
// disabled. The ACL issue plugs tokens, policies and rules in here by
// providing another Resolver; callers do not change.
//
// This package must not depend on the HTTP layer, the server or the state
// store: it answers "may this token do X to Y", nothing else.
package acl

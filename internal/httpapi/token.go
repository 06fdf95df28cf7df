package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/cairn-io/cairn/internal/acl"
)

// tokenKey is the context key of the request's *tokenInfo.
type tokenKey struct{}

// tokenInfo is the request's token and, once asked for, its authorizer.
// Resolution is lazy so that endpoints that need no authorization (status,
// version) never fail on an unknown token, and happens at most once. It
// also carries the request's query string, parsed once (see queryParams).
type tokenInfo struct {
	query    url.Values
	token    string
	resolver acl.Resolver

	once  sync.Once
	authz acl.Authorizer
	err   error
}

// requestToken extracts the ACL token the way Consul does: the ?token=
// query parameter first, then the X-Consul-Token header, then an
// "Authorization: Bearer <token>" header. "" means anonymous.
func requestToken(r *http.Request, q url.Values) string {
	if tok := q.Get("token"); tok != "" {
		return tok
	}
	if tok := strings.TrimSpace(r.Header.Get("X-Consul-Token")); tok != "" {
		return tok
	}
	if auth := strings.TrimSpace(r.Header.Get("Authorization")); auth != "" {
		scheme, tok, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

// withToken attaches the request's parsed query string and token (and a
// lazy resolver for its authorizer) to the request context. ServeHTTP
// calls it once per request.
func withToken(r *http.Request, resolver acl.Resolver) *http.Request {
	q := r.URL.Query()
	ti := &tokenInfo{query: q, token: requestToken(r, q), resolver: resolver}
	return r.WithContext(context.WithValue(r.Context(), tokenKey{}, ti))
}

// queryParams returns the request's query parameters, parsed once per request
// by withToken (parsed afresh for a request that did not pass through
// ServeHTTP). Callers must not modify the values: they are shared by every
// handler of the request.
func queryParams(r *http.Request) url.Values {
	if ti, ok := r.Context().Value(tokenKey{}).(*tokenInfo); ok && ti.query != nil {
		return ti.query
	}
	return r.URL.Query()
}

func tokenInfoOf(r *http.Request) *tokenInfo {
	if ti, ok := r.Context().Value(tokenKey{}).(*tokenInfo); ok {
		return ti
	}
	return &tokenInfo{resolver: acl.AllowAllResolver()}
}

// tokenOf returns the request's token for passing on in QueryOptions,
// WriteRequest or to the agent backend.
func tokenOf(r *http.Request) string { return tokenInfoOf(r).token }

// authorizerOf resolves the request's token to its authorizer (once).
func authorizerOf(r *http.Request) (acl.Authorizer, error) {
	ti := tokenInfoOf(r)
	ti.once.Do(func() {
		ti.authz, ti.err = ti.resolver.ResolveToken(ti.token)
		if ti.err == nil && ti.authz == nil {
			ti.authz = acl.DenyAll()
		}
	})
	return ti.authz, ti.err
}

// authorize resolves the request's authorizer and asks it allowed(); it
// returns a 403 error when the answer is no. Every handler calls it (or
// authorizerOf when it needs to filter a list).
func authorize(r *http.Request, allowed func(acl.Authorizer) bool) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	if !allowed(authz) {
		return errPermissionDenied
	}
	return nil
}

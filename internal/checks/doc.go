// Package checks runs health checks: one type per check kind behind the one
// Check interface (TTL, HTTP, TCP so far). A running check reports its
// results through a Notifier; it knows nothing of the local state, the
// catalog or the agent's maps of checks.
//
// It must not decide policy (which kinds are allowed, minimum intervals):
// the agent does that before constructing a check.
package checks

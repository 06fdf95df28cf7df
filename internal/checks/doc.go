// Package checks runs health checks: one type per check kind behind the one
// Check interface — TTL, HTTP, TCP (optionally TLS), UDP, script, Docker
// (exec API), gRPC (grpc.health.v1), H2PING and alias. A running check
// reports its results through a Notifier (StatusHandler applies the
// success/failure thresholds); it knows nothing of the agent's maps of
// checks. Alias checks read what they mirror through two narrow seams: an
// AliasLocal view of the local state, or an rpc.Caller.
//
// It must not decide policy (which kinds are allowed, minimum intervals):
// the agent does that before constructing a check.
package checks

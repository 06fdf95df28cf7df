// Package agent is Cairn's composition root: it wires the server (on
// server agents), the gossip pools, the HTTP API, DNS, the agent's local
// state (package local), the check runners (package checks) and the
// anti-entropy sync loop, and owns their lifecycle
// (New → Start → Ready → Leave/Shutdown → Done).
//
// It implements httpapi.AgentBackend and httpapi.ClusterBackend (see
// Backend). The parts talk through narrow seams: rpc.Caller is the
// in-process server on a server agent and the router (router.go: a server
// picked from LAN gossip, retried and held across elections) on a client
// agent, so the local state, HTTP and DNS never know which.
//
// Lock order: Agent.mu before local.State's lock before a check's own lock.
// Nothing called with a lower lock held calls back into a higher one.
package agent

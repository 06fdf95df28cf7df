// Package agent is Cairn's composition root: it wires the server, the HTTP
// API, the agent's local state (package local), the check runners (package
// checks) and the anti-entropy sync loop, and owns their lifecycle
// (New → Start → Ready → Shutdown → Done).
//
// It implements httpapi.AgentBackend (see Backend). The parts it wires talk
// to each other through narrow seams (rpc.Caller, checks.Notifier), so that
// a client agent can later swap in a remote RPC caller without touching the
// local state or the HTTP layer.
//
// Lock order: Agent.mu before local.State's lock before a check's own lock.
// Nothing called with a lower lock held calls back into a higher one.
package agent

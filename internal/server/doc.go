// Package server is a Cairn server: it runs Raft (hashicorp/raft) over the
// state store, applies committed entries through its FSM, answers the
// internal RPC methods (rpc.Caller) from the state store and runs the
// leader loop (barrier, self-registration, reconcile of gossip members,
// autopilot, session TTL timers in session_ttl.go).
//
// It owns Raft setup and the server port (Raft and the network RPC share
// one listener through rpc.Mux), the FSM's command encoding, the RPC
// endpoints with their blocking-query and consistency rules, forwarding to
// the leader with rpc_hold_timeout (forward.go), bootstrap_expect and the
// meaning of LAN membership for Raft and the catalog (membership.go). It
// does not run gossip or speak HTTP: the agent owns the gossip pools and
// hands the server their members (SetLANMembers, MembershipChanged).
package server

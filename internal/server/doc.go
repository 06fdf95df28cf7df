// Package server is a Cairn server: it runs Raft (hashicorp/raft) over the
// state store, applies committed entries through its FSM, answers the
// internal RPC methods (rpc.Caller) from the state store and runs the
// leader loop (barrier, self-registration, periodic reconcile).
//
// It owns Raft setup, the FSM's command encoding, the RPC endpoints with
// their blocking-query and consistency rules, and the leader loop. It does
// not listen for RPC on the network, gossip, or speak HTTP: other packages
// call Server.RPC and the agent wires the parts together.
package server

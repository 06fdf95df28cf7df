// Package rpc owns the internal RPC between agents and servers: the Caller
// seam the HTTP API and DNS depend on (caller.go), the method table and its
// request/response types (methods.go, types.go), and the network transport
// on the server port (8300 in Consul).
//
// The transport pieces:
//   - Mux shares one listener between Raft and RPC, demultiplexed by the
//     first byte of each connection (Consul's numbering); RaftLayer adapts
//     the Raft side to raft.StreamLayer.
//   - Server serves multiplexed (yamux) RPC connections: each stream
//     carries calls one at a time, msgpack-encoded, dispatched to a
//     Handler (see the wire format in codec.go).
//   - Server also serves plain connections (TypeRPC): one call at a time on
//     a TCP connection of its own, framed as on a stream (plain.go).
//   - ConnPool is the client side: one yamux session per server address,
//     reused across calls, reaped when idle, with a small pool of idle
//     streams per session reused by later calls; calls that are not
//     blocking queries go over pooled plain connections instead (up to 32
//     per server), which cost about half as much per call.
//   - Registry maps method names to their request/response types and
//     sentinel errors to wire codes, so errors.Is keeps working across the
//     network.
//
// The package must not know about Raft's FSM, the state store or HTTP: it
// moves typed requests and replies between processes.
package rpc

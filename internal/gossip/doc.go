// Package gossip owns the agent's Serf gossip pools: the LAN pool every agent
// of a datacenter joins and the WAN pool the servers of all datacenters join.
//
// A Pool wraps one serf.Serf: it builds the serf and memberlist
// configuration (LAN failure detection tuned to notice a dead node in a few
// seconds, WAN tuned for long links), adapts their log output to slog, and
// turns serf's event stream into two buffered channels (member events and
// user events) that never block serf. IsServer reads the tags a server
// advertises (role, datacenter, RPC port, bootstrap settings) so the server
// package can discover its peers and the client side can pick a server.
//
// The package must not know about Raft, the catalog or RPC: it reports
// membership, and the server package decides what membership means.
package gossip

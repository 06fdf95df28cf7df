// Package state is Cairn's replicated state store: a go-memdb database with
// the KV store and the catalog (nodes, services, checks), plus the queries
// the RPC endpoints answer from it.
//
// It owns the schema, the per-table modification indexes (which only grow)
// and the watch channels that wake blocking queries. It knows nothing of
// Raft, RPC or HTTP: the server package applies committed Raft entries
// through the write methods (passing the Raft index) and answers reads with
// the query methods.
//
// Every read method takes a memdb.WatchSet (nil when the caller does not
// block) and returns the index of the data it read. Objects returned by the
// store are copies; callers may modify them.
package state

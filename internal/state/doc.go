// Package state is Cairn's replicated state store: a go-memdb database with
// the KV store and the catalog (nodes, services, checks), sessions and the
// KV locks they hold (session.go, session_locks.go) and multi-operation
// transactions (txn.go), plus the queries the RPC endpoints answer from it.
//
// Session invalidation happens inside the transaction that causes it: a
// bound check going critical or being deleted, or the session's node being
// deleted, destroys the session in the same write, releasing or deleting
// its keys by its Behavior and recording their lock delay (per-server
// wall-clock state kept out of snapshots).
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

// Package local owns an agent's local state: the services and checks
// registered at this agent (by HTTP or config file), each with an in-sync
// flag, and the anti-entropy logic that makes the catalog equal to it
// (State.SyncFull, State.SyncChanges).
//
// It also owns the service and check definitions: decoding them from maps
// with CamelCase (HTTP) or snake_case (config file) keys, and validating
// them into the catalog's shapes.
//
// It does not run checks (package checks does) and does not schedule
// syncs (package agent owns the sync loop); it talks to the servers only
// through an rpc.Caller handed in by the caller.
package local

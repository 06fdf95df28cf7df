package rpc

import "github.com/cairn-io/cairn/internal/state"

// Session method names. Session.Apply and Session.Renew are served by the
// leader, which owns the TTL timers.
const (
	MethodSessionApply        = "Session.Apply"        // *SessionRequest -> *string (the session ID)
	MethodSessionGet          = "Session.Get"          // *SessionSpecificRequest -> *IndexedSessions (empty when missing)
	MethodSessionList         = "Session.List"         // *DCSpecificRequest -> *IndexedSessions
	MethodSessionNodeSessions = "Session.NodeSessions" // *NodeSpecificRequest -> *IndexedSessions
	MethodSessionRenew        = "Session.Renew"        // *SessionSpecificRequest -> *IndexedSessions (rpc.ErrNotFound when missing)
)

// SessionOp is a session write.
type SessionOp string

// Session operations.
const (
	SessionCreate  SessionOp = "create"
	SessionDestroy SessionOp = "destroy"
)

// SessionRequest creates or destroys a session. For create the server
// fills in the ID and defaults; for destroy only Session.ID is used.
type SessionRequest struct {
	Op      SessionOp
	Session state.Session
	WriteRequest
}

// SessionSpecificRequest names one session.
type SessionSpecificRequest struct {
	SessionID string
	QueryOptions
}

// IndexedSessions is the reply of the session reads and of Session.Renew.
type IndexedSessions struct {
	Sessions []*state.Session
	QueryMeta
}

func sessionMethods() map[string]methodTypes {
	return map[string]methodTypes{
		MethodSessionApply:        method[SessionRequest, string](),
		MethodSessionGet:          method[SessionSpecificRequest, IndexedSessions](),
		MethodSessionList:         method[DCSpecificRequest, IndexedSessions](),
		MethodSessionNodeSessions: method[NodeSpecificRequest, IndexedSessions](),
		MethodSessionRenew:        method[SessionSpecificRequest, IndexedSessions](),
	}
}

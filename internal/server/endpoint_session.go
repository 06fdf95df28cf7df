package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Session limits, as Consul documents them. SessionTTLMin is the default
// of the configurable minimum (Config.SessionTTLMin).
const (
	SessionTTLMin = 10 * time.Second
	SessionTTLMax = 24 * time.Hour
	// MaxLockDelay bounds a session's lock delay.
	MaxLockDelay = 60 * time.Second
)

// sessionApply creates or destroys a session through Raft. Creation fills in
// the ID and defaults; the leader then arms the TTL timer.
func (s *Server) sessionApply(_ context.Context, args *rpc.SessionRequest, reply *string) error {
	req := *args
	req.Token = ""
	switch req.Op {
	case rpc.SessionCreate:
		sess := &req.Session
		if err := validateSession(sess, s.cfg.SessionTTLMin); err != nil {
			return err
		}
		id, err := s.newSessionID()
		if err != nil {
			return err
		}
		sess.ID = id
		if _, err := s.raftApply(SessionRequestType, &req); err != nil {
			return mapSessionError(err)
		}
		s.resetSessionTimer(sess.ID, sess.TTL)
		*reply = sess.ID
		return nil
	case rpc.SessionDestroy:
		if req.Session.ID == "" {
			return fmt.Errorf("missing session ID: %w", rpc.ErrBadRequest)
		}
		req.Session = state.Session{ID: req.Session.ID}
		if _, err := s.raftApply(SessionRequestType, &req); err != nil {
			return mapSessionError(err)
		}
		s.clearSessionTimer(req.Session.ID)
		*reply = req.Session.ID
		return nil
	default:
		return fmt.Errorf("unknown session operation %q: %w", req.Op, rpc.ErrBadRequest)
	}
}

// validateSession checks a session to create against the TTL bounds
// [ttlMin, SessionTTLMax] and fills in its defaults.
// Messages follow Consul's.
func validateSession(sess *state.Session, ttlMin time.Duration) error {
	if sess.Node == "" {
		return fmt.Errorf("must provide node: %w", rpc.ErrBadRequest)
	}
	switch sess.Behavior {
	case "":
		sess.Behavior = state.SessionBehaviorRelease
	case state.SessionBehaviorRelease, state.SessionBehaviorDelete:
	default:
		//lint:ignore ST1005 Consul's exact text
		return fmt.Errorf("Invalid Behavior setting '%s': %w", sess.Behavior, rpc.ErrBadRequest)
	}
	if sess.TTL != "" {
		ttl, err := time.ParseDuration(sess.TTL)
		if err != nil {
			//lint:ignore ST1005 Consul's exact text
			return fmt.Errorf("Session TTL '%s' invalid: %v: %w", sess.TTL, err, rpc.ErrBadRequest)
		}
		if ttl != 0 && (ttl < ttlMin || ttl > SessionTTLMax) {
			//lint:ignore ST1005 Consul's exact text
			return fmt.Errorf("Invalid Session TTL '%s', must be between [%v=%v]: %w",
				sess.TTL, ttlMin, SessionTTLMax, rpc.ErrBadRequest)
		}
	}
	if sess.LockDelay < 0 || sess.LockDelay > MaxLockDelay {
		return fmt.Errorf("lock delay %v must be between 0s and %v: %w", sess.LockDelay, MaxLockDelay, rpc.ErrBadRequest)
	}
	checks := sess.CheckIDs()
	for _, id := range checks {
		if id == "" {
			return fmt.Errorf("session check IDs must not be empty: %w", rpc.ErrBadRequest)
		}
	}
	// The deprecated Checks field lists every check, and is left out when
	// it would say only serfHealth, as Consul 1.7+ does.
	sess.Checks = nil
	if len(checks) > 0 && !slices.Equal(checks, []string{state.SerfCheckID}) {
		sess.Checks = checks
	}
	return nil
}

// newSessionID returns a random UUID not used by any session.
func (s *Server) newSessionID() (string, error) {
	for range 5 {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("server: session ID: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		id := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		_, existing, err := s.fsm.State().SessionGet(nil, id)
		if err != nil {
			return "", err
		}
		if existing == nil {
			return id, nil
		}
	}
	return "", errors.New("server: could not generate a unique session ID")
}

// mapSessionError turns state errors caused by the request into bad
// requests. Session creation failures (missing node or check, critical
// check) keep Consul's exact message and status (500).
func mapSessionError(err error) error {
	if errors.Is(err, state.ErrInvalidSession) {
		return fmt.Errorf("%w: %w", rpc.ErrBadRequest, err)
	}
	if errors.Is(err, state.ErrMissingNode) || errors.Is(err, state.ErrMissingCheck) || errors.Is(err, state.ErrCheckCritical) {
		return err
	}
	return mapStateError(err)
}

func (f *fsm) applySession(idx uint64, body []byte) any {
	var req rpc.SessionRequest
	if err := decodeCommand(body, &req); err != nil {
		return fmt.Errorf("server: decode session command: %w", err)
	}
	switch req.Op {
	case rpc.SessionCreate:
		return f.State().SessionCreate(idx, &req.Session)
	case rpc.SessionDestroy:
		return f.State().SessionDestroy(idx, req.Session.ID)
	default:
		return fmt.Errorf("server: session operation %q is not supported: %w", req.Op, rpc.ErrBadRequest)
	}
}

// lockDelayed reports whether key is within the lock delay of a session
// that held it.
func (s *Server) lockDelayed(key string) bool {
	return time.Now().Before(s.fsm.State().KVLockDelay(key))
}

func (s *Server) sessionGet(ctx context.Context, args *rpc.SessionSpecificRequest, reply *rpc.IndexedSessions) error {
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, sess, err := st.SessionGet(ws, args.SessionID)
		if err != nil {
			return 0, err
		}
		reply.Sessions = []*state.Session{}
		if sess != nil {
			reply.Sessions = append(reply.Sessions, sess)
		}
		return idx, nil
	})
}

func (s *Server) sessionList(ctx context.Context, args *rpc.DCSpecificRequest, reply *rpc.IndexedSessions) error {
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, list, err := st.SessionList(ws)
		if err != nil {
			return 0, err
		}
		reply.Sessions = list
		return idx, nil
	})
}

func (s *Server) sessionNodeSessions(ctx context.Context, args *rpc.NodeSpecificRequest, reply *rpc.IndexedSessions) error {
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, list, err := st.NodeSessions(ws, args.Node)
		if err != nil {
			return 0, err
		}
		reply.Sessions = list
		return idx, nil
	})
}

// sessionRenew restarts a session's TTL timer on the leader. Like Consul it
// does not write to Raft: a new leader re-arms every timer with a full TTL.
func (s *Server) sessionRenew(_ context.Context, args *rpc.SessionSpecificRequest, reply *rpc.IndexedSessions) error {
	if !s.IsLeader() {
		return fmt.Errorf("server: session renew: %w", rpc.ErrNoLeader)
	}
	idx, sess, err := s.fsm.State().SessionGet(nil, args.SessionID)
	if err != nil {
		return err
	}
	s.setQueryMeta(&rpc.QueryOptions{}, &reply.QueryMeta, idx)
	if sess == nil {
		//lint:ignore ST1005 Consul's exact text
		return fmt.Errorf("Session id '%s' not found: %w", args.SessionID, rpc.ErrNotFound)
	}
	s.resetSessionTimer(sess.ID, sess.TTL)
	reply.Sessions = []*state.Session{sess}
	return nil
}

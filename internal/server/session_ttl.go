package server

import (
	"sync"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// sessionTTLMultiplier: a session with TTL t is invalidated t*2 after its
// last renewal, as Consul documents ("may not be reaped for up to double
// this TTL"), which gives renewals slack across a leader change.
const sessionTTLMultiplier = 2

// Invalidation of an expired session is retried a few times while this
// server leads; after that the next leader re-arms the timer.
const (
	invalidateAttempts = 6
	invalidateBackoff  = 250 * time.Millisecond
)

// sessionTimers are the TTL timers of every session. They run only on the
// leader: startSessionTimers arms one per TTL session when leadership is
// established, stopSessionTimers clears them all when it is lost. An
// expired timer hands the session to one goroutine that invalidates it
// through Raft.
//
// mu guards every field; it is never held while calling into Raft.
type sessionTimers struct {
	mu        sync.Mutex
	active    bool
	timers    map[string]*armedTimer
	expiredCh chan *armedTimer
	stopCh    chan struct{}
	wg        sync.WaitGroup

	// multiplier overrides sessionTTLMultiplier in tests (0: default).
	multiplier float64
}

// armedTimer is one armed timer. The invalidator acts on an expiry only if
// the session's current timer is still this one: a renewal that raced the
// expiry replaced it.
type armedTimer struct {
	id string
	tm *time.Timer
}

// startSessionTimers arms a timer for every session with a TTL. The leader
// loop calls it once leadership is established (after the barrier, so the
// store holds every session).
func (s *Server) startSessionTimers() {
	t := &s.sessions
	t.mu.Lock()
	if t.active {
		t.mu.Unlock()
		return
	}
	t.active = true
	t.timers = map[string]*armedTimer{}
	t.expiredCh = make(chan *armedTimer)
	t.stopCh = make(chan struct{})
	stopCh, expiredCh := t.stopCh, t.expiredCh
	t.wg.Add(1)
	t.mu.Unlock()

	go func() {
		defer t.wg.Done()
		s.runSessionInvalidator(stopCh, expiredCh)
	}()

	_, list, err := s.fsm.State().SessionList(nil)
	if err != nil {
		s.logger.Error("failed to list sessions to arm their ttl timers", "error", err)
		return
	}
	for _, sess := range list {
		s.resetSessionTimer(sess.ID, sess.TTL)
	}
	s.logger.Debug("session ttl timers armed", "sessions", len(list))
}

// rearmSessionTimers replaces every timer with one per session of the
// current store; a no-op unless timers run. A snapshot restore calls it:
// the restored sessions are not the ones the old timers were for.
func (s *Server) rearmSessionTimers() {
	t := &s.sessions
	t.mu.Lock()
	if !t.active {
		t.mu.Unlock()
		return
	}
	for _, at := range t.timers {
		at.tm.Stop()
	}
	t.timers = map[string]*armedTimer{}
	t.mu.Unlock()
	_, list, err := s.fsm.State().SessionList(nil)
	if err != nil {
		s.logger.Error("failed to list sessions to re-arm their ttl timers", "error", err)
		return
	}
	for _, sess := range list {
		s.resetSessionTimer(sess.ID, sess.TTL)
	}
}

// stopSessionTimers clears every timer and waits for the invalidator. The
// leader loop calls it when leadership ends.
func (s *Server) stopSessionTimers() {
	t := &s.sessions
	t.mu.Lock()
	if !t.active {
		t.mu.Unlock()
		return
	}
	t.active = false
	for _, at := range t.timers {
		at.tm.Stop()
	}
	t.timers = nil
	close(t.stopCh)
	t.mu.Unlock()
	t.wg.Wait()
}

// resetSessionTimer (re)arms the timer of a session; a no-op when this
// server does not lead or the session has no TTL.
func (s *Server) resetSessionTimer(id, ttl string) {
	if ttl == "" {
		return
	}
	d, err := time.ParseDuration(ttl)
	if err != nil || d <= 0 {
		return
	}
	t := &s.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return
	}
	mult := t.multiplier
	if mult == 0 {
		mult = sessionTTLMultiplier
	}
	if old, ok := t.timers[id]; ok {
		old.tm.Stop()
	}
	stopCh, expiredCh := t.stopCh, t.expiredCh
	at := &armedTimer{id: id}
	at.tm = time.AfterFunc(time.Duration(float64(d)*mult), func() {
		select {
		case expiredCh <- at:
		case <-stopCh:
		}
	})
	t.timers[id] = at
}

// clearSessionTimer stops the timer of a destroyed session.
func (s *Server) clearSessionTimer(id string) {
	t := &s.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.timers[id]; ok {
		at.tm.Stop()
		delete(t.timers, id)
	}
}

// sessionTimerCount returns how many timers are armed (for tests).
func (s *Server) sessionTimerCount() int {
	t := &s.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.timers)
}

// runSessionInvalidator destroys expired sessions until stopCh closes.
func (s *Server) runSessionInvalidator(stopCh <-chan struct{}, expiredCh <-chan *armedTimer) {
	for {
		select {
		case <-stopCh:
			return
		case at := <-expiredCh:
			t := &s.sessions
			t.mu.Lock()
			current := t.timers[at.id] == at
			if current {
				delete(t.timers, at.id)
			}
			t.mu.Unlock()
			if current {
				s.invalidateSession(stopCh, at.id)
			}
		}
	}
}

// invalidateSession destroys an expired session through Raft, retrying a
// few times while this server still leads.
func (s *Server) invalidateSession(stopCh <-chan struct{}, id string) {
	req := &rpc.SessionRequest{Op: rpc.SessionDestroy, Session: state.Session{ID: id}}
	for attempt := 1; ; attempt++ {
		_, err := s.raftApply(SessionRequestType, req)
		if err == nil {
			s.logger.Info("session ttl expired, session invalidated", "session", id)
			return
		}
		if attempt >= invalidateAttempts {
			s.logger.Error("failed to invalidate expired session", "session", id, "error", err)
			return
		}
		select {
		case <-stopCh:
			return
		case <-time.After(invalidateBackoff * time.Duration(attempt)):
		}
	}
}

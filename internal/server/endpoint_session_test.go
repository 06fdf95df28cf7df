package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// fastTTL makes TTL timers fire at ttl*mult so a 10s TTL expires quickly.
func fastTTL(s *Server, mult float64) {
	s.sessions.mu.Lock()
	s.sessions.multiplier = mult
	s.sessions.mu.Unlock()
}

func createSession(t *testing.T, s *Server, sess state.Session) string {
	t.Helper()
	if sess.Node == "" {
		sess.Node = "s1"
	}
	var id string
	require.NoError(t, s.RPC(context.Background(), rpc.MethodSessionApply,
		&rpc.SessionRequest{Op: rpc.SessionCreate, Session: sess}, &id))
	require.NotEmpty(t, id)
	return id
}

func acquire(t *testing.T, s *Server, key, session string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, s.RPC(context.Background(), rpc.MethodKVSApply,
		&rpc.KVSRequest{Op: rpc.KVLock, Entry: state.KVEntry{Key: key, Session: session}}, &ok))
	return ok
}

func getSession(t *testing.T, s *Server, id string) *state.Session {
	t.Helper()
	var out rpc.IndexedSessions
	require.NoError(t, s.RPC(context.Background(), rpc.MethodSessionGet, &rpc.SessionSpecificRequest{SessionID: id}, &out))
	if len(out.Sessions) == 0 {
		return nil
	}
	return out.Sessions[0]
}

func holder(t *testing.T, s *Server, key string) string {
	t.Helper()
	var out rpc.IndexedKVEntries
	require.NoError(t, s.RPC(context.Background(), rpc.MethodKVSGet, &rpc.KeyRequest{Key: key}, &out))
	if len(out.Entries) == 0 {
		return "<missing>"
	}
	return out.Entries[0].Session
}

func TestServer_SessionCreateValidation(t *testing.T) {
	s := startServer(t, testConfig(t))
	cases := []struct {
		name    string
		sess    state.Session
		badReq  bool
		message string
	}{
		{"ttl too short", state.Session{Node: "s1", TTL: "5s"}, true, "Invalid Session TTL '5s'"},
		{"ttl too long", state.Session{Node: "s1", TTL: "25h"}, true, "must be between [10s=24h0m0s]"},
		{"ttl garbage", state.Session{Node: "s1", TTL: "soon"}, true, "Session TTL 'soon' invalid"},
		{"bad behavior", state.Session{Node: "s1", Behavior: "keep"}, true, "Invalid Behavior setting 'keep'"},
		{"lock delay too long", state.Session{Node: "s1", LockDelay: 2 * time.Minute}, true, "lock delay"},
		{"missing node", state.Session{Node: "ghost"}, false, "Missing node registration"},
		{"missing check", state.Session{Node: "s1", NodeChecks: []string{"ghost"}}, false, "Missing check 'ghost' registration"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var id string
			err := s.RPC(context.Background(), rpc.MethodSessionApply, &rpc.SessionRequest{Op: rpc.SessionCreate, Session: tc.sess}, &id)
			require.ErrorContains(t, err, tc.message)
			require.Equal(t, tc.badReq, errors.Is(err, rpc.ErrBadRequest))
		})
	}
	id := createSession(t, s, state.Session{NodeChecks: []string{state.SerfCheckID}, TTL: "10s"})
	got := getSession(t, s, id)
	require.Equal(t, state.SessionBehaviorRelease, got.Behavior, "behavior defaults to release")
	require.Nil(t, got.Checks, "legacy Checks left out when only serfHealth")
}

// TestServer_SessionTTLMinConfigured: session_ttl_min sets the shortest
// TTL a session may ask for; out-of-range minimums are refused at start.
func TestServer_SessionTTLMinConfigured(t *testing.T) {
	cfg := testConfig(t)
	cfg.SessionTTLMin = 2 * time.Second
	s := startServer(t, cfg)
	createSession(t, s, state.Session{TTL: "5s"}) // below the default 10s
	var id string
	err := s.RPC(context.Background(), rpc.MethodSessionApply,
		&rpc.SessionRequest{Op: rpc.SessionCreate, Session: state.Session{Node: "s1", TTL: "1s"}}, &id)
	require.ErrorContains(t, err, "must be between [2s=24h0m0s]")
	require.ErrorIs(t, err, rpc.ErrBadRequest)

	for _, bad := range []time.Duration{-time.Second, 25 * time.Hour} {
		c := testConfig(t)
		c.SessionTTLMin = bad
		_, err := New(c)
		require.ErrorIs(t, err, ErrInvalidConfig, "session TTL minimum %v", bad)
	}
}

// TestServer_SessionTTLExpiry: a session that is not renewed is invalidated
// after TTL*multiplier and its lock is released; renewals keep it alive.
func TestServer_SessionTTLExpiry(t *testing.T) {
	s := startServer(t, testConfig(t))
	fastTTL(s, 0.1) // 10s TTL -> 1s
	id := createSession(t, s, state.Session{TTL: "10s"})
	require.True(t, acquire(t, s, "leader", id))
	// The timers start just after the leader reports ready.
	require.Eventually(t, func() bool { return s.sessionTimerCount() == 1 }, 5*time.Second, 10*time.Millisecond)

	// Renewing every 300ms keeps it alive well past one expiry period.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		var out rpc.IndexedSessions
		require.NoError(t, s.RPC(context.Background(), rpc.MethodSessionRenew, &rpc.SessionSpecificRequest{SessionID: id}, &out))
		require.Len(t, out.Sessions, 1)
		time.Sleep(300 * time.Millisecond)
	}
	require.NotNil(t, getSession(t, s, id), "renewed session survives")

	start := time.Now()
	require.Eventually(t, func() bool { return getSession(t, s, id) == nil }, 5*time.Second, 20*time.Millisecond)
	elapsed := time.Since(start)
	require.Less(t, elapsed, 2500*time.Millisecond, "expires about 1s after the last renewal")
	require.Equal(t, "", holder(t, s, "leader"), "lock released")
	require.Equal(t, 0, s.sessionTimerCount())

	var out rpc.IndexedSessions
	err := s.RPC(context.Background(), rpc.MethodSessionRenew, &rpc.SessionSpecificRequest{SessionID: id}, &out)
	require.ErrorIs(t, err, rpc.ErrNotFound)
}

// TestServer_SessionTimersRearmedOnLeadership simulates a leadership change
// through the leader hooks: while no timers run nothing expires; arming
// again from the state store expires the session on time.
func TestServer_SessionTimersRearmedOnLeadership(t *testing.T) {
	s := startServer(t, testConfig(t))
	fastTTL(s, 0.1)
	ttl := createSession(t, s, state.Session{TTL: "10s"})
	noTTL := createSession(t, s, state.Session{})
	require.Eventually(t, func() bool { return s.sessionTimerCount() == 1 }, 5*time.Second, 10*time.Millisecond)

	s.stopSessionTimers() // leadership lost
	require.Equal(t, 0, s.sessionTimerCount())
	time.Sleep(1500 * time.Millisecond)
	require.NotNil(t, getSession(t, s, ttl), "no leader timers, no expiry")

	s.startSessionTimers() // new leader: re-arm from the store
	require.Equal(t, 1, s.sessionTimerCount())
	start := time.Now()
	require.Eventually(t, func() bool { return getSession(t, s, ttl) == nil }, 5*time.Second, 20*time.Millisecond)
	require.Greater(t, time.Since(start), 700*time.Millisecond, "a re-armed timer gets a full TTL")
	require.NotNil(t, getSession(t, s, noTTL))
}

func TestServer_SessionDestroyAndLockDelay(t *testing.T) {
	s := startServer(t, testConfig(t))
	a := createSession(t, s, state.Session{LockDelay: 700 * time.Millisecond})
	b := createSession(t, s, state.Session{})
	require.True(t, acquire(t, s, "k", a))
	require.False(t, acquire(t, s, "k", b), "held by a")

	var out string
	require.NoError(t, s.RPC(context.Background(), rpc.MethodSessionApply,
		&rpc.SessionRequest{Op: rpc.SessionDestroy, Session: state.Session{ID: a}}, &out))
	require.Equal(t, "", holder(t, s, "k"))
	released := time.Now()
	require.False(t, acquire(t, s, "k", b), "lock delay in effect")
	// A transaction lock is refused too.
	var tr rpc.TxnResponse
	require.NoError(t, s.RPC(context.Background(), rpc.MethodTxnApply, &rpc.TxnRequest{Ops: []*state.TxnOp{
		{KV: &state.TxnKVOp{Verb: state.TxnLock, Entry: state.KVEntry{Key: "k", Session: b}}}}}, &tr))
	require.Len(t, tr.Errors, 1)
	require.Contains(t, tr.Errors[0].What, "lock delay")

	require.Eventually(t, func() bool { return acquire(t, s, "k", b) }, 3*time.Second, 50*time.Millisecond)
	require.GreaterOrEqual(t, time.Since(released), 600*time.Millisecond)
	require.Equal(t, b, holder(t, s, "k"))

	// Destroying an unknown session is fine.
	require.NoError(t, s.RPC(context.Background(), rpc.MethodSessionApply,
		&rpc.SessionRequest{Op: rpc.SessionDestroy, Session: state.Session{ID: "nope"}}, &out))
}

func TestServer_TxnApplyAndRead(t *testing.T) {
	s := startServer(t, testConfig(t))
	var tr rpc.TxnResponse
	require.NoError(t, s.RPC(context.Background(), rpc.MethodTxnApply, &rpc.TxnRequest{Ops: []*state.TxnOp{
		{KV: &state.TxnKVOp{Verb: state.TxnSet, Entry: state.KVEntry{Key: "a", Value: []byte("1")}}},
		{KV: &state.TxnKVOp{Verb: state.TxnSet, Entry: state.KVEntry{Key: "b", Value: []byte("2")}}},
	}}, &tr))
	require.Empty(t, tr.Errors)
	require.Len(t, tr.Results, 2)
	require.Equal(t, tr.Results[0].KV.ModifyIndex, tr.Results[1].KV.ModifyIndex, "one raft entry")

	var rr rpc.TxnReadResponse
	require.NoError(t, s.RPC(context.Background(), rpc.MethodTxnRead, &rpc.TxnReadRequest{Ops: []*state.TxnOp{
		{KV: &state.TxnKVOp{Verb: state.TxnGetTree, Entry: state.KVEntry{Key: ""}}},
	}}, &rr))
	require.Len(t, rr.Results, 2)
	require.GreaterOrEqual(t, rr.Index, tr.Results[0].KV.ModifyIndex)

	big := make([]*state.TxnOp, rpc.MaxTxnOps+1)
	for i := range big {
		big[i] = &state.TxnOp{KV: &state.TxnKVOp{Verb: state.TxnGet, Entry: state.KVEntry{Key: "a"}}}
	}
	require.ErrorIs(t, s.RPC(context.Background(), rpc.MethodTxnApply, &rpc.TxnRequest{Ops: big}, &tr), rpc.ErrTooLarge)
	require.ErrorIs(t, s.RPC(context.Background(), rpc.MethodTxnRead, &rpc.TxnReadRequest{Ops: []*state.TxnOp{
		{KV: &state.TxnKVOp{Verb: state.TxnSet, Entry: state.KVEntry{Key: "a"}}}}}, &rr), rpc.ErrBadRequest)
}

// TestServer_SessionSurvivesRestart: sessions and the locks they hold are
// in the Raft log and snapshots; after a restart the new leader re-arms
// the TTL timer.
func TestServer_SessionSurvivesRestart(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run("snapshot="+strconv.FormatBool(snapshot), func(t *testing.T) {
			cfg := testConfig(t)
			cfg.InMemory = false
			cfg.DataDir = t.TempDir()
			cfg.RaftBindAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
			var id string
			func() {
				s, err := New(cfg)
				require.NoError(t, err)
				require.NoError(t, s.Start())
				defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
				<-s.LeaderReady()
				id = createSession(t, s, state.Session{TTL: "60s", Name: "keep"})
				require.True(t, acquire(t, s, "held", id))
				if snapshot {
					require.NoError(t, s.Raft().Snapshot().Error())
				}
			}()
			s, err := New(cfg)
			require.NoError(t, err)
			require.NoError(t, s.Start())
			defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
			select {
			case <-s.LeaderReady():
			case <-time.After(10 * time.Second):
				t.Fatal("restarted server did not lead")
			}
			got := getSession(t, s, id)
			require.NotNil(t, got)
			require.Equal(t, "keep", got.Name)
			require.Equal(t, id, holder(t, s, "held"))
			require.Eventually(t, func() bool { return s.sessionTimerCount() == 1 }, 5*time.Second, 10*time.Millisecond)
		})
	}
}

// TestServer_SessionTimersFollowSnapshotRestore: restoring a snapshot on
// the leader replaces its sessions, and the TTL timers follow: the
// restored session is armed, the discarded one is not.
func TestServer_SessionTimersFollowSnapshotRestore(t *testing.T) {
	s1 := startServer(t, testConfig(t))
	// s2's node is in the snapshot too, so the restored session's node
	// exists wherever it is restored.
	kept := createSession(t, s1, state.Session{TTL: "10s", Name: "kept"})
	require.True(t, acquire(t, s1, "restored/lock", kept))
	arch, _ := save(t, s1)

	s2 := startServer(t, secondConfig(t))
	fastTTL(s2, 0.1)
	gone := createSession(t, s2, state.Session{Node: "s2", TTL: "10s", Name: "discarded"})
	require.Eventually(t, func() bool { return s2.sessionTimerCount() == 1 }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, s2.SnapshotRestore(context.Background(), bytes.NewReader(arch)))
	require.Nil(t, getSession(t, s2, gone))
	got := getSession(t, s2, kept)
	require.NotNil(t, got)
	require.Equal(t, "kept", got.Name)
	require.Equal(t, kept, holder(t, s2, "restored/lock"))
	require.Equal(t, 1, s2.sessionTimerCount())

	// The restored session expires on s2's (fast) timer and its lock goes.
	require.Eventually(t, func() bool { return getSession(t, s2, kept) == nil }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "", holder(t, s2, "restored/lock"))
}

package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/stretchr/testify/require"
)

// sessionFixture registers node n1 with a passing serfHealth check, a
// service web with a passing check, and returns the store.
func sessionFixture(t *testing.T) *Store {
	t.Helper()
	s := newTestStore(t)
	require.NoError(t, s.EnsureRegistration(1, &Registration{
		Node:    &Node{Node: "n1", Address: "10.0.0.1"},
		Service: &NodeService{ID: "web", Service: "web"},
		Checks: []*HealthCheck{
			{CheckID: SerfCheckID, Status: HealthPassing},
			{CheckID: "web-check", ServiceID: "web", Status: HealthPassing},
			{CheckID: "bad", Status: HealthCritical},
		},
	}))
	return s
}

func TestStore_SessionCreate(t *testing.T) {
	cases := []struct {
		name    string
		sess    Session
		wantErr error
		wantMsg string
	}{
		{"ok with node and service checks", Session{ID: "s1", Node: "n1", Behavior: SessionBehaviorRelease,
			NodeChecks: []string{SerfCheckID}, ServiceChecks: []ServiceCheck{{ID: "web-check"}}}, nil, ""},
		{"ok without checks", Session{ID: "s2", Node: "n1", Behavior: SessionBehaviorDelete}, nil, ""},
		{"missing node", Session{ID: "s3", Node: "nope", Behavior: SessionBehaviorRelease}, ErrMissingNode, "Missing node registration"},
		{"missing check", Session{ID: "s4", Node: "n1", Behavior: SessionBehaviorRelease, NodeChecks: []string{"ghost"}},
			ErrMissingCheck, "Missing check 'ghost' registration"},
		{"critical check", Session{ID: "s5", Node: "n1", Behavior: SessionBehaviorRelease, NodeChecks: []string{"bad"}},
			ErrCheckCritical, "Check 'bad' is in critical state"},
		{"bad behavior", Session{ID: "s6", Node: "n1", Behavior: "explode"}, ErrInvalidInput, "invalid session behavior"},
		{"missing ID", Session{Node: "n1", Behavior: SessionBehaviorRelease}, ErrInvalidInput, "missing session ID"},
	}
	s := sessionFixture(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx := uint64(10 + i)
			err := s.SessionCreate(idx, &tc.sess)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.wantMsg)
				_, got, err := s.SessionGet(nil, tc.sess.ID)
				require.NoError(t, err)
				require.Nil(t, got, "a failed create writes nothing")
				return
			}
			require.NoError(t, err)
			gidx, got, err := s.SessionGet(nil, tc.sess.ID)
			require.NoError(t, err)
			require.Equal(t, idx, gidx)
			require.Equal(t, idx, got.CreateIndex)
			require.Equal(t, "n1", got.Node)
		})
	}
	t.Run("duplicate ID", func(t *testing.T) {
		require.ErrorIs(t, s.SessionCreate(30, &Session{ID: "s1", Node: "n1", Behavior: SessionBehaviorRelease}), ErrSessionExists)
	})
	t.Run("list and by node", func(t *testing.T) {
		_, all, err := s.SessionList(nil)
		require.NoError(t, err)
		require.Len(t, all, 2)
		_, byNode, err := s.NodeSessions(nil, "N1")
		require.NoError(t, err)
		require.Len(t, byNode, 2)
		_, none, err := s.NodeSessions(nil, "other")
		require.NoError(t, err)
		require.Empty(t, none)
	})
}

func TestStore_KVLockUnlock(t *testing.T) {
	s := sessionFixture(t)
	require.NoError(t, s.SessionCreate(2, &Session{ID: "a", Node: "n1", Behavior: SessionBehaviorRelease}))
	require.NoError(t, s.SessionCreate(3, &Session{ID: "b", Node: "n1", Behavior: SessionBehaviorRelease}))

	type step struct {
		name      string
		lock      bool // else unlock
		session   string
		value     string
		want      bool
		lockIndex uint64
		holder    string
	}
	steps := []step{
		{"first acquire creates the key", true, "a", "v1", true, 1, "a"},
		{"re-acquire by holder keeps LockIndex and updates value", true, "a", "v2", true, 1, "a"},
		{"other session cannot acquire", true, "b", "x", false, 1, "a"},
		{"other session cannot release", false, "b", "x", false, 1, "a"},
		{"holder releases, LockIndex kept", false, "a", "v3", true, 1, ""},
		{"release when unlocked fails", false, "a", "v4", false, 1, ""},
		{"new acquisition bumps LockIndex", true, "b", "v5", true, 2, "b"},
	}
	idx := uint64(10)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			idx++
			e := &KVEntry{Key: "lock", Value: []byte(st.value), Flags: idx, Session: st.session}
			var (
				ok  bool
				err error
			)
			if st.lock {
				ok, err = s.KVLock(idx, e)
			} else {
				ok, err = s.KVUnlock(idx, e)
			}
			require.NoError(t, err)
			require.Equal(t, st.want, ok)
			_, got, err := s.KVGet(nil, "lock")
			require.NoError(t, err)
			require.Equal(t, st.lockIndex, got.LockIndex)
			require.Equal(t, st.holder, got.Session)
			if st.want {
				require.Equal(t, st.value, string(got.Value))
				require.Equal(t, idx, got.Flags, "flags are written with the lock")
				require.Equal(t, idx, got.ModifyIndex)
			}
		})
	}
	t.Run("plain set keeps the lock", func(t *testing.T) {
		require.NoError(t, s.KVSet(40, &KVEntry{Key: "lock", Value: []byte("w")}))
		_, got, _ := s.KVGet(nil, "lock")
		require.Equal(t, "b", got.Session)
		require.EqualValues(t, 2, got.LockIndex)
	})
	t.Run("invalid session", func(t *testing.T) {
		_, err := s.KVLock(41, &KVEntry{Key: "other", Session: "ghost"})
		require.ErrorIs(t, err, ErrInvalidSession)
		_, err = s.KVLock(41, &KVEntry{Key: "other"})
		require.ErrorIs(t, err, ErrInvalidInput)
	})
	t.Run("missing key release", func(t *testing.T) {
		ok, err := s.KVUnlock(42, &KVEntry{Key: "nothing", Session: "a"})
		require.NoError(t, err)
		require.False(t, ok)
	})
}

func TestStore_SessionInvalidation(t *testing.T) {
	triggers := []struct {
		name   string
		bind   []string
		action func(t *testing.T, s *Store, idx uint64)
	}{
		{"destroy", nil, func(t *testing.T, s *Store, idx uint64) {
			require.NoError(t, s.SessionDestroy(idx, "sess"))
		}},
		{"bound check goes critical", []string{SerfCheckID}, func(t *testing.T, s *Store, idx uint64) {
			require.NoError(t, s.EnsureRegistration(idx, &Registration{Node: &Node{Node: "n1", Address: "10.0.0.1"},
				Checks: []*HealthCheck{{CheckID: SerfCheckID, Status: HealthCritical}}}))
		}},
		{"bound service check deleted with its service", []string{"web-check"}, func(t *testing.T, s *Store, idx uint64) {
			require.NoError(t, s.DeleteService(idx, "n1", "web"))
		}},
		{"node deleted", nil, func(t *testing.T, s *Store, idx uint64) {
			require.NoError(t, s.DeleteNode(idx, "n1"))
		}},
	}
	for _, behavior := range []string{SessionBehaviorRelease, SessionBehaviorDelete} {
		for _, tr := range triggers {
			t.Run(behavior+"/"+tr.name, func(t *testing.T) {
				s := sessionFixture(t)
				require.NoError(t, s.SessionCreate(2, &Session{ID: "sess", Node: "n1", Behavior: behavior,
					LockDelay: time.Minute, NodeChecks: tr.bind}))
				ok, err := s.KVLock(3, &KVEntry{Key: "held", Value: []byte("v"), Session: "sess"})
				require.NoError(t, err)
				require.True(t, ok)
				require.NoError(t, s.KVSet(4, &KVEntry{Key: "free", Value: []byte("f")}))

				ws := memdb.NewWatchSet()
				_, _, err = s.SessionGet(ws, "sess")
				require.NoError(t, err)
				_, _, err = s.KVGet(ws, "held")
				require.NoError(t, err)

				before := time.Now()
				tr.action(t, s, 5)
				require.True(t, ws.Watch(time.After(time.Second)) == false, "watchers wake up")

				_, got, err := s.SessionGet(nil, "sess")
				require.NoError(t, err)
				require.Nil(t, got, "session is gone")
				_, held, err := s.KVGet(nil, "held")
				require.NoError(t, err)
				if behavior == SessionBehaviorDelete {
					require.Nil(t, held, "delete behavior removes held keys")
				} else {
					require.NotNil(t, held)
					require.Empty(t, held.Session, "release behavior clears the holder")
					require.EqualValues(t, 1, held.LockIndex, "LockIndex unchanged")
					require.EqualValues(t, 5, held.ModifyIndex)
				}
				_, free, _ := s.KVGet(nil, "free")
				require.NotNil(t, free, "keys not held are untouched")
				require.WithinDuration(t, before.Add(time.Minute), s.KVLockDelay("held"), 5*time.Second)
				require.True(t, s.KVLockDelay("free").IsZero())
				require.Equal(t, uint64(5), s.MaxIndex(tableSessions))
			})
		}
	}
	t.Run("unbound check going critical leaves the session", func(t *testing.T) {
		s := sessionFixture(t)
		require.NoError(t, s.SessionCreate(2, &Session{ID: "sess", Node: "n1", Behavior: SessionBehaviorRelease,
			NodeChecks: []string{SerfCheckID}}))
		require.NoError(t, s.EnsureRegistration(3, &Registration{Node: &Node{Node: "n1", Address: "10.0.0.1"},
			Checks: []*HealthCheck{{CheckID: "web-check", ServiceID: "web", Status: HealthCritical}}}))
		_, got, err := s.SessionGet(nil, "sess")
		require.NoError(t, err)
		require.NotNil(t, got)
	})
	t.Run("no lock delay when zero", func(t *testing.T) {
		s := sessionFixture(t)
		require.NoError(t, s.SessionCreate(2, &Session{ID: "sess", Node: "n1", Behavior: SessionBehaviorRelease}))
		_, err := s.KVLock(3, &KVEntry{Key: "k", Session: "sess"})
		require.NoError(t, err)
		require.NoError(t, s.SessionDestroy(4, "sess"))
		require.True(t, s.KVLockDelay("k").IsZero())
	})
}

func TestStore_SessionSnapshotRestore(t *testing.T) {
	s := sessionFixture(t)
	require.NoError(t, s.SessionCreate(2, &Session{ID: "sess", Name: "n", Node: "n1", Behavior: SessionBehaviorDelete,
		TTL: "15s", LockDelay: time.Second, NodeChecks: []string{SerfCheckID}}))
	_, err := s.KVLock(3, &KVEntry{Key: "k", Session: "sess"})
	require.NoError(t, err)

	snap := s.Snapshot()
	var buf bytes.Buffer
	require.NoError(t, snap.Persist(&buf))
	snap.Release()
	r, err := Restore(&buf)
	require.NoError(t, err)

	_, want, _ := s.SessionGet(nil, "sess")
	idx, got, err := r.SessionGet(nil, "sess")
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.EqualValues(t, 2, idx)
	_, kv, _ := r.KVGet(nil, "k")
	require.Equal(t, "sess", kv.Session)

	// The check binding came back too: the check going critical still
	// invalidates the session in the restored store.
	require.NoError(t, r.EnsureRegistration(4, &Registration{Node: &Node{Node: "n1", Address: "10.0.0.1"},
		Checks: []*HealthCheck{{CheckID: SerfCheckID, Status: HealthCritical}}}))
	_, got, _ = r.SessionGet(nil, "sess")
	require.Nil(t, got)
	_, kv, _ = r.KVGet(nil, "k")
	require.Nil(t, kv)
}

package state

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func kvOp(verb, key, value string, index uint64, session string) *TxnOp {
	return &TxnOp{KV: &TxnKVOp{Verb: verb, Entry: KVEntry{Key: key, Value: []byte(value), ModifyIndex: index, Session: session}}}
}

func TestStore_TxnKVVerbs(t *testing.T) {
	s := sessionFixture(t)
	require.NoError(t, s.SessionCreate(2, &Session{ID: "sess", Node: "n1", Behavior: SessionBehaviorRelease}))
	require.NoError(t, s.KVSet(3, &KVEntry{Key: "a", Value: []byte("1")}))
	require.NoError(t, s.KVSet(4, &KVEntry{Key: "dir/x", Value: []byte("x")}))
	require.NoError(t, s.KVSet(5, &KVEntry{Key: "dir/y", Value: []byte("y")}))

	cases := []struct {
		name    string
		op      *TxnOp
		ok      bool
		results int
		errMsg  string
	}{
		{"get", kvOp(TxnGet, "a", "", 0, ""), true, 1, ""},
		{"get missing", kvOp(TxnGet, "zz", "", 0, ""), false, 0, `key "zz" doesn't exist`},
		{"get-or-empty missing", kvOp(TxnGetOrEmpty, "zz", "", 0, ""), true, 1, ""},
		{"get-tree", kvOp(TxnGetTree, "dir/", "", 0, ""), true, 2, ""},
		{"check-index ok", kvOp(TxnCheckIndex, "a", "", 3, ""), true, 1, ""},
		{"check-index stale", kvOp(TxnCheckIndex, "a", "", 2, ""), false, 0, "current modify index 3 != 2"},
		{"check-not-exists ok", kvOp(TxnCheckNotExists, "zz", "", 0, ""), true, 0, ""},
		{"check-not-exists fails", kvOp(TxnCheckNotExists, "a", "", 0, ""), false, 0, `key "a" exists`},
		{"check-session fails", kvOp(TxnCheckSession, "a", "", 0, "sess"), false, 0, "not currently locked"},
		{"cas stale", kvOp(TxnCAS, "a", "2", 1, ""), false, 0, "index is stale"},
		{"cas create on existing", kvOp(TxnCAS, "a", "2", 0, ""), false, 0, "index is stale"},
		{"delete-cas stale", kvOp(TxnDeleteCAS, "a", "", 9, ""), false, 0, "index is stale"},
		{"unlock not held", kvOp(TxnUnlock, "a", "", 0, "sess"), false, 0, "lock isn't held"},
		{"lock bad session", kvOp(TxnLock, "a", "", 0, "ghost"), false, 0, "invalid session"},
		{"unknown verb", kvOp("frob", "a", "", 0, ""), false, 0, "unknown KV verb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx := s.MaxIndex(tableKVs, tableSessions) + 1
			before := s.MaxIndex(tableKVs)
			results, errs := s.Txn(idx, []*TxnOp{tc.op})
			if !tc.ok {
				require.Len(t, errs, 1)
				require.Equal(t, 0, errs[0].OpIndex)
				require.Contains(t, errs[0].What, tc.errMsg)
				require.Nil(t, results)
				require.Equal(t, before, s.MaxIndex(tableKVs), "a failed txn writes nothing")
				return
			}
			require.Empty(t, errs)
			require.Len(t, results, tc.results)
		})
	}
	t.Run("values only for get verbs", func(t *testing.T) {
		results, errs := s.Txn(20, []*TxnOp{kvOp(TxnSet, "b", "bee", 0, ""), kvOp(TxnGet, "b", "", 0, "")})
		require.Empty(t, errs)
		require.Len(t, results, 2)
		require.Nil(t, results[0].KV.Value)
		require.Equal(t, "bee", string(results[1].KV.Value), "a get sees the earlier write of its txn")
	})
	t.Run("lock, check-session, unlock", func(t *testing.T) {
		results, errs := s.Txn(21, []*TxnOp{kvOp(TxnLock, "l", "v", 0, "sess"), kvOp(TxnCheckSession, "l", "", 0, "sess")})
		require.Empty(t, errs)
		require.EqualValues(t, 1, results[0].KV.LockIndex)
		_, errs = s.Txn(22, []*TxnOp{kvOp(TxnUnlock, "l", "v", 0, "sess")})
		require.Empty(t, errs)
		_, e, _ := s.KVGet(nil, "l")
		require.Empty(t, e.Session)
	})
	t.Run("deletes return no result", func(t *testing.T) {
		results, errs := s.Txn(23, []*TxnOp{kvOp(TxnDelete, "b", "", 0, ""), kvOp(TxnDeleteTree, "dir/", "", 0, "")})
		require.Empty(t, errs)
		require.Empty(t, results)
		_, list, _ := s.KVList(nil, "dir/")
		require.Empty(t, list)
	})
}

// TestStore_TxnAllOrNothing: a transaction whose last operation fails
// leaves every earlier write undone, and errors name each failing op.
func TestStore_TxnAllOrNothing(t *testing.T) {
	s := sessionFixture(t)
	require.NoError(t, s.KVSet(2, &KVEntry{Key: "x", Value: []byte("old")}))
	ops := []*TxnOp{
		kvOp(TxnSet, "x", "new", 0, ""),
		kvOp(TxnDelete, "x", "", 0, ""),
		kvOp(TxnSet, "y", "y", 0, ""),
		{Node: &TxnNodeOp{Verb: TxnSet, Node: Node{Node: "n2", Address: "10.0.0.2"}}},
		kvOp(TxnCheckIndex, "x", "", 2, ""), // x was deleted by op 1: fails
		kvOp(TxnCAS, "z", "z", 7, ""),       // z does not exist: fails
	}
	results, errs := s.Txn(3, ops)
	require.Nil(t, results)
	require.Len(t, errs, 2)
	require.Equal(t, 4, errs[0].OpIndex)
	require.Equal(t, 5, errs[1].OpIndex)

	_, x, _ := s.KVGet(nil, "x")
	require.Equal(t, "old", string(x.Value))
	_, y, _ := s.KVGet(nil, "y")
	require.Nil(t, y)
	_, n2, _ := s.GetNode(nil, "n2")
	require.Nil(t, n2)
	require.EqualValues(t, 2, s.MaxIndex(tableKVs, tableNodes, tableTombstones))

	// Without the failing ops the same writes apply together at one index.
	results, errs = s.Txn(4, ops[:4])
	require.Empty(t, errs)
	require.Len(t, results, 3)
	_, x, _ = s.KVGet(nil, "x")
	require.Nil(t, x)
	_, n2, _ = s.GetNode(nil, "n2")
	require.EqualValues(t, 4, n2.CreateIndex)
}

func TestStore_TxnCatalog(t *testing.T) {
	s := sessionFixture(t)
	require.NoError(t, s.SessionCreate(2, &Session{ID: "sess", Node: "n1", Behavior: SessionBehaviorRelease,
		NodeChecks: []string{SerfCheckID}}))
	_, n1, _ := s.GetNode(nil, "n1")

	steps := []struct {
		name   string
		op     *TxnOp
		errMsg string
	}{
		{"node get", &TxnOp{Node: &TxnNodeOp{Verb: TxnGet, Node: Node{Node: "n1"}}}, ""},
		{"node get by ID missing", &TxnOp{Node: &TxnNodeOp{Verb: TxnGet, Node: Node{ID: "nope"}}}, "doesn't exist"},
		{"node cas stale", &TxnOp{Node: &TxnNodeOp{Verb: TxnCAS, Node: Node{Node: "n1", Address: "x", ModifyIndex: 99}}}, "index is stale"},
		{"node cas ok", &TxnOp{Node: &TxnNodeOp{Verb: TxnCAS, Node: Node{Node: "n1", Address: "10.0.0.9", ModifyIndex: n1.ModifyIndex}}}, ""},
		{"service set", &TxnOp{Service: &TxnServiceOp{Verb: TxnSet, Node: "n1", Service: NodeService{ID: "api", Service: "api", Port: 80}}}, ""},
		{"service set on missing node", &TxnOp{Service: &TxnServiceOp{Verb: TxnSet, Node: "ghost", Service: NodeService{ID: "api", Service: "api"}}}, "missing node"},
		{"service get", &TxnOp{Service: &TxnServiceOp{Verb: TxnGet, Node: "n1", Service: NodeService{ID: "api"}}}, ""},
		{"check set", &TxnOp{Check: &TxnCheckOp{Verb: TxnSet, Check: HealthCheck{Node: "n1", CheckID: "c1", Status: HealthPassing}}}, ""},
		{"check bad status", &TxnOp{Check: &TxnCheckOp{Verb: TxnSet, Check: HealthCheck{Node: "n1", CheckID: "c1", Status: "meh"}}}, "invalid status"},
		{"check delete-cas stale", &TxnOp{Check: &TxnCheckOp{Verb: TxnDeleteCAS, Check: HealthCheck{Node: "n1", CheckID: "c1", ModifyIndex: 1}}}, "index is stale"},
		{"service delete", &TxnOp{Service: &TxnServiceOp{Verb: TxnDelete, Node: "n1", Service: NodeService{ID: "api"}}}, ""},
		{"serfHealth critical invalidates the session", &TxnOp{Check: &TxnCheckOp{Verb: TxnSet,
			Check: HealthCheck{Node: "n1", CheckID: SerfCheckID, Status: HealthCritical}}}, ""},
		{"node delete", &TxnOp{Node: &TxnNodeOp{Verb: TxnDelete, Node: Node{Node: "n1"}}}, ""},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			_, errs := s.Txn(uint64(10+i), []*TxnOp{st.op})
			if st.errMsg == "" {
				require.Empty(t, errs)
				return
			}
			require.Len(t, errs, 1)
			require.Contains(t, errs[0].What, st.errMsg)
		})
	}
	_, sess, _ := s.SessionGet(nil, "sess")
	require.Nil(t, sess)
	_, n, _ := s.GetNode(nil, "n1")
	require.Nil(t, n)
}

func TestStore_TxnRead(t *testing.T) {
	s := sessionFixture(t)
	require.NoError(t, s.KVSet(7, &KVEntry{Key: "a", Value: []byte("1")}))
	idx, results, errs := s.TxnRead(nil, []*TxnOp{kvOp(TxnGet, "a", "", 0, ""),
		{Node: &TxnNodeOp{Verb: TxnGet, Node: Node{Node: "n1"}}}})
	require.Empty(t, errs)
	require.Len(t, results, 2)
	require.EqualValues(t, 7, idx)
	_, _, errs = s.TxnRead(nil, []*TxnOp{kvOp(TxnSet, "a", "2", 0, "")})
	require.Len(t, errs, 1)
	require.True(t, TxnReadOnly([]*TxnOp{kvOp(TxnCheckIndex, "a", "", 1, "")}))
	require.False(t, TxnReadOnly([]*TxnOp{kvOp(TxnGet, "a", "", 0, ""), kvOp(TxnDelete, "a", "", 0, "")}))
}

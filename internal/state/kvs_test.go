package state

import (
	"testing"

	"github.com/hashicorp/go-memdb"
	"github.com/stretchr/testify/require"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore()
	require.NoError(t, err)
	return s
}

func TestStore_KVSetCAS(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.KVSet(5, &KVEntry{Key: "k", Value: []byte("v1"), Flags: 7}))

	cases := []struct {
		name     string
		idx      uint64
		casIndex uint64
		want     bool
	}{
		{"zero index fails when key exists", 6, 0, false},
		{"wrong index fails", 7, 4, false},
		{"matching index succeeds", 8, 5, true},
		{"stale index fails after update", 9, 5, false},
		{"new index succeeds", 10, 8, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := s.KVSetCAS(tc.idx, &KVEntry{Key: "k", Value: []byte("x"), ModifyIndex: tc.casIndex})
			require.NoError(t, err)
			require.Equal(t, tc.want, ok)
		})
	}
	idx, e, err := s.KVGet(nil, "k")
	require.NoError(t, err)
	require.Equal(t, uint64(10), idx)
	require.Equal(t, uint64(5), e.CreateIndex, "CreateIndex is kept on update")
	require.Equal(t, uint64(10), e.ModifyIndex)

	t.Run("zero index creates missing key", func(t *testing.T) {
		ok, err := s.KVSetCAS(11, &KVEntry{Key: "new"})
		require.NoError(t, err)
		require.True(t, ok)
	})
	t.Run("non-zero index on missing key fails", func(t *testing.T) {
		ok, err := s.KVSetCAS(12, &KVEntry{Key: "missing", ModifyIndex: 3})
		require.NoError(t, err)
		require.False(t, ok)
	})
	t.Run("delete-cas", func(t *testing.T) {
		ok, err := s.KVDeleteCAS(13, 4, "k")
		require.NoError(t, err)
		require.False(t, ok)
		ok, err = s.KVDeleteCAS(14, 10, "k")
		require.NoError(t, err)
		require.True(t, ok)
		_, e, err := s.KVGet(nil, "k")
		require.NoError(t, err)
		require.Nil(t, e)
	})
}

func TestStore_KVKeys(t *testing.T) {
	s := newTestStore(t)
	for i, k := range []string{"a/", "a/b", "a/c/d", "a/c/e", "a/c/f/g", "a/d", "b/x", "ab"} {
		require.NoError(t, s.KVSet(uint64(i+1), &KVEntry{Key: k}))
	}
	cases := []struct {
		prefix, sep string
		want        []string
	}{
		{"a/", "/", []string{"a/", "a/b", "a/c/", "a/d"}},
		{"a/c/", "/", []string{"a/c/d", "a/c/e", "a/c/f/"}},
		{"a", "", []string{"a/", "a/b", "a/c/d", "a/c/e", "a/c/f/g", "a/d", "ab"}},
		{"", "/", []string{"a/", "ab", "b/"}},
		{"zzz", "/", []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.prefix+"|"+tc.sep, func(t *testing.T) {
			_, keys, err := s.KVKeys(nil, tc.prefix, tc.sep)
			require.NoError(t, err)
			require.Equal(t, tc.want, keys)
		})
	}
}

func TestStore_KVDeleteTree(t *testing.T) {
	s := newTestStore(t)
	for i, k := range []string{"a/1", "a/2", "a/b/3", "ab", "b"} {
		require.NoError(t, s.KVSet(uint64(i+1), &KVEntry{Key: k}))
	}
	require.NoError(t, s.KVDeleteTree(10, "a/"))
	idx, list, err := s.KVList(nil, "")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "ab", list[0].Key)
	require.Equal(t, uint64(10), idx)

	idx, list, err = s.KVList(nil, "a/")
	require.NoError(t, err)
	require.Empty(t, list)
	require.Equal(t, uint64(10), idx, "the tombstones keep the prefix index")
}

func TestStore_KVIndexMonotonic(t *testing.T) {
	s := newTestStore(t)
	idx, _, err := s.KVGet(nil, "missing")
	require.NoError(t, err)
	require.Equal(t, uint64(0), idx, "empty store reports 0; the server raises it to 1")

	require.NoError(t, s.KVSet(3, &KVEntry{Key: "p/a"}))
	require.NoError(t, s.KVSet(4, &KVEntry{Key: "p/b"}))
	require.NoError(t, s.KVSet(5, &KVEntry{Key: "other"}))

	steps := []struct {
		name string
		op   func() error
	}{
		{"delete newest", func() error { return s.KVDelete(6, "p/b") }},
		{"delete missing", func() error { return s.KVDelete(7, "p/zzz") }},
		{"delete last", func() error { return s.KVDelete(8, "p/a") }},
		{"unrelated write", func() error { return s.KVSet(9, &KVEntry{Key: "x"}) }},
		{"recreate", func() error { return s.KVSet(10, &KVEntry{Key: "p/a"}) }},
	}
	var lastList, lastGet uint64
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			require.NoError(t, st.op())
			idx, _, err := s.KVList(nil, "p/")
			require.NoError(t, err)
			require.GreaterOrEqual(t, idx, lastList)
			lastList = idx
			idx, _, err = s.KVGet(nil, "p/b")
			require.NoError(t, err)
			require.GreaterOrEqual(t, idx, lastGet)
			lastGet = idx
		})
	}
	require.Equal(t, uint64(10), lastList)
}

func TestStore_KVWatch(t *testing.T) {
	s := newTestStore(t)
	require.NoError(t, s.KVSet(1, &KVEntry{Key: "a/1"}))

	cases := []struct {
		name  string
		read  func(ws memdb.WatchSet)
		write func() error
		fires bool
	}{
		{"get fires on set", func(ws memdb.WatchSet) { _, _, _ = s.KVGet(ws, "a/1") },
			func() error { return s.KVSet(2, &KVEntry{Key: "a/1"}) }, true},
		{"get of missing key fires on create", func(ws memdb.WatchSet) { _, _, _ = s.KVGet(ws, "a/2") },
			func() error { return s.KVSet(3, &KVEntry{Key: "a/2"}) }, true},
		{"list fires on delete", func(ws memdb.WatchSet) { _, _, _ = s.KVList(ws, "a/") },
			func() error { return s.KVDelete(4, "a/2") }, true},
		{"list ignores other prefix", func(ws memdb.WatchSet) { _, _, _ = s.KVList(ws, "a/") },
			func() error { return s.KVSet(5, &KVEntry{Key: "zzz/1"}) }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := memdb.NewWatchSet()
			tc.read(ws)
			require.NoError(t, tc.write())
			require.Equal(t, tc.fires, watchFired(ws))
		})
	}
}

// watchFired reports whether any channel of ws is closed, without waiting.
func watchFired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

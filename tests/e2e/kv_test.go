package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

func TestKV(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	kv := c.KV()

	t.Run("PutGetFlags", func(t *testing.T) {
		_, err := kv.Put(&api.KVPair{Key: "pg/a", Value: []byte("hello"), Flags: 42}, nil)
		require.NoError(t, err)
		p, meta, err := kv.Get("pg/a", nil)
		require.NoError(t, err)
		require.NotNil(t, p)
		require.Equal(t, "pg/a", p.Key)
		require.Equal(t, []byte("hello"), p.Value)
		require.Equal(t, uint64(42), p.Flags)
		require.NotZero(t, p.CreateIndex)
		require.Equal(t, p.CreateIndex, p.ModifyIndex)
		require.GreaterOrEqual(t, meta.LastIndex, p.ModifyIndex)

		// Overwrite: ModifyIndex moves, CreateIndex stays.
		_, err = kv.Put(&api.KVPair{Key: "pg/a", Value: []byte("world")}, nil)
		require.NoError(t, err)
		p2 := mustKV(t, c, "pg/a")
		require.Equal(t, []byte("world"), p2.Value)
		require.Equal(t, uint64(0), p2.Flags)
		require.Equal(t, p.CreateIndex, p2.CreateIndex)
		require.Greater(t, p2.ModifyIndex, p.ModifyIndex)

		// Empty value is a real value, not a missing key.
		_, err = kv.Put(&api.KVPair{Key: "pg/empty"}, nil)
		require.NoError(t, err)
		pe := mustKV(t, c, "pg/empty")
		require.Empty(t, pe.Value)

		// Binary values round-trip unchanged.
		bin := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
		_, err = kv.Put(&api.KVPair{Key: "pg/bin", Value: bin}, nil)
		require.NoError(t, err)
		require.Equal(t, bin, mustKV(t, c, "pg/bin").Value)
	})

	t.Run("CASRace", func(t *testing.T) {
		for round := 0; round < 20; round++ {
			key := fmt.Sprintf("cas/race-%d", round)
			_, err := kv.Put(&api.KVPair{Key: key, Value: []byte("v0")}, nil)
			require.NoError(t, err)
			cur := mustKV(t, c, key)

			const writers = 2
			var wg sync.WaitGroup
			start := make(chan struct{})
			won := make([]bool, writers)
			errs := make([]error, writers)
			for i := 0; i < writers; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					<-start
					won[i], _, errs[i] = kv.CAS(&api.KVPair{
						Key: key, Value: []byte(fmt.Sprintf("w%d", i)), ModifyIndex: cur.ModifyIndex,
					}, nil)
				}(i)
			}
			close(start)
			wg.Wait()
			winners := 0
			winner := -1
			for i := range won {
				require.NoError(t, errs[i])
				if won[i] {
					winners++
					winner = i
				}
			}
			require.Equal(t, 1, winners, "round %d: exactly one CAS must win, got %v", round, won)
			require.Equal(t, fmt.Sprintf("w%d", winner), string(mustKV(t, c, key).Value))
		}

		// cas=0 only creates.
		ok, _, err := kv.CAS(&api.KVPair{Key: "cas/new", Value: []byte("1"), ModifyIndex: 0}, nil)
		require.NoError(t, err)
		require.True(t, ok)
		ok, _, err = kv.CAS(&api.KVPair{Key: "cas/new", Value: []byte("2"), ModifyIndex: 0}, nil)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, "1", string(mustKV(t, c, "cas/new").Value))
	})

	t.Run("ListKeysSeparator", func(t *testing.T) {
		for _, k := range []string{"ls/a", "ls/b", "ls/sub/c", "ls/sub/d", "ls/sub/deep/e", "lsx"} {
			_, err := kv.Put(&api.KVPair{Key: k, Value: []byte("v:" + k)}, nil)
			require.NoError(t, err)
		}
		pairs, meta, err := kv.List("ls/", nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
		var got []string
		for _, p := range pairs {
			got = append(got, p.Key)
			require.Equal(t, "v:"+p.Key, string(p.Value))
		}
		require.Equal(t, []string{"ls/a", "ls/b", "ls/sub/c", "ls/sub/d", "ls/sub/deep/e"}, got)

		keys, _, err := kv.Keys("ls/", "", nil)
		require.NoError(t, err)
		sort.Strings(keys)
		require.Equal(t, []string{"ls/a", "ls/b", "ls/sub/c", "ls/sub/d", "ls/sub/deep/e"}, keys)

		keys, _, err = kv.Keys("ls/", "/", nil)
		require.NoError(t, err)
		sort.Strings(keys)
		require.Equal(t, []string{"ls/a", "ls/b", "ls/sub/"}, keys)

		keys, _, err = kv.Keys("ls/sub/", "/", nil)
		require.NoError(t, err)
		sort.Strings(keys)
		require.Equal(t, []string{"ls/sub/c", "ls/sub/d", "ls/sub/deep/"}, keys)

		// Missing prefix: empty list, still a real index.
		pairs, meta, err = kv.List("ls-none/", nil)
		require.NoError(t, err)
		require.Empty(t, pairs)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
	})

	t.Run("Delete", func(t *testing.T) {
		_, err := kv.Put(&api.KVPair{Key: "del/a", Value: []byte("x")}, nil)
		require.NoError(t, err)
		_, err = kv.Delete("del/a", nil)
		require.NoError(t, err)
		p, _, err := kv.Get("del/a", nil)
		require.NoError(t, err)
		require.Nil(t, p)
		// Deleting a missing key is fine.
		_, err = kv.Delete("del/never", nil)
		require.NoError(t, err)
	})

	t.Run("DeleteTree", func(t *testing.T) {
		for _, k := range []string{"tree/a", "tree/b/c", "tree/b/d", "treehouse"} {
			_, err := kv.Put(&api.KVPair{Key: k, Value: []byte("x")}, nil)
			require.NoError(t, err)
		}
		_, err := kv.DeleteTree("tree/", nil)
		require.NoError(t, err)
		pairs, _, err := kv.List("tree", nil)
		require.NoError(t, err)
		require.Len(t, pairs, 1)
		require.Equal(t, "treehouse", pairs[0].Key)
	})

	t.Run("DeleteCAS", func(t *testing.T) {
		_, err := kv.Put(&api.KVPair{Key: "dcas/a", Value: []byte("x")}, nil)
		require.NoError(t, err)
		cur := mustKV(t, c, "dcas/a")
		ok, _, err := kv.DeleteCAS(&api.KVPair{Key: "dcas/a", ModifyIndex: cur.ModifyIndex + 1000}, nil)
		require.NoError(t, err)
		require.False(t, ok, "delete-cas with a wrong index must fail")
		mustKV(t, c, "dcas/a")
		ok, _, err = kv.DeleteCAS(&api.KVPair{Key: "dcas/a", ModifyIndex: cur.ModifyIndex}, nil)
		require.NoError(t, err)
		require.True(t, ok)
		p, _, err := kv.Get("dcas/a", nil)
		require.NoError(t, err)
		require.Nil(t, p)
	})

	t.Run("Raw", func(t *testing.T) {
		val := "raw value\nwith newline"
		_, err := kv.Put(&api.KVPair{Key: "raw/a", Value: []byte(val)}, nil)
		require.NoError(t, err)
		r := do(t, a, http.MethodGet, "/v1/kv/raw/a?raw", nil)
		require.Equal(t, http.StatusOK, r.Status)
		require.Equal(t, val, r.Body)
		idx, ok := r.index()
		require.True(t, ok, "raw GET must carry X-Consul-Index")
		require.GreaterOrEqual(t, idx, uint64(1))
	})

	t.Run("MissingKey404HasIndex", func(t *testing.T) {
		r := do(t, a, http.MethodGet, "/v1/kv/missing/key", nil)
		require.Equal(t, http.StatusNotFound, r.Status)
		idx, ok := r.index()
		require.True(t, ok, "404 must carry X-Consul-Index, headers: %v", r.Header)
		require.GreaterOrEqual(t, idx, uint64(1))
		require.Equal(t, "true", r.Header.Get("X-Consul-KnownLeader"))

		// Through the client: nil pair, no error, index set.
		p, meta, err := kv.Get("missing/key", nil)
		require.NoError(t, err)
		require.Nil(t, p)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
	})

	t.Run("ValueSizeLimit", func(t *testing.T) {
		// Exactly the limit (512 KiB) is accepted.
		atLimit := bytes.Repeat([]byte("a"), 512*1024)
		r := do(t, a, http.MethodPut, "/v1/kv/big/at-limit", bytes.NewReader(atLimit))
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		require.Len(t, mustKV(t, c, "big/at-limit").Value, len(atLimit))

		over := bytes.Repeat([]byte("b"), 512*1024+1)
		r = do(t, a, http.MethodPut, "/v1/kv/big/over", bytes.NewReader(over))
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status, "body: %s", r.Body)
		require.NotEmpty(t, strings.TrimSpace(r.Body), "413 must say why")
		p, _, err := kv.Get("big/over", nil)
		require.NoError(t, err)
		require.Nil(t, p, "an oversize value must not be written")

		// Through the client too.
		_, err = kv.Put(&api.KVPair{Key: "big/over2", Value: over}, nil)
		require.Error(t, err)
		require.Contains(t, err.Error(), "413")
		p, _, err = kv.Get("big/over2", nil)
		require.NoError(t, err)
		require.Nil(t, p)

		// Overwriting an existing key with an oversize value keeps the old one.
		r = do(t, a, http.MethodPut, "/v1/kv/big/at-limit", bytes.NewReader(over))
		require.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
		require.Equal(t, atLimit, mustKV(t, c, "big/at-limit").Value)
	})

	t.Run("IndexMonotonic", func(t *testing.T) {
		var last uint64
		check := func(step string) {
			t.Helper()
			r := do(t, a, http.MethodGet, "/v1/kv/mono/k", nil)
			require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, r.Status)
			idx, ok := r.index()
			require.True(t, ok, "%s: no X-Consul-Index", step)
			require.GreaterOrEqual(t, idx, uint64(1), step)
			require.GreaterOrEqual(t, idx, last, "%s: index went backwards (%d -> %d)", step, last, idx)
			last = idx
		}
		check("fresh")
		for i := 0; i < 10; i++ {
			_, err := kv.Put(&api.KVPair{Key: "mono/k", Value: []byte(fmt.Sprint(i))}, nil)
			require.NoError(t, err)
			check(fmt.Sprintf("after put %d", i))
			// Unrelated writes must not make the index go backwards either.
			_, err = kv.Put(&api.KVPair{Key: fmt.Sprintf("mono-other/%d", i), Value: []byte("x")}, nil)
			require.NoError(t, err)
			check(fmt.Sprintf("after other put %d", i))
			if i%3 == 0 {
				_, err = kv.Delete("mono/k", nil)
				require.NoError(t, err)
				check(fmt.Sprintf("after delete %d", i))
			}
		}
		// A fresh, never written prefix still reports index >= 1.
		r := do(t, a, http.MethodGet, "/v1/kv/never-written-prefix/?recurse", nil)
		require.Equal(t, http.StatusNotFound, r.Status)
		idx, ok := r.index()
		require.True(t, ok)
		require.GreaterOrEqual(t, idx, uint64(1))
	})
}

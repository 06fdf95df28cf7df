package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// Blocking-query timing bounds.
const (
	// wakeBound: a parked query must return this soon after the write that
	// changes its result is acknowledged.
	wakeBound = 50 * time.Millisecond
	// parkedFor: how long a parked query must stay parked when nothing
	// changes, before we make the write.
	parkedFor = 200 * time.Millisecond
	// blockWait is the ?wait= used for the timeout case; the reply must come
	// after at least blockWait and before blockWait + blockSlack (Consul adds
	// up to wait/16 of jitter).
	blockWait  = time.Second
	blockSlack = 600 * time.Millisecond
)

// blockingTarget is one query under test and a write that changes its result.
type blockingTarget struct {
	// read runs the query with q (nil: non-blocking) and returns its index.
	read func(q *api.QueryOptions) (uint64, error)
	// write changes the query's result; call n is the n-th write.
	write func(n int) error
}

type readResult struct {
	index uint64
	at    time.Time
	err   error
}

// checkBlocking verifies wake-up latency, timeout and index monotonicity
// for one query.
func checkBlocking(t *testing.T, tg blockingTarget) {
	t.Helper()
	writes := 0
	write := func() {
		t.Helper()
		require.NoError(t, tg.write(writes))
		writes++
	}

	// Make sure the result exists (and the index is that of real data).
	write()
	idx, err := tg.read(nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, idx, uint64(1))

	t.Run("WakesOnWrite", func(t *testing.T) {
		for round := 0; round < 3; round++ {
			idx, err := tg.read(nil)
			require.NoError(t, err)
			ch := make(chan readResult, 1)
			go func() {
				got, err := tg.read(&api.QueryOptions{WaitIndex: idx, WaitTime: 10 * time.Second})
				ch <- readResult{index: got, at: time.Now(), err: err}
			}()
			// With nothing written the query must stay parked.
			timer := time.NewTimer(parkedFor)
			select {
			case r := <-ch:
				timer.Stop()
				t.Fatalf("round %d: blocking query with index=%d returned after less than %s without a write (index %d, err %v)",
					round, idx, parkedFor, r.index, r.err)
			case <-timer.C:
			}
			write()
			ack := time.Now()
			var r readResult
			select {
			case r = <-ch:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: blocking query did not return after the write", round)
			}
			require.NoError(t, r.err)
			require.Greater(t, r.index, idx, "round %d: woken query must report a newer index", round)
			lat := r.at.Sub(ack)
			t.Logf("round %d: returned %s after the write ack", round, lat)
			require.Less(t, lat, wakeBound, "round %d: blocking query returned %s after the write ack", round, lat)
		}
	})

	t.Run("TimesOut", func(t *testing.T) {
		idx, err := tg.read(nil)
		require.NoError(t, err)
		start := time.Now()
		got, err := tg.read(&api.QueryOptions{WaitIndex: idx, WaitTime: blockWait})
		el := time.Since(start)
		require.NoError(t, err)
		t.Logf("timed out after %s", el)
		require.GreaterOrEqual(t, el, blockWait, "blocking query returned before ?wait elapsed")
		require.Less(t, el, blockWait+blockSlack, "blocking query overslept ?wait")
		require.Equal(t, idx, got, "index must not change when nothing changed")
	})

	t.Run("IndexMonotonic", func(t *testing.T) {
		last, err := tg.read(nil)
		require.NoError(t, err)
		for i := 0; i < 10; i++ {
			write()
			got, err := tg.read(nil)
			require.NoError(t, err)
			require.GreaterOrEqual(t, got, uint64(1))
			require.GreaterOrEqual(t, got, last, "write %d: index went backwards %d -> %d", i, last, got)
			last = got
		}
	})

	t.Run("StaleIndexReturnsAtOnce", func(t *testing.T) {
		// A WaitIndex lower than the current index is answered immediately.
		idx, err := tg.read(nil)
		require.NoError(t, err)
		start := time.Now()
		got, err := tg.read(&api.QueryOptions{WaitIndex: idx - 1, WaitTime: 5 * time.Second})
		require.NoError(t, err)
		require.Less(t, time.Since(start), 500*time.Millisecond)
		require.Equal(t, idx, got)
	})
}

func TestBlocking_KVGet(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	kv := a.Client().KV()
	checkBlocking(t, blockingTarget{
		read: func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := kv.Get("block/key", q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		},
		write: func(n int) error {
			_, err := kv.Put(&api.KVPair{Key: "block/key", Value: []byte(fmt.Sprint(n))}, nil)
			return err
		},
	})
}

func TestBlocking_KVList(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	kv := a.Client().KV()
	checkBlocking(t, blockingTarget{
		read: func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := kv.List("blist/", q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		},
		write: func(n int) error {
			// Alternate new keys and deletes under the prefix.
			if n%3 == 2 {
				_, err := kv.Delete(fmt.Sprintf("blist/k%d", n-1), nil)
				return err
			}
			_, err := kv.Put(&api.KVPair{Key: fmt.Sprintf("blist/k%d", n), Value: []byte("v")}, nil)
			return err
		},
	})
}

func TestBlocking_CatalogService(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	checkBlocking(t, blockingTarget{
		read: func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := c.Catalog().Service("bsvc", "", q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		},
		write: func(n int) error {
			_, err := c.Catalog().Register(&api.CatalogRegistration{
				Node: "bnode", Address: "10.1.0.1",
				Service: &api.AgentService{ID: fmt.Sprintf("bsvc-%d", n), Service: "bsvc", Port: 1000 + n},
			}, nil)
			return err
		},
	})
}

func TestBlocking_HealthService(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	checkBlocking(t, blockingTarget{
		read: func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := c.Health().Service("hsvc", "", false, q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		},
		write: func(n int) error {
			// First write registers the instance; later ones flip its
			// check, which is a health change for the same query.
			status := api.HealthPassing
			if n%2 == 1 {
				status = api.HealthCritical
			}
			_, err := c.Catalog().Register(&api.CatalogRegistration{
				Node: "hnode", Address: "10.2.0.1",
				Service: &api.AgentService{ID: "hsvc-1", Service: "hsvc", Port: 80},
				Check: &api.AgentCheck{Node: "hnode", CheckID: "hsvc-check", Name: "hsvc check",
					ServiceID: "hsvc-1", Status: status, Output: fmt.Sprint(n)},
			}, nil)
			return err
		},
	})
}

package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// startServer starts a single bootstrapping server with an on-disk data
// dir (not -dev) and waits until it is ready.
func startServer(t testing.TB) *testutil.Agent {
	t.Helper()
	a := testutil.StartAgent(t, testutil.AgentOptions{Server: true, Bootstrap: true, LogLevel: "info"})
	a.WaitReady(readyTimeout)
	return a
}

func durabilityValue(i int) string {
	return fmt.Sprintf("value-%d-%x", i, i*7919)
}

// TestDurability_KillRestart: every acknowledged write survives SIGKILL.
func TestDurability_KillRestart(t *testing.T) {
	t.Parallel()
	const (
		keys    = 10000
		workers = 16
	)
	a := startServer(t)
	c := a.Client()

	start := time.Now()
	var (
		next   atomic.Int64
		acked  = make([]bool, keys)
		wg     sync.WaitGroup
		errMu  sync.Mutex
		putErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= keys {
					return
				}
				_, err := c.KV().Put(&api.KVPair{Key: fmt.Sprintf("dur/%05d", i), Value: []byte(durabilityValue(i)), Flags: uint64(i)}, nil)
				if err != nil {
					errMu.Lock()
					if putErr == nil {
						putErr = fmt.Errorf("put %d: %w", i, err)
					}
					errMu.Unlock()
					return
				}
				acked[i] = true
			}
		}()
	}
	wg.Wait()
	require.NoError(t, putErr)
	t.Logf("%d acknowledged puts with %d workers in %s", keys, workers, time.Since(start))

	a.Kill()
	restart := time.Now()
	a.Restart(t)
	a.WaitReady(30 * time.Second)
	t.Logf("ready %s after restart", time.Since(restart))

	c = a.Client()
	pairs, meta, err := c.KV().List("dur/", nil)
	require.NoError(t, err)
	if len(pairs) != keys {
		// Tell "served reads before catching up" apart from "lost": see
		// whether the missing keys show up later. Either way it is a bug.
		firstLen, firstIndex := len(pairs), meta.LastIndex
		settleErr := testutil.Poll(10*time.Second, 100*time.Millisecond, func() error {
			ps, m, err := c.KV().List("dur/", nil)
			if err != nil {
				return err
			}
			if len(ps) != keys {
				return fmt.Errorf("%d of %d keys (index %d)", len(ps), keys, m.LastIndex)
			}
			return nil
		})
		if settleErr == nil {
			pairs, _, err = c.KV().List("dur/", nil)
			require.NoError(t, err)
			t.Errorf("first read after restart+ready returned %d of %d keys (index %d); all %d appeared later: "+
				"reads are served before the log is replayed", firstLen, keys, firstIndex, keys)
		} else {
			t.Errorf("first read after restart+ready returned %d of %d keys (index %d); after 10s still: %v",
				firstLen, keys, firstIndex, settleErr)
		}
	}
	got := make(map[string]*api.KVPair, len(pairs))
	for _, p := range pairs {
		got[p.Key] = p
	}
	missing, wrong := 0, 0
	for i := 0; i < keys; i++ {
		require.True(t, acked[i])
		key := fmt.Sprintf("dur/%05d", i)
		p, ok := got[key]
		switch {
		case !ok:
			if missing < 10 {
				t.Errorf("acknowledged key %s lost after kill -9 (not there 10s after ready)", key)
			}
			missing++
		case string(p.Value) != durabilityValue(i) || p.Flags != uint64(i):
			if wrong < 10 {
				t.Errorf("key %s: got %q flags %d, want %q flags %d", key, p.Value, p.Flags, durabilityValue(i), i)
			}
			wrong++
		}
	}
	require.Zero(t, missing, "lost keys")
	require.Zero(t, wrong, "corrupted keys")
	require.Len(t, pairs, keys, "no extra keys")

	// And the restarted server keeps working.
	_, err = c.KV().Put(&api.KVPair{Key: "dur/after", Value: []byte("ok")}, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", string(mustKV(t, c, "dur/after").Value))
	p := mustKV(t, c, "dur/after")
	require.Greater(t, p.ModifyIndex, got["dur/09999"].ModifyIndex, "indexes keep growing after restart")
}

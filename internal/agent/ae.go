package agent

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/cairn-io/cairn/internal/rpc"
)

// Anti-entropy retry backoff bounds.
const (
	syncRetryMin = 50 * time.Millisecond
	syncRetryMax = 15 * time.Second
	syncTimeout  = 30 * time.Second
)

// aeScaleThreshold is the LAN pool size up to which the full sync runs at
// the base interval; beyond it the interval grows by one base interval per
// doubling (129-256 nodes: 2x, 257-512: 3x, ...), so the servers see a
// bounded rate of full syncs however large the datacenter grows.
const aeScaleThreshold = 128

// Test knobs for runs of the real binary (tests/cluster, tests/e2e), where
// waiting a minute for a full sync or 30 s for the reaper is not an option.
// They are durations ("500ms"); unset or invalid values keep the defaults.
const (
	EnvAEInterval        = "CAIRN_TEST_AE_INTERVAL"
	EnvCheckReapInterval = "CAIRN_TEST_CHECK_REAP_INTERVAL"
	// EnvDeregisterCriticalMinimum lowers the 1-minute floor of
	// deregister_critical_service_after.
	EnvDeregisterCriticalMinimum = "CAIRN_TEST_DEREG_CRITICAL_MIN"
)

// envDuration returns the positive duration in the environment variable
// name, or def.
func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return def
	}
	return d
}

// aeScale returns the full sync interval for a LAN pool of n nodes.
func aeScale(base time.Duration, n int) time.Duration {
	if n <= aeScaleThreshold {
		return base
	}
	f := 1 + int(math.Ceil(math.Log2(float64(n)/aeScaleThreshold)))
	return base * time.Duration(f)
}

// nextFullSync is the wait until the next full sync: the base interval
// scaled with the LAN pool's size (members that have not left), plus
// jitter.
func (a *Agent) nextFullSync(base time.Duration) time.Duration {
	n := 0
	for _, m := range a.lanMembers() {
		if m.Status != serf.StatusLeft {
			n++
		}
	}
	return a.jittered(aeScale(base, n))
}

// syncLoop keeps the catalog equal to the local state: a full sync at start
// and every fullSyncInterval (scaled with the cluster size, jittered), a partial sync whenever the local
// state changes, and retries with exponential backoff while the servers
// fail (e.g. no leader yet). leaderHint, when it fires, cuts a backoff short.
func (a *Agent) syncLoop(leaderHint <-chan struct{}) {
	defer a.wg.Done()

	needFull, dirty := true, false
	backoff := syncRetryMin
	var retryC <-chan time.Time
	var retryTimer *time.Timer
	base := envDuration(EnvAEInterval, a.fullSyncInterval)
	fullTimer := time.NewTimer(a.nextFullSync(base))
	defer fullTimer.Stop()
	defer func() {
		if retryTimer != nil {
			retryTimer.Stop()
		}
	}()

	for {
		if retryC == nil && (needFull || dirty) {
			var err error
			ctx, cancel := context.WithTimeout(a.stopCtx, syncTimeout)
			if needFull {
				err = a.local.SyncFull(ctx, a.caller)
			} else {
				err = a.local.SyncChanges(ctx, a.caller)
			}
			cancel()
			if err != nil {
				if a.stopCtx.Err() != nil {
					return
				}
				level := slog.LevelWarn
				if errors.Is(err, rpc.ErrNoLeader) && !a.isReady() {
					level = slog.LevelDebug // expected while the first election runs
				}
				a.logger.Log(a.stopCtx, level, "anti-entropy sync failed", "full", needFull, "retry_in", backoff, "error", err)
				retryTimer = time.NewTimer(backoff)
				retryC = retryTimer.C
				backoff = min(2*backoff, syncRetryMax)
			} else {
				if needFull {
					a.logger.Debug("anti-entropy full sync done")
					fullTimer.Reset(a.nextFullSync(base))
				}
				needFull, dirty = false, false
				backoff = syncRetryMin
				a.markReady()
			}
		}

		select {
		case <-a.stopCh:
			return
		case <-a.local.Notify():
			dirty = true
		case <-fullTimer.C:
			needFull = true
		case <-retryC:
			retryC, retryTimer = nil, nil
		case <-leaderHint:
			leaderHint = nil
			if retryTimer != nil {
				retryTimer.Stop()
			}
			retryC, retryTimer = nil, nil
			backoff = syncRetryMin
		}
	}
}

// jittered returns d plus up to 10% random jitter.
func (a *Agent) jittered(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Millisecond
	}
	return d + rand.N(d/10+1)
}

func (a *Agent) isReady() bool {
	select {
	case <-a.readyCh:
		return true
	default:
		return false
	}
}

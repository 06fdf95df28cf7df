package agent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
)

// Anti-entropy retry backoff bounds.
const (
	syncRetryMin = 50 * time.Millisecond
	syncRetryMax = 15 * time.Second
	syncTimeout  = 30 * time.Second
)

// syncLoop keeps the catalog equal to the local state: a full sync at start
// and every fullSyncInterval (with jitter), a partial sync whenever the local
// state changes, and retries with exponential backoff while the servers
// fail (e.g. no leader yet). leaderHint, when it fires, cuts a backoff short.
func (a *Agent) syncLoop(leaderHint <-chan struct{}) {
	defer a.wg.Done()

	needFull, dirty := true, false
	backoff := syncRetryMin
	var retryC <-chan time.Time
	var retryTimer *time.Timer
	fullTimer := time.NewTimer(a.jittered(a.fullSyncInterval))
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
					fullTimer.Reset(a.jittered(a.fullSyncInterval))
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

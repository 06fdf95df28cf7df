package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// DefaultRetryInterval is Consul's retry_interval default.
const DefaultRetryInterval = 30 * time.Second

// Joiner is the part of a Pool that RetryJoin needs.
type Joiner interface {
	Join(addrs []string, ignoreOld bool) (int, error)
}

// RetryJoin calls pool.Join(addrs) until at least one address is joined,
// waiting interval between attempts. It returns nil once joined, ctx's error
// when ctx is done, or an error wrapping ErrNoJoin after max attempts
// (max <= 0 means no limit). It blocks; run it in a goroutine the caller
// owns and cancel ctx on shutdown.
func RetryJoin(ctx context.Context, pool Joiner, addrs []string, interval time.Duration, max int, logger *slog.Logger) error {
	if len(addrs) == 0 {
		return nil
	}
	if interval <= 0 {
		interval = DefaultRetryInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastErr error
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		n, err := pool.Join(addrs, true)
		if n > 0 {
			logger.Info("retry join succeeded", "joined", n, "attempt", attempt)
			return nil
		}
		if err == nil {
			err = ErrNoJoin
		}
		lastErr = err
		if max > 0 && attempt >= max {
			return fmt.Errorf("%w: %v after %d attempts: %w", ErrNoJoin, addrs, attempt, lastErr)
		}
		logger.Warn("retry join failed", "addrs", addrs, "attempt", attempt, "retry_in", interval.String(), "error", err)
		timer.Reset(interval)
	}
}

package testutil

import (
	"testing"
	"time"
)

// Retry calls fn every step until it returns nil or timeout passes, then
// fails the test with fn's last error. fn always runs at least once.
func Retry(tb testing.TB, timeout, step time.Duration, fn func() error) {
	tb.Helper()
	if err := Poll(timeout, step, fn); err != nil {
		tb.Fatalf("condition not met within %s: %v", timeout, err)
	}
}

// Poll is Retry without a test: it returns nil as soon as fn does, or fn's
// last error once timeout has passed.
func Poll(timeout, step time.Duration, fn func() error) error {
	if step <= 0 {
		step = 10 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for {
		lastErr := fn()
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return lastErr
		}
		timer := time.NewTimer(step)
		<-timer.C
	}
}

//go:build !robustness

package robustness

import "time"

// The default suite does one short run.
const (
	defaultRuns     = 1
	defaultDuration = 20 * time.Second
)

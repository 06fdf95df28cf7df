//go:build robustness

package robustness

import "time"

// With -tags robustness: the long mode the issue asks for.
const (
	defaultRuns     = 20
	defaultDuration = 30 * time.Second
)

package checks

import "sync"

// StatusHandler is a Notifier that passes a result on only after enough
// consecutive successes or failures (success_before_passing,
// failures_before_warning, failures_before_critical). A warning counts as
// a success, as in Consul.
type StatusHandler struct {
	next                   Notifier
	successBeforePassing   int
	failuresBeforeWarning  int
	failuresBeforeCritical int

	mu        sync.Mutex
	successes int
	failures  int
}

// NewStatusHandler wraps next. Zero thresholds mean "at once";
// failuresBeforeWarning defaults to failuresBeforeCritical.
func NewStatusHandler(next Notifier, successBeforePassing, failuresBeforeWarning, failuresBeforeCritical int) *StatusHandler {
	if failuresBeforeWarning <= 0 || failuresBeforeWarning > failuresBeforeCritical {
		failuresBeforeWarning = failuresBeforeCritical
	}
	return &StatusHandler{
		next:                   next,
		successBeforePassing:   successBeforePassing,
		failuresBeforeWarning:  failuresBeforeWarning,
		failuresBeforeCritical: failuresBeforeCritical,
	}
}

// UpdateCheck implements Notifier.
func (h *StatusHandler) UpdateCheck(id, status, output string) {
	h.mu.Lock()
	forward, fstatus := false, status
	if status == "passing" || status == "warning" {
		h.failures = 0
		h.successes++
		forward = h.successes >= h.successBeforePassing
	} else {
		h.successes = 0
		h.failures++
		switch {
		case h.failures >= h.failuresBeforeCritical:
			forward = true
		case h.failures >= h.failuresBeforeWarning:
			forward, fstatus = true, "warning"
		}
	}
	h.mu.Unlock()
	if forward {
		h.next.UpdateCheck(id, fstatus, output)
	}
}

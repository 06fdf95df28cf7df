package checks

import (
	"sync"
	"time"
)

// TTLExpiredOutput is the output of a TTL check whose TTL ran out.
const TTLExpiredOutput = "TTL expired"

// TTL is a check whose status is pushed by the application
// (/v1/agent/check/pass etc.). When no update arrives within TTL it turns
// critical with output "TTL expired".
type TTL struct {
	id     string
	ttl    time.Duration
	notify Notifier

	mu      sync.Mutex
	timer   *time.Timer
	gen     uint64 // bumped on every update; a timer of an older generation does nothing
	stopped bool
	started bool
}

// NewTTL returns a TTL check; it starts counting at Start.
func NewTTL(id string, ttl time.Duration, n Notifier) *TTL {
	return &TTL{id: id, ttl: ttl, notify: n}
}

// Start arms the TTL.
func (t *TTL) Start() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started || t.stopped {
		return
	}
	t.started = true
	t.armLocked()
}

// Stop disarms the TTL. It is idempotent.
func (t *TTL) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}

// SetStatus reports status and output to the Notifier and re-arms the TTL.
func (t *TTL) SetStatus(status, output string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.notify.UpdateCheck(t.id, status, output)
	t.armLocked()
}

// armLocked (re)starts the timer. The timer's function runs on its own
// short-lived goroutine and takes the lock, so it cannot race an update.
func (t *TTL) armLocked() {
	if t.timer != nil {
		t.timer.Stop()
	}
	t.gen++
	gen := t.gen
	t.timer = time.AfterFunc(t.ttl, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.stopped || t.gen != gen {
			return
		}
		t.notify.UpdateCheck(t.id, "critical", TTLExpiredOutput)
	})
}

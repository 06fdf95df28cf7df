package checks

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Default values of interval checks.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultOutputMaxSize = 4096
)

// Check is a running health check.
//
// Start begins running the check; it is called once. Stop ends it, waits
// for its goroutines and is idempotent; after Stop returns no more updates
// are sent to the Notifier.
type Check interface {
	Start()
	Stop()
}

// Notifier receives a check's results. UpdateCheck is called from the
// check's goroutine (or, for TTL checks, from the caller of SetStatus); it
// must be safe for concurrent use, must not block for long and must not call
// back into the check.
type Notifier interface {
	UpdateCheck(id, status, output string)
}

// NotifierFunc adapts a function to a Notifier.
type NotifierFunc func(id, status, output string)

// UpdateCheck implements Notifier.
func (f NotifierFunc) UpdateCheck(id, status, output string) { f(id, status, output) }

// probe runs one check and returns its status and output. It must return
// by the time ctx is done.
type probe func(ctx context.Context) (status, output string)

// intervalRunner runs a probe every interval, the first time after a random
// stagger so that many checks registered together do not fire together.
type intervalRunner struct {
	id       string
	interval time.Duration
	probe    probe
	notify   Notifier
	onStop   func()

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func newIntervalRunner(id string, interval time.Duration, p probe, n Notifier, onStop func()) *intervalRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &intervalRunner{id: id, interval: interval, probe: p, notify: n, onStop: onStop, ctx: ctx, cancel: cancel}
}

func (r *intervalRunner) Start() {
	r.startOnce.Do(func() {
		r.wg.Add(1)
		go r.run()
	})
}

func (r *intervalRunner) Stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		if r.onStop != nil {
			r.onStop()
		}
	})
}

func (r *intervalRunner) run() {
	defer r.wg.Done()
	stagger := time.Duration(0)
	if r.interval > 0 {
		stagger = rand.N(r.interval)
	}
	t := time.NewTimer(stagger)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		status, output := r.probe(r.ctx)
		if r.ctx.Err() != nil {
			return // a result racing with Stop is dropped
		}
		r.notify.UpdateCheck(r.id, status, output)
		t.Reset(r.interval)
	}
}

// truncate cuts s to at most max bytes.
func truncate(s string, max int) string {
	if max <= 0 {
		max = DefaultOutputMaxSize
	}
	if len(s) > max {
		return s[:max]
	}
	return s
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadOptions marks options that cannot run.
var ErrBadOptions = errors.New("bench: bad options")

// OpFunc performs one operation for worker w and returns the index of its
// kind in RunOptions.Kinds (0 when there is one kind) and its error.
type OpFunc func(ctx context.Context, w int) (kind int, err error)

// RunOptions drive a closed loop: Clients workers each run op back to back
// until Duration has passed or Requests operations have been started.
type RunOptions struct {
	Clients  int
	Duration time.Duration
	Requests uint64
	// Kinds names the operation kinds; with more than one, the result has a
	// per-kind breakdown.
	Kinds []string
	// Progress receives a progress bar (carriage returns, no newlines until
	// the end) when non-nil; runs shorter than ProgressMin show none.
	Progress    io.Writer
	ProgressMin time.Duration
}

func (o *RunOptions) validate() error {
	if o.Clients < 1 {
		return fmt.Errorf("%w: clients must be at least 1 (got %d)", ErrBadOptions, o.Clients)
	}
	if o.Duration <= 0 && o.Requests == 0 {
		return fmt.Errorf("%w: give a duration or a request count", ErrBadOptions)
	}
	return nil
}

// Run runs op in a closed loop and fills in the counting fields of a
// Result (elapsed, ops, errors, rate, latency, breakdown, first error).
// Cancelling ctx stops the run early; what was measured so far is kept.
func Run(ctx context.Context, o RunOptions, op OpFunc) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(o.Kinds) == 0 {
		o.Kinds = []string{"op"}
	}
	var (
		started  atomic.Uint64
		done     atomic.Uint64
		errs     atomic.Uint64
		stop     atomic.Bool
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	hists := make([][]Histogram, o.Clients)
	begin := time.Now()
	deadline := time.Time{}
	if o.Duration > 0 {
		deadline = begin.Add(o.Duration)
	}
	for w := 0; w < o.Clients; w++ {
		hists[w] = make([]Histogram, len(o.Kinds))
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			h := hists[w]
			for !stop.Load() && ctx.Err() == nil {
				if o.Requests > 0 && started.Add(1) > o.Requests {
					return
				}
				t0 := time.Now()
				if !deadline.IsZero() && t0.After(deadline) {
					stop.Store(true)
					return
				}
				kind, err := op(ctx, w)
				lat := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if kind < 0 || kind >= len(h) {
					kind = 0
				}
				h[kind].Record(lat)
				done.Add(1)
			}
		}(w)
	}

	finished := make(chan struct{})
	var pwg sync.WaitGroup
	if o.Progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			progressLoop(o, begin, finished, &done, &errs)
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	close(finished)
	pwg.Wait()

	var all Histogram
	perKind := make([]Histogram, len(o.Kinds))
	for _, h := range hists {
		for k := range h {
			perKind[k].Merge(&h[k])
			all.Merge(&h[k])
		}
	}
	r := &Result{
		Clients:    o.Clients,
		ElapsedSec: elapsed.Seconds(),
		Ops:        all.Count(),
		Errors:     errs.Load(),
		OpsPerSec:  float64(all.Count()) / elapsed.Seconds(),
		Latency:    Summarize(&all),
	}
	if len(o.Kinds) > 1 {
		r.Breakdown = map[string]Latency{}
		for k, name := range o.Kinds {
			r.Breakdown[name] = Summarize(&perKind[k])
		}
	}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r, nil
}

// progressLoop redraws one status line every 250 ms until finished.
func progressLoop(o RunOptions, begin time.Time, finished <-chan struct{}, done, errs *atomic.Uint64) {
	minDur := o.ProgressMin
	if minDur == 0 {
		minDur = 3 * time.Second
	}
	if o.Duration > 0 && o.Duration < minDur {
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	drawn := false
	for {
		select {
		case <-finished:
			if drawn {
				fmt.Fprintf(o.Progress, "\r%s\r", strings.Repeat(" ", 78))
			}
			return
		case <-t.C:
			el := time.Since(begin)
			n := done.Load()
			frac := 0.0
			switch {
			case o.Duration > 0:
				frac = el.Seconds() / o.Duration.Seconds()
			case o.Requests > 0:
				frac = float64(n) / float64(o.Requests)
			}
			fmt.Fprintf(o.Progress, "\r%s", ProgressLine(frac, el, n, errs.Load()))
			drawn = true
		}
	}
}

// ProgressLine renders one progress bar line of at most 78 columns.
func ProgressLine(frac float64, elapsed time.Duration, ops, errs uint64) string {
	frac = min(max(frac, 0), 1)
	const width = 30
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(ops) / elapsed.Seconds()
	}
	return fmt.Sprintf("[%s] %3.0f%% %5.1fs %d ops %.0f/s %d err", bar, frac*100, elapsed.Seconds(), ops, rate, errs)
}

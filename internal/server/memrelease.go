package server

import (
	"runtime"
	"runtime/debug"
	"time"
)

// After a burst of writes the Go heap keeps the pages it grew into: the
// garbage collector lets the heap reach twice the live data (GOGC=100)
// before it collects, and the runtime's scavenger returns only what lies
// above that goal. A server that then goes quiet sits on that memory, at
// about twice its live data, until the next burst. The memory releaser
// watches Raft's applied index; once nothing has been applied for
// memReleaseIdle it collects and returns every free page to the OS, once
// per quiet period. The next burst grows the heap again as before; the
// cost is one full collection per quiet period, nothing while writes flow.
const (
	memReleaseInterval = 5 * time.Second
	memReleaseIdle     = 15 * time.Second
)

// memReleaser decides when the process has been quiet long enough.
type memReleaser struct {
	idle      time.Duration
	lastIndex uint64
	changed   time.Time
	released  bool
}

func newMemReleaser(idle time.Duration, now time.Time) *memReleaser {
	// Nothing to give back at start: the first release waits for a write.
	return &memReleaser{idle: idle, changed: now, released: true}
}

// observe records the applied index at now and reports whether to release
// memory now.
func (m *memReleaser) observe(now time.Time, index uint64) bool {
	if index != m.lastIndex {
		m.lastIndex, m.changed, m.released = index, now, false
		return false
	}
	if m.released || now.Sub(m.changed) < m.idle {
		return false
	}
	m.released = true
	return true
}

// releaseMemoryLoop runs the memory releaser until shutdown.
func (s *Server) releaseMemoryLoop() {
	t := time.NewTicker(memReleaseInterval)
	defer t.Stop()
	m := newMemReleaser(memReleaseIdle, time.Now())
	for {
		select {
		case <-s.shutdownCh:
			return
		case now := <-t.C:
			if !m.observe(now, s.raft.AppliedIndex()) {
				continue
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			debug.FreeOSMemory()
			runtime.ReadMemStats(&after)
			s.logger.Debug("returned free heap to the OS after a quiet period",
				"released_mb", (after.HeapReleased-before.HeapReleased)>>20,
				"heap_in_use_mb", after.HeapInuse>>20, "took", time.Since(start))
		}
	}
}

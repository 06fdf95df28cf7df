package checks

import (
	"sync"
	"time"
)

// DefaultScriptTimeout is the timeout of script and Docker checks that set
// none (Consul's default).
const DefaultScriptTimeout = 30 * time.Second

// exitStatus maps a script's exit code to a status: 0 passing, 1 warning,
// anything else (including death by signal, -1) critical.
func exitStatus(code int) string {
	switch code {
	case 0:
		return "passing"
	case 1:
		return "warning"
	}
	return "critical"
}

// tailBuffer is an io.Writer that keeps the last max bytes written: the end
// of a script's output usually says why it failed. Safe for concurrent use.
type tailBuffer struct {
	max int

	mu  sync.Mutex
	buf []byte
}

func newTailBuffer(max int) *tailBuffer {
	if max <= 0 {
		max = DefaultOutputMaxSize
	}
	return &tailBuffer{max: max}
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return n, nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

package testutil

import (
	"fmt"
	"sync"
)

// tailBuffer is an io.Writer keeping the last max bytes written to it, safe
// for the two goroutines exec copies stdout and stderr with.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped int64
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		// Drop a little more than needed so we do not copy on every write.
		cut := over + b.max/8
		if cut > len(b.buf) {
			cut = len(b.buf)
		}
		b.dropped += int64(cut)
		b.buf = append(b.buf[:0], b.buf[cut:]...)
	}
	return len(p), nil
}

// String returns what is kept, noting how much was dropped before it.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[... %d earlier bytes dropped ...]\n%s", b.dropped, b.buf)
	}
	return string(b.buf)
}

// tail returns at most the last n bytes kept.
func (b *tailBuffer) tail(n int) string {
	s := b.String()
	if len(s) > n {
		return "[...]\n" + s[len(s)-n:]
	}
	return s
}

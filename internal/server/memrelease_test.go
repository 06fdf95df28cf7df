package server

import (
	"testing"
	"time"
)

func TestMemReleaser_OncePerQuietPeriod(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newMemReleaser(15*time.Second, t0)
	steps := []struct {
		at    time.Duration
		index uint64
		want  bool
	}{
		{5 * time.Second, 0, false},   // start: nothing written yet
		{30 * time.Second, 0, false},  // still nothing to give back
		{35 * time.Second, 10, false}, // writes
		{40 * time.Second, 20, false},
		{45 * time.Second, 20, false}, // quiet 5 s
		{54 * time.Second, 20, false}, // quiet 14 s
		{55 * time.Second, 20, true},  // quiet 15 s: release
		{60 * time.Second, 20, false}, // once only
		{90 * time.Second, 20, false},
		{95 * time.Second, 21, false}, // a write starts a new period
		{109 * time.Second, 21, false},
		{110 * time.Second, 21, true},
	}
	for _, st := range steps {
		if got := m.observe(t0.Add(st.at), st.index); got != st.want {
			t.Fatalf("at %s index %d: release = %v, want %v", st.at, st.index, got, st.want)
		}
	}
}

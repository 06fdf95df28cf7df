package testutil

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(envProbeDial); addr != "" {
		runProbe(addr)
		return
	}
	if os.Getenv(envFake) == "1" {
		runFakeAgent()
		return
	}
	goleak.VerifyTestMain(m)
}

func TestPoll(t *testing.T) {
	t.Run("succeeds eventually", func(t *testing.T) {
		n := 0
		err := Poll(time.Second, time.Millisecond, func() error {
			n++
			if n < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("err %v after %d calls", err, n)
		}
	})
	t.Run("returns last error on timeout", func(t *testing.T) {
		n := 0
		start := time.Now()
		err := Poll(50*time.Millisecond, 5*time.Millisecond, func() error {
			n++
			return errors.New("attempt " + strconv.Itoa(n))
		})
		if err == nil || err.Error() != "attempt "+strconv.Itoa(n) {
			t.Fatalf("want last error, got %v (n=%d)", err, n)
		}
		if time.Since(start) < 50*time.Millisecond {
			t.Fatal("gave up before the deadline")
		}
	})
	t.Run("runs at least once with zero timeout", func(t *testing.T) {
		called := false
		if err := Poll(0, 0, func() error { called = true; return nil }); err != nil || !called {
			t.Fatalf("err %v called %v", err, called)
		}
	})
}

func TestFreePorts(t *testing.T) {
	ports := FreePorts(t, 20)
	more := FreePorts(t, 20)
	seen := map[int]bool{}
	for _, p := range append(ports, more...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort(LoopbackAddr, strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		_ = l.Close()
	}
}

func TestTailBuffer(t *testing.T) {
	b := newTailBuffer(100)
	for i := 0; i < 50; i++ {
		_, _ = b.Write([]byte("0123456789"))
	}
	s := b.String()
	if !strings.Contains(s, "earlier bytes dropped") {
		t.Fatalf("expected a dropped note: %q", s)
	}
	if !strings.HasSuffix(s, "0123456789") {
		t.Fatalf("tail lost: %q", s)
	}
	if len(b.buf) > 100 {
		t.Fatalf("kept %d bytes, max 100", len(b.buf))
	}
	if got := b.tail(5); got != "[...]\n56789" {
		t.Fatalf("tail(5) = %q", got)
	}
}

func TestStartAgent_MissingBinary(t *testing.T) {
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		StartAgent(ft, AgentOptions{Dev: true, Binary: "/nonexistent/cairn"})
	}()
	if !ft.fataled {
		t.Fatal("starting a missing binary must fail the test")
	}
}

// fakeTB records Fatalf instead of stopping the real test.
type fakeTB struct {
	testing.TB
	fataled bool
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fataled = true
	panic("fatal")
}
func (f *fakeTB) Helper() {}

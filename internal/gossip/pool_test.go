package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger sends pool logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startPool(t *testing.T, name string, tags map[string]string) *Pool {
	t.Helper()
	p, err := New(Config{
		NodeName:   name,
		Datacenter: "dc1",
		BindAddr:   "127.0.0.1",
		BindPort:   0,
		Tags:       tags,
		Logger:     testLogger(t),
		Tune: func(c *serf.Config) {
			c.ReapInterval = 200 * time.Millisecond
		},
	})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

func joinAddr(p *Pool) string {
	addr, port := p.Addr()
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func memberStatus(p *Pool, name string) serf.MemberStatus {
	for _, m := range p.Members() {
		if m.Name == name {
			return m.Status
		}
	}
	return serf.StatusNone
}

func countAlive(p *Pool) int {
	n := 0
	for _, m := range p.Members() {
		if m.Status == serf.StatusAlive {
			n++
		}
	}
	return n
}

// eventRecorder drains a pool's Events channel and remembers what it saw.
type eventRecorder struct {
	mu   sync.Mutex
	seen map[string][]serf.EventType
	done chan struct{}
}

func recordEvents(p *Pool) *eventRecorder {
	r := &eventRecorder{seen: map[string][]serf.EventType{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range p.Events() {
			r.mu.Lock()
			r.seen[ev.Member.Name] = append(r.seen[ev.Member.Name], ev.Type)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *eventRecorder) saw(name string, typ serf.EventType) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.seen[name] {
		if e == typ {
			return true
		}
	}
	return false
}

func TestPool_JoinFailLeave(t *testing.T) {
	tags := map[string]string{TagRole: RoleServer, TagPort: "8300"}
	p1 := startPool(t, "n1", tags)
	p2 := startPool(t, "n2", tags)
	p3 := startPool(t, "n3", map[string]string{TagRole: RoleClient})
	rec := recordEvents(p1)

	addr, port := p1.Addr()
	require.Equal(t, "127.0.0.1", addr)
	require.NotZero(t, port)
	require.Equal(t, "dc1", p1.LocalMember().Tags[TagDatacenter], "dc tag defaults to the datacenter")

	for _, p := range []*Pool{p2, p3} {
		n, err := p.Join([]string{joinAddr(p1)}, false)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	for _, p := range []*Pool{p1, p2, p3} {
		waitFor(t, 5*time.Second, p.NodeName()+" sees 3 alive", func() bool { return countAlive(p) == 3 })
	}
	waitFor(t, 5*time.Second, "join events", func() bool {
		return rec.saw("n2", serf.EventMemberJoin) && rec.saw("n3", serf.EventMemberJoin)
	})

	// Shutdown without leave: the others declare n3 failed quickly.
	start := time.Now()
	require.NoError(t, p3.Shutdown())
	for _, p := range []*Pool{p1, p2} {
		waitFor(t, 6*time.Second, p.NodeName()+" sees n3 failed", func() bool { return memberStatus(p, "n3") == serf.StatusFailed })
	}
	t.Logf("failure detected after %s", time.Since(start))
	waitFor(t, 2*time.Second, "failed event", func() bool { return rec.saw("n3", serf.EventMemberFailed) })

	// Graceful leave: n2 is seen as left.
	require.NoError(t, p2.Leave())
	waitFor(t, 5*time.Second, "n1 sees n2 left", func() bool { return memberStatus(p1, "n2") == serf.StatusLeft })
	waitFor(t, 2*time.Second, "leave event", func() bool { return rec.saw("n2", serf.EventMemberLeave) })
	require.NoError(t, p2.Shutdown())

	// Force-leave with prune forgets the failed member.
	require.NoError(t, p1.ForceLeave("n3", true))
	waitFor(t, 5*time.Second, "n3 pruned", func() bool { return memberStatus(p1, "n3") == serf.StatusNone })

	require.NoError(t, p1.Shutdown())
	require.NoError(t, p1.Shutdown(), "shutdown is idempotent")
	<-rec.done // Events is closed by Shutdown
}

func TestPool_SetTagsUpdateEvent(t *testing.T) {
	p1 := startPool(t, "a", map[string]string{TagRole: RoleClient})
	p2 := startPool(t, "b", map[string]string{TagRole: RoleClient})
	rec := recordEvents(p1)
	_, err := p2.Join([]string{joinAddr(p1)}, false)
	require.NoError(t, err)
	waitFor(t, 5*time.Second, "2 alive", func() bool { return countAlive(p1) == 2 })

	require.NoError(t, p2.SetTags(map[string]string{TagRole: RoleClient, "x": "y"}))
	waitFor(t, 5*time.Second, "update event", func() bool { return rec.saw("b", serf.EventMemberUpdate) })
	for _, m := range p1.Members() {
		if m.Name == "b" {
			require.Equal(t, "y", m.Tags["x"])
		}
	}
	require.NoError(t, p1.Shutdown())
	<-rec.done
}

func TestPool_UserEvents(t *testing.T) {
	p1 := startPool(t, "u1", nil)
	p2 := startPool(t, "u2", nil)
	_, err := p2.Join([]string{joinAddr(p1)}, false)
	require.NoError(t, err)
	require.NoError(t, p2.Serf().UserEvent("deploy", []byte("v1"), false))
	select {
	case ev := <-p1.UserEvents():
		require.Equal(t, "deploy", ev.Name)
		require.Equal(t, []byte("v1"), ev.Payload)
	case <-time.After(5 * time.Second):
		t.Fatal("no user event")
	}
}

func TestPool_Lifecycle(t *testing.T) {
	_, err := New(Config{})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{NodeName: "x", EncryptKey: []byte("short")})
	require.ErrorIs(t, err, ErrInvalidConfig)

	p, err := New(Config{NodeName: "x", BindAddr: "127.0.0.1"})
	require.NoError(t, err)
	_, err = p.Join([]string{"127.0.0.1:1"}, false)
	require.ErrorIs(t, err, ErrNotStarted)
	require.Nil(t, p.Members())
	require.NoError(t, p.Shutdown(), "shutdown before start")
	_, ok := <-p.Events()
	require.False(t, ok, "events closed")
	require.ErrorIs(t, p.Start(), ErrShutdown)
}

func TestPool_Encrypted(t *testing.T) {
	key := []byte("0123456789abcdef")
	mk := func(name string, key []byte) *Pool {
		p, err := New(Config{NodeName: name, BindAddr: "127.0.0.1", EncryptKey: key, Logger: testLogger(t)})
		require.NoError(t, err)
		require.NoError(t, p.Start())
		t.Cleanup(func() { _ = p.Shutdown() })
		return p
	}
	p1 := mk("e1", key)
	p2 := mk("e2", key)
	p3 := mk("e3", nil)
	_, err := p2.Join([]string{joinAddr(p1)}, false)
	require.NoError(t, err)
	_, err = p3.Join([]string{joinAddr(p1)}, false)
	require.Error(t, err, "a member without the key cannot join")
	require.True(t, p1.Serf().EncryptionEnabled())
}

type fakeJoiner struct {
	mu        sync.Mutex
	calls     int
	succeedAt int
}

func (f *fakeJoiner) Join(addrs []string, _ bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.succeedAt > 0 && f.calls >= f.succeedAt {
		return len(addrs), nil
	}
	return 0, fmt.Errorf("dial %v: connection refused", addrs)
}

func TestRetryJoin(t *testing.T) {
	t.Run("succeeds after retries", func(t *testing.T) {
		f := &fakeJoiner{succeedAt: 3}
		err := RetryJoin(context.Background(), f, []string{"a"}, time.Millisecond, 0, nil)
		require.NoError(t, err)
		require.Equal(t, 3, f.calls)
	})
	t.Run("gives up after max", func(t *testing.T) {
		f := &fakeJoiner{}
		err := RetryJoin(context.Background(), f, []string{"a"}, time.Millisecond, 4, nil)
		require.ErrorIs(t, err, ErrNoJoin)
		require.Equal(t, 4, f.calls)
	})
	t.Run("stops on cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := RetryJoin(ctx, &fakeJoiner{}, []string{"a"}, time.Hour, 0, nil)
		require.True(t, errors.Is(err, context.DeadlineExceeded))
	})
	t.Run("real pools", func(t *testing.T) {
		p1 := startPool(t, "r1", nil)
		p2 := startPool(t, "r2", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, RetryJoin(ctx, p2, []string{"127.0.0.1:1", joinAddr(p1)}, 10*time.Millisecond, 0, nil))
		waitFor(t, 5*time.Second, "joined", func() bool { return countAlive(p1) == 2 })
	})
}

func TestPool_WAN(t *testing.T) {
	mk := func(name string) *Pool {
		p, err := New(Config{NodeName: name, Datacenter: "dc" + name[len(name)-1:], BindAddr: "127.0.0.1", WAN: true,
			Tags: map[string]string{TagRole: RoleServer, TagPort: "8300"}, Logger: testLogger(t)})
		require.NoError(t, err)
		require.NoError(t, p.Start())
		t.Cleanup(func() { _ = p.Shutdown() })
		return p
	}
	p1 := mk("s1.dc1")
	p2 := mk("s1.dc2")
	_, err := p2.Join([]string{joinAddr(p1)}, false)
	require.NoError(t, err)
	waitFor(t, 5*time.Second, "2 alive on the WAN", func() bool { return countAlive(p1) == 2 })
	dcs := map[string]bool{}
	for _, m := range p1.Members() {
		info, ok := IsServer(m)
		require.True(t, ok)
		dcs[info.Datacenter] = true
	}
	require.Equal(t, map[string]bool{"dc1": true, "dc2": true}, dcs)
}

package checks

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Notifier that keeps the last result per check.
type recorder struct {
	mu   sync.Mutex
	last map[string][2]string
	n    int
}

func (r *recorder) UpdateCheck(id, status, output string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[string][2]string{}
	}
	r.last[id] = [2]string{status, output}
	r.n++
}

func (r *recorder) get(id string) (string, string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.last[id]
	return v[0], v[1], r.n
}

func waitStatus(t *testing.T, r *recorder, id, want string) string {
	t.Helper()
	var out string
	require.Eventually(t, func() bool {
		var st string
		st, out, _ = r.get(id)
		return st == want
	}, 5*time.Second, 5*time.Millisecond, "check %s never became %s", id, want)
	return out
}

func TestTTL_ExpiresAndRearms(t *testing.T) {
	r := &recorder{}
	c := NewTTL("t1", 100*time.Millisecond, r)
	c.Start()
	defer c.Stop()

	c.SetStatus("passing", "ok")
	st, out, _ := r.get("t1")
	require.Equal(t, "passing", st)
	require.Equal(t, "ok", out)

	out = waitStatus(t, r, "t1", "critical")
	require.Equal(t, TTLExpiredOutput, out)

	c.SetStatus("warning", "meh")
	st, _, _ = r.get("t1")
	require.Equal(t, "warning", st)
	waitStatus(t, r, "t1", "critical")
}

func TestTTL_UpdatesKeepItAlive(t *testing.T) {
	r := &recorder{}
	c := NewTTL("t", 150*time.Millisecond, r)
	c.Start()
	defer c.Stop()
	deadline := time.Now().Add(400 * time.Millisecond)
	for time.Now().Before(deadline) {
		c.SetStatus("passing", "")
		st, _, _ := r.get("t")
		require.Equal(t, "passing", st)
		time.Sleep(20 * time.Millisecond) // pacing the updates is the point of this test
	}
}

func TestTTL_StopSilences(t *testing.T) {
	r := &recorder{}
	c := NewTTL("t", 20*time.Millisecond, r)
	c.Start()
	c.Stop()
	c.Stop()
	c.SetStatus("passing", "")
	time.Sleep(60 * time.Millisecond) // nothing may happen; wait past the TTL
	_, _, n := r.get("t")
	require.Zero(t, n)
}

func TestHTTP_Statuses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("fine")) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) })
	mux.HandleFunc("/bad", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/hdr", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "yes" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name   string
		cfg    HTTPConfig
		status string
	}{
		{"ok", HTTPConfig{URL: srv.URL + "/ok"}, "passing"},
		{"429", HTTPConfig{URL: srv.URL + "/busy"}, "warning"},
		{"500", HTTPConfig{URL: srv.URL + "/bad"}, "critical"},
		{"redirect not followed", HTTPConfig{URL: srv.URL + "/redirect"}, "critical"},
		{"redirect followed", HTTPConfig{URL: srv.URL + "/redirect", FollowRedirects: true}, "passing"},
		{"method and header", HTTPConfig{URL: srv.URL + "/hdr", Method: "POST", Header: map[string][]string{"X-Test": {"yes"}}}, "passing"},
		{"refused", HTTPConfig{URL: "http://127.0.0.1:1/"}, "critical"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			tc.cfg.ID = "h"
			tc.cfg.Interval = 20 * time.Millisecond
			tc.cfg.Timeout = time.Second
			c := NewHTTP(tc.cfg, r)
			c.Start()
			defer c.Stop()
			out := waitStatus(t, r, "h", tc.status)
			require.Contains(t, out, tc.cfg.URL)
		})
	}
}

func TestHTTP_OutputTruncated(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 10000)))
	}))
	defer srv.Close()
	r := &recorder{}
	c := NewHTTP(HTTPConfig{ID: "h", URL: srv.URL, Interval: 10 * time.Millisecond, OutputMaxSize: 100}, r)
	c.Start()
	defer c.Stop()
	out := waitStatus(t, r, "h", "passing")
	require.Len(t, out, 100)
}

func TestTCP_Statuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	defer func() { _ = ln.Close(); wg.Wait() }()

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := closed.Addr().String()
	require.NoError(t, closed.Close())

	for _, tc := range []struct {
		name, addr, status string
	}{
		{"open", ln.Addr().String(), "passing"},
		{"closed", closedAddr, "critical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			c := NewTCP(TCPConfig{ID: "c", Address: tc.addr, Interval: 10 * time.Millisecond, Timeout: time.Second}, r)
			c.Start()
			defer c.Stop()
			waitStatus(t, r, "c", tc.status)
		})
	}
}

func TestStatusHandler_Thresholds(t *testing.T) {
	r := &recorder{}
	h := NewStatusHandler(r, 2, 1, 3)
	steps := []struct{ in, want string }{
		{"passing", ""}, // 1 success, below 2
		{"passing", "passing"},
		{"critical", "warning"}, // 1 failure: warning threshold
		{"critical", "warning"},
		{"critical", "critical"},
		{"passing", "critical"}, // one success is not enough
		{"passing", "passing"},
	}
	for i, s := range steps {
		h.UpdateCheck("x", s.in, "")
		st, _, _ := r.get("x")
		require.Equal(t, s.want, st, "step %d", i)
	}
}

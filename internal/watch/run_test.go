package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConsul serves a blocking /v1/kv/<key> whose index is the whole
// store's (so writes to other keys wake it with the same data, as a table
// index does) and /v1/event/list with Consul's ID-derived index.
type fakeConsul struct {
	mu      sync.Mutex
	index   uint64
	kv      map[string]string
	events  []*api.UserEvent
	changed chan struct{}
	fail    int // answer this many requests with 500
}

func newFakeConsul() *fakeConsul {
	return &fakeConsul{index: 5, kv: map[string]string{}, changed: make(chan struct{})}
}

func (f *fakeConsul) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) put(k, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kv[k] = v
	f.bump()
}

func (f *fakeConsul) fire(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.events) + 1
	f.events = append(f.events, &api.UserEvent{ID: fmt.Sprintf("%08x-0000-0000-0000-%012x", n, n*7), Name: name, Version: 1})
	f.bump()
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		http.Error(w, "No cluster leader", 500)
		return
	}
	f.mu.Unlock()
	want, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	for {
		f.mu.Lock()
		var (
			idx  uint64
			body any
			code = 200
		)
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/kv/"):
			idx = f.index
			k := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
			if v, ok := f.kv[k]; ok {
				body = []*api.KVPair{{Key: k, Value: []byte(v)}}
			} else {
				code = 404
			}
		case r.URL.Path == "/v1/event/list":
			idx = 1
			if len(f.events) > 0 {
				idx = (&api.Event{}).IDToIndex(f.events[len(f.events)-1].ID)
			}
			body = append([]*api.UserEvent(nil), f.events...)
		default:
			f.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		ch := f.changed
		f.mu.Unlock()
		if want == 0 || idx != want {
			w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
			w.WriteHeader(code)
			if body != nil {
				_ = json.NewEncoder(w).Encode(body)
			}
			return
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
}

func testClient(t *testing.T, h http.Handler) *api.Client {
	srv := httptest.NewServer(h)
	tr := &http.Transport{}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	c, err := api.NewClient(&api.Config{Address: srv.Listener.Addr().String(), HttpClient: &http.Client{Transport: tr}})
	require.NoError(t, err)
	return c
}

// recorder collects handler calls.
type recorder struct {
	mu    sync.Mutex
	calls []string
	idx   []uint64
}

func (r *recorder) handle(_ context.Context, index uint64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, string(data))
	r.idx = append(r.idx, index)
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func waitCalls(t *testing.T, r *recorder, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.snapshot()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d handler calls, have %d: %v", n, len(got), got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runPlan(t *testing.T, params map[string]any, c *api.Client, h HandlerFunc) {
	t.Helper()
	p, err := Parse(params)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, c, h, nil) }()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

func TestRun_KeyFiresOncePerChange(t *testing.T) {
	fc := newFakeConsul()
	var rec recorder
	runPlan(t, map[string]any{"type": "key", "key": "k"}, testClient(t, fc), rec.handle)

	require.Equal(t, []string{"null"}, waitCalls(t, &rec, 1), "first run fires with the current (missing) key")
	fc.put("k", "v1")
	waitCalls(t, &rec, 2)
	fc.put("other", "x") // new index, same data: no call
	fc.put("k", "v2")
	waitCalls(t, &rec, 3)
	fc.put("other", "y")
	fc.put("k", "v2") // identical result: no call
	fc.put("k", "v3")
	waitCalls(t, &rec, 4)
	time.Sleep(50 * time.Millisecond) // nothing more may arrive
	got := rec.snapshot()
	require.Len(t, got, 4, "%v", got)
	for i, want := range []string{"v1", "v2", "v3"} {
		var pair api.KVPair
		require.NoError(t, json.Unmarshal([]byte(got[i+1]), &pair))
		require.Equal(t, want, string(pair.Value))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := 1; i < len(rec.idx); i++ {
		require.Greater(t, rec.idx[i], rec.idx[i-1])
	}
}

func TestRun_RetriesAfterErrors(t *testing.T) {
	fc := newFakeConsul()
	fc.fail = 2
	fc.put("k", "v")
	var rec recorder
	runPlan(t, map[string]any{"type": "key", "key": "k"}, testClient(t, fc), rec.handle)
	got := waitCalls(t, &rec, 1)
	require.Contains(t, got[0], base64Of("v"))
}

func base64Of(s string) string {
	b, _ := json.Marshal([]byte(s))
	return strings.Trim(string(b), `"`)
}

func TestRun_EventDeliversOnlyNewEvents(t *testing.T) {
	fc := newFakeConsul()
	fc.fire("a")
	fc.fire("b")
	var rec recorder
	runPlan(t, map[string]any{"type": "event"}, testClient(t, fc), rec.handle)
	names := func(data string) []string {
		var evs []api.UserEvent
		require.NoError(t, json.Unmarshal([]byte(data), &evs))
		var out []string
		for _, e := range evs {
			out = append(out, e.Name)
		}
		return out
	}
	got := waitCalls(t, &rec, 1)
	require.Equal(t, []string{"a", "b"}, names(got[0]), "first run: every event")
	fc.fire("c")
	got = waitCalls(t, &rec, 2)
	require.Equal(t, []string{"c"}, names(got[1]))
	fc.fire("d")
	fc.fire("e")
	deadline := time.Now().Add(10 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		seen = nil
		for _, c := range rec.snapshot()[2:] {
			seen = append(seen, names(c)...)
		}
		if len(seen) >= 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, []string{"d", "e"}, seen, "each event delivered exactly once")
}

func TestHandler_Script(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		cfg  HandlerConfig
	}{
		{"args", HandlerConfig{Type: HandlerScript, Args: []string{"/bin/sh", "-c", `{ cat; echo " $CONSUL_INDEX"; } > "$0"`, out}}},
		{"shell", HandlerConfig{Type: HandlerScript, Shell: `{ cat; echo " $CONSUL_INDEX"; } > ` + out}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := NewHandler(tc.cfg, HandlerOptions{})
			require.NoError(t, err)
			defer h.Close()
			h.Func(context.Background(), 42, []byte(`{"a":1}`))
			b, err := os.ReadFile(out)
			require.NoError(t, err)
			require.Equal(t, `{"a":1} 42`+"\n", string(b))
		})
	}
	t.Run("failure is logged, not fatal", func(t *testing.T) {
		h, err := NewHandler(HandlerConfig{Type: HandlerScript, Args: []string{"/nonexistent/handler"}}, HandlerOptions{})
		require.NoError(t, err)
		h.Func(context.Background(), 1, []byte("{}"))
	})
}

func TestHandler_HTTP(t *testing.T) {
	type call struct {
		method, index, hdr, body string
	}
	calls := make(chan call, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		calls <- call{r.Method, r.Header.Get("X-Consul-Index"), r.Header.Get("X-Custom"), string(b)}
	}))
	defer srv.Close()
	h, err := NewHandler(HandlerConfig{Type: HandlerHTTP, HTTP: HTTPConfig{Path: srv.URL + "/hook", Method: "PUT",
		Header: map[string][]string{"X-Custom": {"yes"}}, Timeout: 5 * time.Second}}, HandlerOptions{})
	require.NoError(t, err)
	defer h.Close()
	h.Func(context.Background(), 7, []byte(`[1,2]`))
	select {
	case c := <-calls:
		require.Equal(t, call{"PUT", "7", "yes", "[1,2]"}, c)
	case <-time.After(5 * time.Second):
		t.Fatal("http handler not called")
	}
}

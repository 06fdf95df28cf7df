package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// captureRequest returns the bytes consul/api writes for a blocking KV
// get, read off a plain listener that then drops the connection.
func captureRequest(t *testing.T, token, consistency, key string, index uint64) (addr string, raw []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		rd := bufio.NewReader(conn)
		var b []byte
		for !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			c, err := rd.ReadByte()
			if err != nil {
				break
			}
			b = append(b, c)
		}
		got <- b
	}()
	// The api mode's own client, so the two modes send the same bytes.
	c, err := newAPIWatchClient(Config{Addrs: []string{ln.Addr().String()}, Token: token, Consistency: consistency, Watchers: 1}, key)
	require.NoError(t, err)
	defer c.close()
	_, err = c.watcher(0)(context.Background(), index, func() {})
	require.Error(t, err, "the listener answers nothing")
	select {
	case b := <-got:
		return ln.Addr().String(), b
	case <-time.After(10 * time.Second):
		t.Fatal("no request captured")
	}
	return "", nil
}

func TestRawWatch_RequestMatchesAPI(t *testing.T) {
	for _, tc := range []struct{ name, token, consistency, key string }{
		{"default", "", "default", "bench/watch"},
		{"token", "2f1c1b0e-aaaa-bbbb-cccc-0123456789ab", "default", "bench/watch"},
		{"stale", "", "stale", "bench/watch"},
		{"consistent with token", "secret", "consistent", "bench/watch"},
		{"escaped key", "", "default", "bench/a key%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, want := captureRequest(t, tc.token, tc.consistency, tc.key, 4711)
			c, err := newRawWatchClient(Config{Addrs: []string{addr}, Token: tc.token, Consistency: tc.consistency}, tc.key)
			require.NoError(t, err)
			require.Equal(t, string(want), string(c.request(addr, 4711)))
		})
	}
}

// fakeKV is a one-key Consul KV endpoint: PUT bumps the index, GET with
// ?index=N blocks until the index passes N. bad, while positive, spoils
// that many answers to a blocking GET that wakes up, the way the spoil
// function writes them on the hijacked connection.
type fakeKV struct {
	key     string
	mu      sync.Mutex
	index   uint64
	changed chan struct{}
	bad     atomic.Int64
	spoil   func(w *bufio.ReadWriter, index uint64)
}

func newFakeKV(key string) *fakeKV { return &fakeKV{key: key, index: 1, changed: make(chan struct{})} }

func (f *fakeKV) entry(index uint64) []byte {
	return []byte(fmt.Sprintf(`[{"LockIndex":0,"Key":%q,"Flags":0,"Value":"MQ==","CreateIndex":1,"ModifyIndex":%d}]`, f.key, index))
}

func (f *fakeKV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/kv/"+f.key {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodPut {
		f.mu.Lock()
		f.index++
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		_, _ = w.Write([]byte("true"))
		return
	}
	wait, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	f.mu.Lock()
	idx, ch := f.index, f.changed
	f.mu.Unlock()
	woke := false
	if wait > 0 && idx <= wait {
		select {
		case <-ch:
			woke = true
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
		idx = f.index
		f.mu.Unlock()
	}
	if woke && f.spoil != nil && f.bad.Add(-1) >= 0 {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		f.spoil(rw, idx)
		_ = rw.Flush()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	_, _ = w.Write(f.entry(idx))
}

// spoilers write wrong answers a real client must reject.
var spoilers = map[string]func(f *fakeKV) func(w *bufio.ReadWriter, index uint64){
	"status 500": func(*fakeKV) func(*bufio.ReadWriter, uint64) {
		return func(w *bufio.ReadWriter, _ uint64) {
			fmt.Fprint(w, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")
		}
	},
	"truncated body": func(f *fakeKV) func(*bufio.ReadWriter, uint64) {
		return func(w *bufio.ReadWriter, index uint64) {
			body := f.entry(index)
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Consul-Index: %d\r\nContent-Length: %d\r\n\r\n%s", index, len(body), body[:len(body)/2])
		}
	},
	"truncated chunked body": func(f *fakeKV) func(*bufio.ReadWriter, uint64) {
		return func(w *bufio.ReadWriter, index uint64) {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Consul-Index: %d\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n[{\"Key\":\"be", index)
		}
	},
	"no index": func(f *fakeKV) func(*bufio.ReadWriter, uint64) {
		return func(w *bufio.ReadWriter, index uint64) {
			body := f.entry(index)
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	},
	"not json": func(f *fakeKV) func(*bufio.ReadWriter, uint64) {
		return func(w *bufio.ReadWriter, index uint64) {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Consul-Index: %d\r\nContent-Length: 5\r\n\r\n[{\"K\"", index)
		}
	},
	"another key": func(f *fakeKV) func(*bufio.ReadWriter, uint64) {
		return func(w *bufio.ReadWriter, index uint64) {
			body := bytes.Replace(f.entry(index), []byte(f.key), []byte("bench/other"), 1)
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Consul-Index: %d\r\nContent-Length: %d\r\n\r\n%s", index, len(body), body)
		}
	},
}

func TestRawWatch_ReadChecksAnswers(t *testing.T) {
	const key = "bench/watch"
	f := newFakeKV(key)
	good := map[string]func(w *bufio.ReadWriter, index uint64){
		"content-length": func(w *bufio.ReadWriter, index uint64) {
			body := f.entry(index)
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nx-consul-index: %d\r\nContent-Length: %d\r\n\r\n%s", index, len(body), body)
		},
		"chunked with trailer": func(w *bufio.ReadWriter, index uint64) {
			body := f.entry(index)
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Consul-Index: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-T: 1\r\n\r\n", index, len(body), body)
		},
		"gzip": func(w *bufio.ReadWriter, index uint64) {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = zw.Write(f.entry(index))
			_ = zw.Close()
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nX-Consul-Index: %d\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", index, z.Len(), z.Bytes())
		},
	}
	check := func(t *testing.T, answer func(w *bufio.ReadWriter, index uint64), wantErr bool) {
		var in bytes.Buffer
		out := bufio.NewReadWriter(bufio.NewReader(&in), bufio.NewWriter(&in))
		answer(out, 42)
		if !wantErr {
			answer(out, 43) // a second answer on the same connection
		}
		require.NoError(t, out.Flush())
		c, err := newRawWatchClient(Config{Addrs: []string{"x"}}, key)
		require.NoError(t, err)
		w := &rawWatcher{c: c, rd: bufio.NewReader(&in)}
		for _, want := range []uint64{42, 43} {
			got, keep, err := w.read()
			if wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, keep)
			require.Equal(t, want, got)
		}
	}
	for name, answer := range good {
		t.Run("good "+name, func(t *testing.T) { check(t, answer, false) })
	}
	for name, spoil := range spoilers {
		t.Run("bad "+name, func(t *testing.T) { check(t, spoil(f), true) })
	}
}

// TestWatchFanout_RawCountsBadAnswers runs the raw watchers against a
// fake agent that spoils one answer: that watcher counts an error,
// reconnects, asks again and is still woken for the write.
func TestWatchFanout_RawCountsBadAnswers(t *testing.T) {
	for name, spoil := range spoilers {
		t.Run(name, func(t *testing.T) {
			f := newFakeKV("bench/watch")
			f.spoil = spoil(f)
			f.bad.Store(1)
			srv := httptest.NewServer(f)
			defer srv.Close()
			cfg := DefaultConfig()
			cfg.Addrs = []string{strings.TrimPrefix(srv.URL, "http://")}
			cfg.Watchers, cfg.Writes, cfg.WatchClient = 20, 2, WatchClientRaw
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := RunWorkload(ctx, "watch-fanout", cfg)
			require.NoError(t, err)
			require.Equal(t, "watch-fanout (raw)", res.Workload)
			require.EqualValues(t, 1, res.Errors, "the spoiled answer is an error")
			require.EqualValues(t, 0, res.Extra["missed"])
			require.EqualValues(t, 40, res.Ops, "every watcher woken each round")
			require.Contains(t, res.FirstError, "blocking query")
		})
	}
}

func TestConfig_WatchClient(t *testing.T) {
	cfg := DefaultConfig()
	require.Equal(t, WatchClientAPI, cfg.WatchClient)
	cfg.WatchClient = "grpc"
	require.ErrorIs(t, cfg.Validate(), ErrBadOptions)
	require.ErrorContains(t, cfg.Validate(), "-watch-client must be api or raw")
}

package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// benchAgent satisfies httpapi.AgentBackend for a benchmark that only reads
// KV: none of its methods is called.
type benchAgent struct{ httpapi.AgentBackend }

// rawWatcher is one HTTP/1.1 connection doing blocking GETs with as little
// client-side work as possible, so that the benchmark's CPU is mostly the
// server's.
type rawWatcher struct {
	conn net.Conn
	rd   *bufio.Reader
	path string
}

// send writes the request consul/api sends for a KV get with WaitIndex and
// a 5 minute WaitTime (as cairn bench watch-fanout does).
func (w *rawWatcher) send(index uint64) error {
	_, err := fmt.Fprintf(w.conn, "GET %s?index=%d&wait=300000ms HTTP/1.1\r\nHost: 127.0.0.1:8500\r\n"+
		"User-Agent: Go-http-client/1.1\r\nContent-Type: application/json; charset=utf-8\r\nAccept-Encoding: gzip\r\n\r\n", w.path, index)
	return err
}

// read reads one response and returns its X-Consul-Index and body.
func (w *rawWatcher) read() (uint64, []byte, error) {
	var idx uint64
	length := -1
	status := ""
	for {
		line, err := w.rd.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if status == "" {
			status = string(line)
			continue
		}
		if len(line) == 0 {
			break
		}
		k, v, _ := bytes.Cut(line, []byte(": "))
		switch string(k) {
		case "X-Consul-Index":
			idx, _ = strconv.ParseUint(string(v), 10, 64)
		case "Content-Length":
			length, _ = strconv.Atoi(string(v))
		}
	}
	if status != "HTTP/1.1 200 OK" || length < 0 {
		return 0, nil, fmt.Errorf("unexpected response %q (length %d)", status, length)
	}
	body := make([]byte, length)
	if _, err := readFull(w.rd, body); err != nil {
		return 0, nil, err
	}
	return idx, body, nil
}

// processCPU is the user plus system CPU time the process has used, in ns.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func readFull(rd *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := rd.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// BenchmarkWatchFanout measures the agent's cost per write of waking n
// watchers that each hold a blocking GET /v1/kv/<key>?index=N on their own
// HTTP/1.1 connection (the watch fan-out of issue 7). One op is one write
// and every watcher's answer and next request; divide ns/op by n for the
// cost per woken watcher (the raw clients are kept cheap, but their CPU is
// in the figure too).
func BenchmarkWatchFanout(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) { benchWatchFanout(b, n) })
	}
}

func benchWatchFanout(b *testing.B, n int) {
	cfg := Config{
		NodeName: "s1", NodeID: "00000000-0000-0000-0000-000000000001", Datacenter: "dc1",
		InMemory: true, Bootstrap: true, ServerPort: 8300, RPCHoldTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	select {
	case <-s.LeaderReady():
	case <-time.After(5 * time.Second):
		b.Fatal("server did not become ready")
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Caller: s, Agent: benchAgent{}, Datacenter: "dc1"}))
	defer srv.Close()

	const key = "bench/watch"
	value := bytes.Repeat([]byte("v"), 64)
	put := func() {
		var ok bool
		if err := s.RPC(context.Background(), rpc.MethodKVSApply,
			&rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: key, Value: value}}, &ok); err != nil || !ok {
			b.Fatalf("put: %v %v", ok, err)
		}
	}
	put()
	var cur rpc.IndexedKVEntries
	if err := s.RPC(context.Background(), rpc.MethodKVSGet, &rpc.KeyRequest{Key: key}, &cur); err != nil {
		b.Fatal(err)
	}

	watchers := make([]*rawWatcher, n)
	for i := range watchers {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		watchers[i] = &rawWatcher{conn: conn, rd: bufio.NewReader(conn), path: "/v1/kv/" + key}
	}
	// Each watcher answers on results after every response; it sends its
	// next request before it reports.
	results := make(chan error, n)
	start := make(chan uint64, n)
	for _, w := range watchers {
		go func() {
			for idx := range start {
				if err := w.send(idx); err != nil {
					results <- err
					return
				}
				got, _, err := w.read()
				if err == nil && got <= idx {
					err = fmt.Errorf("index %d not above %d", got, idx)
				}
				results <- err
			}
		}()
	}
	defer close(start)
	armed := func(want int) {
		deadline := time.Now().Add(30 * time.Second)
		for s.coalesce.waiting() != want {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d watchers blocked", s.coalesce.waiting(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	idx := cur.Index
	for range n {
		start <- idx
	}
	armed(n)

	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for range b.N {
		put()
		for range n {
			if err := <-results; err != nil {
				b.Fatal(err)
			}
		}
		var now rpc.IndexedKVEntries
		if err := s.RPC(context.Background(), rpc.MethodKVSGet, &rpc.KeyRequest{Key: key}, &now); err != nil {
			b.Fatal(err)
		}
		idx = now.Index
		for range n {
			start <- idx
		}
		armed(n)
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N*n), "cpu-ns/watcher")
	// Wake the last round so the watchers' goroutines end with the server.
	put()
	for range n {
		<-results
	}
}

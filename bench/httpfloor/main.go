// Command httpfloor measures the floor under Cairn's watch fan-out figure
// on this machine: what N long-poll wake-ups cost Go HTTP servers that do
// nothing but answer them, driven the way `cairn bench watch-fanout` drives
// Cairn.
//
// It starts -servers server processes (itself, re-executed) that park every
// GET until a PUT arrives, then answer each with the headers Cairn sends
// and a body of the size of Cairn's answer for one small key. The client
// spreads N watchers over them round-robin (one connection each, as
// consul/api opens them), writes to every server at once, times each
// watcher's answer from the write's acknowledgement, and re-arms it with a
// new request, as the Consul blocking-query contract makes a client do.
// There is no Raft, state, RPC, ACL or JSON encoding on the server: on the
// same HTTP stack and machine, Cairn cannot do better than this.
//
// Usage:
//
//	go run ./bench/httpfloor [-servers 3] [-server h1|h2|raw] [-client raw|nethttp] [-watchers 10000] [-writes 10]
//
// Servers: h1 is net/http over plain TCP (what Cairn serves); h2 is
// net/http over TLS, where a net/http client multiplexes the watchers on
// a few HTTP/2 connections; raw is a goroutine per connection with the
// standard library's request parser and one write per answer, without
// net/http's connection machinery (and without noticing a client that goes
// away while parked). Clients: raw is the client of `watch-fanout
// -watch-client raw` itself (bench.RawWatcher: consul/api's request bytes,
// the answer read and checked by hand); nethttp is net/http's transport,
// what consul/api uses, without the api layer.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-io/cairn/internal/bench"
)

// watchedKey is the key every watcher asks for, and answerBody the size
// and shape of Cairn's answer for it.
const (
	watchedKey = "bench/watch"
	answerBody = `[{"LockIndex":0,"Key":"bench/watch","Flags":0,"Value":"MQ==","CreateIndex":10,"ModifyIndex":123}]`
)

// serveEnv, set to "MODE ADDR", makes the process a server: it listens on
// ADDR, prints the address it got on stdout and serves until its standard
// input closes (the parent ends it so, or by dying).
const serveEnv = "HTTPFLOOR_SERVE"

func main() {
	if v := os.Getenv(serveEnv); v != "" {
		if err := serveFromEnv(v); err != nil {
			fmt.Fprintln(os.Stderr, "httpfloor server:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.server, "server", "h1", "Server: h1, h2 or raw.")
	flag.StringVar(&o.client, "client", "raw", "Client: nethttp or raw (raw needs an h1 or raw server).")
	flag.IntVar(&o.servers, "servers", 1, "Server processes; watchers are spread over them round-robin.")
	flag.IntVar(&o.watchers, "watchers", 10000, "Watchers, one connection each (h2: multiplexed).")
	flag.IntVar(&o.writes, "writes", 10, "Writes, each waking every watcher.")
	flag.Parse()
	if _, err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "httpfloor:", err)
		os.Exit(1)
	}
}

type options struct {
	server, client            string
	servers, watchers, writes int
}

// report is what a run measured.
type report struct {
	answers       uint64        // answers timed (watchers x writes)
	errors        int64         // failed blocking queries
	p50, p99, max time.Duration // from the write's acknowledgement
	serverCPUms   uint64        // servers' CPU per write, ms
	clientCPUms   uint64        // this process's CPU per write, ms
}

func serveFromEnv(v string) error {
	mode, addr, ok := strings.Cut(v, " ")
	if !ok {
		return fmt.Errorf("%s=%q: want MODE ADDR", serveEnv, v)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	return serve(mode, ln)
}

// hub parks GETs until the next PUT. parked counts the GETs parked on the
// current generation, so the client knows when all are waiting.
type hub struct {
	mu     sync.Mutex
	gen    chan struct{}
	index  int64
	parked int
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut:
		h.mu.Lock()
		h.index++
		close(h.gen)
		h.gen, h.parked = make(chan struct{}), 0
		h.mu.Unlock()
	case r.URL.Path == "/parked":
		h.mu.Lock()
		n := h.parked
		h.mu.Unlock()
		fmt.Fprint(w, n)
	default:
		h.mu.Lock()
		g := h.gen
		h.parked++
		h.mu.Unlock()
		select {
		case <-g:
		case <-r.Context().Done():
			return
		}
		h.mu.Lock()
		idx := h.index
		h.mu.Unlock()
		hd := w.Header()
		hd["Content-Type"] = []string{"application/json"}
		hd["X-Consul-Effective-Consistency"] = []string{"leader"}
		hd["X-Consul-Index"] = []string{strconv.FormatInt(idx+100, 10)}
		hd["X-Consul-Knownleader"] = []string{"true"}
		hd["X-Consul-Lastcontact"] = []string{"0"}
		_, _ = io.WriteString(w, answerBody)
	}
}

func serve(mode string, ln net.Listener) error {
	h := &hub{gen: make(chan struct{})}
	switch mode {
	case "h1":
		return (&http.Server{Handler: h}).Serve(ln)
	case "h2":
		cert, err := selfSigned()
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
			HTTP2: &http.HTTP2Config{MaxConcurrentStreams: 1000}}
		return srv.ServeTLS(ln, "", "")
	case "raw":
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			go rawConn(c, h)
		}
	}
	return fmt.Errorf("unknown -server %q", mode)
}

// rawWriter collects one answer for rawConn.
type rawWriter struct {
	h    http.Header
	body bytes.Buffer
}

func (w *rawWriter) Header() http.Header         { return w.h }
func (w *rawWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *rawWriter) WriteHeader(int)             {}

// rawConn serves one connection without net/http's connection machinery:
// the standard parser, the handler, one write per answer.
func rawConn(c net.Conn, h http.Handler) {
	defer c.Close()
	br := bufio.NewReader(c)
	var out []byte
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		w := &rawWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		out = append(out[:0], "HTTP/1.1 200 OK\r\n"...)
		hb := bytes.NewBuffer(out)
		_ = w.h.Write(hb) // sorted by key, as net/http writes them
		out = hb.Bytes()
		out = append(out, "Date: "...)
		out = time.Now().UTC().AppendFormat(out, http.TimeFormat)
		out = append(out, "\r\nContent-Length: "...)
		out = strconv.AppendInt(out, int64(w.body.Len()), 10)
		out = append(out, "\r\n\r\n"...)
		out = append(out, w.body.Bytes()...)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "httpfloor"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// watchOnce is one watcher's blocking GET: it returns when answered.
type watchOnce func(ctx context.Context) error

func run(o options, out io.Writer) (*report, error) {
	server, client, nsrv, n, writes := o.server, o.client, o.servers, o.watchers, o.writes
	switch {
	case server != "h1" && server != "h2" && server != "raw":
		return nil, fmt.Errorf("-server must be h1, h2 or raw (got %q)", server)
	case client != "raw" && client != "nethttp":
		return nil, fmt.Errorf("-client must be raw or nethttp (got %q)", client)
	case client == "raw" && server == "h2":
		return nil, errors.New("-client raw speaks HTTP/1.1 only; use -server h1 or raw")
	case nsrv < 1 || n < 1 || writes < 1:
		return nil, errors.New("-servers, -watchers and -writes must be at least 1")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var addrs []string
	var pids []int
	for i := 0; i < nsrv; i++ {
		srv := exec.Command(self)
		srv.Env = append(os.Environ(), serveEnv+"="+server+" 127.0.0.1:0")
		srv.Stderr = os.Stderr
		stdout, err := srv.StdoutPipe()
		if err != nil {
			return nil, err
		}
		stdin, err := srv.StdinPipe() // held open while the server is wanted
		if err != nil {
			return nil, err
		}
		if err := srv.Start(); err != nil {
			return nil, err
		}
		defer func() { _ = stdin.Close(); _ = srv.Process.Kill(); _ = srv.Wait() }()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("server %d did not start: %w", i+1, err)
		}
		addrs, pids = append(addrs, strings.TrimSpace(line)), append(pids, srv.Process.Pid)
	}

	scheme := "http"
	tr := &http.Transport{MaxIdleConnsPerHost: n + 16, ForceAttemptHTTP2: true}
	if server == "h2" {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // a loopback benchmark against its own child
	}
	hc := &http.Client{Transport: tr}
	ctl := &http.Client{Transport: tr.Clone(), Timeout: 10 * time.Second}
	base := func(i int) string { return scheme + "://" + addrs[i] }
	mk := func(i int) watchOnce {
		if client == "raw" {
			w, err := bench.RawWatcher(addrs[i%nsrv], watchedKey)
			if err != nil {
				return func(context.Context) error { return err }
			}
			var idx uint64
			return func(ctx context.Context) error {
				got, err := w(ctx, idx)
				idx = got
				return err
			}
		}
		url := base(i%nsrv) + "/v1/kv/" + watchedKey + "?index=1&wait=300000ms"
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrivals := make([]atomic.Int64, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := mk(i)
			for ctx.Err() == nil {
				if err := w(ctx); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				arrivals[i].Store(int64(time.Since(t0)))
			}
		}(i)
	}
	defer wg.Wait()
	defer cancel()

	parked := func() int {
		sum := 0
		for i := range addrs {
			resp, err := ctl.Get(base(i) + "/parked")
			if err != nil {
				return -1
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			v, _ := strconv.Atoi(string(b))
			sum += v
		}
		return sum
	}
	srvCPU := func() uint64 {
		var t uint64
		for _, p := range pids {
			v, _ := bench.ProcCPUTicks(p)
			t += v
		}
		return t
	}
	// fire wakes every server's watchers; the "write" is acknowledged when
	// all have taken it.
	fire := func() error {
		var wg sync.WaitGroup
		errc := make(chan error, len(addrs))
		for i := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPut, base(i)+"/fire", nil)
				resp, err := ctl.Do(req)
				if err != nil {
					errc <- err
					return
				}
				resp.Body.Close()
			}()
		}
		wg.Wait()
		close(errc)
		return <-errc
	}
	var all bench.Histogram
	var srvTicks, cliTicks uint64
	fmt.Fprintf(out, "%d %s server(s), client %s, %d watchers, %d writes; ms from the write's ack\n", nsrv, server, client, n, writes)
	for w := 0; w < writes; w++ {
		deadline := time.Now().Add(60 * time.Second)
		for parked() != n {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("write %d: only %d of %d watchers parked after 60s (%d errors)", w+1, parked(), n, errs.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		s0 := srvCPU()
		c0, _ := bench.ProcCPUTicks(os.Getpid())
		start := time.Since(t0)
		if err := fire(); err != nil {
			return nil, fmt.Errorf("write %d: %w", w+1, err)
		}
		ack := time.Since(t0)
		for {
			done := 0
			for i := range arrivals {
				if time.Duration(arrivals[i].Load()) > start {
					done++
				}
			}
			if done == n {
				break
			}
			if time.Since(t0)-ack > 30*time.Second {
				return nil, fmt.Errorf("write %d: %d of %d watchers answered in 30s", w+1, done, n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		s1 := srvCPU()
		c1, _ := bench.ProcCPUTicks(os.Getpid())
		srvTicks += s1 - s0
		cliTicks += c1 - c0
		var h bench.Histogram
		for i := range arrivals {
			d := max(time.Duration(arrivals[i].Load())-ack, 0)
			h.Record(d)
			all.Record(d)
		}
		fmt.Fprintf(out, "write %2d: p50 %6.1f  p99 %6.1f  max %6.1f   cpu server %4d ms, client %4d ms\n", w+1,
			msf(h.Quantile(0.5)), msf(h.Quantile(0.99)), msf(h.Max()), (s1-s0)*10, (c1-c0)*10)
	}
	r := &report{answers: all.Count(), errors: errs.Load(), p50: all.Quantile(0.5), p99: all.Quantile(0.99), max: all.Max(),
		serverCPUms: srvTicks * 10 / uint64(writes), clientCPUms: cliTicks * 10 / uint64(writes)}
	fmt.Fprintf(out, "all:      p50 %6.1f  p99 %6.1f  max %6.1f   cpu per write: server %d ms, client %d ms; %d errors\n",
		msf(r.p50), msf(r.p99), msf(r.max), r.serverCPUms, r.clientCPUms, r.errors)
	return r, nil
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package checks

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-io/cairn/internal/state"
)

// Target modes: what a test target answers.
const (
	modePass = "pass"
	modeWarn = "warn"
	modeFail = "fail"
)

// testInterval is the probe interval of check tests: short, so that
// thresholds can be walked through quickly.
const testInterval = 50 * time.Millisecond

// httpTarget answers 200, 429 or 500 by mode; /redirect answers 302.
func startHTTPTarget(t *testing.T) (*httptest.Server, *atomic.Value) {
	t.Helper()
	var mode atomic.Value
	mode.Store(modePass)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		switch mode.Load() {
		case modePass:
			_, _ = w.Write([]byte("all good"))
		case modeWarn:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/health", http.StatusFound) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &mode
}

// scriptTarget is a shell script whose exit code is read from a file.
func startScriptTarget(t *testing.T) (args []string, set func(code int)) {
	t.Helper()
	dir := t.TempDir()
	codeFile := filepath.Join(dir, "code")
	script := filepath.Join(dir, "check.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\ncode=$(cat \""+codeFile+"\")\necho \"exiting with $code\"\nexit $code\n"), 0o755))
	set = func(code int) {
		tmp := codeFile + ".tmp"
		require.NoError(t, os.WriteFile(tmp, []byte(fmt.Sprint(code)), 0o644))
		require.NoError(t, os.Rename(tmp, codeFile)) // atomic: the script never reads a half-written file
	}
	set(0)
	return []string{script}, set
}

// grpcTarget is a grpc.health.v1 server.
type grpcTarget struct {
	addr   string
	health *health.Server
	srv    *grpc.Server
	wg     sync.WaitGroup
}

func startGRPCTarget(t *testing.T, tlsCfg *tls.Config) *grpcTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	g := &grpcTarget{addr: ln.Addr().String(), health: health.NewServer(), srv: grpc.NewServer(opts...)}
	healthpb.RegisterHealthServer(g.srv, g.health)
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g.health.SetServingStatus("my.Svc", healthpb.HealthCheckResponse_SERVING)
	g.wg.Add(1)
	go func() { defer g.wg.Done(); _ = g.srv.Serve(ln) }()
	t.Cleanup(func() { g.srv.Stop(); g.wg.Wait() })
	return g
}

// startH2CServer serves cleartext HTTP/2 (prior knowledge) only.
func startH2CServer(t *testing.T) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("h2c")) }),
		Protocols:         &p,
		ReadHeaderTimeout: 5 * time.Second,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			_ = srv.Close()
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// fakeDocker is a minimal Docker Engine exec API on a unix socket.
type fakeDocker struct {
	socket   string
	exitCode atomic.Int32
	output   atomic.Value // string

	mu   sync.Mutex
	cmds [][]string
}

func startFakeDocker(t *testing.T) *fakeDocker {
	t.Helper()
	dir, err := os.MkdirTemp("", "dock") // short: unix socket paths are limited to ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	fd := &fakeDocker{socket: filepath.Join(dir, "docker.sock")}
	fd.output.Store("checked")
	ln, err := net.Listen("unix", fd.socket)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /containers/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "web1" {
			http.Error(w, `{"message":"No such container"}`, http.StatusNotFound)
			return
		}
		var body struct{ Cmd []string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		fd.mu.Lock()
		fd.cmds = append(fd.cmds, body.Cmd)
		fd.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"Id":"exec1"}`))
	})
	mux.HandleFunc("POST /exec/{id}/start", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
		out := fd.output.Load().(string)
		half := len(out) / 2
		for i, part := range []string{out[:half], out[half:]} {
			hdr := make([]byte, 8)
			hdr[0] = byte(1 + i) // stdout, then stderr
			binary.BigEndian.PutUint32(hdr[4:], uint32(len(part)))
			_, _ = w.Write(append(hdr, part...))
		}
	})
	mux.HandleFunc("GET /exec/{id}/json", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, `{"Running":false,"ExitCode":%d}`, fd.exitCode.Load())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return fd
}

func (fd *fakeDocker) lastCmd() []string {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if len(fd.cmds) == 0 {
		return nil
	}
	return fd.cmds[len(fd.cmds)-1]
}

// fakeLocal is an AliasLocal whose checks the test sets.
type fakeLocal struct {
	mu       sync.Mutex
	changed  chan struct{}
	services map[string]*state.NodeService
	checks   map[string]*state.HealthCheck
}

func newFakeLocal() *fakeLocal {
	return &fakeLocal{changed: make(chan struct{}), services: map[string]*state.NodeService{}, checks: map[string]*state.HealthCheck{}}
}

func (f *fakeLocal) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeLocal) Service(id string) *state.NodeService {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.services[id]; s != nil {
		c := *s
		return &c
	}
	return nil
}

func (f *fakeLocal) Checks() map[string]*state.HealthCheck {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]*state.HealthCheck, len(f.checks))
	for id, c := range f.checks {
		cc := *c
		out[id] = &cc
	}
	return out
}

func (f *fakeLocal) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeLocal) setService(id string) {
	f.set(func() { f.services[id] = &state.NodeService{ID: id, Service: id} })
}

func (f *fakeLocal) setCheck(id, serviceID, status string) {
	f.set(func() { f.checks[id] = &state.HealthCheck{CheckID: id, ServiceID: serviceID, Status: status} })
}

// modeStatus maps a target mode to the health status it stands for.
func modeStatus(mode string) string {
	switch mode {
	case modePass:
		return state.HealthPassing
	case modeWarn:
		return state.HealthWarning
	}
	return state.HealthCritical
}

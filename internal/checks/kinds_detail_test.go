package checks

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// runUntil starts c, waits until it reports want on the recorder and
// returns that output.
func runUntil(t *testing.T, r *recorder, c Check, want string) string {
	t.Helper()
	c.Start()
	defer c.Stop()
	return waitStatus(t, r, "c", want)
}

func TestHTTP_RedirectIsTheResult(t *testing.T) {
	srv, _ := startHTTPTarget(t)
	r := &recorder{}
	out := runUntil(t, r, NewHTTP(HTTPConfig{ID: "c", URL: srv.URL + "/redirect", Interval: testInterval}, r), "critical")
	require.Contains(t, out, "302 Found", "the redirect itself is the result")

	r = &recorder{}
	out = runUntil(t, r, NewHTTP(HTTPConfig{ID: "c", URL: srv.URL + "/redirect", Interval: testInterval, FollowRedirects: true}, r), "passing")
	require.Contains(t, out, "all good")
}

func TestHTTP_MethodHeaderBodyAndTLS(t *testing.T) {
	var mu sync.Mutex
	var sni string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPut || string(b) != `{"check":true}` || r.Header.Get("X-Token") != "t1" || r.Host != "svc.example" {
			http.Error(w, fmt.Sprintf("got %s %q %v host %s", r.Method, b, r.Header, r.Host), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		sni = h.ServerName
		mu.Unlock()
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	cfg := HTTPConfig{
		ID: "c", URL: srv.URL, Method: http.MethodPut, Body: `{"check":true}`,
		Header:   map[string][]string{"X-Token": {"t1"}, "Host": {"svc.example"}},
		Interval: testInterval, Timeout: time.Second,
		TLSSkipVerify: true, TLSServerName: "cairn.test",
	}
	r := &recorder{}
	runUntil(t, r, NewHTTP(cfg, r), "passing")
	mu.Lock()
	require.Equal(t, "cairn.test", sni, "tls_server_name is sent as SNI")
	mu.Unlock()

	cfg.TLSSkipVerify = false
	r = &recorder{}
	out := runUntil(t, r, NewHTTP(cfg, r), "critical")
	require.Contains(t, out, "certificate", "an unverifiable certificate fails without tls_skip_verify")
}

func TestHTTP_DefaultOutputMaxSize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("y", 3*DefaultOutputMaxSize)))
	}))
	defer srv.Close()
	r := &recorder{}
	out := runUntil(t, r, NewHTTP(HTTPConfig{ID: "c", URL: srv.URL, Interval: testInterval}, r), "passing")
	require.Len(t, out, DefaultOutputMaxSize)
}

func TestTCP_TLSHandshakeMustSucceed(t *testing.T) {
	plain := startTCPTarget(t, nil)
	withTLS := startTCPTarget(t, &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}, MinVersion: tls.VersionTLS12})
	tests := []struct {
		name, addr string
		skip       bool
		status     string
		output     string
	}{
		{"tls target, skip verify", withTLS.addr(), true, "passing", "TCP+TLS connect"},
		{"tls target, verified", withTLS.addr(), false, "critical", "certificate"},
		{"plain target", plain.addr(), true, "critical", "TCP+TLS connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			out := runUntil(t, r, NewTCP(TCPConfig{ID: "c", Address: tc.addr, Interval: testInterval, Timeout: time.Second, UseTLS: true, TLSSkipVerify: tc.skip}, r), tc.status)
			require.Contains(t, out, tc.output)
		})
	}
}

func TestUDP_Replies(t *testing.T) {
	echo := startUDPTarget(t, false)
	silent := startUDPTarget(t, true)
	tests := []struct {
		name, addr, status, output string
	}{
		{"reply", echo.addr(), "passing", "4 bytes received"},
		{"silence until the timeout", silent.addr(), "passing", "no reply within"},
		{"closed port", closedAddr(t, "udp"), "critical", "refused"},
		{"bad address", "127.0.0.1", "critical", "missing port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			out := runUntil(t, r, NewUDP(UDPConfig{ID: "c", Address: tc.addr, Interval: testInterval, Timeout: 200 * time.Millisecond}, r), tc.status)
			require.Contains(t, out, tc.output)
		})
	}
}

// processGone reports whether pid has exited (gone or a zombie).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// state is the field after the ")" closing the command name
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestScript_TimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := filepath.Join(dir, "hang.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho started\nsleep 30 &\necho $! > "+pidFile+"\nwait\n"), 0o755))

	r := &recorder{}
	out := runUntil(t, r, NewScript(ScriptConfig{ID: "c", Args: []string{script}, Interval: testInterval, Timeout: 300 * time.Millisecond}, r), "critical")
	require.Contains(t, out, "Timed out (300ms)")
	require.Contains(t, out, "started", "output so far is kept")

	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return processGone(pid) }, 5*time.Second, 10*time.Millisecond, "the script's child (pid %d) survived the timeout", pid)
}

func TestScript_OutputAndErrors(t *testing.T) {
	r := &recorder{}
	out := runUntil(t, r, NewScript(ScriptConfig{
		ID: "c", Args: []string{"/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; echo END >&2; exit 1"},
		Interval: testInterval, OutputMaxSize: 100,
	}, r), "warning")
	require.Len(t, out, 100)
	require.True(t, strings.HasSuffix(out, "END\n"), "the end of the output is kept: %q", out)

	r = &recorder{}
	out = runUntil(t, r, NewScript(ScriptConfig{ID: "c", Args: []string{"/nonexistent/check"}, Interval: testInterval}, r), "critical")
	require.Contains(t, out, "/nonexistent/check")

	r = &recorder{}
	runUntil(t, r, NewScript(ScriptConfig{ID: "c", Args: []string{"/bin/sh", "-c", "kill -9 $$"}, Interval: testInterval}, r), "critical")
}

func TestGRPC_ServiceNameAndTLS(t *testing.T) {
	plain := startGRPCTarget(t, nil)
	secure := startGRPCTarget(t, &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}, MinVersion: tls.VersionTLS12})
	secure.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	tests := []struct {
		name   string
		cfg    GRPCConfig
		status string
		output string
	}{
		{"whole server", GRPCConfig{Target: plain.addr}, "passing", "success"},
		{"named service", GRPCConfig{Target: plain.addr + "/my.Svc"}, "passing", "success"},
		{"unknown service", GRPCConfig{Target: plain.addr + "/nope"}, "critical", "NotFound"},
		{"tls", GRPCConfig{Target: secure.addr, UseTLS: true, TLSSkipVerify: true}, "passing", "success"},
		{"tls unverified cert", GRPCConfig{Target: secure.addr, UseTLS: true}, "critical", "certificate"},
		{"plaintext to tls server", GRPCConfig{Target: secure.addr}, "critical", "gRPC check"},
		{"nothing listening", GRPCConfig{Target: closedAddr(t, "tcp")}, "critical", "Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ID, tc.cfg.Interval, tc.cfg.Timeout = "c", testInterval, time.Second
			r := &recorder{}
			out := runUntil(t, r, NewGRPC(tc.cfg, r), tc.status)
			require.Contains(t, out, tc.output)
		})
	}
	addr, svc := SplitGRPCTarget("127.0.0.1:5/a.b/c")
	require.Equal(t, "127.0.0.1:5", addr)
	require.Equal(t, "a.b/c", svc)
}

func TestH2Ping_WrongProtocolIsCritical(t *testing.T) {
	h2c, _ := startH2CServer(t)
	h1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})) // HTTP/1.1 only
	defer h1.Close()
	h1tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})) // no h2 in ALPN
	defer h1tls.Close()
	tests := []struct {
		name   string
		cfg    H2PingConfig
		output string
	}{
		{"tls to an h2c server", H2PingConfig{Address: h2c, UseTLS: true, TLSSkipVerify: true}, "HTTP2 ping"},
		{"h2c to an HTTP/1 server", H2PingConfig{Address: h1.Listener.Addr().String()}, "HTTP2 ping"},
		{"tls without h2", H2PingConfig{Address: h1tls.Listener.Addr().String(), UseTLS: true, TLSSkipVerify: true}, "HTTP2 ping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.ID, tc.cfg.Interval, tc.cfg.Timeout = "c", testInterval, time.Second
			r := &recorder{}
			out := runUntil(t, r, NewH2Ping(tc.cfg, r), "critical")
			require.Contains(t, out, tc.output)
		})
	}
}

func TestDocker_NoSocket(t *testing.T) {
	r := &recorder{}
	out := runUntil(t, r, NewDocker(DockerConfig{ID: "c", ContainerID: "abc", Args: []string{"true"}, Interval: testInterval, Host: "unix:///nonexistent/docker.sock"}, r), "critical")
	require.Equal(t, "docker: socket /nonexistent/docker.sock not available", out)

	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		t.Skip("a Docker socket exists on this machine; the default-path case needs its absence")
	}
	r = &recorder{}
	out = runUntil(t, r, NewDocker(DockerConfig{ID: "c", ContainerID: "abc", Args: []string{"true"}, Interval: testInterval}, r), "critical")
	require.Equal(t, "docker: socket /var/run/docker.sock not available", out)
}

func TestDocker_ExecAPI(t *testing.T) {
	fd := startFakeDocker(t)
	fd.output.Store("line one\nline two\n")
	base := DockerConfig{ID: "c", ContainerID: "web1", Args: []string{"/bin/check", "-v"}, Interval: testInterval, Host: "unix://" + fd.socket}

	r := &recorder{}
	out := runUntil(t, r, NewDocker(base, r), "passing")
	require.Equal(t, "line one\nline two\n", out, "stdout and stderr frames are joined")
	require.Equal(t, []string{"/bin/check", "-v"}, fd.lastCmd())

	withShell := base
	withShell.Shell = "/bin/bash"
	r = &recorder{}
	runUntil(t, r, NewDocker(withShell, r), "passing")
	require.Equal(t, []string{"/bin/bash", "-c", "/bin/check -v"}, fd.lastCmd())

	unknown := base
	unknown.ContainerID = "nope"
	r = &recorder{}
	out = runUntil(t, r, NewDocker(unknown, r), "critical")
	require.Contains(t, out, "No such container")

	bad := base
	bad.Host = "ssh://somewhere"
	r = &recorder{}
	out = runUntil(t, r, NewDocker(bad, r), "critical")
	require.Contains(t, out, "unsupported host")
}

package testutil

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envFake makes this test binary act as a minimal fake agent, so the
// harness can be tested without the real cairn binary.
const envFake = "TESTUTIL_FAKE_AGENT"

// envFakeLeaderFile names a file holding the leader address the fake
// reports (default: itself).
const envFakeLeaderFile = "TESTUTIL_FAKE_LEADER_FILE"

// envProbeDial makes this test binary dial the TCP address it names once
// (1 s timeout) and exit 0 when it connected, 1 otherwise: a reachability
// probe to run inside a network namespace.
const envProbeDial = "TESTUTIL_PROBE_DIAL"

func runProbe(addr string) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		os.Stdout.WriteString("probe: " + err.Error() + "\n")
		os.Exit(1)
	}
	_ = c.Close()
	os.Stdout.WriteString("probe: connected\n")
	os.Exit(0)
}

// runFakeAgent serves just enough of /v1 for Ready and exits 0 on SIGTERM
// or SIGINT.
func runFakeAgent() {
	args := map[string]string{}
	for _, a := range os.Args[1:] {
		if k, v, ok := strings.Cut(strings.TrimPrefix(a, "-"), "="); ok {
			args[k] = v
		}
	}
	mux := http.NewServeMux()
	ip := args["client"]
	if ip == "" {
		ip = "127.0.0.1"
	}
	mux.HandleFunc("/v1/status/leader", func(w http.ResponseWriter, r *http.Request) {
		// A cluster test names the leader in a file; alone, the fake leads.
		if f := os.Getenv(envFakeLeaderFile); f != "" {
			if b, err := os.ReadFile(f); err == nil {
				_ = json.NewEncoder(w).Encode(strings.TrimSpace(string(b)))
				return
			}
		}
		_ = json.NewEncoder(w).Encode(ip + ":" + args["server-port"])
	})
	mux.HandleFunc("/v1/agent/members", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode([]map[string]any{{"Name": args["node"], "Status": 1}})
	})
	mux.HandleFunc("/v1/catalog/nodes", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Consul-Index", "1")
		_ = json.NewEncoder(w).Encode([]map[string]string{{"Node": args["node"], "Address": "127.0.0.1"}})
	})
	l, err := net.Listen("tcp", net.JoinHostPort(ip, args["http-port"]))
	if err != nil {
		os.Stderr.WriteString("fake agent: " + err.Error() + "\n")
		os.Exit(2)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	os.Stdout.WriteString("fake agent up\n")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	os.Exit(0)
}

func startFake(t *testing.T, opts AgentOptions) *Agent {
	t.Helper()
	opts.Binary = os.Args[0]
	opts.Env = append(opts.Env, envFake+"=1")
	return StartAgent(t, opts)
}

func TestAgentHarness_Lifecycle(t *testing.T) {
	a := startFake(t, AgentOptions{Dev: true})
	a.WaitReady(10 * time.Second)
	if a.Ports.GRPC != -1 {
		t.Fatalf("grpc must default to disabled, got %d", a.Ports.GRPC)
	}
	ports := map[int]bool{}
	for _, p := range []int{a.Ports.HTTP, a.Ports.DNS, a.Ports.SerfLAN, a.Ports.SerfWAN, a.Ports.Server} {
		if p <= 0 || ports[p] {
			t.Fatalf("ports not distinct and allocated: %+v", a.Ports)
		}
		ports[p] = true
	}
	leader, err := a.Client().Status().Leader()
	if err != nil || leader != a.ServerAddr() {
		t.Fatalf("leader %q err %v", leader, err)
	}
	if !strings.Contains(a.Output(), "fake agent up") {
		t.Fatalf("output not captured: %q", a.Output())
	}
	pid := a.Pid()

	if code := a.Stop(); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}
	if a.Running() {
		t.Fatal("still running after Stop")
	}
	if err := a.Ready(); err == nil {
		t.Fatal("Ready must fail on a stopped agent")
	}

	a.Restart(t)
	a.WaitReady(10 * time.Second)
	if a.Pid() == pid {
		t.Fatal("restart must start a new process")
	}
	a.Kill()
	if code, err := a.Wait(time.Second); err != nil || code != -1 {
		t.Fatalf("after SIGKILL: code %d err %v", code, err)
	}
}

func TestAgentHarness_NonDevGetsDataDir(t *testing.T) {
	a := startFake(t, AgentOptions{Server: true, Bootstrap: true, NodeName: "custom"})
	a.WaitReady(10 * time.Second)
	if a.DataDir == "" || a.Name != "custom" {
		t.Fatalf("data dir %q name %q", a.DataDir, a.Name)
	}
	want := []string{"agent", "-server", "-bootstrap", "-data-dir=" + a.DataDir, "-node=custom"}
	for i, w := range want {
		if a.Args[i] != w {
			t.Fatalf("args %v, want prefix %v", a.Args, want)
		}
	}
	// Cleanup kills it; nothing else to do.
}

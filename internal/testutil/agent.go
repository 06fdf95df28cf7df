package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Environment knobs for the harness.
const (
	// EnvShowLogs=1 dumps every agent's output at cleanup, not only on failure.
	EnvShowLogs = "CAIRN_E2E_LOGS"
	// EnvLogDir, when set, receives one file with the full output of every
	// agent process started (<node>-<pid>.log).
	EnvLogDir = "CAIRN_E2E_LOG_DIR"
)

// LoopbackAddr is the address every harness listener binds to.
const LoopbackAddr = "127.0.0.1"

// Ports are an agent's listener ports. Zero means "pick a free one" (except
// GRPC, where zero means disabled); -1 disables the listener.
type Ports struct {
	HTTP    int
	DNS     int
	SerfLAN int
	SerfWAN int
	Server  int
	GRPC    int
}

// AgentOptions describe one cairn agent process.
type AgentOptions struct {
	Dev       bool
	DataDir   string // default: a fresh t.TempDir() unless Dev
	Server    bool
	Bootstrap bool
	// NodeName defaults to "e2e-<http port>", so the harness always knows it.
	NodeName  string
	ExtraArgs []string
	Ports     Ports
	// LogLevel is passed as -log-level; default "debug".
	LogLevel string
	// Env is appended to the test process's environment.
	Env []string
	// Binary overrides the binary under test (default BuildBinary).
	Binary string
	// IP is the address every listener binds to and advertises (default
	// LoopbackAddr). A network-namespace harness sets the node's address.
	IP string
	// Wrap is a command prefix the binary is run under, such as
	// ["ip", "netns", "exec", "<ns>"]; it must exec the binary in place so
	// signals reach the agent itself.
	Wrap []string
}

// Agent is one running (or stopped) cairn agent process. Its fields describe
// how it was started so a cluster harness can start N of them and join them
// (SerfLANAddr) and Restart reuses the same arguments, ports and data dir.
type Agent struct {
	Name    string
	Binary  string
	Args    []string
	Env     []string
	Ports   Ports
	DataDir string
	// IP is the address the agent's listeners bind to (LoopbackAddr unless
	// AgentOptions.IP said otherwise).
	IP string
	// Wrap is the command prefix the binary runs under (nil: none).
	Wrap []string

	tb        testing.TB
	out       *tailBuffer
	transport *http.Transport

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error
	startedAt time.Time
	logFile   *os.File
}

// maxKeptOutput is how much process output each Agent keeps in memory.
const maxKeptOutput = 4 << 20

// StartAgent starts the cairn binary with opts and returns without waiting
// for it to be ready (call WaitReady). The process is killed, and its output
// shown if the test failed, when the test ends.
func StartAgent(tb testing.TB, opts AgentOptions) *Agent {
	tb.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = BuildBinary(tb)
	}
	ports := opts.Ports
	need := 0
	for _, p := range []int{ports.HTTP, ports.DNS, ports.SerfLAN, ports.SerfWAN, ports.Server} {
		if p == 0 {
			need++
		}
	}
	free := FreePorts(tb, need)
	pick := func(p *int) {
		if *p == 0 {
			*p, free = free[0], free[1:]
		}
	}
	pick(&ports.HTTP)
	pick(&ports.DNS)
	pick(&ports.SerfLAN)
	pick(&ports.SerfWAN)
	pick(&ports.Server)
	if ports.GRPC == 0 {
		ports.GRPC = -1
	}
	name := opts.NodeName
	if name == "" {
		name = "e2e-" + strconv.Itoa(ports.HTTP)
	}
	dataDir := opts.DataDir
	if dataDir == "" && !opts.Dev {
		dataDir = tb.TempDir()
	}
	ip := opts.IP
	if ip == "" {
		ip = LoopbackAddr
	}
	logLevel := opts.LogLevel
	if logLevel == "" {
		logLevel = "debug"
	}

	args := []string{"agent"}
	if opts.Dev {
		args = append(args, "-dev")
	}
	if opts.Server {
		args = append(args, "-server")
	}
	if opts.Bootstrap {
		args = append(args, "-bootstrap")
	}
	if dataDir != "" {
		args = append(args, "-data-dir="+dataDir)
	}
	args = append(args,
		"-node="+name,
		"-bind="+ip,
		"-client="+ip,
		"-advertise="+ip,
		"-http-port="+strconv.Itoa(ports.HTTP),
		"-dns-port="+strconv.Itoa(ports.DNS),
		"-server-port="+strconv.Itoa(ports.Server),
		"-serf-lan-port="+strconv.Itoa(ports.SerfLAN),
		"-serf-wan-port="+strconv.Itoa(ports.SerfWAN),
		"-grpc-port="+strconv.Itoa(ports.GRPC),
		"-log-level="+logLevel,
	)
	args = append(args, opts.ExtraArgs...)

	a := &Agent{
		Name:    name,
		Binary:  bin,
		Args:    args,
		Env:     append([]string(nil), opts.Env...),
		Ports:   ports,
		DataDir: dataDir,
		IP:      ip,
		Wrap:    append([]string(nil), opts.Wrap...),
		tb:      tb,
		out:     newTailBuffer(maxKeptOutput),
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	tb.Cleanup(a.cleanup)
	if err := a.start(); err != nil {
		tb.Fatalf("testutil: start agent %s: %v", name, err)
	}
	return a
}

func (a *Agent) start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil && !isClosed(a.done) {
		return errors.New("testutil: agent is still running")
	}
	argv := append(append(append([]string(nil), a.Wrap...), a.Binary), a.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), a.Env...)
	var w interface{ Write([]byte) (int, error) } = a.out
	if dir := os.Getenv(EnvLogDir); dir != "" {
		if a.logFile == nil {
			if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", a.Name, time.Now().UnixNano()))); err == nil {
				a.logFile = f
			}
		}
		if a.logFile != nil {
			w = multiWriter{a.out, a.logFile}
		}
	}
	cmd.Stdout = w
	cmd.Stderr = w
	// Kill the agent if the test process dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	_, _ = fmt.Fprintf(a.out, "==> testutil: starting %v\n", argv)
	a.startedAt = time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testutil: exec %s: %w", a.Binary, err)
	}
	done := make(chan struct{})
	a.cmd, a.done, a.waitErr = cmd, done, nil
	// Owned by the Agent: ends when the process exits (cleanup kills it).
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		a.waitErr = err
		a.mu.Unlock()
		_, _ = fmt.Fprintf(a.out, "==> testutil: process %d exited: %v\n", cmd.Process.Pid, err)
		close(done)
	}()
	return nil
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		_, _ = w.Write(p)
	}
	return len(p), nil
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (a *Agent) cleanup() {
	if a.Running() {
		_ = a.Signal(syscall.SIGKILL)
		a.mu.Lock()
		done := a.done
		a.mu.Unlock()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.tb.Errorf("testutil: agent %s did not die after SIGKILL", a.Name)
		}
	}
	a.transport.CloseIdleConnections()
	if a.logFile != nil {
		_ = a.logFile.Close()
	}
	// A panic or a data race (binary built with CAIRN_BUILD_RACE=1) in the
	// agent fails the test even when every assertion passed.
	out := a.out.String()
	for _, marker := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: "} {
		if strings.Contains(out, marker) {
			a.tb.Errorf("testutil: agent %s output contains %q", a.Name, strings.TrimSpace(marker))
		}
	}
	if a.tb.Failed() || os.Getenv(EnvShowLogs) == "1" {
		a.tb.Logf("==> output of agent %s (http %s):\n%s", a.Name, a.HTTPAddr(), a.out.tail(256<<10))
	}
}

// Client returns an official API client for this agent's HTTP listener.
func (a *Agent) Client() *api.Client {
	c, err := api.NewClient(a.ClientConfig())
	if err != nil {
		a.tb.Fatalf("testutil: api client: %v", err)
	}
	return c
}

// ClientConfig returns the api.Config Client uses (to tweak before NewClient).
func (a *Agent) ClientConfig() *api.Config {
	return &api.Config{
		Address:   a.HTTPAddr(),
		Scheme:    "http",
		Transport: a.transport,
	}
}

// HTTPClient returns a plain HTTP client sharing the agent's connection pool,
// for requests the API client cannot express.
func (a *Agent) HTTPClient() *http.Client {
	return &http.Client{Transport: a.transport, Timeout: 30 * time.Second}
}

// HTTPAddr is host:port of the HTTP API.
func (a *Agent) HTTPAddr() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(a.Ports.HTTP))
}

// host is the address the agent listens on.
func (a *Agent) host() string {
	if a.IP == "" {
		return LoopbackAddr
	}
	return a.IP
}

// URL is the HTTP API base URL plus path (path should start with "/").
func (a *Agent) URL(path string) string { return "http://" + a.HTTPAddr() + path }

// DNSAddr is host:port of the DNS listener.
func (a *Agent) DNSAddr() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(a.Ports.DNS))
}

// SerfLANAddr is host:port to -join / -retry-join this agent on.
func (a *Agent) SerfLANAddr() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(a.Ports.SerfLAN))
}

// SerfWANAddr is host:port to -join-wan this agent on.
func (a *Agent) SerfWANAddr() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(a.Ports.SerfWAN))
}

// ServerAddr is host:port of the server RPC/Raft listener.
func (a *Agent) ServerAddr() string {
	return net.JoinHostPort(a.host(), strconv.Itoa(a.Ports.Server))
}

// Pid returns the current process id (0 if never started).
func (a *Agent) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// StartedAt is when the current process was started.
func (a *Agent) StartedAt() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.startedAt
}

// Output returns the kept output (stdout and stderr interleaved).
func (a *Agent) Output() string { return a.out.String() }

// Running reports whether the current process has not exited yet.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil && !isClosed(a.done)
}

// Ready probes once: the leader is known and this node is in the catalog.
func (a *Agent) Ready() error {
	if !a.Running() {
		return fmt.Errorf("agent %s is not running: %v", a.Name, a.exitError())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := a.Client()
	leader, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("status/leader: %w", err)
	}
	if leader == "" {
		return errors.New("status/leader: no leader yet")
	}
	nodes, _, err := c.Catalog().Nodes((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("catalog/nodes: %w", err)
	}
	for _, n := range nodes {
		if n.Node == a.Name {
			return nil
		}
	}
	return fmt.Errorf("catalog/nodes: node %q not registered yet (have %d nodes)", a.Name, len(nodes))
}

// WaitReady waits until Ready succeeds, failing the test after timeout or as
// soon as the process exits.
func (a *Agent) WaitReady(timeout time.Duration) {
	a.tb.Helper()
	var exited bool
	err := Poll(timeout, 20*time.Millisecond, func() error {
		if !a.Running() {
			exited = true
			return nil
		}
		return a.Ready()
	})
	if exited {
		a.tb.Fatalf("testutil: agent %s exited before ready: %v\n%s", a.Name, a.exitError(), a.out.tail(64<<10))
	}
	if err != nil {
		a.tb.Fatalf("testutil: agent %s not ready after %s: %v", a.Name, timeout, err)
	}
}

func (a *Agent) exitError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waitErr
}

// Signal sends sig to the current process.
func (a *Agent) Signal(sig os.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil {
		return errors.New("testutil: agent was never started")
	}
	return a.cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to exit and returns its exit code
// (-1 when killed by a signal). It returns an error on timeout.
func (a *Agent) Wait(timeout time.Duration) (int, error) {
	a.mu.Lock()
	done, cmd := a.done, a.cmd
	a.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("testutil: agent was never started")
	}
	if !isClosed(done) {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			return 0, fmt.Errorf("testutil: agent %s still running after %s", a.Name, timeout)
		}
	}
	return cmd.ProcessState.ExitCode(), nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (a *Agent) Kill() {
	a.tb.Helper()
	if !a.Running() {
		return
	}
	if err := a.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		a.tb.Fatalf("testutil: kill %s: %v", a.Name, err)
	}
	if _, err := a.Wait(10 * time.Second); err != nil {
		a.tb.Fatalf("%v", err)
	}
}

// Stop sends SIGTERM and waits (up to 15s, then SIGKILL and fail) for the
// process to exit. It returns the exit code.
func (a *Agent) Stop() int {
	a.tb.Helper()
	if !a.Running() {
		code, _ := a.Wait(0)
		return code
	}
	if err := a.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		a.tb.Fatalf("testutil: SIGTERM %s: %v", a.Name, err)
	}
	code, err := a.Wait(15 * time.Second)
	if err != nil {
		a.Kill()
		a.tb.Fatalf("testutil: agent %s ignored SIGTERM for 15s", a.Name)
	}
	return code
}

// Restart starts the process again with the same binary, arguments, ports
// and data dir. A running process is stopped (SIGTERM) first.
func (a *Agent) Restart(tb testing.TB) {
	tb.Helper()
	if a.Running() {
		a.Stop()
	}
	if err := a.start(); err != nil {
		tb.Fatalf("testutil: restart agent %s: %v", a.Name, err)
	}
}

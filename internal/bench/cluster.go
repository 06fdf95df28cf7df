package bench

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
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// ClusterOptions describe a cluster of cairn server processes on 127.0.0.1.
type ClusterOptions struct {
	Binary  string // the cairn binary (default: this executable)
	Dir     string // parent of every data dir and log file (required)
	Servers int    // default 3
	// ExtraArgs go to every agent (e.g. -hcl 'enable_debug = true').
	ExtraArgs []string
}

// Server is one agent process of a Cluster.
type Server struct {
	Name     string
	HTTPAddr string
	RPCAddr  string // host:server-port, as /v1/status/leader reports it
	args     []string
	logPath  string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Cluster is a set of cairn servers started by StartCluster. Stop kills them.
type Cluster struct {
	opts    ClusterOptions
	Servers []*Server
	mu      sync.Mutex
}

// ErrCluster marks a cluster that failed to start or recover.
var ErrCluster = errors.New("bench: cluster")

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("%w: finding free ports: %w", ErrCluster, err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			_ = u.Close()
			out = append(out, p)
		}
	}
	return out, nil
}

// StartCluster starts the servers (bootstrap-expect = Servers, each
// retry-joining the others) and waits until every one knows the leader.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.Servers == 0 {
		o.Servers = 3
	}
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: a directory for data and logs is required", ErrCluster)
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: finding the cairn binary: %w", ErrCluster, err)
		}
		o.Binary = exe
	}
	ports, err := freePorts(5 * o.Servers)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: o}
	for i := 0; i < o.Servers; i++ {
		p := ports[5*i : 5*i+5]
		name := fmt.Sprintf("bench-s%d", i+1)
		dataDir := filepath.Join(o.Dir, name)
		// A data dir left by an earlier run holds a Raft configuration with
		// that run's ports: the servers would wait for peers that are gone.
		if ents, err := os.ReadDir(dataDir); err == nil && len(ents) > 0 {
			return nil, fmt.Errorf("%w: %s holds data from an earlier run; give an empty directory", ErrCluster, dataDir)
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCluster, err)
		}
		args := []string{"agent", "-server", "-bootstrap-expect=" + strconv.Itoa(o.Servers),
			"-data-dir=" + dataDir, "-node=" + name,
			"-bind=127.0.0.1", "-advertise=127.0.0.1", "-client=127.0.0.1",
			"-http-port=" + strconv.Itoa(p[0]), "-dns-port=" + strconv.Itoa(p[1]),
			"-serf-lan-port=" + strconv.Itoa(p[2]), "-serf-wan-port=" + strconv.Itoa(p[3]),
			"-server-port=" + strconv.Itoa(p[4]), "-log-level=warn", "-retry-interval=200ms",
			// Every bench client connects from 127.0.0.1: lift the per-IP cap
			// (200 by default) that thousands of watchers would hit.
			"-hcl=limits { http_max_conns_per_client = 0 }"}
		for j := 0; j < o.Servers; j++ {
			if j != i {
				args = append(args, "-retry-join=127.0.0.1:"+strconv.Itoa(ports[5*j+2]))
			}
		}
		args = append(args, o.ExtraArgs...)
		c.Servers = append(c.Servers, &Server{
			Name: name, HTTPAddr: "127.0.0.1:" + strconv.Itoa(p[0]), RPCAddr: "127.0.0.1:" + strconv.Itoa(p[4]),
			args: args, logPath: filepath.Join(o.Dir, name+".log"),
		})
	}
	for _, s := range c.Servers {
		if err := c.start(s); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if _, err := c.WaitLeader(ctx, 60*time.Second, nil); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(s *Server) error {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCluster, err)
	}
	cmd := exec.Command(c.opts.Binary, s.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("%w: starting %s: %w", ErrCluster, s.Name, err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	s.cmd, s.done = cmd, done
	c.mu.Unlock()
	// Owned by the Cluster: reaps the process; Kill and Stop wait on done.
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}()
	return nil
}

// Pid returns the server's process id (0 when not running).
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

// Addrs returns every server's HTTP address.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		out[i] = s.HTTPAddr
	}
	return out
}

// Kill sends SIGKILL to s and waits for it to exit.
func (c *Cluster) Kill(s *Server) {
	c.mu.Lock()
	cmd, done := s.cmd, s.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a killed server again with the same data dir and ports.
func (c *Cluster) Restart(s *Server) error { return c.start(s) }

// Stop kills every server. It is idempotent.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		if s.Pid() != 0 {
			c.Kill(s)
		}
	}
}

func quickClient(addr string) *api.Client {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = addr
	cfg.HttpClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	cl, _ := api.NewClient(cfg) // cannot fail without TLS files
	return cl
}

// WaitLeader waits until every running server except skip reports the same
// leader, which must not be skip, and returns the leader.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration, skip *Server) (*Server, error) {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		leader, err := c.agreedLeader(skip)
		if err == nil {
			return leader, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%w: no agreed leader after %s: %w", ErrCluster, timeout, lastErr)
}

func (c *Cluster) agreedLeader(skip *Server) (*Server, error) {
	var leader string
	for _, s := range c.Servers {
		if s == skip || s.Pid() == 0 {
			continue
		}
		l, err := quickClient(s.HTTPAddr).Status().Leader()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		if l == "" || (leader != "" && l != leader) {
			return nil, fmt.Errorf("%s: leader %q (others %q)", s.Name, l, leader)
		}
		leader = l
	}
	for _, s := range c.Servers {
		if s.RPCAddr == leader && s != skip {
			return s, nil
		}
	}
	return nil, fmt.Errorf("leader %q is not a running server", leader)
}

// WaitPeers waits until the Raft configuration seen by s's agent has n
// voters.
func (c *Cluster) WaitPeers(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := true
		for _, s := range c.Servers {
			peers, err := quickClient(s.HTTPAddr).Status().Peers()
			if err != nil || len(peers) != n {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: peers not %d after %s", ErrCluster, n, timeout)
}

package testutil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// ClusterOptions describe a cluster of real cairn processes.
type ClusterOptions struct {
	// Servers is the number of server agents (default 3). They start with
	// -bootstrap-expect=Servers and -retry-join to each other's Serf LAN
	// port.
	Servers int
	// Clients is the number of client agents; they -retry-join the servers.
	Clients int
	// Network, when set, places node i (servers first, then clients) in
	// the namespace i of the network, listening on its address. It must
	// have at least Servers+Clients nodes. Nil: everything on 127.0.0.1.
	Network *Network
	// ExtraArgs go to every agent; ServerArgs and ClientArgs to one kind.
	ExtraArgs  []string
	ServerArgs []string
	ClientArgs []string
	// RetryInterval is passed as -retry-interval (default 1s).
	RetryInterval time.Duration
	// LogLevel is every agent's -log-level (default "debug").
	LogLevel string
	// Env is appended to every agent's environment.
	Env []string
	// Binary overrides the binary under test.
	Binary string
	// NamePrefix prefixes node names (default ""): servers are
	// <prefix>s1.., clients <prefix>c1..
	NamePrefix string
}

// Cluster is a set of agent processes started by StartCluster. Its methods
// are safe for concurrent use (a nemesis and checkers may share it).
type Cluster struct {
	Servers []*Agent
	Clients []*Agent
	// Network is ClusterOptions.Network (nil on loopback).
	Network *Network

	tb     testing.TB
	netIdx map[*Agent]int

	mu     sync.Mutex
	paused map[*Agent]bool
	killed map[*Agent]bool // by Kill, until Restart
}

// StartCluster starts the servers and clients and returns without waiting
// (call WaitReady, WaitLeader or WaitMembers). Everything is killed when the
// test ends.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if opts.Servers == 0 {
		opts.Servers = 3
	}
	if opts.Servers < 1 || opts.Clients < 0 {
		tb.Fatalf("testutil: StartCluster: %d servers, %d clients", opts.Servers, opts.Clients)
	}
	total := opts.Servers + opts.Clients
	if opts.Network != nil && opts.Network.Size() < total {
		tb.Fatalf("testutil: StartCluster: network has %d nodes, cluster needs %d", opts.Network.Size(), total)
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = time.Second
	}
	bin := opts.Binary
	if bin == "" {
		bin = BuildBinary(tb)
	}
	c := &Cluster{
		Network: opts.Network,
		tb:      tb,
		netIdx:  map[*Agent]int{},
		paused:  map[*Agent]bool{},
		killed:  map[*Agent]bool{},
	}
	// Every port is chosen up front: each agent's flags name the others.
	ports := make([]Ports, total)
	free := FreePorts(tb, 5*total)
	for i := range ports {
		ports[i] = Ports{HTTP: free[5*i], DNS: free[5*i+1], SerfLAN: free[5*i+2], SerfWAN: free[5*i+3], Server: free[5*i+4], GRPC: -1}
	}
	ip := func(i int) string {
		if opts.Network != nil {
			return opts.Network.IP(i)
		}
		return LoopbackAddr
	}
	serfAddr := func(i int) string { return ip(i) + ":" + strconv.Itoa(ports[i].SerfLAN) }
	retry := "-retry-interval=" + opts.RetryInterval.String()
	for i := 0; i < total; i++ {
		isServer := i < opts.Servers
		var name string
		args := append([]string(nil), opts.ExtraArgs...)
		if isServer {
			name = fmt.Sprintf("%ss%d", opts.NamePrefix, i+1)
			args = append(args, "-bootstrap-expect="+strconv.Itoa(opts.Servers), retry)
			for j := 0; j < opts.Servers; j++ {
				if j != i {
					args = append(args, "-retry-join="+serfAddr(j))
				}
			}
			args = append(args, opts.ServerArgs...)
		} else {
			name = fmt.Sprintf("%sc%d", opts.NamePrefix, i-opts.Servers+1)
			args = append(args, retry)
			for j := 0; j < opts.Servers; j++ {
				args = append(args, "-retry-join="+serfAddr(j))
			}
			args = append(args, opts.ClientArgs...)
		}
		ao := AgentOptions{
			Server:    isServer,
			NodeName:  name,
			ExtraArgs: args,
			Ports:     ports[i],
			LogLevel:  opts.LogLevel,
			Env:       opts.Env,
			Binary:    bin,
		}
		if opts.Network != nil {
			ao.IP = opts.Network.IP(i)
			ao.Wrap = opts.Network.Wrap(i)
		}
		a := StartAgent(tb, ao)
		c.netIdx[a] = i
		if isServer {
			c.Servers = append(c.Servers, a)
		} else {
			c.Clients = append(c.Clients, a)
		}
	}
	// Resume paused processes first at cleanup so nothing is left stopped
	// (SIGKILL works on stopped processes, SIGTERM-based stops do not).
	tb.Cleanup(c.resumeAll)
	return c
}

// Agents returns servers then clients.
func (c *Cluster) Agents() []*Agent {
	return append(append([]*Agent(nil), c.Servers...), c.Clients...)
}

// Agent returns the agent with the given node name, or nil.
func (c *Cluster) Agent(name string) *Agent {
	for _, a := range c.Agents() {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// IsServer reports whether a is one of the cluster's servers.
func (c *Cluster) IsServer(a *Agent) bool {
	for _, s := range c.Servers {
		if s == a {
			return true
		}
	}
	return false
}

// Quorum is the number of servers a majority needs.
func (c *Cluster) Quorum() int { return len(c.Servers)/2 + 1 }

// Up reports whether a runs and is not paused.
func (c *Cluster) Up(a *Agent) bool {
	c.mu.Lock()
	p := c.paused[a]
	c.mu.Unlock()
	return !p && a.Running()
}

// Paused reports whether a was paused with Pause.
func (c *Cluster) Paused(a *Agent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused[a]
}

// Kill sends SIGKILL to a and waits for it to exit.
func (c *Cluster) Kill(a *Agent) {
	c.tb.Helper()
	c.mu.Lock()
	delete(c.paused, a)
	c.killed[a] = true
	c.mu.Unlock()
	a.Kill()
}

// crashed returns an error naming an agent that exited without Kill (a
// crash or a refused start), with the end of its output.
func (c *Cluster) crashed() error {
	for _, a := range c.Agents() {
		c.mu.Lock()
		k := c.killed[a]
		c.mu.Unlock()
		if !k && !a.Running() && a.Pid() != 0 {
			return fmt.Errorf("agent %s exited unexpectedly (%v):\n%s", a.Name, a.exitError(), a.out.tail(4<<10))
		}
	}
	return nil
}

// Pause stops a with SIGSTOP: it holds its sockets but answers nothing.
func (c *Cluster) Pause(a *Agent) error {
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("testutil: pause %s: %w", a.Name, err)
	}
	c.mu.Lock()
	c.paused[a] = true
	c.mu.Unlock()
	return nil
}

// Resume continues a paused agent with SIGCONT.
func (c *Cluster) Resume(a *Agent) error {
	c.mu.Lock()
	delete(c.paused, a)
	c.mu.Unlock()
	if !a.Running() {
		return nil
	}
	if err := a.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("testutil: resume %s: %w", a.Name, err)
	}
	return nil
}

// Restart starts a again with the same flags, ports and data dir. A running
// agent is stopped gracefully first (resumed first if paused); use Kill
// before Restart for a crash.
func (c *Cluster) Restart(a *Agent) {
	c.tb.Helper()
	if c.Paused(a) {
		if err := c.Resume(a); err != nil {
			c.tb.Fatalf("%v", err)
		}
	}
	c.mu.Lock()
	delete(c.killed, a)
	c.mu.Unlock()
	a.Restart(c.tb)
}

func (c *Cluster) resumeAll() {
	c.mu.Lock()
	var ps []*Agent
	for a := range c.paused {
		ps = append(ps, a)
	}
	c.mu.Unlock()
	for _, a := range ps {
		_ = c.Resume(a)
	}
}

// Partition cuts the given agents (one side) off from every other agent of
// the cluster; both sides still reach the test process. It needs a Network.
func (c *Cluster) Partition(side ...*Agent) error {
	if c.Network == nil {
		return errors.New("testutil: Partition needs a cluster started with a Network")
	}
	idx := make([]int, 0, len(side))
	for _, a := range side {
		i, ok := c.netIdx[a]
		if !ok {
			return fmt.Errorf("testutil: partition: %s is not in this cluster", a.Name)
		}
		idx = append(idx, i)
	}
	return c.Network.Partition(idx)
}

// Heal removes any partition.
func (c *Cluster) Heal() error {
	if c.Network == nil {
		return nil
	}
	return c.Network.Heal()
}

// probeTimeout bounds each HTTP probe the cluster's waits make.
const probeTimeout = 2 * time.Second

// LeaderOf asks agent a which server it believes is the leader and returns
// that server (nil with an error when none, or an address not in the
// cluster).
func (c *Cluster) LeaderOf(a *Agent) (*Agent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	addr, err := a.Client().Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: status/leader: %w", a.Name, err)
	}
	if addr == "" {
		return nil, fmt.Errorf("%s: no leader known", a.Name)
	}
	for _, s := range c.Servers {
		if s.ServerAddr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%s: leader %q is no server of this cluster", a.Name, addr)
}

// Leader probes once: the leader is the server that a majority of all
// servers (counting only those that are up and answer) name, and that names
// itself. It returns an error describing the disagreement otherwise.
func (c *Cluster) Leader() (*Agent, error) {
	votes := map[*Agent]int{}
	var problems []string
	var self *Agent
	for _, s := range c.Servers {
		if !c.Up(s) {
			continue
		}
		l, err := c.LeaderOf(s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		votes[l]++
		if l == s {
			self = s
		}
	}
	if self != nil && votes[self] >= c.Quorum() && c.Up(self) {
		return self, nil
	}
	var desc []string
	for l, n := range votes {
		desc = append(desc, fmt.Sprintf("%s named by %d", l.Name, n))
	}
	sort.Strings(desc)
	return nil, fmt.Errorf("no leader agreed by %d servers (%s; %s)", c.Quorum(), strings.Join(desc, ", "), strings.Join(problems, "; "))
}

// WaitLeader polls Leader until it succeeds or timeout passes.
func (c *Cluster) WaitLeader(timeout time.Duration) (*Agent, error) {
	var (
		leader *Agent
		crash  error
	)
	err := Poll(timeout, 25*time.Millisecond, func() error {
		if crash = c.crashed(); crash != nil {
			return nil
		}
		l, err := c.Leader()
		leader = l
		return err
	})
	if crash != nil {
		return nil, fmt.Errorf("testutil: wait leader: %w", crash)
	}
	if err != nil {
		return nil, fmt.Errorf("testutil: wait leader %s: %w", timeout, err)
	}
	return leader, nil
}

// Followers returns the servers that are up and not the current leader
// (every server that is up when no leader is agreed).
func (c *Cluster) Followers() []*Agent {
	l, _ := c.Leader()
	var out []*Agent
	for _, s := range c.Servers {
		if s != l && c.Up(s) {
			out = append(out, s)
		}
	}
	return out
}

// Members returns a's view of the LAN members: name → status (1 = alive,
// as /v1/agent/members reports it).
func (c *Cluster) Members(a *Agent) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL("/v1/agent/members"), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: agent/members: %w", a.Name, err)
	}
	resp, err := a.HTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: agent/members: %w", a.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: agent/members: %s: %s", a.Name, resp.Status, body)
	}
	var ms []struct {
		Name   string
		Status int
	}
	if err := json.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("%s: agent/members: decode: %w", a.Name, err)
	}
	out := make(map[string]int, len(ms))
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out, nil
}

// WaitMembers waits until every agent that is up sees at least n alive LAN
// members.
func (c *Cluster) WaitMembers(n int, timeout time.Duration) error {
	err := Poll(timeout, 50*time.Millisecond, func() error {
		for _, a := range c.Agents() {
			if !c.Up(a) {
				continue
			}
			ms, err := c.Members(a)
			if err != nil {
				return err
			}
			alive := 0
			for _, st := range ms {
				if st == 1 {
					alive++
				}
			}
			if alive < n {
				return fmt.Errorf("%s sees %d alive members, want %d: %v", a.Name, alive, n, ms)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testutil: wait members: %w", err)
	}
	return nil
}

// WaitReady waits for an agreed leader, every agent seeing every other one
// alive, and every agent ready (leader known, own node in the catalog). It
// fails the test on timeout and returns the leader.
func (c *Cluster) WaitReady(timeout time.Duration) *Agent {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	leader, err := c.WaitLeader(timeout)
	if err != nil {
		c.tb.Fatalf("%v", err)
	}
	if err := c.WaitMembers(len(c.Agents()), time.Until(deadline)); err != nil {
		c.tb.Fatalf("%v", err)
	}
	for _, a := range c.Agents() {
		if !c.Up(a) {
			continue
		}
		if err := Poll(time.Until(deadline), 50*time.Millisecond, a.Ready); err != nil {
			c.tb.Fatalf("testutil: agent %s not ready: %v", a.Name, err)
		}
	}
	return leader
}

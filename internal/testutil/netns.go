package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Network namespaces for partition tests.
//
// NewNetwork builds, on a private subnet 10.213.X.0/24 that exists only on
// the bridge and in the namespaces it creates, one network namespace per
// node joined by a veth pair to one bridge in the host namespace. The bridge
// holds 10.213.X.1, so the test process reaches every node directly; nodes
// get 10.213.X.2 and up. Nothing is routed anywhere else: traffic stays on
// the bridge and in the namespaces.
//
// Partition cuts nodes apart with policy-routing "blackhole" rules inside
// each namespace that drop packets arriving from the other side. Packets are
// dropped silently (the sender sees timeouts, as in a real partition) and the
// test process can still reach every node on both sides.
//
// Every name carries the creating process's pid, so a later run removes what
// a crashed run left behind (CleanStaleNetworks).

// Name prefixes of everything NewNetwork creates.
const (
	netnsPrefix = "cairnt-" // namespaces: cairnt-<pid>-<octet>-<i>
	linkPrefix  = "ct"      // links: ct<pid hex 6><b|h|p><octet hex 2>[<i hex>]
	subnetBase  = "10.213."
)

var linkNameRE = regexp.MustCompile(`^ct([0-9a-f]{6})[bhp][0-9a-f]{2}[0-9a-f]?$`)

// Network is a set of network namespaces on one bridge. Methods are safe for
// concurrent use.
type Network struct {
	tb     testing.TB
	octet  int
	bridge string
	nodes  []netnsNode

	mu      sync.Mutex
	blocked map[[2]int]bool // {receiver, sender} pairs with a drop rule
	closed  bool
}

type netnsNode struct {
	ns       string
	hostVeth string
	nsVeth   string
	ip       string
}

var (
	netnsOnce sync.Once
	netnsErr  error
)

// NetnsSupported reports why network namespaces cannot be used here (nil
// when they can): it needs root and a working `ip netns`.
func NetnsSupported() error {
	netnsOnce.Do(func() {
		if os.Geteuid() != 0 {
			netnsErr = errors.New("testutil: network namespaces need root")
			return
		}
		if _, err := exec.LookPath("ip"); err != nil {
			netnsErr = fmt.Errorf("testutil: iproute2 'ip' not found (apt-get install -y iproute2): %w", err)
			return
		}
		probe := fmt.Sprintf("%sprobe-%d", netnsPrefix, os.Getpid())
		if _, err := runIP("netns", "add", probe); err != nil {
			netnsErr = fmt.Errorf("testutil: ip netns add: %w", err)
			return
		}
		defer func() { _, _ = runIP("netns", "del", probe) }()
		if _, err := runIP("netns", "exec", probe, "ip", "link", "set", "lo", "up"); err != nil {
			netnsErr = fmt.Errorf("testutil: ip netns exec: %w", err)
			return
		}
		if _, err := runIP("link", "add", fmt.Sprintf("ct%06xbff", os.Getpid()), "type", "bridge"); err != nil {
			netnsErr = fmt.Errorf("testutil: ip link add type bridge: %w", err)
			return
		}
		_, _ = runIP("link", "del", fmt.Sprintf("ct%06xbff", os.Getpid()))
	})
	return netnsErr
}

// NewNetwork creates n namespaces on a fresh bridge and removes them all when
// the test ends. It skips the test when namespaces are not supported.
func NewNetwork(tb testing.TB, n int) *Network {
	tb.Helper()
	if err := NetnsSupported(); err != nil {
		tb.Skipf("network namespaces unavailable: %v", err)
	}
	if n < 1 || n > 15 {
		tb.Fatalf("testutil: NewNetwork: %d nodes, want 1..15", n)
	}
	unlock, err := lockNetworks()
	if err != nil {
		tb.Fatalf("%v", err)
	}
	CleanStaleNetworks(tb.Logf)
	octet, err := freeOctet()
	if err != nil {
		unlock()
		tb.Fatalf("%v", err)
	}
	pid := os.Getpid()
	nw := &Network{
		tb:      tb,
		octet:   octet,
		bridge:  fmt.Sprintf("%s%06xb%02x", linkPrefix, pid, octet),
		blocked: map[[2]int]bool{},
	}
	// Registered before anything is created so a failure half-way still
	// removes what exists. Runs after the cleanups of agents started later
	// (t.Cleanup is last-in first-out).
	tb.Cleanup(nw.close)
	err = nw.create(n)
	unlock()
	if err != nil {
		tb.Fatalf("testutil: create network: %v", err)
	}
	return nw
}

func (nw *Network) create(n int) error {
	pid := os.Getpid()
	if _, err := runIP("link", "add", nw.bridge, "type", "bridge"); err != nil {
		return err
	}
	if _, err := runIP("addr", "add", nw.HostIP()+"/24", "dev", nw.bridge); err != nil {
		return err
	}
	if _, err := runIP("link", "set", nw.bridge, "up"); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		node := netnsNode{
			ns:       fmt.Sprintf("%s%d-%d-%d", netnsPrefix, pid, nw.octet, i),
			hostVeth: fmt.Sprintf("%s%06xh%02x%x", linkPrefix, pid, nw.octet, i),
			nsVeth:   fmt.Sprintf("%s%06xp%02x%x", linkPrefix, pid, nw.octet, i),
			ip:       fmt.Sprintf("%s%d.%d", subnetBase, nw.octet, i+2),
		}
		nw.nodes = append(nw.nodes, node)
		inNS := func(args ...string) []string { return append([]string{"-n", node.ns}, args...) }
		steps := [][]string{
			{"netns", "add", node.ns},
			{"link", "add", node.hostVeth, "type", "veth", "peer", "name", node.nsVeth},
			{"link", "set", node.nsVeth, "netns", node.ns},
			{"link", "set", node.hostVeth, "master", nw.bridge},
			{"link", "set", node.hostVeth, "up"},
			inNS("link", "set", "lo", "up"),
			inNS("addr", "add", node.ip+"/24", "dev", node.nsVeth),
			inNS("link", "set", node.nsVeth, "up"),
			// Move the "local" table lookup behind the partition rules
			// (priority 10) so they also see packets addressed to this node.
			inNS("rule", "add", "pref", "100", "lookup", "local"),
			inNS("rule", "del", "pref", "0"),
		}
		for _, s := range steps {
			if _, err := runIP(s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Size is the number of nodes (namespaces).
func (nw *Network) Size() int { return len(nw.nodes) }

// IP is node i's address.
func (nw *Network) IP(i int) string { return nw.node(i).ip }

// HostIP is the bridge's address in the host namespace (the test process).
func (nw *Network) HostIP() string { return fmt.Sprintf("%s%d.1", subnetBase, nw.octet) }

// Namespace is node i's namespace name.
func (nw *Network) Namespace(i int) string { return nw.node(i).ns }

// Wrap is the command prefix that runs a program inside node i's namespace
// (for AgentOptions.Wrap). `ip netns exec` execs the program in place, so
// the pid and signals are the program's own.
func (nw *Network) Wrap(i int) []string { return []string{"ip", "netns", "exec", nw.node(i).ns} }

// Exec runs a program inside node i's namespace and returns its combined
// output.
func (nw *Network) Exec(i int, env []string, name string, args ...string) ([]byte, error) {
	argv := append(append(nw.Wrap(i), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("testutil: %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

func (nw *Network) node(i int) netnsNode {
	if i < 0 || i >= len(nw.nodes) {
		nw.tb.Fatalf("testutil: network has no node %d (size %d)", i, len(nw.nodes))
	}
	return nw.nodes[i]
}

// Partition heals any previous partition and then cuts the nodes into the
// given groups: a node cannot exchange packets with a node of another group.
// Nodes listed in no group form one more group together. Every node keeps
// talking to the test process.
func (nw *Network) Partition(groups ...[]int) error {
	if err := nw.Heal(); err != nil {
		return err
	}
	group := make([]int, len(nw.nodes))
	for i := range group {
		group[i] = -1
	}
	for g, members := range groups {
		for _, i := range members {
			if i < 0 || i >= len(nw.nodes) {
				return fmt.Errorf("testutil: partition: no node %d (size %d)", i, len(nw.nodes))
			}
			if group[i] != -1 {
				return fmt.Errorf("testutil: partition: node %d is in two groups", i)
			}
			group[i] = g
		}
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for recv := range nw.nodes {
		for send := range nw.nodes {
			if recv == send || group[recv] == group[send] {
				continue
			}
			if err := nw.rule("add", recv, send); err != nil {
				return err
			}
			nw.blocked[[2]int{recv, send}] = true
		}
	}
	return nil
}

// Heal removes every partition rule.
func (nw *Network) Heal() error {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var errs []error
	for pair := range nw.blocked {
		if err := nw.rule("del", pair[0], pair[1]); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(nw.blocked, pair)
	}
	return errors.Join(errs...)
}

// rule adds or deletes the rule in recv's namespace dropping packets from
// send. Caller holds nw.mu.
func (nw *Network) rule(op string, recv, send int) error {
	r, s := nw.nodes[recv], nw.nodes[send]
	_, err := runIP("-n", r.ns, "rule", op, "pref", "10", "from", s.ip, "iif", r.nsVeth, "blackhole")
	return err
}

func (nw *Network) close() {
	nw.mu.Lock()
	if nw.closed {
		nw.mu.Unlock()
		return
	}
	nw.closed = true
	nw.mu.Unlock()
	var errs []error
	for _, n := range nw.nodes {
		killNamespacePids(n.ns)
		if _, err := runIP("netns", "del", n.ns); err != nil {
			errs = append(errs, err)
		}
		// The pair goes with the namespace, asynchronously; make sure.
		_, _ = runIP("link", "del", n.hostVeth)
	}
	if _, err := runIP("link", "del", nw.bridge); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		nw.tb.Errorf("testutil: remove network %s: %v", nw.bridge, err)
	}
}

// killNamespacePids SIGKILLs every process still inside namespace ns.
func killNamespacePids(ns string) {
	out, err := runIP("netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// CleanStaleNetworks removes namespaces and links that NewNetwork created in
// a process that no longer exists. logf (may be nil) hears what was removed.
func CleanStaleNetworks(logf func(format string, args ...any)) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if out, err := runIP("netns", "list"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || !strings.HasPrefix(fields[0], netnsPrefix) {
				continue
			}
			name := fields[0]
			rest := strings.TrimPrefix(name, netnsPrefix)
			rest = strings.TrimPrefix(rest, "probe-")
			pidStr, _, _ := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidStr)
			if err != nil || processAlive(pid) {
				continue
			}
			killNamespacePids(name)
			if _, err := runIP("netns", "del", name); err == nil {
				logf("testutil: removed stale namespace %s", name)
			}
		}
	}
	if out, err := runIP("-o", "link", "show"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			// "12: name@peer: <...>"
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
			m := linkNameRE.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			pid, err := strconv.ParseInt(m[1], 16, 64)
			if err != nil || processAlive(int(pid)) {
				continue
			}
			if _, err := runIP("link", "del", name); err == nil {
				logf("testutil: removed stale link %s", name)
			}
		}
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// freeOctet picks X such that no address in 10.213.X.0/24 is configured in
// the host namespace. Caller holds the networks lock.
func freeOctet() (int, error) {
	out, err := runIP("-o", "-4", "addr", "show")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(f, subnetBase) {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(f, subnetBase), ".")
		if n, err := strconv.Atoi(parts[0]); err == nil {
			used[n] = true
		}
	}
	// Start at a pid-dependent place so parallel test binaries rarely
	// collide even before the lock serializes them.
	start := os.Getpid() % 200
	for k := 0; k < 250; k++ {
		x := 1 + (start+k)%250
		if !used[x] {
			return x, nil
		}
	}
	return 0, errors.New("testutil: no free 10.213.X.0/24 subnet")
}

// lockNetworks serializes network creation across test processes (the cluster
// and robustness packages run in parallel).
func lockNetworks() (func(), error) {
	path := filepath.Join(os.TempDir(), "cairn-testutil-netns.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testutil: open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("testutil: lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

func runIP(args ...string) ([]byte, error) {
	cmd := exec.Command("ip", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("testutil: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

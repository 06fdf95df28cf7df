package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func nsLinks(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	ns, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	return string(out) + string(ns)
}

// reach dials addr from inside node i's namespace.
func reach(nw *Network, i int, addr string) error {
	_, err := nw.Exec(i, []string{envProbeDial + "=" + addr}, os.Args[0])
	return err
}

func TestNetwork_PartitionHeal(t *testing.T) {
	nw := NewNetwork(t, 3)
	if nw.IP(0) == nw.IP(1) || !strings.HasPrefix(nw.IP(0), "10.213.") {
		t.Fatalf("ips %s %s", nw.IP(0), nw.IP(1))
	}
	// A fake agent inside node 0, reached from the host and from node 1.
	a := StartAgent(t, AgentOptions{Dev: true, Binary: os.Args[0], Env: []string{envFake + "=1"}, IP: nw.IP(0), Wrap: nw.Wrap(0)})
	a.WaitReady(10 * time.Second)
	if !strings.HasPrefix(a.HTTPAddr(), nw.IP(0)+":") {
		t.Fatalf("http addr %s", a.HTTPAddr())
	}
	if err := reach(nw, 1, a.HTTPAddr()); err != nil {
		t.Fatalf("node 1 cannot reach node 0: %v", err)
	}
	// Node 0 is in its own namespace: not on the host's loopback.
	if c, err := exec.Command("ip", "netns", "identify", strconv.Itoa(a.Pid())).Output(); err != nil || strings.TrimSpace(string(c)) != nw.Namespace(0) {
		t.Fatalf("agent pid %d in namespace %q (%v), want %s", a.Pid(), c, err, nw.Namespace(0))
	}

	if err := nw.Partition([]int{0}); err != nil {
		t.Fatal(err)
	}
	if err := reach(nw, 1, a.HTTPAddr()); err == nil {
		t.Fatal("node 1 reaches node 0 across the partition")
	}
	if err := a.Ready(); err != nil {
		t.Fatalf("the host must still reach a partitioned node: %v", err)
	}
	// Nodes 1 and 2 are on the same side.
	b := StartAgent(t, AgentOptions{Dev: true, Binary: os.Args[0], Env: []string{envFake + "=1"}, IP: nw.IP(2), Wrap: nw.Wrap(2)})
	b.WaitReady(10 * time.Second)
	if err := reach(nw, 1, b.HTTPAddr()); err != nil {
		t.Fatalf("same side: %v", err)
	}
	if err := reach(nw, 0, b.HTTPAddr()); err == nil {
		t.Fatal("node 0 reaches node 2 across the partition")
	}

	if err := nw.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := reach(nw, 1, a.HTTPAddr()); err != nil {
		t.Fatalf("after heal: %v", err)
	}
	if err := nw.Partition([]int{0}, []int{0}); err == nil {
		t.Fatal("a node in two groups must be refused")
	}
	if err := nw.Partition([]int{7}); err == nil {
		t.Fatal("an unknown node must be refused")
	}
}

func TestNetwork_CleanupAndStale(t *testing.T) {
	if err := NetnsSupported(); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}
	var names []string
	t.Run("create", func(t *testing.T) {
		nw := NewNetwork(t, 2)
		names = []string{nw.Namespace(0), nw.Namespace(1), nw.bridge}
		if s := nsLinks(t); !strings.Contains(s, nw.bridge) || !strings.Contains(s, nw.Namespace(1)) {
			t.Fatalf("not created: %s", s)
		}
	})
	err := Poll(5*time.Second, 50*time.Millisecond, func() error {
		s := nsLinks(t)
		for _, n := range names {
			if strings.Contains(s, n) {
				return &leftover{n}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A namespace and a bridge named after a process that is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	ns := netnsPrefix + strconv.Itoa(dead) + "-250-0"
	br := linkPrefix + strconv.FormatInt(int64(dead)+0x1000000, 16)[1:] + "bfa"
	if _, err := runIP("netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	if _, err := runIP("link", "add", br, "type", "bridge"); err != nil {
		_, _ = runIP("netns", "del", ns)
		t.Fatal(err)
	}
	var removed []string
	CleanStaleNetworks(func(f string, a ...any) { removed = append(removed, fmt.Sprintf(f, a...)) })
	s := nsLinks(t)
	if strings.Contains(s, ns) || strings.Contains(s, br+":") {
		_, _ = runIP("netns", "del", ns)
		_, _ = runIP("link", "del", br)
		t.Fatalf("stale %s / %s not removed (removed %v)", ns, br, removed)
	}
}

type leftover struct{ name string }

func (l *leftover) Error() string { return "left behind: " + l.name }

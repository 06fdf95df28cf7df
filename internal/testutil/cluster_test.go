package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func startFakeCluster(t *testing.T, opts ClusterOptions) (*Cluster, string) {
	t.Helper()
	leaderFile := filepath.Join(t.TempDir(), "leader")
	opts.Binary = os.Args[0]
	opts.Env = append(opts.Env, envFake+"=1", envFakeLeaderFile+"="+leaderFile)
	return StartCluster(t, opts), leaderFile
}

func TestCluster_FlagsAndLeader(t *testing.T) {
	c, leaderFile := startFakeCluster(t, ClusterOptions{Servers: 3, Clients: 2, NamePrefix: "x"})
	if len(c.Servers) != 3 || len(c.Clients) != 2 || len(c.Agents()) != 5 {
		t.Fatalf("got %d servers %d clients", len(c.Servers), len(c.Clients))
	}
	seen := map[int]bool{}
	for _, a := range c.Agents() {
		for _, p := range []int{a.Ports.HTTP, a.Ports.DNS, a.Ports.SerfLAN, a.Ports.SerfWAN, a.Ports.Server} {
			if seen[p] {
				t.Fatalf("port %d used twice", p)
			}
			seen[p] = true
		}
	}
	s1, s2 := c.Servers[0], c.Servers[1]
	if s1.Name != "xs1" || c.Clients[1].Name != "xc2" || c.Agent("xc1") != c.Clients[0] {
		t.Fatalf("names: %s %s", s1.Name, c.Clients[1].Name)
	}
	args := strings.Join(s1.Args, " ")
	for _, want := range []string{"-server", "-bootstrap-expect=3", "-retry-interval=1s",
		"-retry-join=" + s2.SerfLANAddr(), "-retry-join=" + c.Servers[2].SerfLANAddr()} {
		if !strings.Contains(args, want) {
			t.Errorf("server args %q lack %q", args, want)
		}
	}
	if strings.Contains(args, "-retry-join="+s1.SerfLANAddr()) {
		t.Errorf("server joins itself: %q", args)
	}
	cargs := c.Clients[0].Args
	if slices.Contains(cargs, "-server") || strings.Contains(strings.Join(cargs, " "), "bootstrap-expect") {
		t.Errorf("client args %q", cargs)
	}
	for _, s := range c.Servers {
		if !slices.Contains(cargs, "-retry-join="+s.SerfLANAddr()) {
			t.Errorf("client args %q do not join %s", cargs, s.Name)
		}
	}

	// Every fake names itself: no majority, no leader.
	if _, err := c.WaitLeader(300 * time.Millisecond); err == nil {
		t.Fatal("WaitLeader must fail while servers disagree")
	}
	// Now all name s2.
	if err := os.WriteFile(leaderFile, []byte(s2.ServerAddr()), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil || l != s2 {
		t.Fatalf("leader %v err %v", l, err)
	}
	if f := c.Followers(); len(f) != 2 || slices.Contains(f, s2) {
		t.Fatalf("followers %v", f)
	}
	if err := c.WaitMembers(1, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// Pausing the leader: it no longer counts.
	if err := c.Pause(s2); err != nil {
		t.Fatal(err)
	}
	if !c.Paused(s2) || c.Up(s2) {
		t.Fatal("paused agent must not be up")
	}
	if _, err := c.Leader(); err == nil {
		t.Fatal("a paused leader is no leader")
	}
	if err := c.Resume(s2); err != nil {
		t.Fatal(err)
	}
	if l, err := c.WaitLeader(10 * time.Second); err != nil || l != s2 {
		t.Fatalf("after resume: leader %v err %v", l, err)
	}

	// Kill and restart.
	pid := s1.Pid()
	c.Kill(s1)
	if s1.Running() {
		t.Fatal("killed agent still running")
	}
	c.Restart(s1)
	if s1.Pid() == pid || !s1.Running() {
		t.Fatal("restart did not start a new process")
	}
	// A paused agent is resumed before a restart.
	if err := c.Pause(c.Clients[0]); err != nil {
		t.Fatal(err)
	}
	c.Restart(c.Clients[0])
	if c.Paused(c.Clients[0]) || !c.Clients[0].Running() {
		t.Fatal("restart of a paused agent")
	}
	// Left paused on purpose: cleanup must resume and kill it.
	if err := c.Pause(c.Clients[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Partition(s1); err == nil {
		t.Fatal("Partition without a network must fail")
	}
}

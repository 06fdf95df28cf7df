package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/testutil"
)

// nemesis injects one fault at a time into a cluster, records each as an
// event, and waits for the cluster to have a leader again afterwards. It
// runs on the test goroutine (the harness may call t.Fatal).
type nemesis struct {
	t   testing.TB
	c   *testutil.Cluster
	rec *Recorder
	rng *rand.Rand
	// hold is how long a fault lasts; settle the quiet time between faults.
	hold, settle time.Duration
	faults       int
	// recovery is how long the cluster took to agree on a leader after
	// each fault was lifted.
	recovery []time.Duration
}

func newNemesis(t testing.TB, c *testutil.Cluster, rec *Recorder) *nemesis {
	return &nemesis{
		t: t, c: c, rec: rec,
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
		hold:   3 * time.Second,
		settle: 2 * time.Second,
	}
}

// run injects faults in turn (kill -9 the leader and restart it; isolate the
// leader in a minority partition, or pause it with SIGSTOP without network
// namespaces; pause a random node) until ctx ends.
func (n *nemesis) run(ctx context.Context) {
	kinds := []func(context.Context){n.killLeader, n.partitionLeader, n.pauseNode}
	for i := 0; ; i++ {
		if !sleepCtx(ctx, n.settle) {
			return
		}
		kinds[i%len(kinds)](ctx)
		n.faults++
		n.awaitLeader()
	}
}

func (n *nemesis) leaderOrAny() *testutil.Agent {
	if l, err := n.c.Leader(); err == nil {
		return l
	}
	return n.c.Servers[n.rng.IntN(len(n.c.Servers))]
}

func (n *nemesis) killLeader(ctx context.Context) {
	l := n.leaderOrAny()
	start := n.rec.Now()
	n.c.Kill(l)
	sleepCtx(ctx, n.hold)
	n.c.Restart(l)
	n.event(start, "kill -9 %s (leader), restart", l.Name)
}

func (n *nemesis) partitionLeader(ctx context.Context) {
	l := n.leaderOrAny()
	start := n.rec.Now()
	if n.c.Network == nil {
		if err := n.c.Pause(l); err != nil {
			n.t.Errorf("nemesis: %v", err)
			return
		}
		sleepCtx(ctx, n.hold)
		if err := n.c.Resume(l); err != nil {
			n.t.Errorf("nemesis: %v", err)
		}
		n.event(start, "SIGSTOP %s (leader; no netns for a partition)", l.Name)
		return
	}
	if err := n.c.Partition(l); err != nil {
		n.t.Errorf("nemesis: partition: %v", err)
		return
	}
	sleepCtx(ctx, n.hold+time.Second)
	if err := n.c.Heal(); err != nil {
		n.t.Errorf("nemesis: heal: %v", err)
	}
	n.event(start, "partition {%s} | rest (leader isolated), heal", l.Name)
}

func (n *nemesis) pauseNode(ctx context.Context) {
	all := n.c.Agents()
	a := all[n.rng.IntN(len(all))]
	start := n.rec.Now()
	if err := n.c.Pause(a); err != nil {
		n.t.Errorf("nemesis: %v", err)
		return
	}
	sleepCtx(ctx, n.hold)
	if err := n.c.Resume(a); err != nil {
		n.t.Errorf("nemesis: %v", err)
	}
	n.event(start, "SIGSTOP %s, SIGCONT", a.Name)
}

func (n *nemesis) event(start int64, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	n.rec.Note(start, n.rec.Now(), what)
	n.t.Logf("nemesis: %s", what)
}

// awaitLeader waits for the cluster to agree on a leader again; not
// recovering within 30 s is a failure in its own right.
func (n *nemesis) awaitLeader() {
	start := time.Now()
	if _, err := n.c.WaitLeader(30 * time.Second); err != nil {
		n.t.Errorf("nemesis: cluster did not recover after fault %d: %v", n.faults, err)
		return
	}
	n.recovery = append(n.recovery, time.Since(start))
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

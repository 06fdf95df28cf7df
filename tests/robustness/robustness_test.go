package robustness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/consul/api"

	"github.com/cairn-io/cairn/internal/testutil"
)

// checkTimeout bounds porcupine on one history; Unknown after it is
// reported, not failed.
const checkTimeout = 3 * time.Minute

// startRobustnessCluster starts 3 servers and 2 clients, in network
// namespaces when they are available (so the nemesis can partition), else on
// loopback.
func startRobustnessCluster(t *testing.T, prefix string) *testutil.Cluster {
	t.Helper()
	opts := testutil.ClusterOptions{Servers: *flagServers, Clients: *flagClients, LogLevel: "info", NamePrefix: prefix}
	if testutil.NetnsSupported() == nil {
		opts.Network = testutil.NewNetwork(t, opts.Servers+opts.Clients)
	} else {
		t.Logf("no network namespaces (%v): partitions become SIGSTOP pauses", testutil.NetnsSupported())
	}
	c := testutil.StartCluster(t, opts)
	c.WaitReady(clusterReadyTimeout)
	return c
}

// TestRobustness_KV: clients run get (?consistent), put and CAS through all
// five agents while the nemesis kills, partitions and pauses nodes; the
// history must be linearizable. One short run by default; -tags robustness
// or -robustness.runs/-robustness.duration for more.
func TestRobustness_KV(t *testing.T) {
	runs, dur := *flagRuns, *flagDuration
	if testing.Short() {
		t.Skip("cluster run skipped in -short mode")
	}
	t.Logf("%d run(s) of %s", runs, dur)
	for i := 1; i <= runs; i++ {
		t.Run(fmt.Sprintf("run%02d", i), func(t *testing.T) { robustnessRun(t, i, dur) })
	}
}

func robustnessRun(t *testing.T, run int, dur time.Duration) {
	c := startRobustnessCluster(t, "")
	rec := NewRecorder()
	w := newWorkload(rec, c.Agents(), fmt.Sprintf("rob/%d", run), 6, 6)
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	wait := w.run(ctx)
	nem := newNemesis(t, c, rec)
	nem.run(ctx)
	wait()
	// Whatever the nemesis left, the cluster must serve again.
	_ = c.Heal()
	if _, err := c.WaitLeader(30 * time.Second); err != nil {
		t.Errorf("no leader after the run: %v", err)
	}

	h := rec.History()
	st := h.Stats()
	t.Logf("history: %d ops (%d get, %d put, %d cas of which %d ok), %d unknown; %d faults, leader back after %v",
		st.Total, st.Gets, st.Puts, st.CASes, st.CASOK, st.Unknown, nem.faults, nem.recovery)
	if st.Gets == 0 || st.Puts == 0 {
		t.Errorf("workload made no progress: %+v", st)
	}
	if nem.faults == 0 {
		t.Errorf("nemesis injected no fault in %s", dur)
	}
	start := time.Now()
	res, info := Check(h, checkTimeout)
	t.Logf("porcupine: %s in %s", res, time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		dir := filepath.Join(*flagOut, fmt.Sprintf("%s-%s", time.Now().UTC().Format("20060102T150405Z"), sanitize(t.Name())))
		if _, err := Save(dir, h, &info); err != nil {
			t.Errorf("save failing history: %v", err)
		}
		abs, _ := filepath.Abs(dir)
		t.Errorf("history is NOT linearizable; history.json and history.html saved in %s", abs)
	default:
		dir := filepath.Join(*flagOut, fmt.Sprintf("%s-%s-inconclusive", time.Now().UTC().Format("20060102T150405Z"), sanitize(t.Name())))
		_, _ = Save(dir, h, nil)
		t.Logf("WARNING: porcupine gave up after %s (history saved in %s)", checkTimeout, dir)
	}
}

func sanitize(name string) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(name)
}

// TestRobustness_NegativeControl: a ?stale read from an old leader cut off
// in a minority partition, after the majority committed a newer value, is
// not linearizable, and porcupine must say so. Shows the checker can fail.
func TestRobustness_NegativeControl(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster run skipped in -short mode")
	}
	nw := testutil.NewNetwork(t, 3) // skips without network namespaces
	c := testutil.StartCluster(t, testutil.ClusterOptions{Servers: 3, Network: nw, LogLevel: "info"})
	old := c.WaitReady(clusterReadyTimeout)
	rec := NewRecorder()
	client := rec.NewClientID()
	const key = "neg/k"

	write := func(a *testutil.Agent, v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		r := Record{ClientID: client, Input: Input{Kind: KindPut, Key: key, Value: v}, Agent: a.Name, Call: rec.Now()}
		_, err := a.Client().KV().Put(&api.KVPair{Key: key, Value: []byte(v)}, (&api.WriteOptions{}).WithContext(ctx))
		r.Return = rec.Now()
		if err != nil {
			r.Output, r.Return, r.Err = Output{Unknown: true}, -1, err.Error()
			client = rec.NewClientID()
		}
		rec.Add(r)
		return err
	}
	if err := write(old, "v1"); err != nil {
		t.Fatalf("first write through the leader: %v", err)
	}
	// Every server has v1 before the cut.
	for _, s := range c.Servers {
		testutil.Retry(t, 10*time.Second, 20*time.Millisecond, func() error {
			p, _, err := s.Client().KV().Get(key, &api.QueryOptions{AllowStale: true})
			if err != nil || p == nil || string(p.Value) != "v1" {
				return fmt.Errorf("%s: stale read %v %v", s.Name, p, err)
			}
			return nil
		})
	}

	if err := c.Partition(old); err != nil {
		t.Fatal(err)
	}
	rest := c.Servers[0]
	if rest == old {
		rest = c.Servers[1]
	}
	start := rec.Now()
	n := 0
	testutil.Retry(t, 45*time.Second, 100*time.Millisecond, func() error {
		n++
		return write(rest, fmt.Sprintf("v2-%d", n))
	})
	t.Logf("majority committed after %d attempt(s), %s after the partition", n, time.Duration(rec.Now()-start))

	// The old leader, cut off, still answers ?stale from its own state.
	r := Record{ClientID: rec.NewClientID(), Input: Input{Kind: KindGet, Key: key}, Agent: old.Name + " ?stale", Call: rec.Now()}
	p, _, err := old.Client().KV().Get(key, &api.QueryOptions{AllowStale: true})
	r.Return = rec.Now()
	if err != nil {
		t.Fatalf("stale read from the partitioned old leader: %v", err)
	}
	if p == nil || string(p.Value) != "v1" {
		t.Fatalf("the partitioned old leader returned %v, want the old value v1 (did the partition hold?)", p)
	}
	r.Output = Output{Found: true, Value: "v1"}
	rec.Add(r)
	rec.Note(start, rec.Now(), "partition {"+old.Name+"} | rest")
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}

	h := rec.History()
	res, info := Check(h, time.Minute)
	if res != porcupine.Illegal {
		t.Fatalf("porcupine says %s for a history with a stale read after a newer committed write; the checker cannot fail", res)
	}
	dir, err := Save(filepath.Join(t.TempDir(), "negative"), h, &info)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("porcupine flagged the stale read as expected (visualization in %s, removed after the test)", dir)

	// Without the stale read, the same history is linearizable.
	h.Records = h.Records[:len(h.Records)-1]
	if res, _ := Check(h, time.Minute); res != porcupine.Ok {
		t.Fatalf("history without the stale read: %s", res)
	}
}

// TestRobustness_Recheck checks a saved history again and writes its
// visualization next to it: -robustness.recheck=path/to/history.json.
func TestRobustness_Recheck(t *testing.T) {
	if *flagRecheck == "" {
		t.Skip("no -robustness.recheck=history.json given")
	}
	h, err := Load(*flagRecheck)
	if err != nil {
		t.Fatal(err)
	}
	res, info := Check(h, checkTimeout)
	dir, err := Save(filepath.Dir(*flagRecheck), h, &info)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d operations: %s (visualization in %s)", len(h.Records), res, filepath.Join(dir, "history.html"))
	if res == porcupine.Illegal {
		t.Error("history is not linearizable")
	}
}

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairn-io/cairn/internal/bench"
)

// comparison is one line of the side-by-side table: a figure of each system
// read from the result files that bench/compare.sh wrote into one dir.
type comparison struct {
	name   string
	cairn  string // file stem
	etcd   string
	metric func(*bench.Result) float64
	unit   string
	// higherBetter: the goal is cairn/etcd >= goal; otherwise <= goal.
	higherBetter bool
	goal         float64
}

func opsPerSec(r *bench.Result) float64 { return r.OpsPerSec }
func p50(r *bench.Result) float64       { return r.Latency.P50 }
func p99(r *bench.Result) float64       { return r.Latency.P99 }

var comparisons = []comparison{
	{"KV put, 100 clients (ops/s)", "cairn-put100", "etcd-put100", opsPerSec, "ops/s", true, 1},
	{"KV put, 100 clients, p99 (ms)", "cairn-put100", "etcd-put100", p99, "ms", false, 1},
	{"KV put, 1 client, p50 (ms)", "cairn-put1", "etcd-put1", p50, "ms", false, 1},
	{"KV put, 1 client, p99 (ms)", "cairn-put1", "etcd-put1", p99, "ms", false, 1},
	{"KV put, 1 client through the leader, p50 (ms)", "cairn-put1-leader", "etcd-put1-leader", p50, "ms", false, 1},
	{"KV put, 1 client through a follower, p50 (ms)", "cairn-put1-follower", "etcd-put1-follower", p50, "ms", false, 1},
	{"KV get default vs linearizable, 100 clients (ops/s)", "cairn-get-default", "etcd-get-linearizable", opsPerSec, "ops/s", true, 1},
	{"KV get default vs linearizable, 1 client, p50 (ms)", "cairn-get1-default", "etcd-get1-linearizable", p50, "ms", false, 1},
	{"KV get stale vs serializable, 100 clients (ops/s)", "cairn-get-stale", "etcd-get-serializable", opsPerSec, "ops/s", true, 1},
	{"KV get stale vs serializable, 1 client, p50 (ms)", "cairn-get1-stale", "etcd-get1-serializable", p50, "ms", false, 1},
	{"Fill 100,000 x 1 KiB, 100 clients (ops/s)", "cairn-fill", "etcd-fill", opsPerSec, "ops/s", true, 1},
	{"Watch fan-out, write ack to watcher, p99 (ms)", "cairn-watch", "etcd-watch", p99, "ms", false, 1},
	{"Failover, kill -9 leader to first write, p50 (ms)", "cairn-failover", "etcd-failover", p50, "ms", false, 1},
}

func readResult(dir, stem string) (*bench.Result, error) {
	b, err := os.ReadFile(filepath.Join(dir, stem+".json"))
	if err != nil {
		return nil, err
	}
	var rs []*bench.Result
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w", stem, err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%s: %d results, want 1", stem, len(rs))
	}
	return rs[0], nil
}

// readRSS reads one line of VmRSS values in kB (one per server) from
// rss-<name>.txt.
func readRSS(dir, name string) (sum, maxKB uint64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "rss-"+name+".txt"))
	if err != nil {
		return 0, 0, err
	}
	for _, f := range strings.Fields(string(b)) {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("rss-%s.txt: %q: %w", name, f, err)
		}
		sum += v
		maxKB = max(maxKB, v)
	}
	return sum, maxKB, nil
}

func runCompare(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("etcdbench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "Directory with the result files of bench/compare.sh.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "| figure | cairn | etcd | cairn/etcd | goal | met |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---|---|")
	line := func(name string, c, e float64, unit string, higherBetter bool, goal float64) {
		ratio := c / e
		cmp, ok := "≥", ratio >= goal
		if !higherBetter {
			cmp, ok = "≤", ratio <= goal
		}
		met := "no"
		if ok {
			met = "yes"
		}
		fmt.Fprintf(stdout, "| %s | %s | %s | %.2f | %s %.1f× | %s |\n", name, num(c, unit), num(e, unit), ratio, cmp, goal, met)
	}
	for _, c := range comparisons {
		cr, err1 := readResult(*dir, c.cairn)
		er, err2 := readResult(*dir, c.etcd)
		if err1 != nil || err2 != nil {
			if os.IsNotExist(err1) || os.IsNotExist(err2) {
				continue // workload not run (e.g. -quick)
			}
			return fmt.Errorf("%v %v", err1, err2)
		}
		line(c.name, c.metric(cr), c.metric(er), c.unit, c.higherBetter, c.goal)
		for _, r := range []*bench.Result{cr, er} {
			if r.Errors > 0 {
				fmt.Fprintf(stderr, "note: %s %s had %d errors (first: %s)\n", r.System, r.Workload, r.Errors, r.FirstError)
			}
		}
	}
	cs, cm, err1 := readRSS(*dir, "cairn")
	es, em, err2 := readRSS(*dir, "etcd")
	if err1 == nil && err2 == nil {
		line("Server RSS after the fill, sum of 3 (MiB)", float64(cs)/1024, float64(es)/1024, "MiB", false, 1)
		line("Server RSS after the fill, largest of 3 (MiB)", float64(cm)/1024, float64(em)/1024, "MiB", false, 1)
	}
	cs, cm, err1 = readRSS(*dir, "cairn-settled")
	es, em, err2 = readRSS(*dir, "etcd-settled")
	if err1 == nil && err2 == nil {
		line("Server RSS after the fill + settle, sum of 3 (MiB)", float64(cs)/1024, float64(es)/1024, "MiB", false, 1)
		line("Server RSS after the fill + settle, largest of 3 (MiB)", float64(cm)/1024, float64(em)/1024, "MiB", false, 1)
	}
	cpuTable(stdout, *dir)
	ce, err1 := os.ReadFile(filepath.Join(*dir, "elections-cairn.txt"))
	ee, err2 := os.ReadFile(filepath.Join(*dir, "elections-etcd.txt"))
	if err1 == nil && err2 == nil {
		fmt.Fprintf(stdout, "Election attempts during the workloads: cairn %s (\"starting election\" log lines), etcd %s (raft term increase).\n",
			strings.TrimSpace(string(ce)), strings.TrimSpace(string(ee)))
	}
	return nil
}

func num(v float64, unit string) string {
	switch {
	case unit == "ms" && v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// cpuPairs are the workloads whose CPU cost per operation is compared.
var cpuPairs = [][3]string{
	{"fill (1 KiB puts, 100 clients)", "cairn-fill", "etcd-fill"},
	{"put, 100 clients", "cairn-put100", "etcd-put100"},
	{"put, 1 client", "cairn-put1", "etcd-put1"},
	{"put, 1 client through the leader", "cairn-put1-leader", "etcd-put1-leader"},
	{"put, 1 client through a follower", "cairn-put1-follower", "etcd-put1-follower"},
	{"get default / linearizable, 100 clients", "cairn-get-default", "etcd-get-linearizable"},
	{"get stale / serializable, 100 clients", "cairn-get-stale", "etcd-get-serializable"},
}

// cpuPerOp returns the servers' (all three, summed) and the bench client's
// CPU per successful operation in µs, from cpu-<stem>.txt (clock ticks)
// and clientcpu-<stem>.txt ("user sys" seconds).
func cpuPerOp(dir, stem string) (server, client float64, ok bool) {
	r, err := readResult(dir, stem)
	if err != nil || r.Ops == 0 {
		return 0, 0, false
	}
	b, err := os.ReadFile(filepath.Join(dir, "cpu-"+stem+".txt"))
	if err != nil {
		return 0, 0, false
	}
	ticks, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return 0, 0, false
	}
	server = ticks * 10_000 / float64(r.Ops) // 100 ticks/s
	if b, err := os.ReadFile(filepath.Join(dir, "clientcpu-"+stem+".txt")); err == nil {
		var u, s float64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%g %g", &u, &s); err == nil {
			client = (u + s) * 1e6 / float64(r.Ops)
		}
	}
	return server, client, true
}

func cpuTable(w io.Writer, dir string) {
	header := false
	for _, p := range cpuPairs {
		cs, cc, ok1 := cpuPerOp(dir, p[1])
		es, ec, ok2 := cpuPerOp(dir, p[2])
		if !ok1 || !ok2 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\n| CPU per operation (µs) | cairn servers | etcd servers | ratio | cairn client | etcd client |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
			header = true
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.0f | %.0f |\n", p[0], cs, es, cs/es, cc, ec)
	}
	if header {
		fmt.Fprintln(w)
	}
}

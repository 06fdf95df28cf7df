package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/cairn-io/cairn/internal/bench"
)

// stringsFlag collects a repeatable flag; each value may also be a
// comma-separated list.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }

func (s *stringsFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

const benchUsage = `
Drives Cairn agents over the HTTP API (official consul/api client) and
prints throughput, p50/p90/p99/p99.9 latency and errors. The WORKLOAD
may come before or after the options. watch-fanout -watch-client raw
sends consul/api's blocking query on plain connections instead, a load
generator that costs a third of the api client's CPU.

Workloads: kv-put, kv-get, kv-mix, catalog-churn, health-read,
watch-fanout, failover (failover needs -cluster).
`

func runBench(u *ui, args []string) error {
	cfg := bench.DefaultConfig()
	fs := newFlagSet(u, "bench")
	var addrs stringsFlag
	fs.Var(&addrs, "http-addr", "Agent HTTP `address` (repeatable or comma-separated; clients are spread over them). Default $CONSUL_HTTP_ADDR or 127.0.0.1:8500.")
	fs.StringVar(&cfg.Token, "token", os.Getenv("CONSUL_HTTP_TOKEN"), "ACL token.")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "Concurrent clients (closed loop).")
	fs.IntVar(&cfg.Conns, "conns", 0, "HTTP connections in total (default: one per client).")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "How long to run (ignored with -requests).")
	requests := fs.Uint64("requests", 0, "Run this many operations instead of -duration.")
	fs.IntVar(&cfg.ValueSize, "value-size", cfg.ValueSize, "KV value size in bytes.")
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "KV key space (keys are chosen uniformly at random).")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", cfg.KeyPrefix, "Prefix of every key written.")
	fs.StringVar(&cfg.Consistency, "consistency", cfg.Consistency, "Read mode: default, consistent or stale.")
	fs.Float64Var(&cfg.ReadRatio, "read-ratio", cfg.ReadRatio, "kv-mix: share of reads (0..1).")
	fs.BoolVar(&cfg.Sequential, "sequential", false, "kv-put: write keys in order (0..keys-1, wrapping) instead of at random.")
	fs.BoolVar(&cfg.NoPrefill, "no-prefill", false, "kv-get/kv-mix: do not write the key space first.")
	fs.IntVar(&cfg.Instances, "instances", cfg.Instances, "health-read: instances registered first; catalog-churn: instances per client.")
	fs.IntVar(&cfg.Watchers, "watchers", cfg.Watchers, "watch-fanout: blocked watchers on one key.")
	fs.IntVar(&cfg.Writes, "writes", cfg.Writes, "watch-fanout: writes to the watched key; failover: rounds.")
	rounds := fs.Int("rounds", 0, "failover: rounds (same as -writes).")
	var pids stringsFlag
	fs.Var(&pids, "pid", "watch-fanout: agent process `id`s (repeatable or comma-separated) whose CPU is sampled between writes.")
	fs.StringVar(&cfg.WatchClient, "watch-client", cfg.WatchClient, "watch-fanout: watcher client, api (consul/api, one per watcher) or raw (consul/api's request on a plain TCP connection per watcher, parsed by hand: a cheaper load generator).")
	format := fs.String("format", "table", "Output format: table or json.")
	progress := fs.Bool("progress", false, "Show the progress bar even when stderr is not a terminal.")
	cluster := fs.Bool("cluster", false, "Start a 3-server cluster from -binary, run against it, stop it.")
	clusterDir := fs.String("data-dir", "", "-cluster: parent directory of the servers' data dirs (default: a temporary one, removed).")
	binary := fs.String("binary", "", "-cluster: the cairn binary (default: this one).")
	servers := fs.Int("servers", 3, "-cluster: number of servers.")
	var extra stringsFlag
	fs.Var(&extra, "agent-arg", "-cluster: extra argument for every agent (repeatable).")
	fs.Usage = func() {}

	// The workload may come first or after the flags.
	var workload string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		workload, args = args[0], args[1:]
	}
	if err := parseFlags(u, fs, args); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprint(u.err, benchUsage)
		}
		return err
	}
	if workload == "" {
		if fs.NArg() == 0 {
			return fmt.Errorf("missing WORKLOAD argument (one of %s)", strings.Join(bench.Workloads, ", "))
		}
		// Flags may follow the workload too.
		workload = fs.Arg(0)
		if err := parseFlags(u, fs, fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("too many arguments: %q", fs.Args())
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("-format must be table or json (got %q)", *format)
	}
	for _, p := range pids {
		n, perr := strconv.Atoi(p)
		if perr != nil || n <= 0 {
			return fmt.Errorf("-pid must be a process id (got %q)", p)
		}
		cfg.Pids = append(cfg.Pids, n)
	}
	if cfg.WatchClient == bench.WatchClientRaw && workload != "watch-fanout" {
		return fmt.Errorf("-watch-client=raw applies to watch-fanout only (got workload %q)", workload)
	}
	if *requests > 0 {
		cfg.Requests, cfg.Duration = *requests, 0
	}
	if *rounds > 0 {
		cfg.Writes = *rounds
	}
	if len(addrs) == 0 {
		if env := os.Getenv("CONSUL_HTTP_ADDR"); env != "" {
			addrs = stringsFlag{env}
		} else {
			addrs = stringsFlag{"127.0.0.1:8500"}
		}
	}
	for i, a := range addrs {
		addrs[i] = strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
	}
	cfg.Addrs = addrs
	if *progress || isTerminal(u.err) {
		cfg.Progress = u.err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var res *bench.Result
	var err error
	switch {
	case workload == "failover" || *cluster:
		if !*cluster {
			return errors.New("failover needs -cluster: it starts its own cluster to kill the leader of")
		}
		co := bench.ClusterOptions{Binary: *binary, Dir: *clusterDir, Servers: *servers, ExtraArgs: extra}
		if co.Dir == "" {
			dir, derr := os.MkdirTemp("", "cairn-bench-")
			if derr != nil {
				return fmt.Errorf("creating a data dir: %w", derr)
			}
			defer os.RemoveAll(dir)
			co.Dir = dir
		}
		if workload == "failover" {
			res, err = bench.RunFailover(ctx, cfg, co)
			break
		}
		c, cerr := bench.StartCluster(ctx, co)
		if cerr != nil {
			return cerr
		}
		defer c.Stop()
		cfg.Addrs = c.Addrs()
		res, err = bench.RunWorkload(ctx, workload, cfg)
	default:
		res, err = bench.RunWorkload(ctx, workload, cfg)
	}
	if err != nil {
		return err
	}
	if *format == "json" {
		err = bench.WriteJSON(u.out, []*bench.Result{res})
	} else {
		err = bench.WriteTable(u.out, []*bench.Result{res})
	}
	if err != nil {
		return err
	}
	if res.Ops == 0 && res.Errors > 0 {
		return fmt.Errorf("every operation failed (%d errors); first: %s", res.Errors, res.FirstError)
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

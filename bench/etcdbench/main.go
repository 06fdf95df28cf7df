// Command etcdbench runs the KV workloads of `cairn bench` against etcd
// through its native Go client (go.etcd.io/etcd/client/v3, gRPC), with the
// same closed-loop runner, histogram and JSON output, so that
// bench/compare.sh can put the two systems side by side.
//
// It is its own module so that the etcd client and its dependencies stay
// out of the cairn binary's module graph.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-io/cairn/internal/bench"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

type options struct {
	endpoints   string
	workload    string
	clients     int
	conns       int
	duration    time.Duration
	requests    uint64
	valueSize   int
	keys        int
	prefix      string
	consistency string
	readRatio   float64
	sequential  bool
	noPrefill   bool
	watchers    int
	writes      int
	format      string
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runCompare(args[1:], stdout, stderr)
		case "probe":
			return runProbe(args[1:], stdout, stderr)
		case "hist":
			return runHist(args[1:], stdout, stderr)
		}
	}
	var o options
	fs := flag.NewFlagSet("etcdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.endpoints, "endpoints", "127.0.0.1:2379", "Comma-separated etcd client endpoints.")
	fs.IntVar(&o.clients, "clients", 16, "Concurrent clients (closed loop).")
	fs.IntVar(&o.conns, "conns", 0, "gRPC connections (etcd clients) in total (default: one per client).")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "How long to run (ignored with -requests).")
	fs.Uint64Var(&o.requests, "requests", 0, "Run this many operations instead of -duration.")
	fs.IntVar(&o.valueSize, "value-size", 256, "Value size in bytes.")
	fs.IntVar(&o.keys, "keys", 10000, "Key space.")
	fs.StringVar(&o.prefix, "key-prefix", "bench/", "Prefix of every key.")
	fs.StringVar(&o.consistency, "consistency", "linearizable", "Read mode: linearizable or serializable.")
	fs.Float64Var(&o.readRatio, "read-ratio", 0.9, "mix: share of reads.")
	fs.BoolVar(&o.sequential, "sequential", false, "put: keys in order instead of at random.")
	fs.BoolVar(&o.noPrefill, "no-prefill", false, "get/mix: the keys are already written.")
	fs.IntVar(&o.watchers, "watchers", 1000, "watch-fanout: watchers on one key (each its own watch stream).")
	fs.IntVar(&o.writes, "writes", 5, "watch-fanout: writes.")
	fs.StringVar(&o.format, "format", "table", "table or json.")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.workload, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.workload == "" && fs.NArg() > 0 {
		o.workload = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("too many arguments: %q", fs.Args())
	}
	if o.requests > 0 {
		o.duration = 0
	}
	if o.consistency != "linearizable" && o.consistency != "serializable" {
		return fmt.Errorf("-consistency must be linearizable or serializable (got %q)", o.consistency)
	}
	if o.clients < 1 || o.keys < 1 {
		return errors.New("-clients and -keys must be at least 1")
	}
	// The gRPC balancer logs every reconnect; keep the output for results.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, stderr))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	eps := strings.Split(o.endpoints, ",")
	nconns := o.conns
	if nconns <= 0 {
		nconns = o.clients
	}
	if o.workload == "watch-fanout" && o.conns <= 0 {
		nconns = 1
	}
	cls := make([]*clientv3.Client, nconns)
	for i := range cls {
		// Rotate the endpoint list so connections spread over members.
		rot := append(append([]string(nil), eps[i%len(eps):]...), eps[:i%len(eps)]...)
		c, err := clientv3.New(clientv3.Config{Endpoints: rot, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return fmt.Errorf("connecting to %v: %w", rot, err)
		}
		defer c.Close()
		cls[i] = c
	}
	var progress io.Writer
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			progress = stderr
		}
	}
	ro := bench.RunOptions{Clients: o.clients, Duration: o.duration, Requests: o.requests, Progress: progress}
	val := string(bench.Value(o.valueSize))
	cfg := bench.Config{Clients: o.clients, Keys: o.keys, KeyPrefix: o.prefix, Sequential: o.sequential}
	pick := cfg.KeyPicker()
	var getOpts []clientv3.OpOption
	if o.consistency == "serializable" {
		getOpts = append(getOpts, clientv3.WithSerializable())
	}
	var res *bench.Result
	var err error
	switch o.workload {
	case "put":
		ro.Kinds = []string{"put"}
		res, err = bench.Run(ctx, ro, func(ctx context.Context, w int) (int, error) {
			_, err := cls[w%len(cls)].Put(ctx, bench.Key(o.prefix, pick(w)), val)
			return 0, err
		})
	case "get", "mix":
		if !o.noPrefill {
			if err := prefill(ctx, cls, o, val); err != nil {
				return err
			}
		}
		ratio := o.readRatio
		ro.Kinds = []string{"get", "put"}
		if o.workload == "get" {
			ratio, ro.Kinds = 1, []string{"get"}
		}
		res, err = bench.Run(ctx, ro, func(ctx context.Context, w int) (int, error) {
			key := bench.Key(o.prefix, pick(w))
			if ratio >= 1 || rand.Float64() < ratio {
				resp, err := cls[w%len(cls)].Get(ctx, key, getOpts...)
				if err == nil && len(resp.Kvs) == 0 && !o.noPrefill {
					err = fmt.Errorf("key not found: %s", key)
				}
				return 0, err
			}
			_, err := cls[w%len(cls)].Put(ctx, key, val)
			return 1, err
		})
	case "watch-fanout":
		res, err = watchFanout(ctx, cls, o, progress)
	default:
		return fmt.Errorf("unknown workload %q (put, get, mix, watch-fanout)", o.workload)
	}
	if err != nil {
		return err
	}
	res.Workload, res.System, res.Targets = "kv-"+o.workload, "etcd", eps
	if o.workload == "watch-fanout" {
		res.Workload = "watch-fanout"
	}
	res.Conns, res.ValueSize, res.Keys = nconns, o.valueSize, o.keys
	if o.workload != "put" {
		res.Consistency = o.consistency
	}
	if o.format == "json" {
		return bench.WriteJSON(stdout, []*bench.Result{res})
	}
	return bench.WriteTable(stdout, []*bench.Result{res})
}

// prefill writes every key of the key space once, 32 writers at a time.
func prefill(ctx context.Context, cls []*clientv3.Client, o options, val string) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= o.keys || first != nil || ctx.Err() != nil
				mu.Unlock()
				if stop {
					return
				}
				if _, err := cls[w%len(cls)].Put(ctx, bench.Key(o.prefix, i), val); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return first
}

// watchFanout opens `watchers` watch streams on one key (distinct contexts
// so each is its own gRPC stream) and measures, per write, the time from
// the put's acknowledgement until each watcher received the event.
func watchFanout(ctx context.Context, cls []*clientv3.Client, o options, progress io.Writer) (*bench.Result, error) {
	key := o.prefix + "watch"
	cl := cls[0]
	if _, err := cl.Put(ctx, key, "0"); err != nil {
		return nil, err
	}
	base := time.Now()
	arrivals := make(chan time.Duration, o.watchers*o.writes)
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer wg.Wait()
	defer cancel()
	for i := 0; i < o.watchers; i++ {
		// Distinct outgoing metadata makes the client open a distinct
		// watch stream per watcher, as N independent clients would have.
		sctx := metadata.AppendToOutgoingContext(wctx, "bench-watcher", strconv.Itoa(i))
		ch := cls[i%len(cls)].Watch(sctx, key, clientv3.WithCreatedNotify())
		<-ch // created
		wg.Add(1)
		go func() {
			defer wg.Done()
			for resp := range ch {
				if len(resp.Events) > 0 {
					arrivals <- time.Since(base)
				}
			}
		}()
	}
	var fromAck bench.Histogram
	log.SetOutput(io.Discard)
	begin := time.Now()
	for round := 1; round <= o.writes; round++ {
		time.Sleep(200 * time.Millisecond)
		if _, err := cl.Put(ctx, key, fmt.Sprint(round)); err != nil {
			return nil, err
		}
		ack := time.Since(base)
		timeout := time.After(30 * time.Second)
		for got := 0; got < o.watchers; got++ {
			select {
			case at := <-arrivals:
				fromAck.Record(at - ack)
			case <-timeout:
				return nil, fmt.Errorf("write %d: only %d of %d watchers notified in 30s", round, got, o.watchers)
			}
		}
		if progress != nil {
			fmt.Fprintf(progress, "\rwrite %d/%d", round, o.writes)
		}
	}
	el := time.Since(begin).Seconds()
	return &bench.Result{Clients: o.watchers, ElapsedSec: el, Ops: fromAck.Count(), OpsPerSec: float64(fromAck.Count()) / el,
		Latency: bench.Summarize(&fromAck), Extra: map[string]float64{"watchers": float64(o.watchers), "writes": float64(o.writes)}}, nil
}

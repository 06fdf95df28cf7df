package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/internal/bench"
)

// runProbe retries a put through the given endpoints until one succeeds and
// prints the milliseconds since -since (unix ns, taken by the caller just
// before it killed the leader).
func runProbe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("etcdbench probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eps := fs.String("endpoints", "", "Comma-separated endpoints of the surviving members.")
	since := fs.Int64("since", 0, "Unix time in ns the window starts at.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *eps == "" || *since == 0 {
		return errors.New("probe needs -endpoints and -since")
	}
	start := time.Unix(0, *since)
	cl, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*eps, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cl.Close()
	for time.Since(start) < 2*time.Minute {
		// Each attempt is bounded by 1 s, as in `cairn bench failover`.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.Put(ctx, "bench/failover", strconv.FormatInt(time.Now().UnixNano(), 10))
		cancel()
		if err == nil {
			fmt.Fprintf(stdout, "%.3f\n", float64(time.Since(start))/float64(time.Millisecond))
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("probe: no successful put within 2m")
}

// runHist turns a file of millisecond values (one a line) into a result.
func runHist(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("etcdbench hist", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "File with one value in ms a line.")
	workload := fs.String("workload", "failover", "Workload name for the result.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	var h bench.Histogram
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		v, err := strconv.ParseFloat(line, 64)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", *in, line, err)
		}
		h.Record(time.Duration(v * float64(time.Millisecond)))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	r := &bench.Result{Workload: *workload, System: "etcd", Clients: 1, Ops: h.Count(), Latency: bench.Summarize(&h),
		Extra: map[string]float64{"rounds": float64(h.Count())}}
	return bench.WriteJSON(stdout, []*bench.Result{r})
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// watchIdleWindow is how long the agent's CPU is sampled between writes,
// with every watcher blocked.
const watchIdleWindow = time.Second

// Watch clients: how watch-fanout's watchers talk to the agents.
const (
	// WatchClientAPI: each watcher is a consul/api client (net/http).
	WatchClientAPI = "api"
	// WatchClientRaw: each watcher writes consul/api's request on a plain
	// TCP connection and parses the answer itself (much cheaper).
	WatchClientRaw = "raw"
)

// watchWait is the wait= every watcher asks for, and its query form.
const (
	watchWait   = 5 * time.Minute
	watchWaitMS = "300000ms"
)

// watchFunc is one watcher's blocking query: it returns once the watched
// key's index passes idx (or the server's wait ends) with the index of the
// answer. It calls wrote once the request is on the wire. A watchFunc is
// used by one goroutine only; cancelling ctx makes it return.
type watchFunc func(ctx context.Context, idx uint64, wrote func()) (uint64, error)

// watchClient makes each watcher's watchFunc; close releases what they
// share once every watcher has returned.
type watchClient interface {
	watcher(i int) watchFunc
	close()
}

// apiWatchClient runs each watcher's query through consul/api, one
// connection per watcher, watchers spread over the targets round-robin.
type apiWatchClient struct {
	cfg        Config
	key        string
	cls        []*api.Client
	transports []*http.Transport
}

func newAPIWatchClient(cfg Config, key string) (*apiWatchClient, error) {
	per := (cfg.Watchers + len(cfg.Addrs) - 1) / len(cfg.Addrs)
	c := &apiWatchClient{cfg: cfg, key: key}
	for _, addr := range cfg.Addrs {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConns:        per + 8,
			MaxIdleConnsPerHost: per + 8,
		}
		c.transports = append(c.transports, tr)
		ac := api.DefaultNonPooledConfig()
		ac.Address, ac.Token = addr, cfg.Token
		ac.HttpClient = &http.Client{Transport: tr}
		cl, err := api.NewClient(ac)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("bench: client for %s: %w", addr, err)
		}
		c.cls = append(c.cls, cl)
	}
	return c, nil
}

func (c *apiWatchClient) watcher(i int) watchFunc {
	kv := c.cls[i%len(c.cls)].KV()
	return func(ctx context.Context, idx uint64, wrote func()) (uint64, error) {
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote() }}
		q := &api.QueryOptions{WaitIndex: idx, WaitTime: watchWait}
		switch c.cfg.Consistency {
		case "stale":
			q.AllowStale = true
		case "consistent":
			q.RequireConsistent = true
		}
		_, m, err := kv.Get(c.key, q.WithContext(httptrace.WithClientTrace(ctx, trace)))
		if err != nil {
			return 0, err
		}
		return m.LastIndex, nil
	}
}

func (c *apiWatchClient) close() {
	for _, tr := range c.transports {
		tr.CloseIdleConnections()
	}
}

// watchFanout blocks Watchers watchers on one key (GET ?index=N, each on
// its own connection, through the WatchClient mode's client), then writes the key Writes times. For each write it
// records, per watcher, the time from the write's acknowledgement until the
// watcher's blocking query returned. With Pids set it also samples those
// processes' CPU use (summed) over one second between writes, all watchers blocked.
func watchFanout(ctx context.Context, cfg Config) (*Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := cfg.Watchers
	key := cfg.KeyPrefix + "watch"
	var wc watchClient
	switch cfg.WatchClient {
	case "", WatchClientAPI:
		c, err := newAPIWatchClient(cfg, key)
		if err != nil {
			return nil, err
		}
		wc = c
	case WatchClientRaw:
		c, err := newRawWatchClient(cfg, key)
		if err != nil {
			return nil, err
		}
		wc = c
	default:
		return nil, fmt.Errorf("%w: -watch-client must be api or raw (got %q)", ErrBadOptions, cfg.WatchClient)
	}
	defer wc.close()
	wcls, closeWriter, err := cfg.clients(len(cfg.Addrs))
	if err != nil {
		return nil, err
	}
	defer closeWriter()
	writer := wcls[0].KV()
	if _, err := writer.Put(&api.KVPair{Key: key, Value: []byte("0")}, nil); err != nil {
		return nil, fmt.Errorf("bench: writing the watched key: %w", err)
	}
	_, meta, err := writer.Get(key, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		return nil, fmt.Errorf("bench: reading the watched key: %w", err)
	}
	start := meta.LastIndex

	base := time.Now()
	armed := make([]atomic.Uint64, n)   // index each watcher's request on the wire waits past
	arrivals := make([]atomic.Int64, n) // ns since base of the last wake-up
	woken := make([]atomic.Uint64, n)   // index seen at the last wake-up
	var watchErrs atomic.Uint64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			wait := wc.watcher(i)
			idx := start
			for ctx.Err() == nil {
				want := idx
				got, err := wait(ctx, idx, func() { armed[i].Store(want) })
				now := time.Since(base)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					watchErrs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				if got > idx {
					arrivals[i].Store(int64(now))
					woken[i].Store(got)
					idx = got
				}
			}
		}(i)
	}
	defer wg.Wait()
	defer cancel()

	waitFor := func(timeout time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if cond() {
				return true
			}
			select {
			case <-ctx.Done():
				return false
			case <-time.After(2 * time.Millisecond):
			}
		}
		return cond()
	}

	var fromAck, fromStart Histogram
	var missed uint64
	var cpuSum, cpuMax float64
	var wakeAgentTicks, wakeSelfTicks uint64
	cpuSamples := 0
	last := start
	armTimeout := 30*time.Second + time.Duration(n)*time.Millisecond
	measureBegin := time.Now()
	for round := 0; round < cfg.Writes; round++ {
		if !waitFor(armTimeout, func() bool {
			for i := range armed {
				if armed[i].Load() < last {
					return false
				}
			}
			return true
		}) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("bench: watchers not all blocked after %s (%d errors, first: %v)", armTimeout, watchErrs.Load(), firstErr.Load())
		}
		// The request is on the wire; give the server time to park it.
		settle := 200*time.Millisecond + time.Duration(n)*20*time.Microsecond
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(settle):
		}
		if len(cfg.Pids) > 0 {
			pct, err := sampleCPU(ctx, cfg.Pids, watchIdleWindow)
			if err != nil {
				return nil, err
			}
			cpuSum += pct
			cpuMax = max(cpuMax, pct)
			cpuSamples++
		}
		var agentTicks0, selfTicks0 uint64
		if len(cfg.Pids) > 0 {
			agentTicks0, _ = sumTicks(cfg.Pids)
		}
		selfTicks0, _ = ProcCPUTicks(os.Getpid())
		t0 := time.Since(base)
		wm, err := writer.Put(&api.KVPair{Key: key, Value: []byte(strconv.Itoa(round + 1))}, nil)
		ack := time.Since(base)
		if err != nil {
			return nil, fmt.Errorf("bench: write %d: %w", round+1, err)
		}
		_ = wm
		// The write's index is not in the PUT reply; the watchers learn it.
		if !waitFor(30*time.Second, func() bool {
			for i := range woken {
				if woken[i].Load() <= last {
					return false
				}
			}
			return true
		}) && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// CPU spent to deliver this write to every watcher, servers and
		// this process (which reads every reply and re-arms every watcher).
		if len(cfg.Pids) > 0 {
			if t, err := sumTicks(cfg.Pids); err == nil {
				wakeAgentTicks += t - agentTicks0
			}
		}
		if t, err := ProcCPUTicks(os.Getpid()); err == nil {
			wakeSelfTicks += t - selfTicks0
		}
		next := last
		for i := range woken {
			w := woken[i].Load()
			if w <= last {
				missed++
				continue
			}
			next = max(next, w)
			at := time.Duration(arrivals[i].Load())
			fromAck.Record(at - ack)
			fromStart.Record(at - t0)
		}
		last = next
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "\rwrite %d/%d: %d watchers woken, p99 %.1f ms   ", round+1, cfg.Writes, fromAck.Count(), ms(fromAck.Quantile(0.99)))
		}
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "\r%s\r", strings.Repeat(" ", 78))
	}
	elapsed := time.Since(measureBegin)
	workload := "watch-fanout"
	if cfg.WatchClient == WatchClientRaw {
		workload += " (raw)"
	}
	r := &Result{
		Workload: workload, System: "cairn", Targets: cfg.Addrs, Clients: n, Conns: n,
		Consistency: cfg.Consistency,
		ElapsedSec:  elapsed.Seconds(),
		Ops:         fromAck.Count(),
		Errors:      missed + watchErrs.Load(),
		OpsPerSec:   float64(fromAck.Count()) / elapsed.Seconds(),
		Latency:     Summarize(&fromAck),
		Breakdown:   map[string]Latency{"from_write_start": Summarize(&fromStart)},
		Extra:       map[string]float64{"watchers": float64(n), "writes": float64(cfg.Writes), "missed": float64(missed)},
	}
	r.Extra["client_cpu_ms_per_write"] = float64(wakeSelfTicks) * 1000 / clockTicks / float64(cfg.Writes)
	if len(cfg.Pids) > 0 {
		r.Extra["agent_cpu_ms_per_write"] = float64(wakeAgentTicks) * 1000 / clockTicks / float64(cfg.Writes)
	}
	if cpuSamples > 0 {
		r.Extra["agent_cpu_idle_pct_avg"] = cpuSum / float64(cpuSamples)
		r.Extra["agent_cpu_idle_pct_max"] = cpuMax
	}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	return r, nil
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc/<pid>/stat.
const clockTicks = 100

// ProcCPUTicks returns utime+stime of pid in clock ticks from
// /proc/<pid>/stat.
func ProcCPUTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: reading cpu of pid %d: %w", pid, err)
	}
	return parseStatTicks(string(b))
}

var errBadStat = errors.New("bench: malformed /proc/<pid>/stat")

// parseStatTicks parses utime (14th field) + stime (15th); the command
// name (2nd) may hold spaces, so fields are counted after its ")".
func parseStatTicks(s string) (uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errBadStat
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14 -> f[11], stime f[12].
	if len(f) < 13 {
		return 0, errBadStat
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errBadStat
	}
	return u + st, nil
}

// sumTicks returns the summed utime+stime of pids in clock ticks.
func sumTicks(pids []int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		t, err := ProcCPUTicks(pid)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// sampleCPU returns the summed CPU use of pids over window as a
// percentage of one core.
func sampleCPU(ctx context.Context, pids []int, window time.Duration) (float64, error) {
	total := func() (uint64, error) { return sumTicks(pids) }
	a, err := total()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window):
	}
	b, err := total()
	if err != nil {
		return 0, err
	}
	return float64(b-a) / clockTicks / time.Since(t0).Seconds() * 100, nil
}

// ProcRSS returns pid's resident set size in bytes (VmRSS).
func ProcRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: reading rss of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err == nil {
					return kb * 1024, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS for pid %d", pid)
}

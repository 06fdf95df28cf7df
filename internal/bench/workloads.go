package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// Workloads lists every workload Run accepts, in help order.
var Workloads = []string{"kv-put", "kv-get", "kv-mix", "catalog-churn", "health-read", "watch-fanout", "failover"}

// Config is everything a workload needs. Addrs are HTTP host:port targets;
// workers are spread over them round-robin.
type Config struct {
	Addrs []string
	Token string

	Clients  int           // concurrent workers (closed loop)
	Conns    int           // HTTP connections in total (0: one per client)
	Duration time.Duration // run length; or
	Requests uint64        // a fixed number of operations

	ValueSize   int     // bytes per KV value
	Keys        int     // key space
	KeyPrefix   string  // every key starts with it
	Consistency string  // "default", "consistent" or "stale"
	ReadRatio   float64 // kv-mix: share of reads
	NoPrefill   bool    // kv-get/kv-mix: the keys are already written
	Sequential  bool    // kv-put: keys in order (0, 1, ... wrapping) instead of at random
	Instances   int     // health-read: instances registered up front

	Watchers int   // watch-fanout: blocked watchers on one key
	Writes   int   // watch-fanout: writes (rounds); failover: rounds
	Pids     []int // watch-fanout: agent pids whose CPU (summed) is sampled between writes
	// WatchClient is watch-fanout's watcher client: WatchClientAPI
	// (consul/api, the default when empty) or WatchClientRaw.
	WatchClient string

	Progress io.Writer // progress bar, nil for none
}

// DefaultConfig returns the defaults `cairn bench` starts from.
func DefaultConfig() Config {
	return Config{
		Addrs:       []string{"127.0.0.1:8500"},
		Clients:     16,
		Duration:    10 * time.Second,
		ValueSize:   256,
		Keys:        10000,
		KeyPrefix:   "bench/",
		Consistency: "default",
		ReadRatio:   0.9,
		Instances:   100,
		Watchers:    1000,
		Writes:      5,
		WatchClient: WatchClientAPI,
	}
}

// Validate reports the first option that cannot work.
func (c *Config) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return fmt.Errorf("%w: at least one -http-addr is required", ErrBadOptions)
	case c.Clients < 1:
		return fmt.Errorf("%w: -clients must be at least 1", ErrBadOptions)
	case c.Conns < 0:
		return fmt.Errorf("%w: -conns cannot be negative", ErrBadOptions)
	case c.Duration <= 0 && c.Requests == 0:
		return fmt.Errorf("%w: give -duration or -requests", ErrBadOptions)
	case c.ValueSize < 0:
		return fmt.Errorf("%w: -value-size cannot be negative", ErrBadOptions)
	case c.Keys < 1:
		return fmt.Errorf("%w: -keys must be at least 1", ErrBadOptions)
	case c.ReadRatio < 0 || c.ReadRatio > 1:
		return fmt.Errorf("%w: -read-ratio must be between 0 and 1 (got %g)", ErrBadOptions, c.ReadRatio)
	case c.Instances < 1:
		return fmt.Errorf("%w: -instances must be at least 1", ErrBadOptions)
	case c.Watchers < 1:
		return fmt.Errorf("%w: -watchers must be at least 1", ErrBadOptions)
	case c.Writes < 1:
		return fmt.Errorf("%w: -writes/-rounds must be at least 1", ErrBadOptions)
	}
	switch c.WatchClient {
	case "", WatchClientAPI, WatchClientRaw:
	default:
		return fmt.Errorf("%w: -watch-client must be api or raw (got %q)", ErrBadOptions, c.WatchClient)
	}
	switch c.Consistency {
	case "default", "consistent", "stale":
	default:
		return fmt.Errorf("%w: -consistency must be default, consistent or stale (got %q)", ErrBadOptions, c.Consistency)
	}
	return nil
}

// queryOptions maps the consistency mode onto the api client's options.
func (c *Config) queryOptions() *api.QueryOptions {
	q := &api.QueryOptions{}
	switch c.Consistency {
	case "consistent":
		q.RequireConsistent = true
	case "stale":
		q.AllowStale = true
	}
	return q
}

// clients returns one api client per target, each with its own keep-alive
// pool sized so the pools together hold conns connections.
func (c *Config) clients(conns int) ([]*api.Client, func(), error) {
	if conns <= 0 {
		conns = c.Clients
	}
	per := max(1, (conns+len(c.Addrs)-1)/len(c.Addrs))
	out := make([]*api.Client, 0, len(c.Addrs))
	var transports []*http.Transport
	for _, addr := range c.Addrs {
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        per,
			MaxIdleConnsPerHost: per,
			MaxConnsPerHost:     per,
			IdleConnTimeout:     90 * time.Second,
		}
		transports = append(transports, tr)
		cfg := api.DefaultNonPooledConfig()
		cfg.Address = addr
		cfg.Token = c.Token
		cfg.HttpClient = &http.Client{Transport: tr}
		cl, err := api.NewClient(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: client for %s: %w", addr, err)
		}
		out = append(out, cl)
	}
	closeAll := func() {
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	}
	return out, closeAll, nil
}

func (c *Config) runOptions(kinds ...string) RunOptions {
	return RunOptions{Clients: c.Clients, Duration: c.Duration, Requests: c.Requests, Kinds: kinds, Progress: c.Progress}
}

func (c *Config) base(workload string) Result {
	return Result{Workload: workload, System: "cairn", Targets: c.Addrs, Clients: c.Clients, Conns: c.Conns}
}

// key returns the i-th key of the key space.
func (c *Config) key(i int) string { return Key(c.KeyPrefix, i) }

// Key returns the i-th key of a key space under prefix (shared with the
// etcd driver so both systems store the same keys).
func Key(prefix string, i int) string { return fmt.Sprintf("%s%08d", prefix, i) }

// KeyPicker returns a function giving worker w's next key number: uniform
// at random, or in order across all workers with Sequential.
func (c *Config) KeyPicker() func(w int) int {
	if c.Sequential {
		var next atomic.Uint64
		keys := uint64(c.Keys)
		return func(int) int { return int((next.Add(1) - 1) % keys) }
	}
	rnd := workerRands(c.Clients)
	return func(w int) int { return rnd[w].IntN(c.Keys) }
}

// Value returns a value of n random printable bytes.
func Value(n int) []byte { c := Config{ValueSize: n}; return c.value() }

// value returns a value of ValueSize random printable bytes.
func (c *Config) value() []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, c.ValueSize)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return b
}

// workerRand gives each worker its own generator (no shared lock).
func workerRands(n int) []*rand.Rand {
	out := make([]*rand.Rand, n)
	for i := range out {
		out[i] = rand.New(rand.NewPCG(uint64(i)+1, uint64(time.Now().UnixNano())))
	}
	return out
}

// RunWorkload runs one named workload against cfg.Addrs (failover starts
// its own cluster: use RunFailover).
func RunWorkload(ctx context.Context, name string, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch name {
	case "kv-put":
		return kvPut(ctx, cfg)
	case "kv-get":
		return kvMix(ctx, cfg, "kv-get", 1)
	case "kv-mix":
		return kvMix(ctx, cfg, "kv-mix", cfg.ReadRatio)
	case "catalog-churn":
		return catalogChurn(ctx, cfg)
	case "health-read":
		return healthRead(ctx, cfg)
	case "watch-fanout":
		return watchFanout(ctx, cfg)
	case "failover":
		return nil, fmt.Errorf("%w: failover needs -cluster (it kills the leader of a cluster it started)", ErrBadOptions)
	}
	return nil, fmt.Errorf("%w: unknown workload %q (one of %s)", ErrBadOptions, name, strings.Join(Workloads, ", "))
}

func kvPut(ctx context.Context, cfg Config) (*Result, error) {
	cls, closeAll, err := cfg.clients(cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	val := cfg.value()
	pick := cfg.KeyPicker()
	r, err := Run(ctx, cfg.runOptions("put"), func(_ context.Context, w int) (int, error) {
		kv := cls[w%len(cls)].KV()
		_, err := kv.Put(&api.KVPair{Key: cfg.key(pick(w)), Value: val}, nil)
		return 0, err
	})
	if err != nil {
		return nil, err
	}
	fill(r, cfg, "kv-put")
	r.ValueSize, r.Keys = cfg.ValueSize, cfg.Keys
	return r, nil
}

// fill copies the descriptive fields of cfg into a runner result.
func fill(r *Result, cfg Config, workload string) {
	b := cfg.base(workload)
	r.Workload, r.System, r.Targets, r.Conns = b.Workload, b.System, b.Targets, b.Conns
}

// Prefill writes every key of the key space once with `par` writers.
func Prefill(ctx context.Context, cfg Config, par int) error {
	cls, closeAll, err := cfg.clients(par)
	if err != nil {
		return err
	}
	defer closeAll()
	val := cfg.value()
	var (
		mu      sync.Mutex
		next    int
		firstEr error
		wg      sync.WaitGroup
	)
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			kv := cls[w%len(cls)].KV()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				stop := i >= cfg.Keys || firstEr != nil
				mu.Unlock()
				if stop {
					return
				}
				if _, err := kv.Put(&api.KVPair{Key: cfg.key(i), Value: val}, nil); err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = fmt.Errorf("bench: prefill %s: %w", cfg.key(i), err)
					}
					mu.Unlock()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if firstEr != nil {
		return firstEr
	}
	return ctx.Err()
}

// errNotFound counts a read of a prefilled key that found nothing.
var errNotFound = errors.New("bench: key not found")

func kvMix(ctx context.Context, cfg Config, workload string, readRatio float64) (*Result, error) {
	if !cfg.NoPrefill {
		if err := Prefill(ctx, cfg, min(cfg.Clients, 32)); err != nil {
			return nil, err
		}
	}
	cls, closeAll, err := cfg.clients(cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	val := cfg.value()
	rnd := workerRands(cfg.Clients)
	qos := make([]*api.QueryOptions, cfg.Clients)
	for i := range qos {
		qos[i] = cfg.queryOptions()
	}
	kinds := []string{"get", "put"}
	if readRatio >= 1 {
		kinds = []string{"get"}
	}
	r, err := Run(ctx, cfg.runOptions(kinds...), func(_ context.Context, w int) (int, error) {
		kv := cls[w%len(cls)].KV()
		key := cfg.key(rnd[w].IntN(cfg.Keys))
		if readRatio >= 1 || rnd[w].Float64() < readRatio {
			p, _, err := kv.Get(key, qos[w])
			if err == nil && p == nil && !cfg.NoPrefill {
				err = fmt.Errorf("%w: %s", errNotFound, key)
			}
			return 0, err
		}
		_, err := kv.Put(&api.KVPair{Key: key, Value: val}, nil)
		return 1, err
	})
	if err != nil {
		return nil, err
	}
	fill(r, cfg, workload)
	r.ValueSize, r.Keys, r.Consistency = cfg.ValueSize, cfg.Keys, cfg.Consistency
	if readRatio < 1 {
		r.Extra = map[string]float64{"read_ratio": readRatio}
	}
	return r, nil
}

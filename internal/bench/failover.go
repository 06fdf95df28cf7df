package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// RunFailover starts a cluster with co, and for cfg.Writes rounds kills the
// leader with SIGKILL and measures the time from the kill until a KV write
// through a surviving server first succeeds (writes are retried every 5 ms,
// each attempt bounded by 1 s, as the etcd probe of bench/compare.sh does). The killed server is restarted and
// caught up before the next round.
func RunFailover(ctx context.Context, cfg Config, co ClusterOptions) (*Result, error) {
	c, err := StartCluster(ctx, co)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if err := c.WaitPeers(ctx, len(c.Servers), 60*time.Second); err != nil {
		return nil, err
	}
	var transports []*http.Transport
	defer func() {
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	}()
	client := func(addr string) *api.Client {
		tr := &http.Transport{}
		transports = append(transports, tr)
		ac := api.DefaultNonPooledConfig()
		ac.Address = addr
		ac.HttpClient = &http.Client{Timeout: time.Second, Transport: tr}
		cl, _ := api.NewClient(ac) // cannot fail without TLS files
		return cl
	}
	key := cfg.KeyPrefix + "failover"
	var windows, elections Histogram
	var attempts uint64
	begin := time.Now()
	for round := 1; round <= cfg.Writes; round++ {
		leader, err := c.WaitLeader(ctx, 60*time.Second, nil)
		if err != nil {
			return nil, err
		}
		var survivors []*api.Client
		for _, s := range c.Servers {
			if s != leader {
				survivors = append(survivors, client(s.HTTPAddr))
			}
		}
		if _, err := survivors[0].KV().Put(&api.KVPair{Key: key, Value: []byte("before")}, nil); err != nil {
			return nil, fmt.Errorf("bench: round %d: write before the kill: %w", round, err)
		}
		t0 := time.Now()
		c.Kill(leader)
		val := []byte(strconv.Itoa(round))
		electedCh := make(chan time.Duration, 1)
		go func() {
			if _, err := c.WaitLeader(ctx, 60*time.Second, leader); err == nil {
				electedCh <- time.Since(t0)
			}
			close(electedCh)
		}()
		var window time.Duration
		for i := 0; ; i++ {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if time.Since(t0) > 2*time.Minute {
				return nil, fmt.Errorf("bench: round %d: no successful write 2m after killing %s", round, leader.Name)
			}
			attempts++
			if _, err := survivors[i%len(survivors)].KV().Put(&api.KVPair{Key: key, Value: val}, nil); err == nil {
				window = time.Since(t0)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		windows.Record(window)
		if d, ok := <-electedCh; ok {
			elections.Record(d)
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "round %d/%d: killed %s, first write after %.0f ms\n", round, cfg.Writes, leader.Name, ms(window))
		}
		if err := c.Restart(leader); err != nil {
			return nil, err
		}
		if err := c.WaitPeers(ctx, len(c.Servers), 60*time.Second); err != nil {
			return nil, err
		}
		// The restarted server has caught up once it serves the last write.
		back := client(leader.HTTPAddr)
		deadline := time.Now().Add(60 * time.Second)
		for {
			p, _, err := back.KV().Get(key, &api.QueryOptions{AllowStale: true})
			if err == nil && p != nil && string(p.Value) == string(val) {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("bench: round %d: %s did not catch up after restart", round, leader.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return &Result{
		Workload: "failover", System: "cairn", Targets: c.Addrs(), Clients: 1,
		ElapsedSec: time.Since(begin).Seconds(),
		Ops:        windows.Count(),
		OpsPerSec:  0,
		Latency:    Summarize(&windows),
		Breakdown:  map[string]Latency{"leader_agreed": Summarize(&elections)},
		Extra:      map[string]float64{"rounds": float64(cfg.Writes), "write_attempts": float64(attempts)},
	}, nil
}

package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/cairn-io/cairn/internal/testutil"
)

// opTimeout bounds one client operation: longer than rpc_hold_timeout (7 s)
// so a request held across an election can still succeed.
const opTimeout = 10 * time.Second

// errorBackoff is a worker's pause after a failed operation.
const errorBackoff = 100 * time.Millisecond

// workload runs KV clients against a set of agents and records their
// operations.
type workload struct {
	rec     *Recorder
	agents  []*testutil.Agent
	clients []*api.Client
	keys    []string
	workers int
	// think is the pause between two operations of one worker, keeping the
	// history small enough to check quickly.
	think time.Duration
}

func newWorkload(rec *Recorder, agents []*testutil.Agent, prefix string, keys, workers int) *workload {
	w := &workload{rec: rec, agents: agents, workers: workers, think: 5 * time.Millisecond}
	for _, a := range agents {
		w.clients = append(w.clients, a.Client())
	}
	for i := 0; i < keys; i++ {
		w.keys = append(w.keys, fmt.Sprintf("%s/k%d", prefix, i))
	}
	return w
}

// run starts the workers; they stop issuing operations when ctx ends and
// the returned wait function returns once the last one has finished.
func (w *workload) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for i := 0; i < w.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.worker(ctx, i)
		}()
	}
	return wg.Wait
}

type seen struct {
	value string
	index uint64
}

func (w *workload) worker(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	client := w.rec.NewClientID()
	last := map[string]seen{}
	seq := 0
	for ctx.Err() == nil {
		key := w.keys[rng.IntN(len(w.keys))]
		ai := rng.IntN(len(w.agents))
		seq++
		value := fmt.Sprintf("w%d-%d", id, seq)
		var in Input
		switch r := rng.IntN(10); {
		case r < 4:
			in = Input{Kind: KindGet, Key: key}
		case r < 7:
			in = Input{Kind: KindPut, Key: key, Value: value}
		default:
			// Read-modify-write: a fresh read first (recorded like any
			// other), so that many CAS operations can win.
			if rec, s, keep := w.do(ai, Input{Kind: KindGet, Key: key}, 0); keep {
				rec.ClientID = client
				w.rec.Add(rec)
				last[key] = s
			}
			in = Input{Kind: KindCAS, Key: key, Value: value, Expect: last[key].value}
		}
		rec, s, keep := w.do(ai, in, last[key].index)
		pause := w.think
		if rec.Err != "" {
			// Back off after an error: hammering an agent that is down
			// or electing only piles up operations of unknown outcome.
			pause = errorBackoff
		}
		rec.ClientID = client
		if keep {
			w.rec.Add(rec)
		}
		if in.Kind == KindGet && keep {
			last[key] = s
		}
		if rec.Output.Unknown {
			// That operation stays open to the end of the history.
			client = w.rec.NewClientID()
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// do runs one operation through agent ai. keep is false for operations
// that cannot have had an effect and need not be recorded: failed reads and
// writes that never reached the agent.
func (w *workload) do(ai int, in Input, casIndex uint64) (rec Record, s seen, keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	kv := w.clients[ai].KV()
	rec = Record{Input: in, Agent: w.agents[ai].Name, Call: w.rec.Now()}
	var err error
	switch in.Kind {
	case KindGet:
		var p *api.KVPair
		p, _, err = kv.Get(in.Key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		if err == nil && p != nil {
			rec.Output = Output{Found: true, Value: string(p.Value)}
			s = seen{value: string(p.Value), index: p.ModifyIndex}
		}
	case KindPut:
		_, err = kv.Put(&api.KVPair{Key: in.Key, Value: []byte(in.Value)}, (&api.WriteOptions{}).WithContext(ctx))
	case KindCAS:
		var ok bool
		ok, _, err = kv.CAS(&api.KVPair{Key: in.Key, Value: []byte(in.Value), ModifyIndex: casIndex}, (&api.WriteOptions{}).WithContext(ctx))
		rec.Output = Output{OK: ok}
	}
	rec.Return = w.rec.Now()
	if err == nil {
		return rec, s, true
	}
	rec.Err = err.Error()
	if in.Kind == KindGet || notSent(err) {
		return rec, s, false
	}
	rec.Output = Output{Unknown: true}
	rec.Return = -1
	return rec, s, true
}

// notSent reports whether the request certainly never reached the agent
// (the connection was refused), so a write cannot have been applied.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused")
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// TestLock_LeaderElection: five contenders with the official api.Lock take
// turns on one key; the critical section never has two holders, and no
// holder loses its lock while holding it.
func TestLock_LeaderElection(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	const contenders, rounds = 5, 4
	var (
		inside, maxInside, total atomic.Int32
		wg                       sync.WaitGroup
		errs                     = make(chan error, contenders)
	)
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a.Client()
			for r := range rounds {
				l, err := c.LockOpts(&api.LockOptions{Key: "election/leader", Value: []byte(fmt.Sprintf("c%d-r%d", i, r)),
					SessionTTL: "10s", LockWaitTime: time.Second})
				if err != nil {
					errs <- err
					return
				}
				lostCh, err := l.Lock(nil)
				if err != nil {
					errs <- fmt.Errorf("contender %d: lock: %w", i, err)
					return
				}
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				total.Add(1)
				time.Sleep(20 * time.Millisecond)
				select {
				case <-lostCh:
					errs <- fmt.Errorf("contender %d lost the lock while holding it", i)
				default:
				}
				inside.Add(-1)
				if err := l.Unlock(); err != nil {
					errs <- fmt.Errorf("contender %d: unlock: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, maxInside.Load(), "never two holders at once")
	require.EqualValues(t, contenders*rounds, total.Load())

	// The key is free, carries the lock flag, and every new acquisition
	// moved LockIndex.
	p := mustKV(t, a.Client(), "election/leader")
	require.Empty(t, p.Session)
	require.Equal(t, uint64(api.LockFlagValue), p.Flags)
	require.EqualValues(t, contenders*rounds, p.LockIndex)
}

// TestSemaphore_LimitTwo: six contenders on a semaphore of limit 2 never
// exceed two holders, and two do hold it together at some point.
func TestSemaphore_LimitTwo(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	const contenders, limit = 6, 2
	var (
		inside, maxInside atomic.Int32
		wg                sync.WaitGroup
		errs              = make(chan error, contenders)
	)
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := a.Client().SemaphoreOpts(&api.SemaphoreOptions{Prefix: "sem/workers", Limit: limit,
				SessionTTL: "10s", SemaphoreWaitTime: time.Second})
			if err != nil {
				errs <- err
				return
			}
			lostCh, err := s.Acquire(nil)
			if err != nil {
				errs <- fmt.Errorf("contender %d: acquire: %w", i, err)
				return
			}
			n := inside.Add(1)
			for {
				m := maxInside.Load()
				if n <= m || maxInside.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(150 * time.Millisecond)
			select {
			case <-lostCh:
				errs <- fmt.Errorf("contender %d lost its slot while holding it", i)
			default:
			}
			inside.Add(-1)
			if err := s.Release(); err != nil {
				errs <- fmt.Errorf("contender %d: release: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.LessOrEqual(t, maxInside.Load(), int32(limit), "never more than the limit")
	require.EqualValues(t, limit, maxInside.Load(), "the limit is used")

	// A contender asking for another limit is refused.
	s, err := a.Client().SemaphoreOpts(&api.SemaphoreOptions{Prefix: "sem/workers", Limit: 3, SemaphoreTryOnce: true,
		SemaphoreWaitTime: time.Second})
	require.NoError(t, err)
	_, err = s.Acquire(nil)
	require.ErrorContains(t, err, "semaphore limit conflict")
}

// TestSession_TTLExpiryReleasesLock: a session that is not renewed is
// invalidated between TTL and 2*TTL later, and its lock is released.
func TestSession_TTLExpiryReleasesLock(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	id, _, err := c.Session().Create(&api.SessionEntry{TTL: "10s", LockDelay: time.Millisecond}, nil)
	require.NoError(t, err)
	ok, _, err := c.KV().Acquire(&api.KVPair{Key: "ttl/lock", Value: []byte("v"), Session: id}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	start := time.Now()

	info, _, err := c.Session().Info(id, nil)
	require.NoError(t, err)
	require.Equal(t, "10s", info.TTL)
	require.Equal(t, []string{"serfHealth"}, info.NodeChecks)

	// Block on the key until its holder goes.
	var idx uint64
	for {
		p, meta, err := c.KV().Get("ttl/lock", &api.QueryOptions{WaitIndex: idx, WaitTime: 30 * time.Second})
		require.NoError(t, err)
		require.NotNil(t, p)
		if p.Session == "" {
			break
		}
		require.Less(t, time.Since(start), 30*time.Second, "session never expired")
		idx = meta.LastIndex
	}
	elapsed := time.Since(start)
	t.Logf("session with TTL 10s invalidated after %v", elapsed)
	require.GreaterOrEqual(t, elapsed, 9*time.Second, "not before the TTL")
	require.LessOrEqual(t, elapsed, 22*time.Second, "within 2*TTL")
	info, _, err = c.Session().Info(id, nil)
	require.NoError(t, err)
	require.Nil(t, info)
	entry, _, err := c.Session().Renew(id, nil)
	require.NoError(t, err)
	require.Nil(t, entry, "renewing an expired session finds nothing")
}

// TestSession_HTTPContract checks the session endpoints' wire shape.
func TestSession_HTTPContract(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()

	r := doString(t, a, "PUT", "/v1/session/create", `{"TTL":"5s"}`)
	require.Equal(t, 400, r.Status)
	require.Contains(t, r.Body, "Invalid Session TTL '5s'")
	r = doString(t, a, "PUT", "/v1/session/create", `{"Node":"ghost"}`)
	require.Equal(t, 500, r.Status)
	require.Equal(t, "Missing node registration", r.Body)

	id, _, err := c.Session().Create(&api.SessionEntry{Name: "web-lock", Behavior: api.SessionBehaviorDelete, LockDelay: 3 * time.Second}, nil)
	require.NoError(t, err)
	list, meta, err := c.Session().List(nil)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "web-lock", list[0].Name)
	require.Equal(t, 3*time.Second, list[0].LockDelay)
	require.Equal(t, api.SessionBehaviorDelete, list[0].Behavior)

	// A blocking list returns when a session is created.
	done := make(chan []*api.SessionEntry, 1)
	go func() {
		l, _, err := c.Session().List(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		if err != nil {
			l = nil
		}
		done <- l
	}()
	_, _, err = c.Session().CreateNoChecks(&api.SessionEntry{Name: "second"}, nil)
	require.NoError(t, err)
	select {
	case l := <-done:
		require.Len(t, l, 2)
	case <-time.After(10 * time.Second):
		t.Fatal("blocking session list did not return")
	}

	self, err := c.Agent().NodeName()
	require.NoError(t, err)
	byNode, _, err := c.Session().Node(self, nil)
	require.NoError(t, err)
	require.Len(t, byNode, 2)

	ok, _, err := c.KV().Acquire(&api.KVPair{Key: "contract/k", Session: id}, nil)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = c.Session().Destroy(id, nil)
	require.NoError(t, err)
	p, _, err := c.KV().Get("contract/k", nil)
	require.NoError(t, err)
	require.Nil(t, p, "delete behavior removed the held key")
}

// TestTxn_ConcurrentConflictingTransfers: concurrent transactions move
// units between accounts with check-index guards. Each applies whole or
// not at all: the total never changes, as a concurrent read-only
// transaction observes.
func TestTxn_ConcurrentConflictingTransfers(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	const accounts, start = 4, 100
	for i := range accounts {
		_, err := c.KV().Put(&api.KVPair{Key: fmt.Sprintf("bank/%d", i), Value: []byte(fmt.Sprint(start))}, nil)
		require.NoError(t, err)
	}
	sum := func(pairs []*api.KVPair) int {
		total := 0
		for _, p := range pairs {
			var v int
			_, _ = fmt.Sscan(string(p.Value), &v)
			total += v
		}
		return total
	}
	ctx, cancel := context.WithCancel(context.Background())
	var readerErr error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for ctx.Err() == nil {
			ok, resp, _, err := c.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: "bank/"}}}, nil)
			if err != nil || !ok {
				readerErr = fmt.Errorf("read txn: ok=%v err=%v", ok, err)
				return
			}
			var pairs []*api.KVPair
			for _, r := range resp.Results {
				pairs = append(pairs, r.KV)
			}
			if s := sum(pairs); s != accounts*start {
				readerErr = fmt.Errorf("observed total %d, want %d", s, accounts*start)
				return
			}
		}
	}()

	var applied, rolledBack atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 15 {
				from, to := (w+n)%accounts, (w+n+1)%accounts
				fp, _, err := c.KV().Get(fmt.Sprintf("bank/%d", from), nil)
				if err != nil || fp == nil {
					errs <- fmt.Errorf("get account %d: %v", from, err)
					return
				}
				tp, _, err := c.KV().Get(fmt.Sprintf("bank/%d", to), nil)
				if err != nil || tp == nil {
					errs <- fmt.Errorf("get account %d: %v", to, err)
					return
				}
				var fv, tv int
				_, _ = fmt.Sscan(string(fp.Value), &fv)
				_, _ = fmt.Sscan(string(tp.Value), &tv)
				ops := api.TxnOps{
					{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: fp.Key, Index: fp.ModifyIndex}},
					{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: tp.Key, Index: tp.ModifyIndex}},
					{KV: &api.KVTxnOp{Verb: api.KVSet, Key: fp.Key, Value: []byte(fmt.Sprint(fv - 1))}},
					{KV: &api.KVTxnOp{Verb: api.KVSet, Key: tp.Key, Value: []byte(fmt.Sprint(tv + 1))}},
				}
				ok, resp, _, err := c.Txn().Txn(ops, nil)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					applied.Add(1)
					if len(resp.Results) != 4 {
						errs <- fmt.Errorf("applied txn has %d results", len(resp.Results))
					}
				} else {
					rolledBack.Add(1)
					if len(resp.Errors) == 0 {
						errs <- fmt.Errorf("rolled back txn without errors")
					}
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-readerDone
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, readerErr)
	pairs, _, err := c.KV().List("bank/", nil)
	require.NoError(t, err)
	require.Equal(t, accounts*start, sum(pairs), "total preserved")
	t.Logf("transfers applied=%d rolled back=%d", applied.Load(), rolledBack.Load())
	require.Positive(t, applied.Load())

	// Writes of one transaction share one index: a txn setting two keys is
	// visible as a whole.
	ok, resp, _, err := c.Txn().Txn(api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "pair/x", Value: []byte("1")}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: "pair/y", Value: []byte("1")}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: "pair/x"}},
	}, nil)
	require.NoError(t, err)
	require.False(t, ok, "check-not-exists sees the txn's own write and fails")
	require.Len(t, resp.Errors, 1)
	require.Equal(t, 2, resp.Errors[0].OpIndex)
	p, _, err := c.KV().Get("pair/x", nil)
	require.NoError(t, err)
	require.Nil(t, p, "nothing of the failed txn applied")
}

// TestLockCommand: `cairn lock` runs its child while holding the lock,
// with CONSUL_LOCK_HELD=true, releases on exit, and stops the child when
// the lock is lost.
func TestLockCommand(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	env := []string{"CONSUL_HTTP_ADDR=" + a.HTTPAddr(), "SHELL=/bin/sh"}

	res := runCLI(t, env, "lock", "cmd/lock", `echo held=$CONSUL_LOCK_HELD; exit 0`)
	require.Equal(t, 0, res.code)
	require.Contains(t, res.stdout, "held=true")
	p, _, err := c.KV().Get("cmd/lock/.lock", nil)
	require.NoError(t, err)
	require.Nil(t, p, "lock key cleaned up after the child exits")

	res = runCLI(t, env, "lock", "-child-exit-code", "cmd/lock", "exit 7")
	require.Equal(t, 2, res.code)
	res = runCLI(t, env, "lock", "cmd/lock", "exit 7")
	require.Equal(t, 0, res.code)
	res = runCLI(t, env, "lock", "-n", "2", "cmd/sem", `echo slot=$CONSUL_LOCK_HELD`)
	require.Equal(t, 0, res.code)
	require.Contains(t, res.stdout, "slot=true")
	res = runCLI(t, env, "lock", "onlyprefix")
	require.Equal(t, 1, res.code)

	// A long child holds the lock; destroying its session makes the
	// command stop the child and exit.
	cmd := exec.Command(testutil.BuildBinary(t), "lock", "-shell=false", "cmd/long", "sleep", "60")
	cmd.Env = append(cleanEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	var waitErr error
	done := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	var session string
	poll(t, 10*time.Second, func() error {
		p, _, err := c.KV().Get("cmd/long/.lock", nil)
		if err != nil {
			return err
		}
		if p == nil || p.Session == "" {
			return fmt.Errorf("lock not held yet")
		}
		session = p.Session
		return nil
	})
	// While the child runs, a second `cairn lock -timeout` gives up.
	res = runCLI(t, env, "lock", "-timeout", "500ms", "cmd/long", "echo should-not-run")
	require.Equal(t, 1, res.code)
	require.NotContains(t, res.stdout, "should-not-run")

	_, err = c.Session().Destroy(session, nil)
	require.NoError(t, err)
	select {
	case <-done:
		require.NoError(t, waitErr, "output: %s", out.String())
		require.True(t, strings.Contains(out.String(), "Lock lost, killing child"), out.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("cairn lock did not stop after losing the lock; output: %s", out.String())
	}

	// SIGTERM to `cairn lock` stops the child and releases the lock.
	sig := exec.Command(testutil.BuildBinary(t), "lock", "-shell=false", "cmd/sig", "sleep", "60")
	sig.Env = append(cleanEnv(), env...)
	var sigOut bytes.Buffer
	sig.Stdout, sig.Stderr = &sigOut, &sigOut
	require.NoError(t, sig.Start())
	sigDone := make(chan struct{})
	var sigErr error
	go func() {
		sigErr = sig.Wait()
		close(sigDone)
	}()
	t.Cleanup(func() {
		_ = sig.Process.Kill()
		<-sigDone
	})
	poll(t, 10*time.Second, func() error {
		p, _, err := c.KV().Get("cmd/sig/.lock", nil)
		if err != nil {
			return err
		}
		if p == nil || p.Session == "" {
			return fmt.Errorf("lock not held yet")
		}
		return nil
	})
	require.NoError(t, sig.Process.Signal(syscall.SIGTERM))
	select {
	case <-sigDone:
		require.NoError(t, sigErr, "output: %s", sigOut.String())
		require.Contains(t, sigOut.String(), "Shutdown triggered, killing child")
	case <-time.After(15 * time.Second):
		t.Fatalf("cairn lock did not stop on SIGTERM; output: %s", sigOut.String())
	}
	p, _, err = c.KV().Get("cmd/sig/.lock", nil)
	require.NoError(t, err)
	require.Nil(t, p, "lock released and cleaned up")
}

package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// electionLockDelay is the sessions' lock delay in the election test: short
// so that the handover is dominated by failure detection.
const electionLockDelay = 3 * time.Second

// contender runs api.Lock leader election through one agent until stopCh
// closes or its agent is declared dead.
type contender struct {
	agent  *testutil.Agent
	dead   atomic.Bool // its process was killed: its critical section ended
	holder atomic.Bool
}

// TestCluster_LockElectionHolderKilled: five agents (3 servers, 2 clients)
// contend for one lock with api.Lock. There is never more than one live
// holder; when the holder's node is killed the lock moves to another
// contender after failure detection plus the lock delay (measured).
func TestCluster_LockElectionHolderKilled(t *testing.T) {
	skipShort(t)
	c := testutil.StartCluster(t, testutil.ClusterOptions{Servers: 3, Clients: 2, LogLevel: "info"})
	c.WaitReady(readyTimeout)
	require.NoError(t, c.WaitMembers(5, readyTimeout))

	var (
		inside    atomic.Int32
		violation atomic.Value // string
		acquired  = make(chan *contender, 16)
		stopCh    = make(chan struct{})
		wg        sync.WaitGroup
	)
	run := func(ct *contender) {
		defer wg.Done()
		client := ct.agent.Client()
		for {
			l, err := client.LockOpts(&api.LockOptions{
				Key:         "cluster/election",
				SessionOpts: &api.SessionEntry{Name: "election " + ct.agent.Name, LockDelay: electionLockDelay},
				// Detect loss quickly but ride out a leader change.
				MonitorRetries: 5, MonitorRetryTime: time.Second,
			})
			if err != nil {
				violation.Store("lock options: " + err.Error())
				return
			}
			lostCh, err := l.Lock(stopCh)
			if err != nil {
				if ct.dead.Load() {
					return
				}
				select {
				case <-stopCh:
					return
				case <-time.After(500 * time.Millisecond): // e.g. no leader for a moment
					continue
				}
			}
			if lostCh == nil {
				return // stopped
			}
			if n := inside.Add(1); n > 1 {
				violation.Store(fmt.Sprintf("%d holders at once (%s joined)", n, ct.agent.Name))
			}
			ct.holder.Store(true)
			acquired <- ct
			select {
			case <-lostCh:
				if !ct.dead.Load() {
					ct.holder.Store(false)
					inside.Add(-1)
				}
				if ct.dead.Load() {
					return
				}
			case <-stopCh:
				ct.holder.Store(false)
				inside.Add(-1)
				_ = l.Unlock()
				return
			}
		}
	}

	all := c.Agents()
	cts := make([]*contender, len(all))
	for i, a := range all {
		cts[i] = &contender{agent: a}
	}
	// A client contends first so that the first holder is not a server
	// (killing it then tests session invalidation, not leader failover).
	first := cts[len(cts)-1]
	wg.Add(1)
	go run(first)
	select {
	case got := <-acquired:
		require.Same(t, first, got)
	case <-time.After(30 * time.Second):
		t.Fatal("first contender never acquired the lock")
	}
	for _, ct := range cts[:len(cts)-1] {
		wg.Add(1)
		go run(ct)
	}
	defer func() {
		close(stopCh)
		wg.Wait()
	}()
	// Nobody else gets it while the holder lives.
	select {
	case got := <-acquired:
		t.Fatalf("%s acquired a held lock", got.agent.Name)
	case <-time.After(3 * time.Second):
	}

	// Kill the holder's node: its critical section ends with its process.
	first.dead.Store(true)
	first.holder.Store(false)
	inside.Add(-1)
	killed := time.Now()
	c.Kill(first.agent)

	var next *contender
	select {
	case next = <-acquired:
	case <-time.After(90 * time.Second):
		t.Fatal("the lock did not move within 90s of killing its holder")
	}
	moved := time.Since(killed)
	t.Logf("MEASURE lock moved from killed %s to %s after %s (failure detection + lock delay %s + client retry)",
		first.agent.Name, next.agent.Name, moved.Round(time.Millisecond), electionLockDelay)
	require.NotSame(t, first, next)
	require.GreaterOrEqual(t, moved, electionLockDelay, "lock delay respected")

	// Stay a while: still a single holder.
	time.Sleep(2 * time.Second)
	if v := violation.Load(); v != nil {
		t.Fatal(v)
	}
	require.EqualValues(t, 1, inside.Load())
}

// TestCluster_SessionTTLSurvivesLeaderFailover: a TTL session outlives the
// death of the leader that armed its timer; the new leader re-arms it, and
// it still expires (between TTL and 2*TTL after the new leader took over).
func TestCluster_SessionTTLSurvivesLeaderFailover(t *testing.T) {
	skipShort(t)
	c := testutil.StartCluster(t, testutil.ClusterOptions{Servers: 3, Clients: 1, LogLevel: "info"})
	c.WaitReady(readyTimeout)
	client := c.Clients[0].Client()

	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	wo := (&api.WriteOptions{}).WithContext(ctx)
	id, _, err := client.Session().CreateNoChecks(&api.SessionEntry{Name: "ttl", TTL: "10s", LockDelay: time.Millisecond}, wo)
	require.NoError(t, err)
	ok, _, err := client.KV().Acquire(&api.KVPair{Key: "cluster/ttl", Session: id}, wo)
	require.NoError(t, err)
	require.True(t, ok)

	old, err := c.WaitLeader(30 * time.Second)
	require.NoError(t, err)
	c.Kill(old)
	nl, err := c.WaitLeader(30 * time.Second)
	require.NoError(t, err)
	require.NotSame(t, old, nl)
	newLeader := time.Now()
	t.Logf("leader %s killed, new leader %s", old.Name, nl.Name)

	// The session is still there on the new leader and can be renewed.
	var entry *api.SessionEntry
	require.Eventually(t, func() bool {
		entry, _, err = client.Session().Renew(id, nil)
		return err == nil
	}, 20*time.Second, 200*time.Millisecond, "renew after failover: %v", err)
	require.NotNil(t, entry, "session survived the failover")
	renewed := time.Now()
	p, _, err := client.KV().Get("cluster/ttl", &api.QueryOptions{RequireConsistent: true})
	require.NoError(t, err)
	require.Equal(t, id, p.Session)

	// Now stop renewing: it expires on time. Every new leader re-arms the
	// timer with a full 2*TTL, so the deadline counts from the later of the
	// last renewal and the last leader change.
	// A leader that wins again after a flap re-arms too, so count
	// establishments in the servers' logs rather than leader identities.
	armed, seen := renewed, leaderEstablishments(c)
	require.Eventually(t, func() bool {
		if n := leaderEstablishments(c); n != seen {
			t.Logf("leadership established again (%d -> %d): timers re-armed", seen, n)
			seen, armed = n, time.Now()
		}
		info, _, err := client.Session().Info(id, nil)
		return err == nil && info == nil
	}, 60*time.Second, 100*time.Millisecond)
	expired := time.Since(renewed)
	t.Logf("MEASURE session TTL 10s expired %s after its last renewal (%s after the new leader, %s after the timer was last armed)",
		expired.Round(time.Millisecond), time.Since(newLeader).Round(time.Millisecond), time.Since(armed).Round(time.Millisecond))
	require.GreaterOrEqual(t, expired, 9*time.Second, "not before the TTL")
	require.LessOrEqual(t, time.Since(armed), 25*time.Second, "within 2*TTL (plus slack) of the timer being armed")
	p, _, err = client.KV().Get("cluster/ttl", nil)
	require.NoError(t, err)
	require.Empty(t, p.Session, "its lock was released")
}

// leaderEstablishments counts "cluster leadership acquired" in the logs of
// the servers still running: each one re-armed every session timer.
func leaderEstablishments(c *testutil.Cluster) int {
	n := 0
	for _, a := range c.Servers {
		if c.Up(a) {
			n += strings.Count(a.Output(), "cluster leadership acquired")
		}
	}
	return n
}

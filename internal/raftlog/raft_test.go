package raftlog

import (
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// sumFSM keeps the count and sum of the uint64 commands it applied, so two
// replicas that applied the same log agree exactly.
type sumFSM struct {
	mu         sync.Mutex
	count, sum uint64
}

func (f *sumFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.sum += binary.BigEndian.Uint64(l.Data)
	return nil
}

func (f *sumFSM) state() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.sum
}

func (f *sumFSM) Snapshot() (raft.FSMSnapshot, error) {
	c, s := f.state()
	return &sumSnap{c, s}, nil
}

func (f *sumFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count, f.sum = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return nil
}

type sumSnap struct{ count, sum uint64 }

func (s *sumSnap) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.count)
	binary.BigEndian.PutUint64(b[8:], s.sum)
	if _, err := sink.Write(b[:]); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *sumSnap) Release() {}

type raftNode struct {
	id    raft.ServerID
	dir   string
	fsm   *sumFSM
	store *Store
	trans *raft.InmemTransport
	raft  *raft.Raft
}

func startNode(t *testing.T, n *raftNode, addr raft.ServerAddress) {
	t.Helper()
	st, err := Open(filepath.Join(n.dir, "wal"), quietOpts(16<<10))
	if err != nil {
		t.Fatalf("%s: open store: %v", n.id, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 100
	conf.SnapshotInterval = 50 * time.Millisecond
	conf.TrailingLogs = 20
	conf.Logger = hclog.NewNullLogger()
	_, trans := raft.NewInmemTransport(addr)
	n.fsm = &sumFSM{}
	r, err := raft.NewRaft(conf, n.fsm, st, st, snaps, trans)
	if err != nil {
		t.Fatalf("%s: start raft: %v", n.id, err)
	}
	n.store, n.trans, n.raft = st, trans, r
}

func (n *raftNode) stop(t *testing.T) {
	t.Helper()
	if err := n.raft.Shutdown().Error(); err != nil {
		t.Fatalf("%s: shutdown: %v", n.id, err)
	}
	_ = n.trans.Close()
	if err := n.store.Close(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func connectAll(nodes []*raftNode) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
}

// TestStore_UnderRaft runs three hashicorp/raft replicas on this store:
// writes with frequent snapshots and compaction, a follower that is
// stopped, falls behind past the trailing logs, restarts on its files and
// catches up by snapshot install (which deletes its whole log, as a
// MonotonicLogStore asks), and a full restart that replays the logs.
func TestStore_UnderRaft(t *testing.T) {
	base := t.TempDir()
	nodes := make([]*raftNode, 3)
	addrs := make([]raft.ServerAddress, 3)
	var servers []raft.Server
	for i := range nodes {
		nodes[i] = &raftNode{id: raft.ServerID(fmt.Sprintf("n%d", i)), dir: filepath.Join(base, fmt.Sprint(i))}
		addrs[i] = raft.ServerAddress(fmt.Sprintf("addr%d", i))
		servers = append(servers, raft.Server{ID: nodes[i].id, Address: addrs[i]})
		startNode(t, nodes[i], addrs[i])
	}
	connectAll(nodes)
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}
	leader := func() *raftNode {
		for _, n := range nodes {
			if n != nil && n.raft.State() == raft.Leader {
				return n
			}
		}
		return nil
	}
	var want, total uint64
	apply := func(k int) {
		t.Helper()
		var l *raftNode
		waitFor(t, "a leader", func() bool { l = leader(); return l != nil })
		for i := 0; i < k; i++ {
			total++
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], total)
			if err := l.raft.Apply(b[:], 5*time.Second).Error(); err != nil {
				t.Fatalf("apply %d: %v", total, err)
			}
			want += total
		}
	}
	converged := func(ns ...*raftNode) {
		t.Helper()
		for _, n := range ns {
			waitFor(t, fmt.Sprintf("%s to apply %d commands", n.id, total), func() bool {
				c, s := n.fsm.state()
				return c == total && s == want
			})
		}
	}
	apply(250)
	converged(nodes...)

	// A follower falls behind by more than the trailing logs.
	var lagger *raftNode
	for _, n := range nodes {
		if n.raft.State() != raft.Leader {
			lagger = n
			break
		}
	}
	lagLast, _ := lagger.store.LastIndex()
	lagger.stop(t)
	apply(400)
	waitFor(t, "the leader to compact its log past the follower", func() bool {
		first, _ := leader().store.FirstIndex()
		return first > lagLast+1
	})
	startNode(t, lagger, lagger.trans.LocalAddr())
	connectAll(nodes)
	apply(10)
	converged(nodes...)
	snaps, _ := raft.NewFileSnapshotStoreWithLogger(lagger.dir, 2, hclog.NewNullLogger())
	if list, err := snaps.List(); err != nil || len(list) == 0 || list[0].Index <= lagLast {
		t.Fatalf("lagging follower (last index %d when stopped) did not install a newer snapshot: %v %v", lagLast, list, err)
	}

	// Restart everyone from disk.
	for _, n := range nodes {
		n.stop(t)
	}
	for i, n := range nodes {
		startNode(t, n, addrs[i])
	}
	connectAll(nodes)
	apply(5)
	converged(nodes...)
	for _, n := range nodes {
		n.stop(t)
	}
}

package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/snapshot"
)

// startNetworkCluster starts n servers on loopback ports that form one
// cluster through bootstrap_expect, with a fake LAN member list, and waits
// until all agree on a ready leader.
func startNetworkCluster(t *testing.T, n int) (leader *Server, followers []*Server) {
	t.Helper()
	var servers []*Server
	for i := range n {
		cfg := networkConfig(t, fmt.Sprintf("snap%d", i+1))
		cfg.Bootstrap = false
		cfg.BootstrapExpect = n
		cfg.RPCHoldTimeout = 2 * time.Second
		s, err := New(cfg)
		require.NoError(t, err)
		require.NoError(t, s.Start())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, s.Shutdown(ctx))
		})
		servers = append(servers, s)
	}
	members := make([]serf.Member, 0, n)
	for _, s := range servers {
		members = append(members, member(s, n))
	}
	for _, s := range servers {
		s.SetLANMembers(func() []serf.Member { return members })
		s.MembershipChanged()
	}
	waitFor(t, 15*time.Second, "a ready leader known by every server", func() bool {
		leader, followers = nil, nil
		for _, s := range servers {
			if s.IsLeader() {
				leader = s
			} else {
				followers = append(followers, s)
			}
		}
		if leader == nil || !leader.readyForReads.Load() {
			return false
		}
		for _, f := range followers {
			if f.Leader() != leader.RPCAddr() {
				return false
			}
		}
		return true
	})
	return leader, followers
}

func TestServer_SnapshotThroughFollower(t *testing.T) {
	ctx := context.Background()
	leader, followers := startNetworkCluster(t, 3)
	f := followers[0]
	for i := range 30 {
		kvSet(t, f, fmt.Sprintf("snap/%02d", i), fmt.Sprintf("v%d", i)) // forwarded writes
	}

	// Save through a follower: the leader's snapshot, announced before the
	// first byte.
	var buf bytes.Buffer
	var announced uint64
	idx, err := f.SnapshotSave(ctx, &buf, false, func(i uint64) {
		require.Zero(t, buf.Len())
		announced = i
	})
	require.NoError(t, err)
	require.Equal(t, idx, announced)
	meta, err := snapshot.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.Equal(t, idx, meta.Index)
	require.Len(t, meta.Configuration, 3)
	arch := buf.Bytes()

	// A stale save is answered by the follower itself.
	var stale bytes.Buffer
	_, err = f.SnapshotSave(ctx, &stale, true, nil)
	require.NoError(t, err)
	_, err = snapshot.Verify(bytes.NewReader(stale.Bytes()))
	require.NoError(t, err)

	// Change the state, then restore through the other follower.
	kvSet(t, leader, "snap/00", "changed")
	kvSet(t, leader, "later", "x")
	require.NoError(t, followers[1].SnapshotRestore(ctx, bytes.NewReader(arch)))
	for _, s := range append([]*Server{leader}, followers...) {
		waitFor(t, 10*time.Second, "restored state on "+s.cfg.NodeName, func() bool {
			var out rpc.IndexedKVEntries
			err := s.RPC(ctx, rpc.MethodKVSList, &rpc.KeyRequest{Key: "", QueryOptions: rpc.QueryOptions{AllowStale: true}}, &out)
			if err != nil || len(out.Entries) != 30 {
				return false
			}
			return string(out.Entries[0].Value) == "v0"
		})
	}

	// A corrupt archive sent through a follower is refused by the leader
	// with the archive's own message, and nothing reaches Raft.
	kvSet(t, leader, "keep", "me")
	last := leader.Raft().LastIndex()
	bad := bytes.Clone(arch)
	bad[len(bad)/2] ^= 0x40
	err = f.SnapshotRestore(ctx, bytes.NewReader(bad))
	require.ErrorIs(t, err, snapshot.ErrCorrupt)
	require.Contains(t, err.Error(), "snapshot: ")
	_, local := snapshot.Verify(bytes.NewReader(bad))
	require.Equal(t, local.Error(), err.Error(), "the follower passes the leader's message on unchanged")
	err = f.SnapshotRestore(ctx, bytes.NewReader(arch[:len(arch)/3]))
	require.ErrorIs(t, err, snapshot.ErrCorrupt)
	require.Equal(t, last, leader.Raft().LastIndex(), "nothing may reach raft")
	var out rpc.IndexedKVEntries
	require.NoError(t, f.RPC(ctx, rpc.MethodKVSGet, &rpc.KeyRequest{Key: "keep"}, &out))
	require.Len(t, out.Entries, 1)
}

// A request another server forwarded is never forwarded again: a follower
// refuses it at once with ErrNoLeader, without reading the archive.
func TestServer_SnapshotForwardedOnlyOnce(t *testing.T) {
	_, followers := startNetworkCluster(t, 3)
	addr, err := net.ResolveTCPAddr("tcp", followers[0].RPCAddr())
	require.NoError(t, err)
	c := rpc.NewSnapshotClient(rpc.SnapshotClientConfig{})
	ctx := context.Background()

	start := time.Now()
	_, err = c.Save(ctx, addr, rpc.SnapshotRequest{Datacenter: "dc1", Forwarded: true}, &bytes.Buffer{}, nil)
	require.ErrorIs(t, err, rpc.ErrNoLeader)
	require.Less(t, time.Since(start), time.Second, "no hold for a forwarded request")

	r := &countingReader{r: bytes.NewReader([]byte("archive"))}
	err = c.Restore(ctx, addr, rpc.SnapshotRequest{Datacenter: "dc1", Forwarded: true}, r)
	require.ErrorIs(t, err, rpc.ErrNoLeader)
	require.Zero(t, r.n, "a refused restore reads nothing")

	// Without the mark the follower relays it.
	var buf bytes.Buffer
	_, err = c.Save(ctx, addr, rpc.SnapshotRequest{Datacenter: "dc1"}, &buf, nil)
	require.NoError(t, err)
	_, err = snapshot.Verify(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)

	// Another datacenter is refused.
	_, err = c.Save(ctx, addr, rpc.SnapshotRequest{Datacenter: "dc9"}, &buf, nil)
	require.ErrorIs(t, err, rpc.ErrBadRequest)
}

type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.n++
	return c.r.Read(p)
}

// Without a leader a follower holds the request for rpc_hold_timeout and
// then refuses it.
func TestServer_SnapshotHoldsWithoutLeader(t *testing.T) {
	cfg := networkConfig(t, "alone")
	cfg.Bootstrap = false
	cfg.RPCHoldTimeout = 300 * time.Millisecond
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	defer func() { require.NoError(t, s.Shutdown(context.Background())) }()
	start := time.Now()
	_, err = s.SnapshotSave(context.Background(), &bytes.Buffer{}, false, nil)
	require.ErrorIs(t, err, ErrSnapshotNotLeader)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s.SnapshotRestore(ctx, bytes.NewReader([]byte("x")))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 250*time.Millisecond)
}

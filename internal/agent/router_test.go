package agent

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/rpc"
)

func serverMember(name, addr string, status serf.MemberStatus) serf.Member {
	host, port, _ := net.SplitHostPort(addr)
	return serf.Member{Name: name, Addr: net.ParseIP(host), Status: status, Tags: map[string]string{
		gossip.TagRole: gossip.RoleServer, gossip.TagDatacenter: "dc1", gossip.TagPort: port}}
}

func TestRouter(t *testing.T) {
	pool := rpc.NewConnPool(rpc.ConnPoolConfig{DialTimeout: time.Second})
	defer func() { require.NoError(t, pool.Shutdown()) }()
	stop := make(chan struct{})
	newRouter := func(members []serf.Member) *router {
		return &router{pool: pool, members: func() []serf.Member { return members }, dc: "dc1",
			hold: 200 * time.Millisecond, stopCh: stop, logger: testLogger(t)}
	}

	t.Run("no servers", func(t *testing.T) {
		r := newRouter([]serf.Member{{Name: "c", Status: serf.StatusAlive, Tags: map[string]string{gossip.TagRole: gossip.RoleClient}}})
		start := time.Now()
		var leader string
		err := r.RPC(context.Background(), rpc.MethodStatusLeader, &struct{}{}, &leader)
		require.ErrorIs(t, err, ErrNoServers)
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "held for the whole hold timeout")
	})

	t.Run("skips unreachable and failed servers", func(t *testing.T) {
		// A real RPC server that answers Status.Leader.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv, err := rpc.NewServer(rpc.ServerConfig{Handler: func(_ context.Context, method string, _, reply any) error {
			*(reply.(*string)) = "leader:8300"
			return nil
		}})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		mux := rpc.NewMux(ln, rpc.MuxConfig{})
		go func() { defer close(done); _ = srv.Serve(ctx, mux.RPCListener()) }()
		mux.Start()
		defer func() { cancel(); <-done; require.NoError(t, mux.Close()) }()

		// A closed port: connections are refused.
		dead, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		deadAddr := dead.Addr().String()
		require.NoError(t, dead.Close())

		r := newRouter([]serf.Member{
			serverMember("dead", deadAddr, serf.StatusAlive),
			serverMember("failed", "127.0.0.1:"+strconv.Itoa(1), serf.StatusFailed),
			serverMember("good", ln.Addr().String(), serf.StatusAlive),
		})
		for range 5 {
			var leader string
			require.NoError(t, r.RPC(context.Background(), rpc.MethodStatusLeader, &struct{}{}, &leader))
			require.Equal(t, "leader:8300", leader)
		}
		r.mu.Lock()
		require.Equal(t, ln.Addr().String(), r.current, "sticks to the working server")
		r.mu.Unlock()
	})
	close(stop)
}

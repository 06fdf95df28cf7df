package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/agent"
	"github.com/cairn-io/cairn/internal/config"
)

// startClientAgent runs an in-process client agent that has joined no one.
func startClientAgent(t *testing.T) *agent.Agent {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.NodeName, cfg.DataDir = "cli-client", t.TempDir()
	cfg.BindAddr, cfg.AdvertiseAddr, cfg.ClientAddr = "127.0.0.1", "127.0.0.1", "127.0.0.1"
	cfg.PortHTTP, cfg.PortSerfLAN = 0, 0
	cfg.PortDNS, cfg.PortGRPC, cfg.PortSerfWAN = -1, -1, -1
	a, err := agent.New(agent.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	require.NoError(t, a.Start(context.Background()))
	return a
}

func TestCLI_JoinForceLeave(t *testing.T) {
	serverHTTP := startAgent(t)
	c := startClientAgent(t)
	clientAddr := "-http-addr=" + c.HTTPAddr()

	sc, err := api.NewClient(&api.Config{Address: serverHTTP})
	require.NoError(t, err)
	members, err := sc.Agent().Members(false)
	require.NoError(t, err)
	require.Len(t, members, 1)
	serfAddr := net.JoinHostPort(members[0].Addr, strconv.Itoa(int(members[0].Port)))

	requireFail(t, run(t, "", "join", clientAddr), "at least one address")
	requireFail(t, run(t, "", "join", clientAddr, "127.0.0.1:1"), "joining the cluster")
	r := run(t, "", "join", clientAddr, serfAddr)
	requireOK(t, r)
	require.Contains(t, r.stdout, "Successfully joined cluster by contacting 1 nodes.")

	deadline := time.Now().Add(10 * time.Second)
	for {
		r = run(t, "", "members", "-http-addr="+serverHTTP, "-status=alive")
		requireOK(t, r)
		if contains := r.stdout; len(contains) > 0 && strings.Contains(contains, "cli-client") {
			break
		}
		require.True(t, time.Now().Before(deadline), "client not seen alive: %s", r.stdout)
		time.Sleep(20 * time.Millisecond)
	}

	requireFail(t, run(t, "", "force-leave", "-http-addr="+serverHTTP), "a single node name")
	// The client is alive: force-leave is accepted and ignored (serf only
	// moves failed members to left).
	requireOK(t, run(t, "", "force-leave", "-http-addr="+serverHTTP, "cli-client"))
}

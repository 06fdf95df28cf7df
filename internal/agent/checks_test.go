package agent

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// waitCheck waits until the agent's local check id has status and an
// output containing sub, and returns the output.
func waitCheck(t *testing.T, a *Agent, id, status, sub string) string {
	t.Helper()
	var out string
	waitFor(t, "check "+id+" "+status, func() bool {
		c := a.Checks()[id]
		if c == nil {
			return false
		}
		out = c.Output
		return c.Status == status && strings.Contains(c.Output, sub)
	})
	return out
}

func TestAgent_ScriptChecksOnlyFromConfigWithLocalScripts(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	cfg := devConfig()
	cfg.EnableLocalScriptChecks = true
	cfg.Checks = []map[string]any{
		{"id": "file-script", "name": "from file", "args": []any{"/bin/sh", "-c", "echo degraded; exit 1"}, "interval": "1s"},
		{"id": "file-docker", "name": "docker", "docker_container_id": "abc", "args": []any{"true"}, "interval": "1s"},
	}
	a, client := startAgent(t, cfg, nil)
	ag := client.Agent()

	// Over HTTP: refused, as a check and inside a service.
	err := ag.CheckRegister(&api.AgentCheckRegistration{ID: "http-script", Name: "s", AgentServiceCheck: api.AgentServiceCheck{Args: []string{"/bin/true"}, Interval: "1s"}})
	require.ErrorContains(t, err, "400")
	require.ErrorContains(t, err, "Scripts are disabled")
	err = ag.ServiceRegister(&api.AgentServiceRegistration{Name: "web", Check: &api.AgentServiceCheck{Args: []string{"/bin/true"}, Interval: "1s"}})
	require.ErrorContains(t, err, "Scripts are disabled")
	err = ag.CheckRegister(&api.AgentCheckRegistration{Name: "d", AgentServiceCheck: api.AgentServiceCheck{DockerContainerID: "abc", Args: []string{"true"}, Interval: "1s"}})
	require.ErrorContains(t, err, "Scripts are disabled")
	require.NotContains(t, a.Checks(), "http-script")

	// From the config file: accepted and run (exit 1 is a warning).
	out := waitCheck(t, a, "file-script", "warning", "degraded")
	require.Equal(t, "degraded\n", out)
	waitCheck(t, a, "file-docker", "critical", "docker: socket /nonexistent/docker.sock not available")
}

func TestAgent_ScriptChecksEnabledOverHTTP(t *testing.T) {
	cfg := devConfig()
	cfg.EnableScriptChecks = true
	a, client := startAgent(t, cfg, nil)
	require.NoError(t, client.Agent().CheckRegister(&api.AgentCheckRegistration{ID: "s", Name: "s", AgentServiceCheck: api.AgentServiceCheck{Args: []string{"/bin/sh", "-c", "echo fine"}, Interval: "1s"}}))
	waitCheck(t, a, "s", "passing", "fine")
}

func TestAgent_HTTPCheckDoesNotFollowRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusMovedPermanently) })
	target := httptest.NewServer(mux)
	defer target.Close()

	a, client := startAgent(t, devConfig(), nil)
	require.NoError(t, client.Agent().CheckRegister(&api.AgentCheckRegistration{ID: "redir", Name: "redir", AgentServiceCheck: api.AgentServiceCheck{HTTP: target.URL + "/moved", Interval: "1s"}}))
	out := waitCheck(t, a, "redir", "critical", "301")
	require.NotContains(t, out, "200 OK", "the redirect was followed")
}

func TestAgent_AliasChecks(t *testing.T) {
	a, client := startAgent(t, devConfig(), nil)
	ag := client.Agent()

	// A local service: the alias follows its TTL check.
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{ID: "web", Name: "web", Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "1m"}}))
	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{ID: "web-alias", Name: "alias of web", AgentServiceCheck: api.AgentServiceCheck{AliasService: "web"}}))
	waitCheck(t, a, "web-alias", "critical", "")
	require.NoError(t, ag.PassTTL("web-ttl", ""))
	waitCheck(t, a, "web-alias", "passing", "")
	require.NoError(t, ag.WarnTTL("web-ttl", ""))
	waitCheck(t, a, "web-alias", "warning", "")
	require.NoError(t, ag.FailTTL("web-ttl", ""))
	waitCheck(t, a, "web-alias", "critical", "web-ttl")

	// Another node, registered in the catalog: watched with blocking queries.
	reg := func(status string) {
		_, err := client.Catalog().Register(&api.CatalogRegistration{
			Node: "ext", Address: "192.0.2.10",
			Service: &api.AgentService{ID: "db", Service: "db"},
			Check:   &api.AgentCheck{Node: "ext", CheckID: "db-check", Name: "db", ServiceID: "db", Status: status},
		}, nil)
		require.NoError(t, err)
	}
	reg(api.HealthPassing)
	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{ID: "db-alias", Name: "alias of db", AgentServiceCheck: api.AgentServiceCheck{AliasNode: "ext", AliasService: "db"}}))
	waitCheck(t, a, "db-alias", "passing", "")
	reg(api.HealthCritical)
	waitCheck(t, a, "db-alias", "critical", "db-check")
	reg(api.HealthPassing)
	waitCheck(t, a, "db-alias", "passing", "")
}

func TestAgent_NetworkCheckKinds(t *testing.T) {
	// UDP echo target.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	defer func() { _ = pc.Close(); wg.Wait() }()

	// gRPC health target.
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := health.NewServer()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("my.Svc", healthpb.HealthCheckResponse_SERVING)
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(gl) }()
	defer gs.Stop()

	// HTTP/2 over TLS target.
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	a, client := startAgent(t, devConfig(), nil)
	ag := client.Agent()
	regs := []*api.AgentCheckRegistration{
		{ID: "udp", Name: "udp", AgentServiceCheck: api.AgentServiceCheck{UDP: pc.LocalAddr().String(), Interval: "1s", Timeout: "500ms"}},
		{ID: "grpc", Name: "grpc", AgentServiceCheck: api.AgentServiceCheck{GRPC: gl.Addr().String() + "/my.Svc", Interval: "1s"}},
		{ID: "h2ping", Name: "h2ping", AgentServiceCheck: api.AgentServiceCheck{H2PING: h2.Listener.Addr().String(), H2PingUseTLS: true, TLSSkipVerify: true, Interval: "1s"}},
		{ID: "tcp-tls", Name: "tcp-tls", AgentServiceCheck: api.AgentServiceCheck{TCP: h2.Listener.Addr().String(), TCPUseTLS: true, TLSSkipVerify: true, Interval: "1s"}},
	}
	for _, r := range regs {
		require.NoError(t, ag.CheckRegister(r), r.ID)
	}
	for _, r := range regs {
		waitCheck(t, a, r.ID, "passing", "")
	}
	hs.SetServingStatus("my.Svc", healthpb.HealthCheckResponse_NOT_SERVING)
	waitCheck(t, a, "grpc", "critical", "NOT_SERVING")
	require.Equal(t, "passing", a.Checks()["udp"].Status)

}

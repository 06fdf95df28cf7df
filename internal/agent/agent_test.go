package agent

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger writes to the test log when -v, else nowhere.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Otherwise keep info and above, and print them only if the test
	// fails, so a failure seen once in CI can still be read.
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs (info and above):\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func devConfig() *config.RuntimeConfig {
	cfg := config.DevConfig()
	cfg.NodeName = "node1"
	cfg.PortHTTP = 0
	cfg.PortDNS = -1
	cfg.PortServer = 0
	cfg.PortSerfLAN = 0
	cfg.PortSerfWAN = 0
	cfg.PortGRPC = -1
	return cfg
}

// startAgent starts a dev agent, waits for Ready and returns it with a
// client; the agent is shut down at cleanup.
func startAgent(t *testing.T, cfg *config.RuntimeConfig, tweak func(*Agent)) (*Agent, *api.Client) {
	t.Helper()
	a, err := New(Options{Config: cfg, Logger: testLogger(t), Version: "0.1.0-test"})
	require.NoError(t, err)
	if tweak != nil {
		tweak(a)
	}
	transport := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
		transport.CloseIdleConnections()
	})
	require.NoError(t, a.Start(context.Background()))
	select {
	case <-a.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("agent not ready within 5s")
	}
	client, err := api.NewClient(&api.Config{Address: a.HTTPAddr(), HttpClient: &http.Client{Transport: transport}})
	require.NoError(t, err)
	return a, client
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAgent_DevReadyQuickly(t *testing.T) {
	start := time.Now()
	a, client := startAgent(t, devConfig(), nil)
	require.Less(t, time.Since(start), time.Second, "dev agent must be ready within 1s")
	require.NotEmpty(t, a.HTTPAddr())

	name, err := client.Agent().NodeName()
	require.NoError(t, err)
	require.Equal(t, "node1", name)

	self, err := client.Agent().Self()
	require.NoError(t, err)
	require.Equal(t, "dc1", self["Config"]["Datacenter"])
	require.Equal(t, true, self["Config"]["Server"])
	require.Equal(t, a.NodeID(), self["Config"]["NodeID"])

	node, _, err := client.Catalog().Node("node1", nil)
	require.NoError(t, err)
	require.NotNil(t, node)
	require.Equal(t, a.NodeID(), node.Node.ID)
	require.Equal(t, "127.0.0.1", node.Node.Address)
	require.Equal(t, "127.0.0.1", node.Node.TaggedAddresses["lan"])

	members, err := client.Agent().Members(false)
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.Equal(t, "consul", members[0].Tags["role"])

	host, err := client.Agent().Host()
	require.NoError(t, err)
	require.Contains(t, host, "Memory")
	require.Contains(t, host, "Host")
}

func TestAgent_ServiceWithTTLCheck(t *testing.T) {
	_, client := startAgent(t, devConfig(), nil)
	ag := client.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		ID: "web1", Name: "web", Port: 8080, Tags: []string{"v1"},
		Check: &api.AgentServiceCheck{TTL: "500ms"},
	}))

	waitFor(t, "service in catalog", func() bool {
		svcs, _, err := client.Catalog().Service("web", "", nil)
		return err == nil && len(svcs) == 1 && svcs[0].ServicePort == 8080
	})
	waitFor(t, "critical check in health", func() bool {
		entries, _, err := client.Health().Service("web", "", false, nil)
		return err == nil && len(entries) == 1 && entries[0].Checks.AggregatedStatus() == api.HealthCritical
	})

	require.NoError(t, ag.PassTTL("service:web1", "all good"))
	waitFor(t, "passing", func() bool {
		entries, _, err := client.Health().Service("web", "", true, nil)
		return err == nil && len(entries) == 1
	})
	checks, _, err := client.Health().Checks("web", nil)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	require.Equal(t, "all good", checks[0].Output)

	// No update within the TTL: critical.
	waitFor(t, "TTL expiry", func() bool {
		checks, _, err := client.Health().Checks("web", nil)
		return err == nil && len(checks) == 1 && checks[0].Status == api.HealthCritical && checks[0].Output == "TTL expired"
	})
	local, err := ag.Checks()
	require.NoError(t, err)
	require.Equal(t, api.HealthCritical, local["service:web1"].Status)

	// Errors: unknown check, bad status.
	err = ag.UpdateTTL("nope", "", api.HealthPassing)
	require.Error(t, err)
	require.Contains(t, err.Error(), "404")

	require.NoError(t, ag.ServiceDeregister("web1"))
	waitFor(t, "service gone", func() bool {
		svcs, _, err := client.Catalog().Service("web", "", nil)
		return err == nil && len(svcs) == 0
	})
	checks, _, err = client.Health().Checks("web", nil)
	require.NoError(t, err)
	require.Empty(t, checks)
}

func TestAgent_CheckRegistrationErrors(t *testing.T) {
	_, client := startAgent(t, devConfig(), nil)
	ag := client.Agent()
	err := ag.CheckRegister(&api.AgentCheckRegistration{Name: "s", AgentServiceCheck: api.AgentServiceCheck{Args: []string{"true"}, Interval: "10s"}})
	require.ErrorContains(t, err, "Scripts are disabled on this agent")
	err = ag.CheckRegister(&api.AgentCheckRegistration{Name: "x"})
	require.ErrorContains(t, err, "400")
	err = ag.ServiceRegister(&api.AgentServiceRegistration{ID: "x"})
	require.ErrorContains(t, err, "Missing service name")
}

func TestAgent_HTTPCheck(t *testing.T) {
	a, client := startAgent(t, devConfig(), nil)
	// The agent's own HTTP API serves as the checked endpoint.
	require.NoError(t, client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Name: "api",
		Check: &api.AgentServiceCheck{
			HTTP:     "http://" + a.HTTPAddr() + "/v1/status/leader",
			Interval: "1s",
		},
	}))
	waitFor(t, "http check passing", func() bool {
		entries, _, err := client.Health().Service("api", "", true, nil)
		return err == nil && len(entries) == 1
	})
}

func TestAgent_Maintenance(t *testing.T) {
	_, client := startAgent(t, devConfig(), nil)
	ag := client.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{Name: "db", Port: 5432}))
	waitFor(t, "db passing", func() bool {
		e, _, err := client.Health().Service("db", "", true, nil)
		return err == nil && len(e) == 1
	})

	require.NoError(t, ag.EnableServiceMaintenance("db", "upgrading"))
	waitFor(t, "service maintenance", func() bool {
		e, _, err := client.Health().Service("db", "", true, nil)
		return err == nil && len(e) == 0
	})
	checks, _, err := client.Health().Checks("db", nil)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	require.Equal(t, "_service_maintenance:db", checks[0].CheckID)
	require.Equal(t, api.HealthCritical, checks[0].Status)
	require.Equal(t, "upgrading", checks[0].Notes)
	require.NoError(t, ag.DisableServiceMaintenance("db"))
	waitFor(t, "service maintenance off", func() bool {
		e, _, err := client.Health().Service("db", "", true, nil)
		return err == nil && len(e) == 1
	})
	require.Error(t, ag.EnableServiceMaintenance("nope", ""))

	require.NoError(t, ag.EnableNodeMaintenance(""))
	waitFor(t, "node maintenance", func() bool {
		e, _, err := client.Health().Service("db", "", true, nil)
		return err == nil && len(e) == 0
	})
	node, _, err := client.Health().Node("node1", nil)
	require.NoError(t, err)
	var found *api.HealthCheck
	for _, c := range node {
		if c.CheckID == NodeMaintCheckID {
			found = c
		}
	}
	require.NotNil(t, found)
	require.Equal(t, "Node Maintenance Mode", found.Name)
	require.Equal(t, api.HealthCritical, found.Status)
	require.NotEmpty(t, found.Notes)
	require.NoError(t, ag.DisableNodeMaintenance())
	waitFor(t, "node maintenance off", func() bool {
		e, _, err := client.Health().Service("db", "", true, nil)
		return err == nil && len(e) == 1
	})
}

func TestAgent_AntiEntropyRepairs(t *testing.T) {
	_, client := startAgent(t, devConfig(), func(a *Agent) { a.fullSyncInterval = 200 * time.Millisecond })
	require.NoError(t, client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "mine", Name: "mine"}))
	waitFor(t, "mine in catalog", func() bool {
		s, _, err := client.Catalog().Service("mine", "", nil)
		return err == nil && len(s) == 1
	})

	// Deleted behind the agent's back: restored.
	_, err := client.Catalog().Deregister(&api.CatalogDeregistration{Node: "node1", ServiceID: "mine"}, nil)
	require.NoError(t, err)
	waitFor(t, "mine restored", func() bool {
		s, _, err := client.Catalog().Service("mine", "", nil)
		return err == nil && len(s) == 1
	})

	// Registered for this node behind its back: removed.
	_, err = client.Catalog().Register(&api.CatalogRegistration{
		Node: "node1", Address: "127.0.0.1",
		Service:        &api.AgentService{ID: "intruder", Service: "intruder"},
		SkipNodeUpdate: true,
	}, nil)
	require.NoError(t, err)
	waitFor(t, "intruder removed", func() bool {
		s, _, err := client.Catalog().Service("intruder", "", nil)
		return err == nil && len(s) == 0
	})

	// The server's own entries survive.
	s, _, err := client.Catalog().Service("consul", "", nil)
	require.NoError(t, err)
	require.Len(t, s, 1)
	checks, _, err := client.Health().Node("node1", nil)
	require.NoError(t, err)
	var serf bool
	for _, c := range checks {
		serf = serf || c.CheckID == "serfHealth"
	}
	require.True(t, serf)
}

func TestAgent_ConfigServicesAndReload(t *testing.T) {
	cfg := devConfig()
	cfg.Services = []map[string]any{{"name": "fromfile", "port": 1234, "check": map[string]any{"ttl": "30s", "status": "passing"}}}
	next := cfg.Clone()
	next.Services = []map[string]any{{"id": "other", "name": "other"}}
	next.NodeMeta = map[string]string{"rack": "r1"}
	a, err := New(Options{Config: cfg, Logger: testLogger(t), Reload: func() (*config.RuntimeConfig, []string, error) {
		return next, nil, nil
	}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Shutdown(context.Background())) })
	require.NoError(t, a.Start(context.Background()))
	<-a.Ready()
	require.Contains(t, a.Services(), "fromfile")
	require.Equal(t, "passing", a.Checks()["service:fromfile"].Status)

	require.NoError(t, a.Reload())
	require.NotContains(t, a.Services(), "fromfile")
	require.Contains(t, a.Services(), "other")
	require.Equal(t, "r1", a.Self()["Meta"].(map[string]string)["rack"])
}

func TestAgent_NodeIDPersisted(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.RuntimeConfig{DataDir: dir}
	id1, err := loadNodeID(cfg)
	require.NoError(t, err)
	require.True(t, isUUID(id1))
	id2, err := loadNodeID(cfg)
	require.NoError(t, err)
	require.Equal(t, id1, id2)
	b, err := os.ReadFile(filepath.Join(dir, nodeIDFile))
	require.NoError(t, err)
	require.Equal(t, id1, string(b))

	require.NoError(t, os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("garbage"), 0o600))
	_, err = loadNodeID(cfg)
	require.ErrorContains(t, err, "not a UUID")

	id, err := loadNodeID(&config.RuntimeConfig{NodeID: "ABCDEF01-2345-6789-abcd-ef0123456789"})
	require.NoError(t, err)
	require.Equal(t, "abcdef01-2345-6789-abcd-ef0123456789", id)
}

func TestAgent_LifecycleErrors(t *testing.T) {
	_, err := New(Options{})
	require.ErrorIs(t, err, ErrInvalidOptions)
	_, err = New(Options{Config: &config.RuntimeConfig{NodeName: "n", Datacenter: "dc1"}})
	require.ErrorIs(t, err, ErrInvalidOptions) // no data dir

	// A client agent whose start_join reaches nobody fails to start.
	cfg := config.DefaultConfig()
	cfg.NodeName, cfg.DataDir = "c1", t.TempDir()
	cfg.BindAddr = "127.0.0.1"
	cfg.PortHTTP, cfg.PortDNS, cfg.PortSerfLAN, cfg.PortSerfWAN = -1, -1, 0, -1
	cfg.StartJoin = []string{"127.0.0.1:1"}
	a, err := New(Options{Config: cfg})
	require.NoError(t, err)
	require.ErrorContains(t, a.Start(context.Background()), "join")
	require.NoError(t, a.Shutdown(context.Background()))
	require.NoError(t, a.Shutdown(context.Background()))
	<-a.Done()
}

func TestAgent_LeaveViaHTTP(t *testing.T) {
	cfg := devConfig()
	a, err := New(Options{Config: cfg, Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	<-a.Ready()
	transport := &http.Transport{DisableKeepAlives: true}
	client, err := api.NewClient(&api.Config{Address: a.HTTPAddr(), HttpClient: &http.Client{Transport: transport}})
	require.NoError(t, err)
	require.NoError(t, client.Agent().Leave())
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not shut down after leave")
	}
	transport.CloseIdleConnections()
	_, err = client.Agent().NodeName()
	require.Error(t, err)
	require.False(t, errors.Is(err, context.Canceled))
}

func TestAgent_DeregisterCriticalServiceAfter(t *testing.T) {
	_, client := startAgent(t, devConfig(), func(a *Agent) {
		a.reapInterval, a.reapMinimum = 20*time.Millisecond, time.Millisecond
	})
	ag := client.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		Name:  "doomed",
		Check: &api.AgentServiceCheck{TTL: "1h", DeregisterCriticalServiceAfter: "100ms"},
	}))
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		Name:  "fine",
		Check: &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing, DeregisterCriticalServiceAfter: "100ms"},
	}))
	waitFor(t, "critical service reaped", func() bool {
		svcs, err := ag.Services()
		return err == nil && svcs["doomed"] == nil
	})
	svcs, err := ag.Services()
	require.NoError(t, err)
	require.Contains(t, svcs, "fine")
	waitFor(t, "reaped service gone from catalog", func() bool {
		s, _, err := client.Catalog().Service("doomed", "", nil)
		return err == nil && len(s) == 0
	})
}

// TestAgent_DeregisterCriticalServiceAfterMinimum: values under one minute
// count as one minute, as in Consul.
func TestAgent_DeregisterCriticalServiceAfterMinimum(t *testing.T) {
	a, client := startAgent(t, devConfig(), nil)
	require.Equal(t, time.Minute, a.reapMinimum)
	ag := client.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		Name:  "short",
		Check: &api.AgentServiceCheck{TTL: "1h", DeregisterCriticalServiceAfter: "10s"},
	}))
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		Name:  "long",
		Check: &api.AgentServiceCheck{TTL: "1h", DeregisterCriticalServiceAfter: "2m"},
	}))
	now := time.Now()
	has := func(name string) bool {
		svcs, err := ag.Services()
		require.NoError(t, err)
		return svcs[name] != nil
	}
	a.reapServices(now.Add(30 * time.Second))
	require.True(t, has("short"), "10s is raised to the 1-minute minimum")
	a.reapServices(now.Add(61 * time.Second))
	require.False(t, has("short"), "reaped once critical for over a minute")
	require.True(t, has("long"))
	a.reapServices(now.Add(121 * time.Second))
	require.False(t, has("long"))
}

func TestAgent_DNS(t *testing.T) {
	cfg := devConfig()
	cfg.PortDNS = 0
	a, client := startAgent(t, cfg, nil)
	require.NotEmpty(t, a.DNSAddr())
	require.NoError(t, client.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Port: 80}))
	waitFor(t, "web in catalog", func() bool {
		s, _, err := client.Catalog().Service("web", "", nil)
		return err == nil && len(s) == 1
	})
	m := new(dns.Msg)
	m.SetQuestion("web.service.consul.", dns.TypeSRV)
	waitFor(t, "SRV answer", func() bool {
		r, err := dns.Exchange(m, a.DNSAddr())
		return err == nil && len(r.Answer) == 1 && r.Answer[0].(*dns.SRV).Port == 80
	})
}

// TestAgent_SessionTTLMin: session_ttl_min reaches the server's session
// checks (a 5s TTL is refused under the default 10s minimum).
func TestAgent_SessionTTLMin(t *testing.T) {
	cfg := devConfig()
	cfg.SessionTTLMin = 2 * time.Second
	_, client := startAgent(t, cfg, nil)
	id, _, err := client.Session().Create(&api.SessionEntry{TTL: "5s"}, nil)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	_, _, err = client.Session().Create(&api.SessionEntry{TTL: "1s"}, nil)
	require.ErrorContains(t, err, "must be between [2s=24h0m0s]")
}

// TestAgent_RefusesACLsEnabled: ACLs are not enforced yet, so an agent
// configured with acl.enabled refuses to start instead of running open.
func TestAgent_RefusesACLsEnabled(t *testing.T) {
	cfg := devConfig()
	cfg.ACL.Enabled = true
	_, err := New(Options{Config: cfg, Logger: testLogger(t)})
	require.ErrorIs(t, err, ErrInvalidOptions)
	require.ErrorContains(t, err, "acl.enabled = true, but cairn does not enforce ACLs yet")
}

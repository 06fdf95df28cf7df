package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	f := AddAgentFlags(fs)
	require.NoError(t, fs.Parse(args))
	return f
}

// minimal makes a client config that passes validation without touching the
// host's interfaces.
const minimal = `{"data_dir": "/nonexistent/cairn-data", "bind_addr": "10.1.1.1", "node_name": "n1"}`

func TestLoad_JSONAndHCLGiveSameConfig(t *testing.T) {
	j, jw, err := Load(LoadOptions{ConfigFiles: []string{"testdata/full.json"}})
	require.NoError(t, err)
	h, hw, err := Load(LoadOptions{ConfigFiles: []string{"testdata/full.hcl"}})
	require.NoError(t, err)

	require.Equal(t, []string{"testdata/full.json"}, j.Files)
	j.Files, h.Files = nil, nil
	require.Equal(t, j, h)
	require.Len(t, hw, len(jw))

	// spot-check the decoded values
	require.Equal(t, "web-1", j.NodeName)
	require.Equal(t, "8ba7b810-9dad-11d1-80b4-00c04fd430c8", j.NodeID)
	require.Equal(t, "east-1", j.Datacenter)
	require.Equal(t, "east-1", j.PrimaryDatacenter)
	require.True(t, j.Server)
	require.Equal(t, 3, j.BootstrapExpect)
	require.Equal(t, "10.0.0.5", j.AdvertiseAddr, "advertise defaults to a specific bind_addr")
	require.Equal(t, "203.0.113.5", j.AdvertiseAddrWAN)
	require.Equal(t, "0.0.0.0", j.AddrHTTP)
	require.Equal(t, 8080, j.PortHTTP)
	require.Equal(t, 8501, j.PortHTTPS)
	require.Equal(t, -1, j.PortSerfWAN)
	require.Equal(t, DefaultPortSerfLAN, j.PortSerfLAN)
	require.Equal(t, []string{"10.0.0.6", "10.0.0.7"}, j.RetryJoin)
	require.Equal(t, 15*time.Second, j.RetryInterval)
	require.Equal(t, "debug", j.LogLevel)
	require.Equal(t, map[string]string{"rack": "r1", "zone": "a"}, j.NodeMeta)
	require.Equal(t, 2, j.RaftMultiplier)
	require.Equal(t, 3*time.Second, j.LeaveDrainTime)
	require.True(t, j.LeaveOnTerminate, "explicitly set on a server")
	require.True(t, j.SkipLeaveOnInterrupt, "server default")
	require.Equal(t, uint64(1<<20), j.KVMaxValueSize)
	require.Equal(t, "root", j.ACL.Tokens.InitialManagement)
	require.Equal(t, "recover", j.ACL.Tokens.AgentRecovery)
	require.Equal(t, "cairn.", j.Domain)
	require.Equal(t, map[string]time.Duration{"*": 5 * time.Second, "web": 30 * time.Second}, j.DNS.ServiceTTL)
	require.False(t, j.DNS.AllowStale)
	require.True(t, j.UIEnabled)
	require.False(t, j.Autopilot.CleanupDeadServers)

	require.Len(t, j.Services, 2)
	require.Equal(t, "web", j.Services[0]["name"])
	require.Equal(t, 80, j.Services[0]["port"])
	require.Equal(t, map[string]any{"http": "http://localhost/health", "interval": "10s", "header": map[string]any{"Host": []any{"web"}}}, j.Services[0]["check"])
	require.Len(t, j.Services[1]["checks"], 2)
	require.Len(t, j.Checks, 1)
	require.Len(t, j.Watches, 1)
}

func TestLoad_Defaults(t *testing.T) {
	dir := t.TempDir()
	c, _, err := Load(LoadOptions{ConfigFiles: []string{writeFile(t, dir, "a.json", minimal)}})
	require.NoError(t, err)
	require.Equal(t, "dc1", c.Datacenter)
	require.Equal(t, "127.0.0.1", c.ClientAddr)
	require.Equal(t, DefaultPortHTTP, c.PortHTTP)
	require.Equal(t, -1, c.PortGRPC)
	require.Equal(t, "info", c.LogLevel)
	require.Equal(t, DefaultRaftMultiplier, c.RaftMultiplier)
	require.Equal(t, 2, c.RaftMultiplier)
	require.Equal(t, uint64(512*1024), c.KVMaxValueSize)
	require.Equal(t, 5*time.Minute, c.CheckUpdateInterval)
	require.Equal(t, "allow", c.ACL.DefaultPolicy)
	require.Equal(t, "extend-cache", c.ACL.DownPolicy)
	require.False(t, c.Server)
	require.True(t, c.LeaveOnTerminate, "client default")
	require.False(t, c.SkipLeaveOnInterrupt, "client default")
	require.Equal(t, "consul.", c.Domain)
}

func TestLoad_Dev(t *testing.T) {
	c, _, err := Load(LoadOptions{Flags: parseFlags(t, "-dev")})
	require.NoError(t, err)
	require.True(t, c.Dev)
	require.True(t, c.Server)
	require.True(t, c.Bootstrap)
	require.Empty(t, c.DataDir)
	require.Equal(t, "127.0.0.1", c.BindAddr)
	require.Equal(t, "127.0.0.1", c.AdvertiseAddr)
	require.Equal(t, DevPortGRPC, c.PortGRPC)
	require.True(t, c.EnableDebug)
	require.True(t, c.DisableUpdateCheck)
	require.True(t, c.UIEnabled)
	require.False(t, c.LeaveOnTerminate)
	require.True(t, c.SkipLeaveOnInterrupt)
	require.Equal(t, 1, c.RaftMultiplier, "one in-memory server takes the fastest timing")
	// A configured multiplier still wins in dev mode.
	c2, _, err := Load(LoadOptions{Flags: parseFlags(t, "-dev", "-hcl", "performance { raft_multiplier = 3 }")})
	require.NoError(t, err)
	require.Equal(t, 3, c2.RaftMultiplier)
	host, _ := os.Hostname()
	require.Equal(t, host, c.NodeName)
}

func TestLoad_MergeOrder(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.json", `{"data_dir": "/a", "bind_addr": "10.1.1.1", "node_name": "a",
		"retry_join": ["x"], "node_meta": {"k1": "a", "k2": "a"}, "ports": {"http": 1001},
		"services": [{"name": "s1"}]}`)
	b := writeFile(t, dir, "b.hcl", `node_name = "b"
retry_join = ["y"]
node_meta { k2 = "b" }
ports { dns = 1002 }
service { name = "s2" }`)

	t.Run("files in order", func(t *testing.T) {
		c, _, err := Load(LoadOptions{ConfigFiles: []string{a, b}})
		require.NoError(t, err)
		require.Equal(t, "b", c.NodeName, "scalars: last wins")
		require.Equal(t, []string{"x", "y"}, c.RetryJoin, "lists append")
		require.Equal(t, map[string]string{"k1": "a", "k2": "b"}, c.NodeMeta, "maps merge")
		require.Equal(t, 1001, c.PortHTTP, "blocks merge key by key")
		require.Equal(t, 1002, c.PortDNS)
		require.Len(t, c.Services, 2)
		require.Equal(t, []string{a, b}, c.Files)
	})
	t.Run("reverse order", func(t *testing.T) {
		c, _, err := Load(LoadOptions{ConfigFiles: []string{b, a}})
		require.NoError(t, err)
		require.Equal(t, "a", c.NodeName)
		require.Equal(t, []string{"y", "x"}, c.RetryJoin)
	})
	t.Run("config dir lexical order", func(t *testing.T) {
		cd := t.TempDir()
		writeFile(t, cd, "20-b.json", `{"node_name": "twenty"}`)
		writeFile(t, cd, "10-a.json", minimal)
		writeFile(t, cd, "30-c.hcl", `log_level = "warn"`)
		writeFile(t, cd, "README.md", `not config`)
		require.NoError(t, os.Mkdir(filepath.Join(cd, "sub.json"), 0o700))
		f := parseFlags(t, "-config-dir", cd)
		c, _, err := Load(LoadOptions{Flags: f})
		require.NoError(t, err)
		require.Equal(t, "twenty", c.NodeName)
		require.Equal(t, "warn", c.LogLevel)
		require.Equal(t, []string{filepath.Join(cd, "10-a.json"), filepath.Join(cd, "20-b.json"), filepath.Join(cd, "30-c.hcl")}, c.Files)
	})
	t.Run("flags override files; only given flags", func(t *testing.T) {
		f := parseFlags(t, "-config-file", a, "-node", "flagged", "-retry-join", "z", "-node-meta", "k3:v:3", "-http-port", "9000")
		c, _, err := Load(LoadOptions{Flags: f})
		require.NoError(t, err)
		require.Equal(t, "flagged", c.NodeName)
		require.Equal(t, "/a", c.DataDir, "unset flag does not override the file")
		require.Equal(t, []string{"x", "z"}, c.RetryJoin)
		require.Equal(t, "v:3", c.NodeMeta["k3"])
		require.Equal(t, "a", c.NodeMeta["k1"])
		require.Equal(t, 9000, c.PortHTTP)
	})
	t.Run("hcl snippet after files, before flags", func(t *testing.T) {
		f := parseFlags(t, "-config-file", a, "-hcl", `node_name = "snip"`, "-hcl", `log_level = "error"`)
		c, _, err := Load(LoadOptions{Flags: f})
		require.NoError(t, err)
		require.Equal(t, "snip", c.NodeName)
		require.Equal(t, "error", c.LogLevel)
		require.Equal(t, []string{a}, c.Files)

		f = parseFlags(t, "-config-file", a, "-hcl", `node_name = "snip"`, "-node", "flag")
		c, _, err = Load(LoadOptions{Flags: f})
		require.NoError(t, err)
		require.Equal(t, "flag", c.NodeName)
	})
	t.Run("config-format forces format", func(t *testing.T) {
		d := t.TempDir()
		p := writeFile(t, d, "agent.conf", `data_dir = "/x"
bind_addr = "10.1.1.1"`)
		_, warns, err := Load(LoadOptions{ConfigFiles: []string{p}})
		require.Error(t, err, "file skipped, so data_dir is missing")
		require.Contains(t, strings.Join(warns, "\n"), "skipped")
		c, _, err := Load(LoadOptions{Flags: parseFlags(t, "-config-format", "hcl", "-config-file", p)})
		require.NoError(t, err)
		require.Equal(t, "/x", c.DataDir)
	})
	t.Run("server leave defaults unless set", func(t *testing.T) {
		f := parseFlags(t, "-config-file", a, "-server")
		c, _, err := Load(LoadOptions{Flags: f})
		require.NoError(t, err)
		require.False(t, c.LeaveOnTerminate)
		require.True(t, c.SkipLeaveOnInterrupt)
		f = parseFlags(t, "-config-file", a, "-server", "-hcl", "skip_leave_on_interrupt = false")
		c, _, err = Load(LoadOptions{Flags: f})
		require.NoError(t, err)
		require.False(t, c.SkipLeaveOnInterrupt)
	})
}

func TestLoad_LegacySpellings(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "legacy.json", `{
		"data_dir": "/d", "bind_addr": "10.1.1.1", "node_name": "n",
		"acl_datacenter": "dc1",
		"acl_master_token": "m", "acl_agent_token": "ag", "acl_token": "def",
		"acl_agent_master_token": "rec", "acl_replication_token": "rep",
		"acl_default_policy": "deny", "acl_down_policy": "allow", "acl_ttl": "45s",
		"ui": true, "recursor": "8.8.4.4",
		"addresses": {"rpc": "127.0.0.1"}, "ports": {"rpc": 8400}
	}`)
	c, warns, err := Load(LoadOptions{ConfigFiles: []string{p}})
	require.NoError(t, err)
	require.True(t, c.ACL.Enabled)
	require.Equal(t, "dc1", c.PrimaryDatacenter)
	require.Equal(t, "m", c.ACL.Tokens.InitialManagement)
	require.Equal(t, "ag", c.ACL.Tokens.Agent)
	require.Equal(t, "def", c.ACL.Tokens.Default)
	require.Equal(t, "rec", c.ACL.Tokens.AgentRecovery)
	require.Equal(t, "rep", c.ACL.Tokens.Replication)
	require.Equal(t, "deny", c.ACL.DefaultPolicy)
	require.Equal(t, "allow", c.ACL.DownPolicy)
	require.Equal(t, 45*time.Second, c.ACL.TokenTTL)
	require.True(t, c.UIEnabled)
	require.Equal(t, []string{"8.8.4.4"}, c.Recursors)
	all := strings.Join(warns, "\n")
	require.Contains(t, all, p+": acl_master_token: deprecated, use acl.tokens.initial_management")
	require.Contains(t, all, "addresses.rpc: removed")
	require.Contains(t, all, "acl.enabled: not implemented by cairn yet; ACLs are not enforced, so the agent refuses to start with acl.enabled on rather than run open")

	t.Run("new spelling wins in the same file", func(t *testing.T) {
		p := writeFile(t, dir, "both.hcl", `
data_dir = "/d"
bind_addr = "10.1.1.1"
acl_master_token = "old"
acl { tokens { master = "older", initial_management = "new" } }`)
		c, _, err := Load(LoadOptions{ConfigFiles: []string{p}})
		require.NoError(t, err)
		require.Equal(t, "new", c.ACL.Tokens.InitialManagement)
	})
}

func TestLoad_UnimplementedKeyWarns(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "tel.hcl", `
data_dir = "/d"
bind_addr = "10.1.1.1"
telemetry { prometheus_retention_time = "30s" }
encrypt = "abc="
limits { rpc_max_conns_per_client = 10 }`)
	_, warns, err := Load(LoadOptions{ConfigFiles: []string{p}})
	require.NoError(t, err)
	all := strings.Join(warns, "\n")
	require.Contains(t, all, p+": telemetry: not implemented by cairn yet; ignored")
	require.Contains(t, all, p+": encrypt: not implemented")
	require.Contains(t, all, p+": limits.rpc_max_conns_per_client: not implemented")
}

func TestLoad_NodeNameDNSWarning(t *testing.T) {
	f := parseFlags(t, "-dev", "-node", "my_node.local")
	_, warns, err := Load(LoadOptions{Flags: f})
	require.NoError(t, err)
	require.Contains(t, strings.Join(warns, "\n"), "will not be discoverable via DNS")
}

func TestLoad_AdvertiseDetection(t *testing.T) {
	old := privateIPv4
	t.Cleanup(func() { privateIPv4 = old })
	privateIPv4 = func() (string, error) { return "192.168.7.7", nil }
	dir := t.TempDir()
	p := writeFile(t, dir, "a.json", `{"data_dir": "/d"}`)
	c, _, err := Load(LoadOptions{ConfigFiles: []string{p}})
	require.NoError(t, err)
	require.Equal(t, "192.168.7.7", c.AdvertiseAddr)
	require.Equal(t, "192.168.7.7", c.AdvertiseAddrWAN)
}

func TestValidateFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.json", `{"data_dir": "/d", "server": true, "bootstrap_expect": 3}`)
	writeFile(t, dir, "b.hcl", `telemetry { disable_hostname = true }`)
	warns, err := ValidateFiles([]string{dir}, "")
	require.NoError(t, err)
	require.Contains(t, strings.Join(warns, "\n"), "telemetry")

	bad := writeFile(t, t.TempDir(), "bad.json", `{"server": true, "bootstrap": true, "bootstrap_expect": 3, "data_dir": "/d"}`)
	_, err = ValidateFiles([]string{bad}, "")
	require.ErrorContains(t, err, "mutually exclusive")
	require.ErrorIs(t, err, ErrInvalid)

	_, err = ValidateFiles(nil, "")
	require.Error(t, err)
}

func TestFlags_UnsetMeansNil(t *testing.T) {
	f := parseFlags(t, "-server", "-log-json=false", "-join", "a", "-join", "b", "-retry-interval", "5s")
	require.NotNil(t, f.Server)
	require.True(t, *f.Server)
	require.NotNil(t, f.LogJSON)
	require.False(t, *f.LogJSON)
	require.Nil(t, f.Dev)
	require.Nil(t, f.DataDir)
	require.Nil(t, f.PortHTTP)
	require.Equal(t, []string{"a", "b"}, f.StartJoin)
	require.Equal(t, 5*time.Second, *f.RetryInterval)

	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	AddAgentFlags(fs)
	require.Error(t, fs.Parse([]string{"-node-meta", "nocolon"}))
	require.Error(t, fs.Parse([]string{"-http-port", "abc"}))
	require.Error(t, fs.Parse([]string{"-config-format", "yaml"}))
	require.Error(t, fs.Parse([]string{"-retry-interval", "soon"}))
}

func TestParseNodeMeta(t *testing.T) {
	for _, tc := range []struct {
		in, k, v string
		err      bool
	}{
		{in: "rack:r1", k: "rack", v: "r1"},
		{in: "url:http://x", k: "url", v: "http://x"},
		{in: "empty:", k: "empty", v: ""},
		{in: "nocolon", err: true},
		{in: ":v", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			k, v, err := ParseNodeMeta(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.k, k)
			require.Equal(t, tc.v, v)
		})
	}
}

func TestRuntimeConfig_CloneIsDeep(t *testing.T) {
	c, _, err := Load(LoadOptions{ConfigFiles: []string{"testdata/full.json"}})
	require.NoError(t, err)
	cp := c.Clone()
	require.Equal(t, c, cp)
	cp.NodeMeta["rack"] = "changed"
	cp.RetryJoin[0] = "changed"
	cp.Services[0]["name"] = "changed"
	require.Equal(t, "r1", c.NodeMeta["rack"])
	require.Equal(t, "10.0.0.6", c.RetryJoin[0])
	require.Equal(t, "web", c.Services[0]["name"])
}

func TestServiceDefinitionsFromFile(t *testing.T) {
	dir := t.TempDir()
	j := writeFile(t, dir, "svc.json", `{"service": {"name": "web", "port": 80}}`)
	h := writeFile(t, dir, "svc.hcl", `services = [{ name = "a" }, { name = "b", tags = ["x"] }]`)
	defs, err := ServiceDefinitionsFromFile(j)
	require.NoError(t, err)
	require.Equal(t, []map[string]any{{"name": "web", "port": 80}}, defs)
	defs, err = ServiceDefinitionsFromFile(h)
	require.NoError(t, err)
	require.Len(t, defs, 2)
	require.Equal(t, []any{"x"}, defs[1]["tags"])

	_, err = ServiceDefinitionsFromFile(writeFile(t, dir, "bad.json", `{"servce": {}}`))
	require.ErrorIs(t, err, ErrUnknownKey)
	_, err = ServiceDefinitionsFromFile(filepath.Join(dir, "missing.json"))
	require.Error(t, err)
}

// TestLoad_AcceptedButUnimplementedWarn: keys Consul has that configure
// something Cairn does not run yet warn when they ask for it, and stay
// quiet when they turn it off.
func TestLoad_AcceptedButUnimplementedWarn(t *testing.T) {
	p := writeFile(t, t.TempDir(), "parts.hcl", `
data_dir = "/d"
bind_addr = "10.1.1.1"
log_file = "/var/log/cairn/"
ports { https = 8501, grpc = -1 }
ui_config { enabled = true }
performance { leave_drain_time = "3s" }
disable_host_node_id = false`)
	_, warns, err := Load(LoadOptions{ConfigFiles: []string{p}})
	require.NoError(t, err)
	all := strings.Join(warns, "\n")
	for _, want := range []string{
		"log_file: not implemented by cairn yet; ignored (logs go to stderr only)",
		"ports.https: not implemented by cairn yet; ignored (there is no HTTPS listener",
		"ui_config.enabled: not implemented by cairn yet; ignored (there is no web UI)",
		"performance.leave_drain_time: not implemented",
		"disable_host_node_id: not implemented",
	} {
		require.Contains(t, all, want)
	}
	require.NotContains(t, all, "ports.grpc", "-1 turns gRPC off, which is what Cairn does")

	f := parseFlags(t, "-dev", "-log-file", "/tmp/x.log")
	_, warns, err = Load(LoadOptions{Flags: f})
	require.NoError(t, err)
	require.Contains(t, strings.Join(warns, "\n"), "log_file: not implemented")

	_, warns, err = Load(LoadOptions{Flags: parseFlags(t, "-dev")})
	require.NoError(t, err)
	require.NotContains(t, strings.Join(warns, "\n"), "not implemented", "-dev alone warns about nothing")
}

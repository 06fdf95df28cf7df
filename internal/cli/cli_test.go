package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/agent"
	"github.com/cairn-io/cairn/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http keep-alive readers of the api client's pooled transport.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// startAgent runs an in-process dev agent on a free port and returns its
// HTTP address; it is shut down at cleanup.
func startAgent(t *testing.T) string {
	t.Helper()
	cfg := config.DevConfig()
	cfg.NodeName = "cli-node"
	cfg.PortHTTP, cfg.PortServer = 0, 0
	cfg.PortSerfLAN, cfg.PortSerfWAN = 0, 0
	cfg.PortDNS, cfg.PortGRPC = -1, -1
	reload := func() (*config.RuntimeConfig, []string, error) { return cfg.Clone(), nil, nil }
	a, err := agent.New(agent.Options{Config: cfg, Reload: reload, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"})
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
	})
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("agent not ready")
	}
	return a.HTTPAddr()
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, strings.NewReader(stdin), &out, &errb)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func requireOK(t *testing.T, r result) {
	t.Helper()
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
}

func requireFail(t *testing.T, r result, msg string) {
	t.Helper()
	require.NotEqual(t, 0, r.code, "stdout: %s", r.stdout)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.Len(t, lines, 1, "errors are one line: %q", r.stderr)
	require.Contains(t, r.stderr, msg)
}

func TestCLI_KV(t *testing.T) {
	addr := "-http-addr=" + startAgent(t)

	requireOK(t, run(t, "", "kv", "put", addr, "app/a", "one"))
	requireOK(t, run(t, "", "kv", "put", addr, "-flags=42", "app/b", "two"))
	requireOK(t, run(t, "from stdin", "kv", "put", addr, "app/c/d", "-"))

	r := run(t, "", "kv", "get", addr, "app/a")
	requireOK(t, r)
	require.Equal(t, "one\n", r.stdout)

	r = run(t, "", "kv", "get", addr, "-detailed", "app/b")
	requireOK(t, r)
	require.Contains(t, r.stdout, "Flags")
	require.Contains(t, r.stdout, "42")

	r = run(t, "", "kv", "get", addr, "-recurse", "app/")
	requireOK(t, r)
	require.Equal(t, "app/a:one\napp/b:two\napp/c/d:from stdin\n", r.stdout)

	r = run(t, "", "kv", "get", addr, "-keys", "app/")
	requireOK(t, r)
	require.Equal(t, "app/a\napp/b\napp/c/\n", r.stdout)

	requireFail(t, run(t, "", "kv", "get", addr, "app/missing"), "no key exists at: app/missing")

	// CAS with a stale index fails and writes nothing.
	requireFail(t, run(t, "", "kv", "put", addr, "-cas", "-modify-index=1", "app/a", "new"), "CAS failed")
	r = run(t, "", "kv", "get", addr, "app/a")
	require.Equal(t, "one\n", r.stdout)

	// Export, wipe, import round-trips values and flags.
	r = run(t, "", "kv", "export", addr, "app/")
	requireOK(t, r)
	exported := r.stdout
	var entries []map[string]any
	require.NoError(t, json.Unmarshal([]byte(exported), &entries))
	require.Len(t, entries, 3)

	requireOK(t, run(t, "", "kv", "delete", addr, "-recurse", "app/"))
	requireFail(t, run(t, "", "kv", "get", addr, "app/a"), "no key exists")

	// Bad import input writes nothing.
	requireFail(t, run(t, `[{"key":"x","flags":0,"value":"%%%"}]`, "kv", "import", addr, "-"), "decoding value")
	requireFail(t, run(t, "", "kv", "get", addr, "x"), "no key exists")

	r = run(t, exported, "kv", "import", addr, "-")
	requireOK(t, r)
	require.Contains(t, r.stdout, "Imported: app/b")
	r = run(t, "", "kv", "get", addr, "-detailed", "app/b")
	require.Contains(t, r.stdout, "42")

	requireOK(t, run(t, "", "kv", "delete", addr, "app/a"))
	requireFail(t, run(t, "", "kv", "get", addr, "app/a"), "no key exists")
}

func TestCLI_CatalogServicesMaint(t *testing.T) {
	addr := "-http-addr=" + startAgent(t)

	r := run(t, "", "catalog", "datacenters", addr)
	requireOK(t, r)
	require.Equal(t, "dc1\n", r.stdout)

	r = run(t, "", "catalog", "nodes", addr)
	requireOK(t, r)
	require.Contains(t, r.stdout, "cli-node")

	// Register from a file in Consul's config format (HCL) and from flags.
	dir := t.TempDir()
	file := filepath.Join(dir, "web.hcl")
	require.NoError(t, os.WriteFile(file, []byte(`service { name = "web" port = 80 tags = ["v1"] }`), 0o600))
	requireOK(t, run(t, "", "services", "register", addr, file))
	requireOK(t, run(t, "", "services", "register", addr, "-name=db", "-port=5432", "-tag=primary"))

	// Anti-entropy syncs at once; poll briefly for the catalog.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r = run(t, "", "catalog", "services", addr, "-tags")
		if strings.Contains(r.stdout, "web") && strings.Contains(r.stdout, "db") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	requireOK(t, r)
	require.Contains(t, r.stdout, "consul")
	require.Regexp(t, `web\s+v1`, r.stdout)
	require.Regexp(t, `db\s+primary`, r.stdout)

	requireOK(t, run(t, "", "maint", addr, "-enable", "-reason=upgrade"))
	r = run(t, "", "maint", addr)
	requireOK(t, r)
	require.Contains(t, r.stdout, "upgrade")
	requireOK(t, run(t, "", "maint", addr, "-disable"))
	requireOK(t, run(t, "", "maint", addr, "-enable", "-service=db"))
	r = run(t, "", "maint", addr)
	require.Contains(t, r.stdout, "ID:     db")
	requireFail(t, run(t, "", "maint", addr, "-enable", "-disable"), "only one of")

	requireOK(t, run(t, "", "services", "deregister", addr, file))
	requireOK(t, run(t, "", "services", "deregister", addr, "-id=db"))
	requireFail(t, run(t, "", "services", "register", addr), "must specify")

	r = run(t, "", "members", addr)
	requireOK(t, r)
	require.Regexp(t, `cli-node\s+\S+\s+alive\s+server`, r.stdout)
	requireFail(t, run(t, "", "members", addr, "-status=failed"), "no members match")

	r = run(t, "", "info", addr)
	requireOK(t, r)
	require.NotEmpty(t, r.stdout)

	r = run(t, "", "reload", addr)
	requireOK(t, r)
	require.Contains(t, r.stdout, "reload triggered")
}

func TestCLI_VersionValidateErrors(t *testing.T) {
	r := run(t, "", "version", "-format=json")
	requireOK(t, r)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.NotEmpty(t, v["Version"])
	requireFail(t, run(t, "", "version", "-format=xml"), "invalid format")

	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"datacenter":"dc2","data_dir":"`+dir+`","server":true}`), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte(`{"nod_name":"x"}`), 0o600))
	r = run(t, "", "validate", good)
	requireOK(t, r)
	require.Contains(t, r.stdout, "Configuration is valid")
	requireFail(t, run(t, "", "validate", bad), `unknown key "nod_name"`)

	// Unreachable agent: one line, non-zero.
	requireFail(t, run(t, "", "kv", "get", "-http-addr=127.0.0.1:1", "k"), "connection refused")
	requireFail(t, run(t, "", "kv", "put", "-http-addr=127.0.0.1:1"), "missing KEY")
	requireFail(t, run(t, "", "kv", "get", "-nope"), "flag provided but not defined")
	requireFail(t, run(t, "", "agent", "-config-file=/nonexistent.json"), "nonexistent.json")
}

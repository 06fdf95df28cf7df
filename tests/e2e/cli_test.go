package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

type cliResult struct {
	code   int
	stdout string
	stderr string
}

// runCLI runs the cairn binary with args (and extra env) and returns its
// exit code and output. The HTTP address comes from env, if any.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.BuildBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run cairn %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	res := cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
	t.Logf("cairn %s -> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

// cleanEnv is the test's environment without CONSUL_* variables, so a
// developer's own Consul settings cannot leak into the CLI under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestCLI_Version(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "version", "-format=json")
	require.Equal(t, 0, r.code)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), "version -format=json must print JSON: %q", r.stdout)
	require.Contains(t, v, "Version")
	require.NotEmpty(t, v["Version"])

	r = runCLI(t, nil, "version")
	require.Equal(t, 0, r.code)
	require.NotEmpty(t, strings.TrimSpace(r.stdout))
}

func TestCLI_KVAndMembers(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	env := []string{"CONSUL_HTTP_ADDR=" + a.HTTPAddr()}

	r := runCLI(t, env, "kv", "put", "a", "b")
	require.Equal(t, 0, r.code)
	require.Equal(t, "b", string(mustKV(t, a.Client(), "a").Value))

	r = runCLI(t, env, "kv", "get", "a")
	require.Equal(t, 0, r.code)
	require.Equal(t, "b", strings.TrimRight(r.stdout, "\n"))

	r = runCLI(t, env, "kv", "get", "missing")
	require.NotEqual(t, 0, r.code, "get of a missing key must fail")
	require.Empty(t, r.stdout)
	require.Equal(t, 1, strings.Count(strings.TrimRight(r.stderr, "\n"), "\n")+1,
		"one line on stderr, got %q", r.stderr)
	require.Contains(t, r.stderr, "missing")

	// -http-addr works without the env var.
	r = runCLI(t, nil, "kv", "get", "-http-addr="+a.HTTPAddr(), "a")
	require.Equal(t, 0, r.code)
	require.Equal(t, "b", strings.TrimRight(r.stdout, "\n"))

	r = runCLI(t, env, "kv", "delete", "a")
	require.Equal(t, 0, r.code)
	p, _, err := a.Client().KV().Get("a", nil)
	require.NoError(t, err)
	require.Nil(t, p)

	r = runCLI(t, env, "members")
	require.Equal(t, 0, r.code)
	var found bool
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, a.Name) {
			found = true
			require.Contains(t, line, "alive", "members line: %q", line)
			require.Contains(t, line, "server", "members line: %q", line)
		}
	}
	require.True(t, found, "members output must list %s:\n%s", a.Name, r.stdout)

	// An unreachable agent is an error, not a hang or a panic.
	r = runCLI(t, []string{"CONSUL_HTTP_ADDR=127.0.0.1:1"}, "kv", "get", "a")
	require.NotEqual(t, 0, r.code)
	require.NotContains(t, r.stderr, "panic")
}

func TestCLI_Validate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{
  "datacenter": "dc1",
  "node_name": "validate-node",
  "data_dir": "`+filepath.Join(dir, "data")+`",
  "server": true,
  "bootstrap_expect": 1,
  "ports": {"http": 8500, "dns": 8600}
}`), 0o600))
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{
  "datacenter": "dc1",
  "data_dir": "`+filepath.Join(dir, "data")+`",
  "bogus_setting_xyz": true
}`), 0o600))

	r := runCLI(t, nil, "validate", good)
	require.Equal(t, 0, r.code, "valid config must validate")

	r = runCLI(t, nil, "validate", bad)
	require.Equal(t, 1, r.code, "invalid config must exit 1")
	require.Contains(t, r.stdout+r.stderr, "bogus_setting_xyz", "the error must name the unknown key")

	r = runCLI(t, nil, "validate", filepath.Join(dir, "does-not-exist.json"))
	require.NotEqual(t, 0, r.code)
}

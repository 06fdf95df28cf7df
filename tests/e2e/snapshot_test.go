package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// seedSnapshotData writes KV entries (one deleted again) and two external
// catalog nodes with services and checks; it returns the KV keys written.
func seedSnapshotData(t *testing.T, c *api.Client) []string {
	t.Helper()
	var keys []string
	for i := range 40 {
		k := fmt.Sprintf("app/%02d/config", i)
		_, err := c.KV().Put(&api.KVPair{Key: k, Flags: uint64(i), Value: []byte(strings.Repeat("v", i))}, nil)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	_, err := c.KV().Put(&api.KVPair{Key: "bin", Value: []byte{0, 1, 2, 255}}, nil)
	require.NoError(t, err)
	keys = append(keys, "bin")
	_, err = c.KV().Put(&api.KVPair{Key: "gone", Value: []byte("x")}, nil)
	require.NoError(t, err)
	_, err = c.KV().Delete("gone", nil)
	require.NoError(t, err)

	for i, n := range []string{"ext-1", "ext-2"} {
		_, err := c.Catalog().Register(&api.CatalogRegistration{
			Node: n, Address: fmt.Sprintf("10.1.0.%d", i+1), NodeMeta: map[string]string{"rack": n},
			Service: &api.AgentService{ID: "web-" + n, Service: "web", Tags: []string{"v1", n}, Port: 8080 + i,
				Meta: map[string]string{"owner": "team-" + n}},
			Checks: api.HealthChecks{
				{Node: n, CheckID: "web-alive", Name: "web alive", ServiceID: "web-" + n, Status: api.HealthPassing},
				{Node: n, CheckID: "disk", Name: "disk", Status: api.HealthWarning, Output: "81% used"},
			},
		}, nil)
		require.NoError(t, err)
	}
	return keys
}

// replicatedView is the data a snapshot must carry exactly. The agents'
// own node registrations differ and are left out.
type replicatedView struct {
	KV       api.KVPairs
	Nodes    []*api.CatalogNode
	Health   map[string]api.HealthChecks
	Web      []*api.CatalogService
	Services map[string][]string
}

func viewOf(t *testing.T, c *api.Client) replicatedView {
	t.Helper()
	v := replicatedView{Health: map[string]api.HealthChecks{}}
	var err error
	v.KV, _, err = c.KV().List("", nil)
	require.NoError(t, err)
	for _, n := range []string{"ext-1", "ext-2"} {
		node, _, err := c.Catalog().Node(n, nil)
		require.NoError(t, err)
		v.Nodes = append(v.Nodes, node)
		checks, _, err := c.Health().Node(n, nil)
		require.NoError(t, err)
		sort.Slice(checks, func(i, j int) bool { return checks[i].CheckID < checks[j].CheckID })
		v.Health[n] = checks
	}
	v.Web, _, err = c.Catalog().Service("web", "", nil)
	require.NoError(t, err)
	v.Services, _, err = c.Catalog().Services(nil)
	require.NoError(t, err)
	delete(v.Services, "consul") // every server registers its own
	return v
}

func catalogIndex(t *testing.T, a *testutil.Agent) uint64 {
	t.Helper()
	r := doString(t, a, http.MethodGet, "/v1/catalog/nodes", "")
	require.Equal(t, http.StatusOK, r.Status)
	idx, ok := r.index()
	require.True(t, ok)
	return idx
}

// TestSnapshot_SaveOnOneAgentRestoreOnAnother saves a snapshot from a -dev
// agent with the CLI and restores it into a second, durable server: KV and
// catalog come out identical, the target's own data is gone, indexes do not
// go backwards, and the restore survives a restart of the target.
func TestSnapshot_SaveOnOneAgentRestoreOnAnother(t *testing.T) {
	t.Parallel()
	src := startDev(t)
	dst := testutil.StartAgent(t, testutil.AgentOptions{Server: true, Bootstrap: true})
	dst.WaitReady(readyTimeout)

	keys := seedSnapshotData(t, src.Client())
	want := viewOf(t, src.Client())
	require.Len(t, want.KV, len(keys))
	for range 30 { // a target with more history than the source
		_, err := dst.Client().KV().Put(&api.KVPair{Key: "only/dst", Value: []byte("x")}, nil)
		require.NoError(t, err)
	}
	dstIndexBefore := catalogIndex(t, dst)

	file := filepath.Join(t.TempDir(), "backup.snap")
	srcEnv := []string{"CONSUL_HTTP_ADDR=" + src.HTTPAddr()}
	dstEnv := []string{"CONSUL_HTTP_ADDR=" + dst.HTTPAddr()}

	r := runCLI(t, srcEnv, "snapshot", "save", file)
	require.Equal(t, 0, r.code, r.stderr)
	m := regexp.MustCompile(`^Saved and verified snapshot to index (\d+)\n$`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)

	r = runCLI(t, nil, "snapshot", "inspect", file)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^Index\s+`+m[1]+`$`, r.stdout)
	for _, field := range []string{"ID", "Size", "Term", "Version"} {
		require.Regexp(t, `(?m)^`+field+`\s+\S+`, r.stdout)
	}
	require.Regexp(t, `(?m)^kvs\s+`+strconv.Itoa(len(keys))+`\s`, r.stdout)

	r = runCLI(t, dstEnv, "snapshot", "restore", file)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "Restored snapshot\n", r.stdout)

	require.Equal(t, want, viewOf(t, dst.Client()))
	p, _, err := dst.Client().KV().Get("only/dst", nil)
	require.NoError(t, err)
	require.Nil(t, p, "the target's own data is replaced")
	require.GreaterOrEqual(t, catalogIndex(t, dst), dstIndexBefore, "X-Consul-Index went backwards")
	// The target puts its own node back into the restored catalog.
	poll(t, 10*time.Second, func() error { return dst.Ready() })

	dst.Restart(t)
	dst.WaitReady(readyTimeout)
	require.Equal(t, want, viewOf(t, dst.Client()), "restored data must survive a restart")
}

// TestSnapshot_CorruptArchiveRefused checks the HTTP API and the CLI refuse
// a damaged archive with a message naming the problem and apply nothing.
func TestSnapshot_CorruptArchiveRefused(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	_, err := c.KV().Put(&api.KVPair{Key: "keep", Value: []byte("original")}, nil)
	require.NoError(t, err)

	r := do(t, a, http.MethodGet, "/v1/snapshot", nil)
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	require.Equal(t, "application/x-gzip", r.Header.Get("Content-Type"))
	idx, ok := r.index()
	require.True(t, ok)
	require.Positive(t, idx)
	r2 := do(t, a, http.MethodGet, "/v1/snapshot?stale", nil)
	require.Equal(t, http.StatusOK, r2.Status, r2.Body)
	arch := []byte(r.Body)

	_, err = c.KV().Put(&api.KVPair{Key: "keep", Value: []byte("changed after save")}, nil)
	require.NoError(t, err)

	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"flipped", func() []byte { b := bytes.Clone(arch); b[len(b)/2] ^= 0x08; return b }()},
		{"truncated", arch[:len(arch)*2/3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, a, http.MethodPut, "/v1/snapshot", bytes.NewReader(tc.b))
			require.Equal(t, http.StatusBadRequest, res.Status)
			require.True(t, strings.HasPrefix(res.Body, "snapshot: "), res.Body)

			file := filepath.Join(dir, tc.name+".snap")
			require.NoError(t, os.WriteFile(file, tc.b, 0o600))
			cr := runCLI(t, []string{"CONSUL_HTTP_ADDR=" + a.HTTPAddr()}, "snapshot", "restore", file)
			require.Equal(t, 1, cr.code)
			require.Contains(t, cr.stderr, "400")
			require.Contains(t, cr.stderr, "snapshot: ")
			cr = runCLI(t, nil, "snapshot", "inspect", file)
			require.Equal(t, 1, cr.code)
			require.Contains(t, cr.stderr, "snapshot: ")

			require.Equal(t, "changed after save", string(mustKV(t, c, "keep").Value), "nothing applied")
		})
	}

	// The intact archive still restores, bringing back the saved value.
	res := do(t, a, http.MethodPut, "/v1/snapshot", bytes.NewReader(arch))
	require.Equal(t, http.StatusOK, res.Status, res.Body)
	require.Equal(t, "original", string(mustKV(t, c, "keep").Value))
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/testutil"
)

func TestMain(m *testing.M) {
	if _, err := testutil.Binary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testutil.RemoveBuiltBinary()
	if code == 0 {
		// The harness owns one goroutine per agent process and every agent's
		// idle connections are closed at cleanup: nothing may be left.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// readyTimeout bounds how long a fresh agent may take to become ready.
const readyTimeout = 20 * time.Second

// startDev starts a -dev agent, waits until it is ready and returns it.
func startDev(t testing.TB, extra ...string) *testutil.Agent {
	t.Helper()
	a := testutil.StartAgent(t, testutil.AgentOptions{Dev: true, ExtraArgs: extra})
	a.WaitReady(readyTimeout)
	return a
}

// httpResult is a plain HTTP response read fully.
type httpResult struct {
	Status int
	Header http.Header
	Body   string
}

// index returns X-Consul-Index as a number (0 and ok=false when absent or
// unparsable).
func (r httpResult) index() (uint64, bool) {
	v := r.Header.Get("X-Consul-Index")
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// do sends a plain HTTP request to the agent and reads the whole response.
func do(t testing.TB, a *testutil.Agent, method, path string, body io.Reader) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, a.URL(path), body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	resp, err := a.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

func doString(t testing.TB, a *testutil.Agent, method, path, body string) httpResult {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return do(t, a, method, path, r)
}

// poll is testutil.Retry with the suite's usual step.
func poll(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	testutil.Retry(t, timeout, 25*time.Millisecond, fn)
}

// mustKV returns the value at key or fails.
func mustKV(t testing.TB, c *api.Client, key string) *api.KVPair {
	t.Helper()
	p, _, err := c.KV().Get(key, nil)
	if err != nil {
		t.Fatalf("kv get %q: %v", key, err)
	}
	if p == nil {
		t.Fatalf("kv get %q: not found", key)
	}
	return p
}

package cluster

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/cairn-io/cairn/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuiltBinary()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// readyTimeout bounds how long a fresh cluster may take to elect a leader
// and see every member.
const readyTimeout = 60 * time.Second

// writeTimeout bounds one write: longer than rpc_hold_timeout (7 s).
const writeTimeout = 10 * time.Second

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
}

// put writes key=value through agent a with a deadline.
func put(a *testutil.Agent, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	_, err := a.Client().KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("put %s via %s: %w", key, a.Name, err)
	}
	return nil
}

// staleKV returns a's own copy of every key under prefix as
// "key=value@modifyindex" lines (a ?stale read answered locally).
func staleKV(a *testutil.Agent, prefix string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pairs, _, err := a.Client().KV().List(prefix, (&api.QueryOptions{AllowStale: true}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("%s: stale list %s: %w", a.Name, prefix, err)
	}
	lines := make([]string, 0, len(pairs))
	for _, p := range pairs {
		lines = append(lines, fmt.Sprintf("%s=%s@%d", p.Key, p.Value, p.ModifyIndex))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

// percentile returns the p-th percentile (0..100, nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// serfHealth returns node's serfHealth status as agent a sees it in the
// catalog ("" when the check is not there).
func serfHealth(a *testutil.Agent, node string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	checks, _, err := a.Client().Health().Node(node, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("%s: health/node/%s: %w", a.Name, node, err)
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" {
			return c.Status, nil
		}
	}
	return "", nil
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sampleResult() *Result {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	return &Result{
		Workload: "kv-mix", System: "cairn", Targets: []string{"127.0.0.1:8500"}, Clients: 4,
		Consistency: "stale", ElapsedSec: 2, Ops: 1000, Errors: 3, OpsPerSec: 500,
		Latency:    Summarize(&h),
		Breakdown:  map[string]Latency{"put": Summarize(&h), "get": Summarize(&h)},
		Extra:      map[string]float64{"read_ratio": 0.9},
		FirstError: "boom",
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, []*Result{sampleResult()}))
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	require.Len(t, lines, 5, buf.String())
	require.Regexp(t, `workload\s+system\s+clients\s+ops\s+errors\s+ops/s\s+p50 ms\s+p90 ms\s+p99 ms\s+p99.9 ms\s+max ms`, lines[0])
	require.Regexp(t, `kv-mix \(stale\)\s+cairn\s+4\s+1000\s+3\s+500\s+0.50\d\s+0.90\d\s+0.99\d\s+0.999\s+1.000`, lines[1])
	require.Regexp(t, `^\s+get\s+1000\s+500\s`, lines[2], "breakdown rows are sorted and indented")
	require.Regexp(t, `^\s+put\s`, lines[3])
	require.Equal(t, "kv-mix: read_ratio=0.90 first_error=boom", lines[4])
}

func TestWriteJSON(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, []*Result{sampleResult()}))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	require.Len(t, got, 1)
	require.Equal(t, "kv-mix", got[0]["workload"])
	require.InDelta(t, 500.0, got[0]["ops_per_sec"], 1e-9)
	lat := got[0]["latency_ms"].(map[string]any)
	require.InEpsilon(t, 0.99, lat["p99"], 1.0/64)
	require.InEpsilon(t, 0.999, lat["p99_9"], 1.0/64)
	require.Contains(t, got[0]["breakdown_ms"], "put")
}

func TestProgressLine(t *testing.T) {
	l := ProgressLine(0.5, 2*time.Second, 1000, 2)
	require.Equal(t, "[===============>              ]  50%   2.0s 1000 ops 500/s 2 err", l)
	require.LessOrEqual(t, len(ProgressLine(2, time.Hour, 1<<40, 1<<40)), 100)
	require.True(t, strings.HasPrefix(ProgressLine(1, time.Second, 1, 0), "[=============================="))
}

func TestRun(t *testing.T) {
	t.Run("requests", func(t *testing.T) {
		var n atomic.Int64
		r, err := Run(context.Background(), RunOptions{Clients: 4, Requests: 100, Kinds: []string{"a", "b"}}, func(context.Context, int) (int, error) {
			i := n.Add(1)
			if i%10 == 0 {
				return 0, errors.New("every tenth fails")
			}
			return int(i % 2), nil
		})
		require.NoError(t, err)
		require.EqualValues(t, 90, r.Ops)
		require.EqualValues(t, 10, r.Errors)
		require.Equal(t, "every tenth fails", r.FirstError)
		require.EqualValues(t, 90, r.Breakdown["a"].Count+r.Breakdown["b"].Count)
	})
	t.Run("duration with progress", func(t *testing.T) {
		var buf syncBuffer
		r, err := Run(context.Background(), RunOptions{Clients: 2, Duration: 600 * time.Millisecond, Progress: &buf, ProgressMin: time.Millisecond},
			func(context.Context, int) (int, error) { time.Sleep(time.Millisecond); return 0, nil })
		require.NoError(t, err)
		require.Greater(t, r.Ops, uint64(100))
		require.InDelta(t, 0.6, r.ElapsedSec, 0.3)
		require.Contains(t, buf.String(), "ops")
	})
	t.Run("bad options", func(t *testing.T) {
		_, err := Run(context.Background(), RunOptions{Clients: 0, Requests: 1}, nil)
		require.ErrorIs(t, err, ErrBadOptions)
		_, err = Run(context.Background(), RunOptions{Clients: 1}, nil)
		require.ErrorIs(t, err, ErrBadOptions)
	})
}

func TestParseStatTicks(t *testing.T) {
	stat := "1234 (cairn agent) S 1 1234 1234 0 -1 4194560 5000 0 0 0 150 25 0 0 20 0 12 0 100 0 0"
	got, err := parseStatTicks(stat)
	require.NoError(t, err)
	require.EqualValues(t, 175, got)
	_, err = parseStatTicks("garbage")
	require.ErrorIs(t, err, errBadStat)
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no addr", func(c *Config) { c.Addrs = nil }, "-http-addr"},
		{"clients", func(c *Config) { c.Clients = 0 }, "-clients"},
		{"no stop", func(c *Config) { c.Duration = 0 }, "-duration or -requests"},
		{"ratio", func(c *Config) { c.ReadRatio = 1.5 }, "-read-ratio"},
		{"consistency", func(c *Config) { c.Consistency = "strong" }, "-consistency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrBadOptions)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

package cli

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLI_Bench(t *testing.T) {
	addr := "-http-addr=" + startAgent(t)

	t.Run("kv-put json", func(t *testing.T) {
		r := run(t, "", "bench", "kv-put", addr, "-duration=2s", "-clients=8", "-keys=100", "-value-size=64", "-format=json")
		requireOK(t, r)
		var res []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
		require.Len(t, res, 1)
		require.Equal(t, "kv-put", res[0]["workload"])
		require.Greater(t, res[0]["ops"], 10.0)
		require.EqualValues(t, 0, res[0]["errors"], "first error: %v", res[0]["first_error"])
		lat := res[0]["latency_ms"].(map[string]any)
		require.Greater(t, lat["p99"], 0.0)
		require.LessOrEqual(t, lat["p50"], lat["p99"])
	})

	t.Run("watch-fanout table", func(t *testing.T) {
		r := run(t, "", "bench", addr, "-watchers=100", "watch-fanout", "-writes=2", "-pid="+itoa(os.Getpid()))
		requireOK(t, r)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Len(t, lines, 4, r.stdout)
		require.Regexp(t, `watch-fanout \(default\)\s+cairn\s+100\s+200\s+0\s`, lines[1], "100 watchers x 2 writes, no errors")
		require.Contains(t, lines[3], "missed=0")
		require.Contains(t, lines[3], "agent_cpu_idle_pct_avg=")
	})

	t.Run("watch-fanout raw json", func(t *testing.T) {
		r := run(t, "", "bench", "watch-fanout", addr, "-watch-client=raw", "-watchers=100", "-writes=2", "-format=json")
		requireOK(t, r)
		var res []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
		require.Len(t, res, 1)
		require.Equal(t, "watch-fanout (raw)", res[0]["workload"])
		require.EqualValues(t, 0, res[0]["errors"], "first error: %v", res[0]["first_error"])
		require.EqualValues(t, 200, res[0]["ops"], "every watcher woken each round")
		extra := res[0]["extra"].(map[string]any)
		require.EqualValues(t, 0, extra["missed"])
		require.Contains(t, extra, "client_cpu_ms_per_write")
	})

	t.Run("watch-fanout raw table", func(t *testing.T) {
		r := run(t, "", "bench", "watch-fanout", addr, "-watch-client", "raw", "-watchers=10", "-writes=1", "-consistency=stale")
		requireOK(t, r)
		require.Regexp(t, `watch-fanout \(raw\) \(stale\)\s+cairn\s+10\s+10\s+0\s`, r.stdout)
		require.Contains(t, r.stdout, "watch-fanout (raw): ")
	})

	t.Run("kv-get requests", func(t *testing.T) {
		r := run(t, "", "bench", "kv-get", addr, "-requests=200", "-clients=4", "-keys=50", "-consistency=stale")
		requireOK(t, r)
		require.Regexp(t, `kv-get \(stale\)\s+cairn\s+4\s+200\s+0\s`, r.stdout)
	})

	t.Run("bad input", func(t *testing.T) {
		requireFail(t, run(t, "", "bench", addr), "missing WORKLOAD")
		requireFail(t, run(t, "", "bench", "kv-nope", addr, "-requests=1"), `unknown workload "kv-nope"`)
		requireFail(t, run(t, "", "bench", "kv-get", addr, "-consistency=strong"), "-consistency must be")
		requireFail(t, run(t, "", "bench", "failover", addr), "failover needs -cluster")
		requireFail(t, run(t, "", "bench", "kv-put", addr, "-format=xml"), "-format must be")
		requireFail(t, run(t, "", "bench", "watch-fanout", addr, "-watch-client=grpc"), "-watch-client must be api or raw")
		requireFail(t, run(t, "", "bench", "kv-put", addr, "-watch-client=raw"), "applies to watch-fanout only")
		r := run(t, "", "bench", "kv-put", "-http-addr=127.0.0.1:1", "-requests=3", "-clients=1")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "every operation failed (3 errors)")
		require.Contains(t, r.stdout, "kv-put", "the table is still printed")
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

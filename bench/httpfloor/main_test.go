package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as the server process run() starts.
func TestMain(m *testing.M) {
	if v := os.Getenv(serveEnv); v != "" {
		if err := serveFromEnv(v); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRun_EveryServerAndClient runs every server and client pairing with a
// few watchers: each write must reach every watcher, without errors.
func TestRun_EveryServerAndClient(t *testing.T) {
	for _, c := range []options{
		{server: "h1", client: "raw", servers: 1},
		{server: "h1", client: "raw", servers: 3},
		{server: "raw", client: "raw", servers: 2},
		{server: "h1", client: "nethttp", servers: 2},
		{server: "h2", client: "nethttp", servers: 1},
	} {
		c.watchers, c.writes = 40, 3
		t.Run(fmt.Sprintf("%s-%s-%d", c.server, c.client, c.servers), func(t *testing.T) {
			var out bytes.Buffer
			r, err := run(c, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			if r.answers != uint64(c.watchers*c.writes) || r.errors != 0 {
				t.Fatalf("answers %d (want %d), errors %d\n%s", r.answers, c.watchers*c.writes, r.errors, out.String())
			}
			// Latency counts from the write's acknowledgement, and with a few
			// watchers every answer can arrive before it: all zeros is valid.
			if r.p50 < 0 || r.p99 < r.p50 || r.max < r.p99 {
				t.Fatalf("quantiles out of order: p50 %v p99 %v max %v", r.p50, r.p99, r.max)
			}
			if got := strings.Count(out.String(), "\nwrite "); got != c.writes {
				t.Fatalf("%d write lines, want %d:\n%s", got, c.writes, out.String())
			}
		})
	}
}

func TestRun_BadOptions(t *testing.T) {
	for _, c := range []options{
		{server: "h3", client: "raw", servers: 1, watchers: 1, writes: 1},
		{server: "h1", client: "curl", servers: 1, watchers: 1, writes: 1},
		{server: "h2", client: "raw", servers: 1, watchers: 1, writes: 1},
		{server: "h1", client: "raw", servers: 0, watchers: 1, writes: 1},
	} {
		if _, err := run(c, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

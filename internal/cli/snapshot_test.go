package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLI_Snapshot(t *testing.T) {
	src := "-http-addr=" + startAgent(t)
	dst := "-http-addr=" + startAgent(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")

	requireOK(t, run(t, "", "kv", "put", src, "app/a", "one"))
	requireOK(t, run(t, "", "kv", "put", src, "app/b", "two"))
	requireOK(t, run(t, "", "kv", "put", dst, "only/dst", "x"))

	r := run(t, "", "snapshot", "save", src, file)
	requireOK(t, r)
	require.Regexp(t, `^Saved and verified snapshot to index \d+\n$`, r.stdout)
	_, err := os.Stat(file + ".tmp")
	require.True(t, os.IsNotExist(err), "the temp file is renamed away")

	r = run(t, "", "snapshot", "inspect", file)
	requireOK(t, r)
	for _, want := range []string{"ID ", "Size ", "Index ", "Term ", "Version ", "Table", "kvs", "Total"} {
		require.Contains(t, r.stdout, want)
	}

	r = run(t, "", "snapshot", "restore", dst, file)
	requireOK(t, r)
	require.Equal(t, "Restored snapshot\n", r.stdout)
	r = run(t, "", "kv", "get", dst, "app/b")
	requireOK(t, r)
	require.Equal(t, "two\n", r.stdout)
	requireFail(t, run(t, "", "kv", "get", dst, "only/dst"), "only/dst")

	// A corrupted file is refused by inspect and by the server, with the
	// reason, and nothing is applied.
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x10
	bad := filepath.Join(dir, "bad.snap")
	require.NoError(t, os.WriteFile(bad, b, 0o600))
	requireFail(t, run(t, "", "snapshot", "inspect", bad), "snapshot: ")
	requireOK(t, run(t, "", "kv", "put", dst, "after", "restore"))
	r = run(t, "", "snapshot", "restore", dst, bad)
	requireFail(t, r, "400")
	require.Contains(t, r.stderr, "snapshot: ")
	requireOK(t, run(t, "", "kv", "get", dst, "after"))

	// Argument errors.
	requireFail(t, run(t, "", "snapshot", "save", src), "missing FILE argument")
	requireFail(t, run(t, "", "snapshot", "inspect", "a", "b"), "too many arguments")
	r = run(t, "", "snapshot", "inspect", filepath.Join(dir, "nope"))
	requireFail(t, r, "opening snapshot file")
	require.False(t, strings.Contains(r.stderr, "\n\n"))
}

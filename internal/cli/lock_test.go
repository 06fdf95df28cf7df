package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLI_LockUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"no arguments", []string{"lock"}, "key prefix and child command must be specified"},
		{"no child", []string{"lock", "prefix"}, "key prefix and child command must be specified"},
		{"zero limit", []string{"lock", "-n", "0", "p", "true"}, "lock holder limit must be positive"},
		{"negative timeout", []string{"lock", "-timeout", "-1s", "p", "true"}, "timeout must be positive"},
		{"negative retries", []string{"lock", "-monitor-retry", "-1", "p", "true"}, "monitor-retry must be zero or positive"},
		{"bad flag", []string{"lock", "-frobnicate", "p", "true"}, "flag provided but not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireFail(t, run(t, "", tc.args...), tc.msg)
		})
	}
}

func TestCLI_LockRunsChild(t *testing.T) {
	addr := startAgent(t)
	t.Setenv("SHELL", "/bin/sh")
	r := run(t, "", "lock", "-http-addr", addr, "cli/lock", `echo "held=$CONSUL_LOCK_HELD"`)
	requireOK(t, r)
	require.Equal(t, "held=true\n", r.stdout)

	r = run(t, "", "lock", "-http-addr", addr, "-n", "3", "-shell=false", "cli/sem", "sh", "-c", "exit 4")
	requireOK(t, r)
	require.Contains(t, r.stderr, "Child terminated: exit status 4")

	r = run(t, "", "lock", "-http-addr", addr, "-child-exit-code", "cli/lock", "exit 4")
	require.Equal(t, 2, r.code)
	r = run(t, "in", "lock", "-http-addr", addr, "-pass-stdin", "cli/lock", "cat")
	requireOK(t, r)
	require.Equal(t, "in", r.stdout)
}

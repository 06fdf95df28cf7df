package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// exitTimeout bounds how long a signalled agent may take to exit.
const exitTimeout = 10 * time.Second

func TestShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			a := startDev(t)
			start := time.Now()
			require.NoError(t, a.Signal(sig))
			code, err := a.Wait(exitTimeout)
			require.NoError(t, err, "agent must exit after %s", sig)
			t.Logf("exited with %d after %s", code, time.Since(start))
			require.Equal(t, 0, code, "exit code after %s", sig)
		})
	}

	t.Run("agent/leave", func(t *testing.T) {
		t.Parallel()
		a := startDev(t)
		require.NoError(t, a.Client().Agent().Leave())
		code, err := a.Wait(exitTimeout)
		require.NoError(t, err, "agent must exit after /v1/agent/leave")
		require.Equal(t, 0, code, "exit code after a graceful leave")
	})

	t.Run("server-with-data-dir", func(t *testing.T) {
		t.Parallel()
		a := startServer(t)
		require.NoError(t, a.Signal(syscall.SIGTERM))
		_, err := a.Wait(exitTimeout)
		require.NoError(t, err, "a server with a data dir must exit after SIGTERM")
	})
}

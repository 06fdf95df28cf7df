package state

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/stretchr/testify/require"
)

func TestStore_AutopilotConfigCAS(t *testing.T) {
	s, err := NewStore()
	require.NoError(t, err)

	idx, got, err := s.AutopilotConfig(nil)
	require.NoError(t, err)
	require.Zero(t, idx)
	require.Nil(t, got)

	def := DefaultAutopilotConfig()
	tests := []struct {
		name      string
		idx, cidx uint64
		cas       bool
		mutate    func(*AutopilotConfig)
		wantOK    bool
		wantModIx uint64
	}{
		{name: "cas with a non-zero index before any write fails", idx: 5, cidx: 3, cas: true, wantOK: false, wantModIx: 0},
		{name: "cas 0 creates", idx: 5, cidx: 0, cas: true, wantOK: true, wantModIx: 5},
		{name: "cas 0 once it exists fails", idx: 6, cidx: 0, cas: true, wantOK: false, wantModIx: 5},
		{name: "cas with a stale index fails", idx: 7, cidx: 4, cas: true, wantOK: false, wantModIx: 5},
		{name: "cas with the current index writes", idx: 8, cidx: 5, cas: true,
			mutate: func(c *AutopilotConfig) { c.MinQuorum = 3 }, wantOK: true, wantModIx: 8},
		{name: "plain set always writes", idx: 9,
			mutate: func(c *AutopilotConfig) { c.CleanupDeadServers = false }, wantOK: true, wantModIx: 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := def
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			var ok bool
			if tc.cas {
				ok, err = s.AutopilotCASConfig(tc.idx, tc.cidx, &cfg)
			} else {
				err = s.AutopilotSetConfig(tc.idx, &cfg)
				ok = true
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantOK, ok)
			_, got, err := s.AutopilotConfig(nil)
			require.NoError(t, err)
			if tc.wantModIx == 0 {
				require.Nil(t, got)
				return
			}
			require.Equal(t, tc.wantModIx, got.ModifyIndex)
			require.Equal(t, uint64(5), got.CreateIndex)
		})
	}
	_, got, err = s.AutopilotConfig(nil)
	require.NoError(t, err)
	// A set replaces the whole configuration.
	require.Equal(t, uint(0), got.MinQuorum)
	require.False(t, got.CleanupDeadServers)
}

func TestStore_AutopilotConfigValidate(t *testing.T) {
	s, err := NewStore()
	require.NoError(t, err)
	cfg := DefaultAutopilotConfig()
	cfg.LastContactThreshold = Duration(-time.Second)
	err = s.AutopilotSetConfig(1, &cfg)
	require.ErrorIs(t, err, ErrInvalidInput)
	require.ErrorContains(t, err, "LastContactThreshold")
	require.ErrorContains(t, s.AutopilotSetConfig(1, nil), "missing autopilot config")
	_, got, err := s.AutopilotConfig(nil)
	require.NoError(t, err)
	require.Nil(t, got, "a rejected write stores nothing")
}

func TestStore_AutopilotConfigWatchAndSnapshot(t *testing.T) {
	s, err := NewStore()
	require.NoError(t, err)
	ws := memdb.NewWatchSet()
	_, _, err = s.AutopilotConfig(ws)
	require.NoError(t, err)

	cfg := DefaultAutopilotConfig()
	cfg.MaxTrailingLogs = 99
	require.NoError(t, s.AutopilotSetConfig(12, &cfg))
	require.False(t, ws.Watch(time.After(5*time.Second)), "the watch fires on a write")

	snap := s.Snapshot()
	var buf bytes.Buffer
	require.NoError(t, snap.Persist(&buf))
	snap.Release()
	restored, err := Restore(&buf)
	require.NoError(t, err)
	idx, got, err := restored.AutopilotConfig(nil)
	require.NoError(t, err)
	require.Equal(t, uint64(12), idx)
	require.Equal(t, uint64(99), got.MaxTrailingLogs)
	require.Equal(t, Duration(10*time.Second), got.ServerStabilizationTime)
	require.Equal(t, uint64(12), got.ModifyIndex)
}

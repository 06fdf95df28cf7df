package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/snapshot"
)

// fakeSnapshots keeps one "state" and writes/reads real archives of it.
type fakeSnapshots struct {
	mu        sync.Mutex
	state     []byte
	index     uint64
	stale     bool
	saveErr   error
	restores  int
	failAfter bool // fail after started was called
}

func (f *fakeSnapshots) SnapshotSave(_ context.Context, w io.Writer, allowStale bool, started func(uint64)) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stale = allowStale
	if f.saveErr != nil && !f.failAfter {
		return 0, f.saveErr
	}
	started(f.index)
	if f.failAfter {
		_, _ = w.Write([]byte{0x1f, 0x8b})
		return 0, f.saveErr
	}
	meta := &snapshot.Meta{ID: "1-2-3", Index: f.index, Term: 1, Version: 1, Size: int64(len(f.state))}
	return f.index, snapshot.Write(w, meta, bytes.NewReader(f.state))
}

func (f *fakeSnapshots) SnapshotRestore(_ context.Context, r io.Reader) error {
	return snapshot.Read(r, func(m *snapshot.Meta, st io.Reader) error {
		b, err := io.ReadAll(st)
		if err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.state, f.index = b, m.Index
		f.restores++
		return nil
	})
}

// operatorReadOnlyAuthz allows everything except operator writes.
type operatorReadOnlyAuthz struct{ acl.Authorizer }

func (operatorReadOnlyAuthz) OperatorWrite() bool { return false }

func TestSnapshot_OfficialClientRoundTrip(t *testing.T) {
	fs := &fakeSnapshots{state: []byte("the whole state"), index: 42}
	env := newTestEnv(t, func(c *Config) { c.Snapshot = fs })
	c := newOfficialClient(t, env)

	rc, qm, err := c.Snapshot().Save(&api.QueryOptions{AllowStale: true})
	require.NoError(t, err)
	arch, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	require.EqualValues(t, 42, qm.LastIndex)
	require.True(t, fs.stale, "?stale reaches the backend")
	meta, err := snapshot.Verify(bytes.NewReader(arch))
	require.NoError(t, err)
	require.EqualValues(t, 42, meta.Index)

	fs.state, fs.index = []byte("other"), 50
	require.NoError(t, c.Snapshot().Restore(nil, bytes.NewReader(arch)))
	require.Equal(t, "the whole state", string(fs.state))
	require.EqualValues(t, 42, fs.index)

	// A corrupted archive is a 400 naming the problem; nothing applied.
	bad := bytes.Clone(arch)
	bad[len(bad)/2] ^= 0x01
	err = c.Snapshot().Restore(nil, bytes.NewReader(bad))
	require.Error(t, err)
	require.Contains(t, err.Error(), "400")
	require.Contains(t, err.Error(), "snapshot: ")
	require.Equal(t, 1, fs.restores)
}

func TestSnapshot_Errors(t *testing.T) {
	t.Run("no server", func(t *testing.T) {
		env := newTestEnv(t)
		rec := env.do(http.MethodGet, "/v1/snapshot", "")
		require.Equal(t, http.StatusNotImplemented, rec.Code)
		require.Equal(t, "snapshots need a server agent", rec.Body.String())
	})
	t.Run("denied", func(t *testing.T) {
		for _, a := range []acl.Authorizer{acl.DenyAll(), operatorReadOnlyAuthz{acl.AllowAll()}} {
			fs := &fakeSnapshots{}
			env := newTestEnv(t, func(c *Config) { c.Snapshot = fs; c.ACL = acl.StaticResolver(a) })
			for _, m := range []string{http.MethodGet, http.MethodPut} {
				rec := env.do(m, "/v1/snapshot", "x")
				require.Equal(t, http.StatusForbidden, rec.Code, m)
			}
			require.Zero(t, fs.restores)
		}
	})
	t.Run("garbage body", func(t *testing.T) {
		fs := &fakeSnapshots{}
		env := newTestEnv(t, func(c *Config) { c.Snapshot = fs })
		rec := env.do(http.MethodPut, "/v1/snapshot", "definitely not an archive")
		require.Equal(t, http.StatusBadRequest, rec.Code)
		require.True(t, strings.HasPrefix(rec.Body.String(), "snapshot: archive is truncated"), rec.Body.String())
		rec = env.do(http.MethodPut, "/v1/snapshot", "")
		require.Equal(t, http.StatusBadRequest, rec.Code)
		require.Equal(t, "snapshot: archive is empty", rec.Body.String())
	})
	t.Run("no leader", func(t *testing.T) {
		fs := &fakeSnapshots{saveErr: rpc.ErrNoLeader}
		env := newTestEnv(t, func(c *Config) { c.Snapshot = fs })
		rec := env.do(http.MethodGet, "/v1/snapshot", "")
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.Equal(t, "No cluster leader", rec.Body.String())
	})
	t.Run("other datacenter", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.Snapshot = &fakeSnapshots{} })
		rec := env.do(http.MethodGet, "/v1/snapshot?dc=dc9", "")
		require.Equal(t, http.StatusBadRequest, rec.Code)
	})
	t.Run("fails mid-stream", func(t *testing.T) {
		fs := &fakeSnapshots{saveErr: errors.New("disk on fire"), failAfter: true}
		env := newTestEnv(t, func(c *Config) { c.Snapshot = fs })
		c := newOfficialClient(t, env)
		rc, _, err := c.Snapshot().Save(nil)
		if err == nil {
			_, err = io.ReadAll(rc)
			_ = rc.Close()
		}
		require.Error(t, err, "a failed save must not look like a complete response")
	})
}

package server

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
	"github.com/stretchr/testify/require"
)

// TestRaiseIndexes_BothVersions runs a real store's snapshot, in each
// format version, through raiseIndexes: the output keeps the input's
// version, index entries are raised to the floor (the missing base ones
// added) and rows pass through byte for byte.
func TestRaiseIndexes_BothVersions(t *testing.T) {
	src, err := state.NewStore()
	require.NoError(t, err)
	require.NoError(t, src.KVSet(5, &state.KVEntry{Key: "a", Value: []byte{0, 1, 2, 0xff}, Flags: 9}))
	require.NoError(t, src.KVSet(250, &state.KVEntry{Key: "b", Value: []byte("above the floor")}))
	for _, version := range []int{state.SnapshotV1, state.SnapshotV2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			snap := src.Snapshot()
			var in bytes.Buffer
			require.NoError(t, snap.PersistVersion(&in, version))
			snap.Release()

			var out bytes.Buffer
			n, err := raiseIndexes(bytes.NewReader(in.Bytes()), &out, 100)
			require.NoError(t, err)
			require.Equal(t, int64(out.Len()), n)
			sr, err := state.NewSnapshotReader(bytes.NewReader(out.Bytes()))
			require.NoError(t, err)
			require.Equal(t, version, sr.Version())

			st, err := state.Restore(bytes.NewReader(out.Bytes()))
			require.NoError(t, err)
			require.Equal(t, uint64(250), st.MaxIndex("kvs"), "an index above the floor stays")
			require.Equal(t, uint64(100), st.MaxIndex("nodes"), "missing base entries are added")
			require.Equal(t, uint64(100), st.MaxIndex("sessions"))
			for _, key := range []string{"a", "b"} {
				_, want, err := src.KVGet(nil, key)
				require.NoError(t, err)
				_, got, err := st.KVGet(nil, key)
				require.NoError(t, err)
				require.Equal(t, want, got, "rows keep their values and their own indexes")
			}
		})
	}
}

func TestRaiseIndexes_V2BadStreams(t *testing.T) {
	dup := func() []byte {
		var b bytes.Buffer
		sw, err := state.NewSnapshotWriter(&b, state.SnapshotV2)
		require.NoError(t, err)
		require.NoError(t, sw.WriteRow("index", &indexRow{Key: "kvs", Value: 1}))
		require.NoError(t, sw.WriteRow("index", &indexRow{Key: "kvs", Value: 2}))
		require.NoError(t, sw.Close())
		return b.Bytes()
	}()
	src, err := state.NewStore()
	require.NoError(t, err)
	require.NoError(t, src.KVSet(5, &state.KVEntry{Key: "a", Value: []byte("v")}))
	snap := src.Snapshot()
	var good bytes.Buffer
	require.NoError(t, snap.Persist(&good))
	snap.Release()

	cases := map[string][]byte{
		"duplicate index key": dup,
		"truncated":           good.Bytes()[:good.Len()-1],
		"index row not msgpack": append(append([]byte("\x00cairn-state"), state.SnapshotV2),
			5, 'i', 'n', 'd', 'e', 'x', 1, 0xc1, 0),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := raiseIndexes(bytes.NewReader(in), &bytes.Buffer{}, 1)
			require.ErrorIs(t, err, rpc.ErrBadRequest)
		})
	}
}

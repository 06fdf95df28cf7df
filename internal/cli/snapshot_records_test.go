package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/internal/state"
	"github.com/stretchr/testify/require"
)

// TestCountRecords_BothVersions: inspect counts the rows of a version 1
// (JSON) state stream as older servers wrote it and of a version 2 one.
func TestCountRecords_BothVersions(t *testing.T) {
	v1 := `{"Version":1}
{"Table":"index","Row":{"Key":"kvs","Value":2}}
{"Table":"kvs","Row":{"Key":"a","Value":"aGVsbG8=","CreateIndex":1,"ModifyIndex":1}}
{"Table":"kvs","Row":{"Key":"b","Value":null,"CreateIndex":2,"ModifyIndex":2}}
`
	st, err := state.Restore(strings.NewReader(v1))
	require.NoError(t, err)
	snap := st.Snapshot()
	defer snap.Release()
	var v2 bytes.Buffer
	require.NoError(t, snap.PersistVersion(&v2, state.SnapshotV2))

	for name, stream := range map[string][]byte{"v1": []byte(v1), "v2": v2.Bytes()} {
		t.Run(name, func(t *testing.T) {
			stats, err := countRecords(bytes.NewReader(stream))
			require.NoError(t, err)
			counts := map[string]int{}
			for _, s := range stats {
				counts[s.name] = s.count
				require.Positive(t, s.size)
			}
			require.Equal(t, 2, counts["kvs"])
			require.Equal(t, 1, counts["index"])
		})
	}
	_, err = countRecords(bytes.NewReader(v2.Bytes()[:v2.Len()-1]))
	require.ErrorIs(t, err, state.ErrBadSnapshot, "a truncated version 2 stream is reported")
}

package server

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestOpenLogStore_MigratesBoltDB: a data directory written by the
// raft-boltdb log store opens with every entry and stable key carried over,
// and raft.db is gone afterwards.
func TestOpenLogStore_MigratesBoltDB(t *testing.T) {
	dir := t.TempDir()
	boltPath := filepath.Join(dir, "raft.db")
	old, err := raftboltdb.NewBoltStore(boltPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := uint64(11); i <= 700; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 4, Type: raft.LogCommand, Data: []byte{byte(i), byte(i >> 8)}})
	}
	if err := old.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := old.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := old.SetUint64([]byte("LastVoteTerm"), 4); err != nil {
		t.Fatal(err)
	}
	if err := old.Set([]byte("LastVoteCand"), []byte("10.0.0.1:8300")); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := openLogStore(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := os.Stat(boltPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("raft.db still there after migration: %v", err)
	}
	first, _ := st.FirstIndex()
	last, _ := st.LastIndex()
	if first != 11 || last != 700 {
		t.Fatalf("bounds %d..%d, want 11..700", first, last)
	}
	for i := uint64(11); i <= 700; i++ {
		var l raft.Log
		if err := st.GetLog(i, &l); err != nil || l.Term != 4 || l.Data[0] != byte(i) || l.Data[1] != byte(i>>8) {
			t.Fatalf("entry %d: %+v %v", i, l, err)
		}
	}
	if v, err := st.GetUint64([]byte("CurrentTerm")); err != nil || v != 4 {
		t.Fatalf("CurrentTerm %d %v", v, err)
	}
	if v, err := st.Get([]byte("LastVoteCand")); err != nil || string(v) != "10.0.0.1:8300" {
		t.Fatalf("LastVoteCand %q %v", v, err)
	}
	// Reopening uses the migrated store as it is.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := openLogStore(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if last, _ := st2.LastIndex(); last != 700 {
		t.Fatalf("last after reopen %d", last)
	}
}

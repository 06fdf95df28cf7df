package raftlog

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// benchAppend appends one 1 KiB entry per op, as a single-client put does
// on each server, synced to disk every time.
func benchAppend(b *testing.B, st raft.LogStore) {
	data := make([]byte, 1024)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.StoreLogs([]*raft.Log{{Index: uint64(i) + 1, Term: 1, Type: raft.LogCommand, Data: data}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1KiB compares this store, with and without
// preallocation, with raft-boltdb (the store it replaced, with the options
// Cairn used) on the same disk:
//
//	go test -run '^$' -bench Append1KiB -benchtime 2000x ./internal/raftlog/
func BenchmarkAppend1KiB(b *testing.B) {
	b.Run("raftlog", func(b *testing.B) {
		st, err := Open(b.TempDir(), quietOpts(0))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchAppend(b, st)
	})
	b.Run("raftlog-append-only", func(b *testing.B) {
		st, err := Open(b.TempDir(), appendOnly(0))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchAppend(b, st)
	})
	b.Run("raft-boltdb", func(b *testing.B) {
		st, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db"),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchAppend(b, st)
	})
}

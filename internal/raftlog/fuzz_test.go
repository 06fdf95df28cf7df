package raftlog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzStore_Open feeds damaged segment files to Open: it must never panic,
// and whatever it accepts must read back as a contiguous log that takes
// further appends. Seeds are a valid segment, cut, with junk appended,
// and with preallocated zeros (and junk after them).
func FuzzStore_Open(f *testing.F) {
	var valid []byte
	valid = append(valid, segmentMagic...)
	valid = append(valid, 1, 0, 0, 0, 0, 0, 0, 0)
	for i := uint64(1); i <= 3; i++ {
		valid = appendRecord(valid, entry(i, 1))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-5])
	f.Add(append(append([]byte(nil), valid...), 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5))
	f.Add(valid[:segmentHeaderSize])
	// Preallocated zeros after the records; junk after the zeros.
	zeroed := append(append([]byte(nil), valid...), make([]byte, 64)...)
	f.Add(zeroed)
	f.Add(append(append([]byte(nil), zeroed...), 7))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segmentName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, quietOpts(0))
		if err != nil {
			return // refused with an error: fine
		}
		defer s.Close()
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		if first == 0 {
			if last != 0 {
				t.Fatalf("empty log with last index %d", last)
			}
			first, last = 1, 0
		}
		for i := first; i <= last; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil || l.Index != i {
				t.Fatalf("get %d: %v (index %d)", i, err, l.Index)
			}
		}
		if err := s.StoreLogs(entries(last+1, last+2, 9)); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
	})
}

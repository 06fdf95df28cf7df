package state

import (
	"fmt"
	"testing"
)

// BenchmarkStore_KVSet: one write transaction per put over a 10,000-key
// space holding 256-byte values, as the FSM applies a KV set.
func BenchmarkStore_KVSet(b *testing.B) {
	st, err := NewStore()
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 256)
	const keys = 10000
	for i := range keys {
		if err := st.KVSet(uint64(i+1), &KVEntry{Key: fmt.Sprintf("bench/%08d", i), Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := st.KVSet(uint64(keys+i+1), &KVEntry{Key: fmt.Sprintf("bench/%08d", i%keys), Value: val}); err != nil {
			b.Fatal(err)
		}
	}
}

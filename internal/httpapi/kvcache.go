package httpapi

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"sync/atomic"

	"github.com/cairn-io/cairn/internal/state"
)

// Encoding the JSON body of a KV read once for many readers.
//
// A write to a key watched by thousands of blocking GETs wakes them all at
// once with the same entries (coalesced on the server, copied per waiter).
// Each would encode the same JSON. kvBodyCache keeps the body of the last
// read per slot, together with its own copy of the entries it encodes, and
// hands that body to a later read whose entries compare equal field by
// field. The body depends on nothing but the entries (the ACL check and any
// filtering happen before), so an equal list always has the same body.

const (
	// kvBodySlots is the number of bodies kept: one per slot, a slot
	// chosen by the first key and the number of entries.
	kvBodySlots = 64
	// kvBodyMaxSize bounds a cached body, so the cache holds at most
	// about kvBodySlots × 2 × kvBodyMaxSize bytes (body and entries).
	kvBodyMaxSize = 16 << 10
)

// kvBodyCache is safe for concurrent use.
type kvBodyCache struct {
	seed  maphash.Seed
	slots [kvBodySlots]atomic.Pointer[kvBody]
}

// kvBody is one encoded list. Both fields are read-only once stored.
type kvBody struct {
	entries []*state.KVEntry // a private deep copy of what body encodes
	body    []byte
}

func newKVBodyCache() *kvBodyCache { return &kvBodyCache{seed: maphash.MakeSeed()} }

// encode returns the compact JSON encoding of entries, the same bytes as
// json.Marshal(entries). The caller must not modify the returned slice.
func (c *kvBodyCache) encode(entries []*state.KVEntry) ([]byte, error) {
	if len(entries) == 0 {
		return json.Marshal(entries)
	}
	for _, e := range entries {
		if e == nil {
			return json.Marshal(entries)
		}
	}
	slot := &c.slots[(maphash.String(c.seed, entries[0].Key)+uint64(len(entries)))%kvBodySlots]
	if b := slot.Load(); b != nil && b.matches(entries) {
		return b.body, nil
	}
	body, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	if len(body) <= kvBodyMaxSize {
		slot.Store(&kvBody{entries: state.CopyKVEntries(entries), body: body})
	}
	return body, nil
}

// matches reports whether entries are equal to b's, every field of every
// entry, a nil Value told apart from an empty one (null against "").
func (b *kvBody) matches(entries []*state.KVEntry) bool {
	if len(entries) != len(b.entries) {
		return false
	}
	for i, e := range entries {
		c := b.entries[i]
		if e.Key != c.Key || e.ModifyIndex != c.ModifyIndex || e.CreateIndex != c.CreateIndex ||
			e.LockIndex != c.LockIndex || e.Flags != c.Flags || e.Session != c.Session ||
			(e.Value == nil) != (c.Value == nil) || !bytes.Equal(e.Value, c.Value) {
			return false
		}
	}
	return true
}

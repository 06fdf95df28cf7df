package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/state"
)

func requireEncodesLikeMarshal(t *testing.T, c *kvBodyCache, entries []*state.KVEntry) {
	t.Helper()
	want, err := json.Marshal(entries)
	require.NoError(t, err)
	got, err := c.encode(entries)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

func TestKVBodyCache_SameBytesAsMarshal(t *testing.T) {
	lists := map[string][]*state.KVEntry{
		"nil list":    nil,
		"empty list":  {},
		"nil entry":   {nil},
		"nil value":   {{Key: "a"}},
		"empty value": {{Key: "a", Value: []byte{}}},
		"full":        {{Key: "a/ü\x00\"<", Flags: 3, LockIndex: 2, Session: "s", CreateIndex: 4, ModifyIndex: 9, Value: []byte{0, 0xff, '{'}}},
		"two":         {{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
	}
	c := newKVBodyCache()
	for name, entries := range lists {
		t.Run(name, func(t *testing.T) {
			for range 2 { // a miss, then (for most) a hit
				requireEncodesLikeMarshal(t, c, entries)
			}
		})
	}
	t.Run("nil and empty value told apart", func(t *testing.T) {
		requireEncodesLikeMarshal(t, c, []*state.KVEntry{{Key: "z"}})
		requireEncodesLikeMarshal(t, c, []*state.KVEntry{{Key: "z", Value: []byte{}}})
		requireEncodesLikeMarshal(t, c, []*state.KVEntry{{Key: "z"}})
	})
}

// TestKVBodyCache_EveryFieldCounts changes each field of KVEntry in turn:
// a cached body must never answer for entries that differ in any field, a
// field added to KVEntry later included.
func TestKVBodyCache_EveryFieldCounts(t *testing.T) {
	base := state.KVEntry{Key: "k", Value: []byte("v"), Session: "s", Flags: 1, LockIndex: 1, CreateIndex: 1, ModifyIndex: 1}
	typ := reflect.TypeFor[state.KVEntry]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		t.Run(f.Name, func(t *testing.T) {
			c := newKVBodyCache()
			e := base
			e.Value = append([]byte(nil), base.Value...)
			requireEncodesLikeMarshal(t, c, []*state.KVEntry{&e})
			changed := base
			v := reflect.ValueOf(&changed).Elem().Field(i)
			switch v.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Uint64:
				v.SetUint(v.Uint() + 1)
			case reflect.Slice:
				v.SetBytes([]byte("w"))
			default:
				t.Fatalf("field %s of kind %s: teach kvBody.matches and this test about it", f.Name, v.Kind())
			}
			requireEncodesLikeMarshal(t, c, []*state.KVEntry{&changed})
		})
	}
}

// TestKVBodyCache_OwnsItsCopy: entries changed in place after they were
// encoded (a caller reusing its reply) do not match the cached body.
func TestKVBodyCache_OwnsItsCopy(t *testing.T) {
	c := newKVBodyCache()
	e := &state.KVEntry{Key: "k", Value: []byte("aaaa"), ModifyIndex: 5}
	requireEncodesLikeMarshal(t, c, []*state.KVEntry{e})
	e.Value[0] = 'b'
	requireEncodesLikeMarshal(t, c, []*state.KVEntry{e})
	e.Value = append(e.Value, 'c')
	requireEncodesLikeMarshal(t, c, []*state.KVEntry{e})
}

func TestKVBodyCache_LargeBodiesNotKept(t *testing.T) {
	c := newKVBodyCache()
	big := []*state.KVEntry{{Key: "big", Value: make([]byte, kvBodyMaxSize)}}
	requireEncodesLikeMarshal(t, c, big)
	for i := range c.slots {
		require.Nil(t, c.slots[i].Load())
	}
}

func TestKVBodyCache_Concurrent(t *testing.T) {
	c := newKVBodyCache()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("k%d", i%5)
				e := &state.KVEntry{Key: key, Value: []byte(fmt.Sprint(g % 2)), ModifyIndex: uint64(i % 3)}
				want, _ := json.Marshal([]*state.KVEntry{e})
				got, err := c.encode([]*state.KVEntry{e})
				if err != nil || string(got) != string(want) {
					t.Errorf("encode %s: got %s, want %s (%v)", key, got, want, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

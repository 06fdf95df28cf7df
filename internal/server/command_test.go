package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// fillAll sets every exported field reachable from v (a pointer) to a
// non-zero value derived from the field's name, so a field added to a
// request type later is covered by the round-trip test without editing it.
// Fields of the same name get the same value, which keeps an embedded field
// shadowed by an outer one (WriteRequest.Datacenter) equal to it.
func fillAll(t *testing.T, v reflect.Value, name string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(t, v.Elem(), name)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				fillAll(t, v.Field(i), f.Name)
			}
		}
	case reflect.String:
		v.SetString(name + "-\x00\xff-ü") // NUL, invalid UTF-8 and non-ASCII
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(len(name)) * 1_000_000_007) // big and negative (durations)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(len(name)) * 250)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(len(name)) + 0.5)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{0, 1, 0xff, '{', '"'})
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillAll(t, s.Index(i), name)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fillAll(t, k, name+"-key")
		e := reflect.New(v.Type().Elem()).Elem()
		fillAll(t, e, name)
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		t.Fatalf("fillAll: field %s has kind %s, which the command round-trip test does not cover", name, v.Kind())
	}
}

// commandRequests is one request type per message type.
var commandRequests = []struct {
	typ MessageType
	req func() any
}{
	{RegisterRequestType, func() any { return &rpc.RegisterRequest{} }},
	{DeregisterRequestType, func() any { return &rpc.DeregisterRequest{} }},
	{KVSRequestType, func() any { return &rpc.KVSRequest{} }},
	{SessionRequestType, func() any { return &rpc.SessionRequest{} }},
	{TxnRequestType, func() any { return &rpc.TxnRequest{} }},
	{AutopilotRequestType, func() any { return &rpc.AutopilotSetConfigRequest{} }},
}

func TestCommand_CoversEveryHandler(t *testing.T) {
	f, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	covered := map[MessageType]bool{}
	for _, c := range commandRequests {
		covered[c.typ] = true
	}
	for typ := range f.handlers {
		require.True(t, covered[typ], "message type %d has no round-trip case", typ)
	}
}

// roundTrip encodes req as a msgpack command and decodes it into a new
// value of the same type.
func roundTrip(t *testing.T, typ MessageType, req any) any {
	t.Helper()
	buf, err := encodeCommand(typ, req)
	require.NoError(t, err)
	require.Equal(t, byte(typ), buf[0])
	require.NotEqual(t, byte(jsonBodyStart), buf[1], "msgpack body must not look like JSON")
	got := reflect.New(reflect.TypeOf(req).Elem()).Interface()
	require.NoError(t, decodeCommand(buf[1:], got))
	return got
}

func TestCommand_RoundTripEveryField(t *testing.T) {
	for _, c := range commandRequests {
		req := c.req()
		t.Run(fmt.Sprintf("%T", req), func(t *testing.T) {
			fillAll(t, reflect.ValueOf(req).Elem(), "")
			got := roundTrip(t, c.typ, req)
			if r, ok := req.(*rpc.RegisterRequest); ok {
				// Shadowed by RegisterRequest.Datacenter: neither format
				// carries it (the FSM does not read it).
				jb, err := encodeCommandJSON(c.typ, req)
				require.NoError(t, err)
				var viaJSON rpc.RegisterRequest
				require.NoError(t, decodeCommand(jb[1:], &viaJSON))
				require.Empty(t, viaJSON.WriteRequest.Datacenter)
				r.WriteRequest.Datacenter = ""
			}
			require.Equal(t, req, got)
		})
	}
}

// TestCommand_RoundTripShapes covers what a filled-in request does not:
// nil against empty slices, maps and values, nil pointers, zero and large
// durations, and the flagged type byte.
func TestCommand_RoundTripShapes(t *testing.T) {
	cases := []struct {
		name string
		typ  MessageType
		req  any
	}{
		{"kv nil value", KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k"}}},
		{"kv empty value", KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k", Value: []byte{}}}},
		{"kv 1KiB value", KVSRequestType, &rpc.KVSRequest{Op: rpc.KVCAS, Entry: state.KVEntry{Key: "a/b", Value: bytes.Repeat([]byte{0xfe, 'x'}, 512), ModifyIndex: 1 << 40}}},
		{"register nil collections", RegisterRequestType, &rpc.RegisterRequest{Node: "n", Service: &state.NodeService{ID: "s"}}},
		{"register empty collections", RegisterRequestType, &rpc.RegisterRequest{
			Node: "n", TaggedAddresses: map[string]string{}, NodeMeta: map[string]string{}, Checks: []*state.HealthCheck{},
			Service: &state.NodeService{ID: "s", Tags: []string{}, Meta: map[string]string{}, TaggedAddresses: map[string]state.ServiceAddress{}},
			Check: &state.HealthCheck{CheckID: "c", ServiceTags: []string{}, Definition: state.HealthCheckDefinition{
				Header: map[string][]string{"X": {}}, Interval: state.Duration(10 * time.Second), Timeout: 0}},
		}},
		{"register check pointers", RegisterRequestType, &rpc.RegisterRequest{Node: "n", Checks: []*state.HealthCheck{{CheckID: "a"}, nil, {CheckID: "b"}}}},
		{"deregister node only", DeregisterRequestType, &rpc.DeregisterRequest{Node: "n"}},
		{"session nil checks", SessionRequestType, &rpc.SessionRequest{Op: rpc.SessionCreate, Session: state.Session{ID: "id", Node: "n", LockDelay: 15 * time.Second}}},
		{"session empty checks", SessionRequestType, &rpc.SessionRequest{Op: rpc.SessionCreate, Session: state.Session{
			ID: "id", Node: "n", NodeChecks: []string{}, ServiceChecks: []state.ServiceCheck{}, Checks: []string{}}}},
		{"txn mixed ops", TxnRequestType, &rpc.TxnRequest{Ops: []*state.TxnOp{
			{KV: &state.TxnKVOp{Verb: "set", Entry: state.KVEntry{Key: "k", Value: []byte("v")}}},
			{Node: &state.TxnNodeOp{Verb: "set", Node: state.Node{Node: "n"}}},
			{Service: &state.TxnServiceOp{Verb: "delete", Node: "n", Service: state.NodeService{ID: "s"}}},
			{Check: &state.TxnCheckOp{Verb: "cas", Check: state.HealthCheck{CheckID: "c"}}},
		}}},
		{"txn no ops", TxnRequestType, &rpc.TxnRequest{Ops: []*state.TxnOp{}}},
		{"autopilot durations", AutopilotRequestType, &rpc.AutopilotSetConfigRequest{CAS: true, Config: state.AutopilotConfig{
			LastContactThreshold: state.Duration(200 * time.Millisecond), ServerStabilizationTime: state.Duration(-1), ModifyIndex: 3}}},
		{"flagged type", KVSRequestType | IgnoreUnknownTypeFlag, &rpc.KVSRequest{Op: rpc.KVDelete}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.req, roundTrip(t, c.typ, c.req))
		})
	}
}

func TestCommand_DecodeErrors(t *testing.T) {
	good, err := encodeCommand(KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "k"}})
	require.NoError(t, err)
	body := good[1:]
	cases := map[string][]byte{
		"empty":          {},
		"truncated":      body[:len(body)-3],
		"trailing bytes": append(append([]byte(nil), body...), 0x01),
		"not a struct":   {0x05},
		"bad json":       []byte(`{"Op":`),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var req rpc.KVSRequest
			require.Error(t, decodeCommand(b, &req))
		})
	}
	// The pooled decoder still works after failures.
	var req rpc.KVSRequest
	require.NoError(t, decodeCommand(body, &req))
	require.Equal(t, "k", req.Entry.Key)
}

func TestFSM_ApplyOldJSONCommand(t *testing.T) {
	// Written byte for byte as servers before msgpack bodies wrote it.
	old := append([]byte{byte(KVSRequestType)},
		`{"Op":"set","Entry":{"LockIndex":0,"Key":"web/cfg","Flags":42,"Value":"AAH/e30=","CreateIndex":0,"ModifyIndex":0},"Datacenter":"dc1","Token":""}`...)
	f, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, true, f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: old}))
	_, e, err := f.State().KVGet(nil, "web/cfg")
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 0xff, '{', '}'}, e.Value)
	require.Equal(t, uint64(42), e.Flags)
	require.Equal(t, uint64(5), e.ModifyIndex)

	// encodeCommandJSON (used below) still writes that exact form.
	again, err := encodeCommandJSON(KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, WriteRequest: rpc.WriteRequest{Datacenter: "dc1"},
		Entry: state.KVEntry{Key: "web/cfg", Flags: 42, Value: []byte{0, 1, 0xff, '{', '}'}}})
	require.NoError(t, err)
	require.Equal(t, string(old), string(again))
}

// commandScript is a run of commands touching every handler and most of
// their branches, including failing ones.
func commandScript() []struct {
	typ MessageType
	req any
} {
	sess := state.Session{ID: "11111111-2222-3333-4444-555555555555", Node: "n1", Behavior: state.SessionBehaviorRelease,
		LockDelay: 15 * time.Second, NodeChecks: []string{state.SerfCheckID}}
	return []struct {
		typ MessageType
		req any
	}{
		{RegisterRequestType, &rpc.RegisterRequest{Node: "n1", Address: "10.0.0.1", Datacenter: "dc1",
			TaggedAddresses: map[string]string{"lan": "10.0.0.1"}, NodeMeta: map[string]string{},
			Service: &state.NodeService{ID: "web1", Service: "web", Tags: []string{}, Port: 80, Meta: map[string]string{"v": "1"},
				TaggedAddresses: map[string]state.ServiceAddress{}},
			Check: &state.HealthCheck{CheckID: state.SerfCheckID, Name: state.SerfCheckName, Status: state.HealthPassing},
			Checks: []*state.HealthCheck{{CheckID: "http", ServiceID: "web1", Status: state.HealthWarning,
				Definition: state.HealthCheckDefinition{HTTP: "http://x", Interval: state.Duration(10 * time.Second), Header: map[string][]string{}}}}}},
		{RegisterRequestType, &rpc.RegisterRequest{Node: "n1", Checks: []*state.HealthCheck{{CheckID: "bad", ServiceID: "missing"}}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "a/1", Value: []byte{}, Flags: 1}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "a/2", Value: bytes.Repeat([]byte{0xff}, 1024)}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVCAS, Entry: state.KVEntry{Key: "a/2", ModifyIndex: 99, Value: []byte("no")}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVCAS, Entry: state.KVEntry{Key: "a/3", Value: nil}}},
		{SessionRequestType, &rpc.SessionRequest{Op: rpc.SessionCreate, Session: sess}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVLock, Entry: state.KVEntry{Key: "lock", Session: sess.ID, Value: []byte("me")}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVLock, Entry: state.KVEntry{Key: "lock2", Session: "nope"}}},
		{TxnRequestType, &rpc.TxnRequest{Ops: []*state.TxnOp{
			{KV: &state.TxnKVOp{Verb: "set", Entry: state.KVEntry{Key: "t/1", Value: []byte("x")}}},
			{KV: &state.TxnKVOp{Verb: "get", Entry: state.KVEntry{Key: "a/2"}}},
			{Node: &state.TxnNodeOp{Verb: "set", Node: state.Node{Node: "n2", Address: "10.0.0.2", Meta: map[string]string{}}}},
		}}},
		{TxnRequestType, &rpc.TxnRequest{Ops: []*state.TxnOp{
			{KV: &state.TxnKVOp{Verb: "cas", Entry: state.KVEntry{Key: "t/1", ModifyIndex: 1}}},
		}}},
		{AutopilotRequestType, &rpc.AutopilotSetConfigRequest{Config: state.AutopilotConfig{CleanupDeadServers: true,
			LastContactThreshold: state.Duration(200 * time.Millisecond), MaxTrailingLogs: 250}}},
		{AutopilotRequestType, &rpc.AutopilotSetConfigRequest{CAS: true, Config: state.AutopilotConfig{ModifyIndex: 1}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVUnlock, Entry: state.KVEntry{Key: "lock", Session: sess.ID}}},
		{KVSRequestType, &rpc.KVSRequest{Op: "bogus"}},
		{SessionRequestType, &rpc.SessionRequest{Op: rpc.SessionDestroy, Session: state.Session{ID: sess.ID}}},
		{DeregisterRequestType, &rpc.DeregisterRequest{Node: "n1", CheckID: "http"}},
		{DeregisterRequestType, &rpc.DeregisterRequest{Node: "n1", ServiceID: "web1"}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVDeleteCAS, Entry: state.KVEntry{Key: "a/1", ModifyIndex: 3}}},
		{KVSRequestType, &rpc.KVSRequest{Op: rpc.KVDeleteTree, Entry: state.KVEntry{Key: "a/"}}},
		{DeregisterRequestType, &rpc.DeregisterRequest{Node: "n2"}},
	}
}

// TestFSM_JSONAndMsgpackApplyAlike applies the same commands in both body
// formats to two FSMs: every result (errors included) and the final state,
// compared through its snapshot, must match.
func TestFSM_JSONAndMsgpackApplyAlike(t *testing.T) {
	fj, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	fm, err := newFSM(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	for i, c := range commandScript() {
		idx := uint64(i + 1)
		jb, err := encodeCommandJSON(c.typ, c.req)
		require.NoError(t, err)
		mb, err := encodeCommand(c.typ, c.req)
		require.NoError(t, err)
		rj := fj.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: jb})
		rm := fm.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: mb})
		if ej, ok := rj.(error); ok {
			em, ok := rm.(error)
			require.True(t, ok, "command %d: json result is error %v, msgpack result %v", i, ej, rm)
			require.Equal(t, ej.Error(), em.Error(), "command %d", i)
			continue
		}
		require.Equal(t, rj, rm, "command %d (%T)", i, c.req)
	}
	require.Equal(t, persist(t, fj), persist(t, fm))
}

func persist(t *testing.T, f *fsm) string {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	sink := &bufferSink{}
	require.NoError(t, snap.Persist(sink))
	return sink.String()
}

// BenchmarkFSM_KVSet1KiB encodes and applies a 1 KiB KV set, as the leader
// does for a put (the follower does the same minus the encode).
func BenchmarkFSM_KVSet1KiB(b *testing.B) {
	value := bytes.Repeat([]byte("0123456789abcdef"), 64)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/key/%04d", i)
	}
	for _, enc := range []struct {
		name string
		fn   func(MessageType, any) ([]byte, error)
	}{{"json", encodeCommandJSON}, {"msgpack", encodeCommand}} {
		b.Run(enc.name, func(b *testing.B) {
			f, err := newFSM(slog.New(slog.DiscardHandler))
			require.NoError(b, err)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				req := &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: keys[i%len(keys)], Value: value},
					WriteRequest: rpc.WriteRequest{Datacenter: "dc1"}}
				buf, err := enc.fn(KVSRequestType, req)
				if err != nil {
					b.Fatal(err)
				}
				if r := f.Apply(&raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: buf}); r != true {
					b.Fatalf("apply: %v", r)
				}
			}
		})
	}
}

// BenchmarkCommand_KVSet1KiBCodec is the encode and decode alone.
func BenchmarkCommand_KVSet1KiBCodec(b *testing.B) {
	req := &rpc.KVSRequest{Op: rpc.KVSet, Entry: state.KVEntry{Key: "bench/key/0001", Value: bytes.Repeat([]byte("0123456789abcdef"), 64)},
		WriteRequest: rpc.WriteRequest{Datacenter: "dc1"}}
	for _, enc := range []struct {
		name string
		fn   func(MessageType, any) ([]byte, error)
	}{{"json", encodeCommandJSON}, {"msgpack", encodeCommand}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf, err := enc.fn(KVSRequestType, req)
				if err != nil {
					b.Fatal(err)
				}
				var got rpc.KVSRequest
				if err := decodeCommand(buf[1:], &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodeCommand checks that no body, however corrupt, panics the
// decoder of any request type.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range commandRequests {
		req := c.req()
		b, err := encodeCommand(c.typ, req)
		require.NoError(f, err)
		f.Add(b[1:])
		j, err := encodeCommandJSON(c.typ, req)
		require.NoError(f, err)
		f.Add(j[1:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, c := range commandRequests {
			_ = decodeCommand(body, c.req())
		}
	})
}

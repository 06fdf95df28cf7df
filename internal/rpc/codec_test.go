package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/state"
	"github.com/stretchr/testify/require"
)

// fill sets every field reachable from v (a pointer) to a non-zero value
// derived from seed, so a codec that drops or mangles any field is caught.
func fill(t *testing.T, v reflect.Value, seed *int) {
	t.Helper()
	*seed++
	n := *seed
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(t, v.Elem(), seed)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), seed)
			}
		}
	case reflect.String:
		v.SetString("s" + strconv.Itoa(n) + " ünï")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() || v.Type() == reflect.TypeFor[state.Duration]() {
			v.SetInt(int64(n) * int64(time.Second))
			return
		}
		// Large negative values catch sign and width truncation.
		v.SetInt(-(int64(1) << (v.Type().Bits() - 2)) - int64(n%8))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		// The top bit set catches uint64 values beyond int64's range.
		v.SetUint(uint64(1)<<(v.Type().Bits()-1) + uint64(n%8))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{0, 1, 2, 0xff, byte(n)})
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			fill(t, k, seed)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	default:
		t.Fatalf("fill: unsupported kind %s (%s)", v.Kind(), v.Type())
	}
}

func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, newEncoder(&buf).encode(in))
	require.NoError(t, newDecoder(&buf).decode(out))
}

func TestCodec_RoundTripEveryMethod(t *testing.T) {
	reg := DefaultRegistry()
	for _, m := range reg.Methods() {
		t.Run(m, func(t *testing.T) {
			for _, ctor := range []func(string) (any, error){reg.NewArgs, reg.NewReply} {
				in, err := ctor(m)
				require.NoError(t, err)
				seed := 0
				fill(t, reflect.ValueOf(in), &seed)
				out, err := ctor(m)
				require.NoError(t, err)
				roundTrip(t, in, out)
				require.Equal(t, in, out)
			}
		})
	}
}

func TestCodec_ZeroAndEmptyValues(t *testing.T) {
	tests := []struct {
		name string
		in   any
		out  any
	}{
		{"nil slices and maps stay nil", &IndexedKVEntries{}, &IndexedKVEntries{}},
		{"empty value stays empty", &IndexedKVEntries{Entries: []*state.KVEntry{{Key: "k", Value: []byte{}}}}, &IndexedKVEntries{}},
		{"nil value stays nil", &IndexedKVEntries{Entries: []*state.KVEntry{{Key: "k"}}}, &IndexedKVEntries{}},
		{"nil node services", &IndexedNodeServices{QueryMeta: QueryMeta{Index: 7}}, &IndexedNodeServices{}},
		{"empty struct", &struct{}{}, &struct{}{}},
		{"false", new(bool), new(bool)},
		{"binary value", &state.KVEntry{Value: bytes.Repeat([]byte{0, 0xc1, 0xff}, 1000)}, &state.KVEntry{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roundTrip(t, tc.in, tc.out)
			require.Equal(t, tc.in, tc.out)
		})
	}
}

// TestCodec_NoNestedEmbedding guards the mirror scheme in codec.go: only
// the top-level request/reply may embed structs; a nested type with an
// embedded struct could lose shadowed fields on the wire.
func TestCodec_NoNestedEmbedding(t *testing.T) {
	reg := DefaultRegistry()
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, top bool, path string)
	walk = func(typ reflect.Type, top bool, path string) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(typ.Elem(), top && typ.Kind() == reflect.Pointer, path)
			return
		case reflect.Map:
			walk(typ.Key(), false, path)
			walk(typ.Elem(), false, path)
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[typ] && !top {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if f.Anonymous && !top {
				t.Errorf("%s: nested type %s embeds %s; give it a named field instead", path, typ, f.Type)
			}
			walk(f.Type, false, path+"."+f.Name)
		}
	}
	for _, m := range reg.Methods() {
		a, _ := reg.NewArgs(m)
		r, _ := reg.NewReply(m)
		walk(reflect.TypeOf(a), true, m+" args")
		walk(reflect.TypeOf(r), true, m+" reply")
	}
}

// TestRegistry_CoversMethodsFile fails when a Method constant is added to
// the package without registering its types.
func TestRegistry_CoversMethodsFile(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	reg := DefaultRegistry()
	var found []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING || !strings.HasPrefix(vs.Names[i].Name, "Method") {
						continue
					}
					name, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					found = append(found, name)
					_, err = reg.NewArgs(name)
					require.NoError(t, err, "method %s (%s) is not registered", name, vs.Names[i].Name)
				}
			}
		}
	}
	sort.Strings(found)
	require.Equal(t, found, reg.Methods())
}

// TestCodec_NoSharedStateMapValues enforces the codec limit documented in
// codec.go: a map's struct values must not hold maps, slices or pointers
// (use map[K]*T instead).
func TestCodec_NoSharedStateMapValues(t *testing.T) {
	var holdsRefs func(reflect.Type, map[reflect.Type]bool) bool
	holdsRefs = func(typ reflect.Type, seen map[reflect.Type]bool) bool {
		if typ == reflect.TypeFor[time.Time]() || seen[typ] {
			return false
		}
		seen[typ] = true
		switch typ.Kind() {
		case reflect.Map, reflect.Slice, reflect.Pointer, reflect.Interface:
			return true
		case reflect.Array:
			return holdsRefs(typ.Elem(), seen)
		case reflect.Struct:
			for i := range typ.NumField() {
				if holdsRefs(typ.Field(i).Type, seen) {
					return true
				}
			}
		}
		return false
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(typ.Elem(), path)
		case reflect.Map:
			if typ.Elem().Kind() == reflect.Struct && holdsRefs(typ.Elem(), map[reflect.Type]bool{}) {
				t.Errorf("%s: %s has struct values holding references; use map[%s]*%s", path, typ, typ.Key(), typ.Elem())
			}
			walk(typ.Key(), path)
			walk(typ.Elem(), path)
		case reflect.Struct:
			for i := range typ.NumField() {
				walk(typ.Field(i).Type, path+"."+typ.Field(i).Name)
			}
		}
	}
	reg := DefaultRegistry()
	for _, m := range reg.Methods() {
		a, _ := reg.NewArgs(m)
		r, _ := reg.NewReply(m)
		walk(reflect.TypeOf(a), m+" args")
		walk(reflect.TypeOf(r), m+" reply")
	}
}

func TestCodec_IgnoresJSONOmitEmpty(t *testing.T) {
	// KVEntry.Session is `json:",omitempty"`; the wire must still carry
	// an explicit empty value so a decode into a used value resets it.
	in := &state.KVEntry{Key: "k"}
	out := &state.KVEntry{Session: "stale"}
	roundTrip(t, in, out)
	require.Equal(t, in, out)
}

func TestRegistry_Errors(t *testing.T) {
	reg := DefaultRegistry()
	_, err := reg.NewArgs("Nope.Nothing")
	require.ErrorIs(t, err, ErrUnknownMethod)
	require.Error(t, reg.Register(MethodKVSGet, func() any { return new(KeyRequest) }, func() any { return new(bool) }))
	require.Error(t, reg.Register("X.Y", func() any { return KeyRequest{} }, func() any { return new(bool) }))
	require.NoError(t, reg.Register("X.Y", func() any { return new(KeyRequest) }, func() any { return new(bool) }))
	require.Error(t, reg.RegisterError(3, errors.New("x")))
	custom := errors.New("custom")
	require.NoError(t, reg.RegisterError(FirstCustomErrorCode, custom))
	require.Error(t, reg.RegisterError(FirstCustomErrorCode, errors.New("other")))

	require.ErrorIs(t, reg.checkTypes(MethodKVSGet, &KeyListRequest{}, &IndexedKVEntries{}), ErrBadRequest)
	require.ErrorIs(t, reg.checkTypes(MethodKVSGet, &KeyRequest{}, IndexedKVEntries{}), ErrBadRequest)
	require.NoError(t, reg.checkTypes(MethodKVSGet, &KeyRequest{}, &IndexedKVEntries{}))
}

func TestCodec_ErrorIdentity(t *testing.T) {
	reg := DefaultRegistry()
	custom := errors.New("widget: broken")
	require.NoError(t, reg.RegisterError(FirstCustomErrorCode+1, custom))
	sentinels := []error{ErrNoLeader, ErrUnknownMethod, ErrPermissionDenied, ErrNotFound, ErrBadRequest,
		ErrTooLarge, context.Canceled, context.DeadlineExceeded, custom}
	for _, s := range sentinels {
		t.Run(s.Error(), func(t *testing.T) {
			in := fmt.Errorf("kv %q: %w", "a/b", s)
			hdr := reg.encodeError(in)
			var got responseHeader
			roundTrip(t, &hdr, &got)
			err := reg.decodeError(got)
			require.ErrorIs(t, err, s)
			require.Equal(t, in.Error(), err.Error())
			var re *RemoteError
			require.ErrorAs(t, err, &re)
			for _, other := range sentinels {
				if other != s {
					require.NotErrorIs(t, err, other)
				}
			}
		})
	}
	t.Run("joined", func(t *testing.T) {
		err := reg.decodeError(reg.encodeError(errors.Join(ErrNotFound, ErrNoLeader)))
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorIs(t, err, ErrNoLeader)
	})
	t.Run("plain", func(t *testing.T) {
		err := reg.decodeError(reg.encodeError(errors.New("disk on fire")))
		require.EqualError(t, err, "disk on fire")
		require.NotErrorIs(t, err, ErrNotFound)
	})
	t.Run("unknown code from newer peer", func(t *testing.T) {
		err := reg.decodeError(responseHeader{Error: "new thing", Codes: []uint16{999, codeNotFound}})
		require.ErrorIs(t, err, ErrNotFound)
	})
	require.NoError(t, reg.decodeError(responseHeader{}))
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/rpc"
)

// readJSONBody reads at most maxJSONBodySize bytes of r's body; more is a
// 413, never buffered.
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > maxJSONBodySize {
		return nil, tooLarge("Request body(%d bytes) too large, max size: %d bytes", r.ContentLength, maxJSONBodySize)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxJSONBodySize)); err != nil {
		if isMaxBytes(err) {
			return nil, tooLarge("Request body too large, max size: %d bytes", maxJSONBodySize)
		}
		return nil, badRequest("Request decode failed: %v", err)
	}
	return buf.Bytes(), nil
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// decodeServiceDefinition decodes /v1/agent/service/register's body.
func decodeServiceDefinition(data []byte) (*local.ServiceDefinition, error) {
	var def local.ServiceDefinition
	if err := decodeNormalized(data, &def); err != nil {
		return nil, err
	}
	// H2PING checks default to TLS; a bool's zero value cannot say whether
	// the client left the key out, so look at the raw body.
	var raw map[string]any
	if json.Unmarshal(data, &raw) == nil {
		var single, list []any
		for k, v := range raw {
			switch canonicalKey(k) {
			case "check":
				single = []any{v}
			case "checks":
				list, _ = v.([]any)
			}
		}
		checks := append(single, list...)
		all := def.Checks
		if def.Check != nil {
			all = append([]*local.CheckDefinition{def.Check}, all...)
		}
		if len(all) == len(checks) {
			for i, c := range all {
				if m, ok := checks[i].(map[string]any); ok && c != nil && !hasKey(m, "H2PingUseTLS") {
					c.H2PingUseTLS = true
				}
			}
		}
	}
	return &def, nil
}

// hasKey reports whether m has key under any spelling decodeNormalized
// accepts for it.
func hasKey(m map[string]any, key string) bool {
	want := canonicalKey(key)
	for k := range m {
		if canonicalKey(k) == want {
			return true
		}
	}
	return false
}

// decodeCheckDefinition decodes /v1/agent/check/register's body.
func decodeCheckDefinition(data []byte) (*local.CheckDefinition, error) {
	// H2PING checks use TLS unless the body says otherwise, as in Consul.
	def := local.CheckDefinition{H2PingUseTLS: true}
	if err := decodeNormalized(data, &def); err != nil {
		return nil, err
	}
	return &def, nil
}

// decodeRegister decodes /v1/catalog/register's body.
func decodeRegister(data []byte) (*rpc.RegisterRequest, error) {
	var req rpc.RegisterRequest
	if err := decodeNormalized(data, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// decodeDeregister decodes /v1/catalog/deregister's body.
func decodeDeregister(data []byte) (*rpc.DeregisterRequest, error) {
	var req rpc.DeregisterRequest
	if err := decodeNormalized(data, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// decodeNormalized decodes one JSON value into out (a pointer to a struct),
// accepting for every struct field Consul's CamelCase name, any other letter
// case, and the snake_case spelling used in config files
// ("deregister_critical_service_after"). Map keys (Meta, Header,
// TaggedAddresses) are user data and are left alone. Every failure is a 400
// "Request decode failed: ...".
func decodeNormalized(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return badRequest("Request decode failed: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("Request decode failed: unexpected data after the JSON body")
	}
	norm := normalizeKeys(raw, reflect.TypeOf(out).Elem())
	b, err := json.Marshal(norm)
	if err != nil {
		return badRequest("Request decode failed: %v", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return badRequest("Request decode failed: %v", err)
	}
	return nil
}

// fieldAliases maps canonical keys Consul accepts that are not a field's
// own name to that field's canonical name.
var fieldAliases = map[string]string{
	"scriptargs": "args", // the official client sends Args as "ScriptArgs"
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// normalizeKeys rewrites the object keys of v that name fields of t to the
// field's JSON name, recursing along t's structure. Keys that name no field
// are dropped (encoding/json would ignore them anyway). Values whose shape
// does not match t are passed through for json.Unmarshal to reject.
func normalizeKeys(v any, t reflect.Type) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return v
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		fields := structFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make(map[string]any, len(obj))
		for _, k := range keys {
			c := canonicalKey(k)
			f, ok := fields[c]
			if !ok {
				if alias, isAlias := fieldAliases[c]; isAlias {
					f, ok = fields[alias]
				}
			}
			if !ok {
				continue
			}
			// The exact spelling wins over variants; among variants the
			// first in sorted order wins, so the result is deterministic.
			if _, seen := out[f.name]; seen && k != f.name {
				continue
			}
			out[f.name] = normalizeKeys(obj[k], f.typ)
		}
		return out
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return v // []byte is base64 text
		}
		arr, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = normalizeKeys(e, t.Elem())
		}
		return out
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(obj))
		for k, e := range obj {
			out[k] = normalizeKeys(e, t.Elem())
		}
		return out
	default:
		return v
	}
}

// fieldInfo is a struct field as JSON sees it.
type fieldInfo struct {
	name string // JSON name
	typ  reflect.Type
}

var fieldCache sync.Map // reflect.Type -> map[string]fieldInfo

// structFields indexes t's JSON fields (including promoted fields of
// embedded structs, shallower ones winning) by canonical key.
func structFields(t reflect.Type) map[string]fieldInfo {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]fieldInfo)
	}
	m := make(map[string]fieldInfo)
	var embedded []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		name, skip := jsonName(sf)
		if skip {
			continue
		}
		if sf.Anonymous && name == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		m[canonicalKey(name)] = fieldInfo{name: name, typ: sf.Type}
	}
	for _, et := range embedded {
		for c, f := range structFields(et) {
			if _, ok := m[c]; !ok {
				m[c] = f
			}
		}
	}
	fieldCache.Store(t, m)
	return m
}

// jsonName returns the name from a field's json tag ("" when the tag names
// none) and whether the field is skipped ("-").
func jsonName(sf reflect.StructField) (string, bool) {
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return "", true
	}
	name, _, _ := strings.Cut(tag, ",")
	return name, false
}

// canonicalKey folds case and drops underscores, so "EnableTagOverride",
// "enableTagOverride" and "enable_tag_override" compare equal.
func canonicalKey(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "_", ""))
}

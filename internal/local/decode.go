package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/internal/state"
)

// ErrDecode wraps every failure of DecodeServiceDefinition and
// DecodeCheckDefinition.
var ErrDecode = errors.New("local: invalid definition")

// keyAliases maps normalized keys (lowercase, no underscores or dashes) that
// are not simply a field's name to the field's name.
var keyAliases = map[string]string{
	"scriptargs":   "Args",
	"checkid":      "CheckID",
	"serviceid":    "ServiceID",
	"h2pingusetls": "H2PingUseTLS",
	"servicename":  "Name", // not Consul's key, but harmless and forgiving
}

// DecodeServiceDefinition decodes a service definition from a map decoded
// from JSON or HCL. Keys may be CamelCase (HTTP API) or snake_case (config
// files); user-defined keys (Meta, TaggedAddresses names, Header names) are
// kept as given. Unknown keys are ignored.
func DecodeServiceDefinition(m map[string]any) (*ServiceDefinition, error) {
	def := &ServiceDefinition{}
	if err := decodeInto(reflect.ValueOf(def).Elem(), m, "service"); err != nil {
		return nil, err
	}
	return def, nil
}

// DecodeCheckDefinition decodes a check definition like
// DecodeServiceDefinition does.
func DecodeCheckDefinition(m map[string]any) (*CheckDefinition, error) {
	def := &CheckDefinition{H2PingUseTLS: true}
	if err := decodeInto(reflect.ValueOf(def).Elem(), m, "check"); err != nil {
		return nil, err
	}
	return def, nil
}

func normalizeKey(k string) string {
	k = strings.ToLower(k)
	k = strings.ReplaceAll(k, "_", "")
	return strings.ReplaceAll(k, "-", "")
}

// decodeInto fills the struct v from m.
func decodeInto(v reflect.Value, m map[string]any, path string) error {
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		fields[normalizeKey(t.Field(i).Name)] = i
	}
	for k, raw := range m {
		nk := normalizeKey(k)
		idx, ok := fields[nk]
		if !ok {
			alias, isAlias := keyAliases[nk]
			if !isAlias {
				continue
			}
			f, found := t.FieldByName(alias)
			if !found {
				continue
			}
			idx = f.Index[0]
		}
		f := t.Field(idx)
		if err := decodeValue(v.Field(idx), raw, path+"."+f.Name); err != nil {
			return err
		}
	}
	return nil
}

var (
	durationType        = reflect.TypeOf(state.Duration(0))
	checkDefinitionType = reflect.TypeOf(CheckDefinition{})
)

func decodeValue(dst reflect.Value, raw any, path string) error {
	if raw == nil {
		return nil
	}
	// HCL decodes a nested block as a list of maps; unwrap a single element
	// when a non-list is expected.
	if list, ok := raw.([]map[string]any); ok && dst.Kind() != reflect.Slice {
		if len(list) != 1 {
			return fmt.Errorf("%w: %s: expected one block, got %d", ErrDecode, path, len(list))
		}
		raw = list[0]
	}
	if list, ok := raw.([]any); ok && dst.Kind() != reflect.Slice && len(list) == 1 {
		if _, isMap := list[0].(map[string]any); isMap {
			raw = list[0]
		}
	}

	if dst.Type() == durationType {
		d, err := toDuration(raw)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDecode, path, err)
		}
		dst.SetInt(int64(d))
		return nil
	}

	switch dst.Kind() {
	case reflect.Pointer:
		elem := reflect.New(dst.Type().Elem())
		if err := decodeValue(elem.Elem(), raw, path); err != nil {
			return err
		}
		dst.Set(elem)
		return nil
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: %s: expected an object, got %T", ErrDecode, path, raw)
		}
		if dst.Type() == checkDefinitionType {
			// h2ping_use_tls defaults to true; only an explicit false turns
			// TLS off.
			dst.FieldByName("H2PingUseTLS").SetBool(true)
		}
		return decodeInto(dst, m, path)
	case reflect.String:
		switch s := raw.(type) {
		case string:
			dst.SetString(s)
		case json.Number:
			dst.SetString(s.String())
		default:
			return fmt.Errorf("%w: %s: expected a string, got %T", ErrDecode, path, raw)
		}
		return nil
	case reflect.Bool:
		switch b := raw.(type) {
		case bool:
			dst.SetBool(b)
		case string:
			pb, err := strconv.ParseBool(b)
			if err != nil {
				return fmt.Errorf("%w: %s: expected a boolean, got %q", ErrDecode, path, b)
			}
			dst.SetBool(pb)
		default:
			return fmt.Errorf("%w: %s: expected a boolean, got %T", ErrDecode, path, raw)
		}
		return nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := toInt(raw)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDecode, path, err)
		}
		dst.SetInt(n)
		return nil
	case reflect.Slice:
		return decodeSlice(dst, raw, path)
	case reflect.Map:
		return decodeMap(dst, raw, path)
	}
	return fmt.Errorf("%w: %s: unsupported field type %s", ErrDecode, path, dst.Type())
}

func decodeSlice(dst reflect.Value, raw any, path string) error {
	var items []any
	switch l := raw.(type) {
	case []any:
		items = l
	case []map[string]any:
		for _, m := range l {
			items = append(items, m)
		}
	case []string:
		for _, s := range l {
			items = append(items, s)
		}
	case map[string]any:
		// a single object where a list is allowed (e.g. checks = {...})
		items = []any{l}
	case string:
		if dst.Type().Elem().Kind() == reflect.String {
			items = []any{l}
			break
		}
		return fmt.Errorf("%w: %s: expected a list, got a string", ErrDecode, path)
	default:
		return fmt.Errorf("%w: %s: expected a list, got %T", ErrDecode, path, raw)
	}
	out := reflect.MakeSlice(dst.Type(), len(items), len(items))
	for i, it := range items {
		if err := decodeValue(out.Index(i), it, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	dst.Set(out)
	return nil
}

func decodeMap(dst reflect.Value, raw any, path string) error {
	var m map[string]any
	switch mm := raw.(type) {
	case map[string]any:
		m = mm
	case []map[string]any:
		m = map[string]any{}
		for _, part := range mm {
			for k, v := range part {
				m[k] = v
			}
		}
	case map[string]string:
		m = make(map[string]any, len(mm))
		for k, v := range mm {
			m[k] = v
		}
	default:
		return fmt.Errorf("%w: %s: expected an object, got %T", ErrDecode, path, raw)
	}
	if dst.Type().Key().Kind() != reflect.String {
		return fmt.Errorf("%w: %s: unsupported map key type", ErrDecode, path)
	}
	out := reflect.MakeMapWithSize(dst.Type(), len(m))
	for k, v := range m {
		ev := reflect.New(dst.Type().Elem()).Elem()
		if err := decodeValue(ev, v, path+"."+k); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), ev)
	}
	dst.Set(out)
	return nil
}

func toInt(raw any) (int64, error) {
	switch n := raw.(type) {
	case int:
		return int64(n), nil
	case int64:
		return n, nil
	case int32:
		return int64(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt64/2 {
			return 0, fmt.Errorf("expected an integer, got %v", n)
		}
		return int64(n), nil
	case json.Number:
		return n.Int64()
	case string:
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("expected an integer, got %q", n)
		}
		return v, nil
	}
	return 0, fmt.Errorf("expected an integer, got %T", raw)
}

func toDuration(raw any) (time.Duration, error) {
	switch d := raw.(type) {
	case string:
		if d == "" {
			return 0, nil
		}
		v, err := time.ParseDuration(d)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", d)
		}
		return v, nil
	case float64, int, int64, json.Number:
		n, err := toInt(d)
		if err != nil {
			return 0, err
		}
		return time.Duration(n), nil
	}
	return 0, fmt.Errorf("expected a duration like \"10s\", got %T", raw)
}

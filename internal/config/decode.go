package config

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// kind is the value type a key accepts.
type kind int

const (
	kindAny          kind = iota // any value; only for keys Cairn ignores
	kindString                   // string
	kindBool                     // bool
	kindInt                      // integer
	kindUint                     // non-negative integer (sizes)
	kindPort                     // integer 1..65535, or -1 to disable
	kindDuration                 // Go duration string, "10s"
	kindStrings                  // list of strings; appended across sources
	kindStringMap                // object of strings; merged across sources
	kindDurationMap              // object of duration strings; merged
	kindObject                   // nested block; its keys are "<key>.<child>" in the schema
	kindObjects                  // list of objects; appended across sources
	kindObjectOrList             // one object or a list of them; appended (service, check)
)

var kindNames = map[kind]string{
	kindAny: "any value", kindString: "string", kindBool: "bool", kindInt: "integer",
	kindUint: "non-negative integer", kindPort: "port number", kindDuration: "duration string",
	kindStrings: "list of strings", kindStringMap: "object of strings",
	kindDurationMap: "object of duration strings", kindObject: "object",
	kindObjects: "list of objects", kindObjectOrList: "object or list of objects",
}

// keySpec describes one key Consul's agent accepts.
type keySpec struct {
	kind kind
	// apply stores the typed value (string, bool, int, uint64, time.Duration,
	// []string, map[string]string, map[string]time.Duration,
	// []map[string]any). nil means Cairn does not implement the key yet: it
	// is type-checked and reported as a warning.
	apply func(c *RuntimeConfig, v any)
	// legacy, when set, is the deprecation note for an old spelling. Legacy
	// keys are applied before the current spellings of the same source, so
	// the current spelling wins when a file has both.
	legacy string
	// canonical is the key this spelling sets, for "was it set" tracking;
	// defaults to the key itself.
	canonical string
}

// decoder applies one parsed source to a RuntimeConfig.
type decoder struct {
	src      string
	rc       *RuntimeConfig
	warnings *[]string
	set      map[string]bool // canonical keys set by any source
}

func (d *decoder) warnf(format string, args ...any) {
	*d.warnings = append(*d.warnings, d.src+": "+fmt.Sprintf(format, args...))
}

func (d *decoder) errType(key string, want kind, v any) error {
	return &Error{Source: d.src, Key: key, Msg: fmt.Sprintf("expected %s, got %s", kindNames[want], typeName(v)), Err: ErrType}
}

func (d *decoder) errValue(key, format string, args ...any) error {
	return &Error{Source: d.src, Key: key, Msg: fmt.Sprintf(format, args...), Err: ErrValue}
}

// object applies every key of m, a block at prefix ("" for the top level).
func (d *decoder) object(prefix string, m map[string]any) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// legacy spellings first so the current spelling of the same source wins
	sort.SliceStable(keys, func(i, j int) bool {
		return schema[joinPath(prefix, keys[i])].legacy != "" && schema[joinPath(prefix, keys[j])].legacy == ""
	})
	for _, k := range keys {
		path := joinPath(prefix, k)
		spec, ok := schema[path]
		if !ok {
			return &Error{Source: d.src, Key: path, Err: ErrUnknownKey}
		}
		if err := d.value(path, spec, m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) value(path string, spec keySpec, raw any) error {
	if spec.kind == kindObject {
		m, ok := asObject(raw)
		if !ok {
			return d.errType(path, kindObject, raw)
		}
		if spec.legacy != "" {
			d.warnf("%s: %s", path, spec.legacy)
		}
		return d.object(path, m)
	}
	v, err := d.convert(path, spec.kind, raw)
	if err != nil {
		return err
	}
	if spec.legacy != "" {
		d.warnf("%s: %s", path, spec.legacy)
	}
	if spec.apply == nil {
		if spec.legacy == "" {
			d.warnf("%s: not implemented by cairn yet; ignored", path)
		}
		return nil
	}
	spec.apply(d.rc, v)
	canon := spec.canonical
	if canon == "" {
		canon = path
	}
	d.set[canon] = true
	return nil
}

// asObject accepts an object, or an empty list (HCL v1's `block {}`).
func asObject(raw any) (map[string]any, bool) {
	switch x := raw.(type) {
	case map[string]any:
		return x, true
	case []any:
		if len(x) == 0 {
			return map[string]any{}, true
		}
	}
	return nil, false
}

// convert checks raw against k and returns the typed value.
func (d *decoder) convert(path string, k kind, raw any) (any, error) {
	switch k {
	case kindAny:
		return raw, nil
	case kindString:
		s, ok := raw.(string)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		return s, nil
	case kindBool:
		b, ok := raw.(bool)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		return b, nil
	case kindInt:
		i, ok := asInt(raw)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		return i, nil
	case kindUint:
		i, ok := asInt(raw)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		if i < 0 {
			return nil, d.errValue(path, "must not be negative, got %d", i)
		}
		return uint64(i), nil
	case kindPort:
		i, ok := asInt(raw)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		if err := checkPort(i); err != nil {
			return nil, d.errValue(path, "%v", err)
		}
		return i, nil
	case kindDuration:
		return d.duration(path, raw)
	case kindStrings:
		l, ok := raw.([]any)
		if !ok {
			if s, isStr := raw.(string); isStr {
				return []string{s}, nil // Consul accepts a single string for a list
			}
			return nil, d.errType(path, k, raw)
		}
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, d.errType(fmt.Sprintf("%s[%d]", path, i), kindString, e)
			}
			out = append(out, s)
		}
		return out, nil
	case kindStringMap:
		m, ok := asObject(raw)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		out := make(map[string]string, len(m))
		for mk, e := range m {
			s, ok := e.(string)
			if !ok {
				return nil, d.errType(path+"."+mk, kindString, e)
			}
			out[mk] = s
		}
		return out, nil
	case kindDurationMap:
		m, ok := asObject(raw)
		if !ok {
			return nil, d.errType(path, k, raw)
		}
		out := make(map[string]time.Duration, len(m))
		for mk, e := range m {
			dv, err := d.duration(path+"."+mk, e)
			if err != nil {
				return nil, err
			}
			out[mk] = dv.(time.Duration)
		}
		return out, nil
	case kindObjects, kindObjectOrList:
		switch x := raw.(type) {
		case map[string]any:
			if k == kindObjects {
				return nil, d.errType(path, k, raw)
			}
			return []map[string]any{x}, nil
		case []any:
			out := make([]map[string]any, 0, len(x))
			for i, e := range x {
				m, ok := e.(map[string]any)
				if !ok {
					return nil, d.errType(fmt.Sprintf("%s[%d]", path, i), kindObject, e)
				}
				out = append(out, m)
			}
			return out, nil
		default:
			return nil, d.errType(path, k, raw)
		}
	}
	return nil, d.errType(path, k, raw)
}

func (d *decoder) duration(path string, raw any) (any, error) {
	switch x := raw.(type) {
	case string:
		dur, err := time.ParseDuration(x)
		if err != nil {
			return nil, d.errValue(path, "invalid duration %q (use Go syntax such as \"10s\" or \"1m30s\")", x)
		}
		return dur, nil
	case time.Duration: // from command-line flags
		return x, nil
	}
	return nil, d.errType(path, kindDuration, raw)
}

// asInt accepts integers and floats without a fractional part.
func asInt(raw any) (int, bool) {
	switch x := raw.(type) {
	case int:
		return x, true
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt32 && x <= math.MaxInt32 {
			return int(x), true
		}
	}
	return 0, false
}

func checkPort(p int) error {
	if p == -1 || (p >= 1 && p <= 65535) {
		return nil
	}
	return fmt.Errorf("port %d out of range (1..65535, or -1 to disable)", p)
}

// Typed apply helpers used by the schema table.

func str(f func(*RuntimeConfig) *string) keySpec {
	return keySpec{kind: kindString, apply: func(c *RuntimeConfig, v any) { *f(c) = v.(string) }}
}

func boolean(f func(*RuntimeConfig) *bool) keySpec {
	return keySpec{kind: kindBool, apply: func(c *RuntimeConfig, v any) { *f(c) = v.(bool) }}
}

func integer(f func(*RuntimeConfig) *int) keySpec {
	return keySpec{kind: kindInt, apply: func(c *RuntimeConfig, v any) { *f(c) = v.(int) }}
}

func size(f func(*RuntimeConfig) *uint64) keySpec {
	return keySpec{kind: kindUint, apply: func(c *RuntimeConfig, v any) { *f(c) = v.(uint64) }}
}

func port(f func(*RuntimeConfig) *int) keySpec {
	return keySpec{kind: kindPort, apply: func(c *RuntimeConfig, v any) { *f(c) = v.(int) }}
}

func dur(f func(*RuntimeConfig) *time.Duration) keySpec {
	return keySpec{kind: kindDuration, apply: func(c *RuntimeConfig, v any) { *f(c) = v.(time.Duration) }}
}

func strs(f func(*RuntimeConfig) *[]string) keySpec {
	return keySpec{kind: kindStrings, apply: func(c *RuntimeConfig, v any) {
		p := f(c)
		*p = append(*p, v.([]string)...)
	}}
}

func strMap(f func(*RuntimeConfig) *map[string]string) keySpec {
	return keySpec{kind: kindStringMap, apply: func(c *RuntimeConfig, v any) {
		p := f(c)
		if *p == nil {
			*p = map[string]string{}
		}
		for k, e := range v.(map[string]string) {
			(*p)[k] = e
		}
	}}
}

func durMap(f func(*RuntimeConfig) *map[string]time.Duration) keySpec {
	return keySpec{kind: kindDurationMap, apply: func(c *RuntimeConfig, v any) {
		p := f(c)
		if *p == nil {
			*p = map[string]time.Duration{}
		}
		for k, e := range v.(map[string]time.Duration) {
			(*p)[k] = e
		}
	}}
}

func objects(k kind, f func(*RuntimeConfig) *[]map[string]any) keySpec {
	return keySpec{kind: k, apply: func(c *RuntimeConfig, v any) {
		p := f(c)
		*p = append(*p, v.([]map[string]any)...)
	}}
}

// block is a nested object whose keys are listed separately.
func block() keySpec { return keySpec{kind: kindObject} }

// todo is a key Consul knows that Cairn does not implement yet.
func todo(k kind) keySpec { return keySpec{kind: k} }

// deprecated marks s as a legacy spelling of canonical.
func deprecated(s keySpec, canonical string) keySpec {
	s.legacy = "deprecated, use " + canonical
	s.canonical = canonical
	return s
}

// removed is a legacy key Consul no longer uses; it is accepted and ignored.
func removed(k kind, note string) keySpec {
	return keySpec{kind: k, legacy: note}
}

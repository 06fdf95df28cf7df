package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl"
)

// Format names accepted by -config-format.
const (
	FormatJSON = "json"
	FormatHCL  = "hcl"
)

// parseSource parses data in the given format into the normalised map shape
// shared by both formats (see normalise).
func parseSource(name, format string, data []byte) (map[string]any, error) {
	var (
		m   map[string]any
		err error
	)
	switch format {
	case FormatJSON:
		m, err = parseJSON(name, data)
	case FormatHCL:
		m, err = parseHCL(name, data)
	default:
		return nil, &Error{Source: name, Msg: fmt.Sprintf("unknown config format %q (want json or hcl)", format), Err: ErrValue}
	}
	if err != nil {
		return nil, err
	}
	out, ok := normalise(m, "").(map[string]any)
	if !ok { // cannot happen: normalise keeps maps maps
		return nil, &Error{Source: name, Msg: "top level must be an object", Err: ErrParse}
	}
	return out, nil
}

func parseJSON(name string, data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonError(name, data, err, dec.InputOffset())
	}
	if _, err := dec.Token(); err != io.EOF {
		off := dec.InputOffset()
		line, col := lineCol(data, off)
		return nil, &Error{Source: name, Msg: fmt.Sprintf("invalid JSON at line %d, column %d: unexpected data after the top-level object", line, col), Err: ErrParse}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, &Error{Source: name, Msg: fmt.Sprintf("top level must be a JSON object, got %s", typeName(raw)), Err: ErrParse}
	}
	return m, nil
}

func jsonError(name string, data []byte, err error, fallback int64) error {
	off := fallback
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.EOF) {
		return &Error{Source: name, Msg: "invalid JSON: empty file", Err: ErrParse}
	}
	msg := err.Error()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "unexpected end of file"
		off = int64(len(data))
	}
	line, col := lineCol(data, off)
	return &Error{Source: name, Msg: fmt.Sprintf("invalid JSON at line %d, column %d (offset %d): %s", line, col, off, msg), Err: ErrParse}
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

func parseHCL(name string, data []byte) (m map[string]any, err error) {
	// hcl v1 is old and has inputs that make its parser panic; a config file
	// must never crash the agent, so turn a panic into a parse error.
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, &Error{Source: name, Msg: fmt.Sprintf("invalid HCL: parser failed: %v", r), Err: ErrParse}
		}
	}()
	out := map[string]any{}
	if err := hcl.Unmarshal(data, &out); err != nil {
		return nil, &Error{Source: name, Msg: "invalid HCL: " + err.Error(), Err: ErrParse}
	}
	return out, nil
}

// pluralKeys are keys whose value is a list of objects, in Consul's
// configuration and in the service/check definitions kept raw. Every other
// list of objects is a block: HCL v1 decodes `ports { ... }` as a list of
// maps, and Consul also accepts a JSON object wrapped in a one-element list,
// so such lists are merged into one object. The top-level "service" and
// "check" keys also stay lists (several HCL blocks); the decoder accepts
// either shape for them.
var pluralKeys = map[string]bool{
	"services": true, "checks": true, "watches": true, "upstreams": true,
	"segments": true, "paths": true, "bootstrap": true, "listeners": true,
	"routes": true, "sources": true,
}

// normalise converts both decoders' output to one shape: maps are
// map[string]any, lists are []any, integers are int, other numbers float64,
// and block lists (see pluralKeys) become single maps. path is the dotted
// path of v ("" for the root or a list element's children).
func normalise(v any, path string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalise(e, joinPath(path, k))
		}
		return out
	case []map[string]any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		return normalise(l, path)
	case []any:
		l := make([]any, len(x))
		allMaps := len(x) > 0
		for i, e := range x {
			// elements of a list start a fresh (relative) path
			l[i] = normalise(e, "[]")
			if _, ok := l[i].(map[string]any); !ok {
				allMaps = false
			}
		}
		if allMaps && !keepList(path) {
			merged := map[string]any{}
			for _, e := range l {
				deepMerge(merged, e.(map[string]any))
			}
			return merged
		}
		return l
	case json.Number:
		return normaliseNumber(x.String())
	case int64:
		return normaliseNumber(strconv.FormatInt(x, 10))
	default:
		return v
	}
}

func joinPath(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// keepList reports whether a list of objects at path is a real list.
func keepList(path string) bool {
	if path == "" || path == "[]" {
		return true // a list directly inside a list
	}
	if path == "service" || path == "check" {
		return true
	}
	last := path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		last = path[i+1:]
	}
	return pluralKeys[last]
}

func normaliseNumber(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && i >= math.MinInt && i <= math.MaxInt {
		return int(i)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}

// deepMerge merges src into dst: nested maps merge, everything else is replaced.
func deepMerge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				deepMerge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// typeName names a normalised value's type the way error messages say it.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case int, int64, float64, json.Number:
		return "number"
	case []any, []map[string]any:
		return "list"
	case map[string]any:
		return "object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

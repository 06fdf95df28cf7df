package watch

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error about a malformed watch definition.
var ErrInvalid = errors.New("watch: invalid watch")

// Watch types.
const (
	TypeKey       = "key"
	TypeKeyPrefix = "keyprefix"
	TypeServices  = "services"
	TypeNodes     = "nodes"
	TypeService   = "service"
	TypeChecks    = "checks"
	TypeEvent     = "event"
)

// Handler types.
const (
	HandlerScript = "script"
	HandlerHTTP   = "http"
)

// typeParams lists the parameters each type accepts besides the common
// ones.
var typeParams = map[string][]string{
	TypeKey:       {"key"},
	TypeKeyPrefix: {"prefix"},
	TypeServices:  nil,
	TypeNodes:     nil,
	TypeService:   {"service", "tag", "passingonly"},
	TypeChecks:    {"service", "state"},
	TypeEvent:     {"name"},
}

// commonParams are accepted by every type.
var commonParams = []string{"type", "datacenter", "token", "stale",
	"handler_type", "handler", "args", "http_handler_config"}

// Plan is one parsed watch definition. Build it with Parse.
type Plan struct {
	Type       string
	Datacenter string
	Token      string
	Stale      bool

	Key         string   // key
	Prefix      string   // keyprefix
	Service     string   // service, checks
	Tags        []string // service
	PassingOnly bool     // service
	State       string   // checks
	Name        string   // event

	// Handler is the handler named in the definition; its Type is "" when
	// the definition has none (`cairn watch` then prints the data).
	Handler HandlerConfig
}

// HandlerConfig describes a script or HTTP handler.
type HandlerConfig struct {
	// Type is HandlerScript, HandlerHTTP or "" (none).
	Type string
	// Args is the command run directly ("args").
	Args []string
	// Shell is a command line run with `sh -c` (the older "handler").
	Shell string
	// HTTP configures an HTTP handler ("http_handler_config").
	HTTP HTTPConfig
}

// HTTPConfig is an HTTP handler's endpoint.
type HTTPConfig struct {
	Path          string
	Method        string // default POST
	Header        map[string][]string
	Timeout       time.Duration // default DefaultHTTPTimeout
	TLSSkipVerify bool
}

// DefaultHTTPTimeout bounds one call of an HTTP handler (Consul's 10 s).
const DefaultHTTPTimeout = 10 * time.Second

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse validates a watch definition in its map form (the agent config's
// "watches" entries; keys as Consul names them) and returns the plan.
func Parse(params map[string]any) (*Plan, error) {
	typ, err := stringParam(params, "type")
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, invalid("watch type is required (one of %s)", strings.Join(types(), ", "))
	}
	allowed, ok := typeParams[typ]
	if !ok {
		return nil, invalid("unknown watch type %q (one of %s)", typ, strings.Join(types(), ", "))
	}
	var unknown []string
	for k := range params {
		if !slices.Contains(commonParams, k) && !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, invalid("parameters %s are not valid for a %q watch", strings.Join(unknown, ", "), typ)
	}

	p := &Plan{Type: typ}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"datacenter", &p.Datacenter}, {"token", &p.Token}, {"key", &p.Key}, {"prefix", &p.Prefix},
		{"service", &p.Service}, {"state", &p.State}, {"name", &p.Name},
	} {
		if *f.dst, err = stringParam(params, f.name); err != nil {
			return nil, err
		}
	}
	if p.Stale, err = boolParam(params, "stale"); err != nil {
		return nil, err
	}
	if p.PassingOnly, err = boolParam(params, "passingonly"); err != nil {
		return nil, err
	}
	if p.Tags, err = stringsParam(params, "tag"); err != nil {
		return nil, err
	}

	switch typ {
	case TypeKey:
		if p.Key == "" {
			return nil, invalid("a key watch needs the \"key\" parameter")
		}
	case TypeKeyPrefix:
		if p.Prefix == "" {
			return nil, invalid("a keyprefix watch needs the \"prefix\" parameter")
		}
	case TypeService:
		if p.Service == "" {
			return nil, invalid("a service watch needs the \"service\" parameter")
		}
	case TypeChecks:
		if p.Service != "" && p.State != "" {
			return nil, invalid("a checks watch takes \"service\" or \"state\", not both")
		}
		switch p.State {
		case "", "any", "passing", "warning", "critical":
		default:
			return nil, invalid("check state %q is not one of any, passing, warning, critical", p.State)
		}
	}

	if p.Handler, err = parseHandler(params); err != nil {
		return nil, err
	}
	return p, nil
}

func types() []string {
	out := make([]string, 0, len(typeParams))
	for t := range typeParams {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func parseHandler(params map[string]any) (HandlerConfig, error) {
	var h HandlerConfig
	typ, err := stringParam(params, "handler_type")
	if err != nil {
		return h, err
	}
	if h.Shell, err = stringParam(params, "handler"); err != nil {
		return h, err
	}
	if h.Args, err = stringsParam(params, "args"); err != nil {
		return h, err
	}
	raw, hasHTTP := params["http_handler_config"]
	if typ == "" {
		switch {
		case h.Shell != "" || len(h.Args) > 0:
			typ = HandlerScript
		case hasHTTP:
			typ = HandlerHTTP
		}
	}
	h.Type = typ
	switch typ {
	case "":
		return h, nil
	case HandlerScript:
		if hasHTTP {
			return h, invalid("http_handler_config is only valid with handler_type \"http\"")
		}
		if h.Shell != "" && len(h.Args) > 0 {
			return h, invalid("a script handler takes \"args\" or \"handler\", not both")
		}
		if h.Shell == "" && len(h.Args) == 0 {
			return h, invalid("a script handler needs \"args\" (or \"handler\")")
		}
		return h, nil
	case HandlerHTTP:
		if h.Shell != "" || len(h.Args) > 0 {
			return h, invalid("\"args\" and \"handler\" are only valid with handler_type \"script\"")
		}
		m, ok := raw.(map[string]any)
		if !ok || raw == nil {
			return h, invalid("an http handler needs http_handler_config with a \"path\"")
		}
		h.HTTP, err = parseHTTPConfig(m)
		return h, err
	default:
		return h, invalid("handler_type %q is not \"script\" or \"http\"", typ)
	}
}

func parseHTTPConfig(m map[string]any) (HTTPConfig, error) {
	c := HTTPConfig{Method: "POST", Timeout: DefaultHTTPTimeout}
	for k := range m {
		switch k {
		case "path", "method", "header", "timeout", "tls_skip_verify":
		default:
			return c, invalid("http_handler_config: unknown key %q", k)
		}
	}
	var err error
	if c.Path, err = stringParam(m, "path"); err != nil {
		return c, err
	}
	if !strings.HasPrefix(c.Path, "http://") && !strings.HasPrefix(c.Path, "https://") {
		return c, invalid("http_handler_config.path %q must be an http:// or https:// URL", c.Path)
	}
	if v, err := stringParam(m, "method"); err != nil {
		return c, err
	} else if v != "" {
		c.Method = strings.ToUpper(v)
	}
	if v, err := stringParam(m, "timeout"); err != nil {
		return c, err
	} else if v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, invalid("http_handler_config.timeout %q is not a positive duration", v)
		}
		c.Timeout = d
	}
	if c.TLSSkipVerify, err = boolParam(m, "tls_skip_verify"); err != nil {
		return c, err
	}
	if raw, ok := m["header"]; ok && raw != nil {
		hm, ok := raw.(map[string]any)
		if !ok {
			return c, invalid("http_handler_config.header must be an object of header lists")
		}
		c.Header = make(map[string][]string, len(hm))
		for name := range hm {
			vals, err := stringsParam(hm, name)
			if err != nil {
				return c, err
			}
			c.Header[name] = vals
		}
	}
	return c, nil
}

func stringParam(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid("%q must be a string, not %T", key, v)
	}
	return s, nil
}

func boolParam(m map[string]any, key string) (bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, invalid("%q must be a boolean, not %q", key, x)
		}
		return b, nil
	default:
		return false, invalid("%q must be a boolean, not %T", key, v)
	}
}

// stringsParam accepts a string or a list of strings.
func stringsParam(m map[string]any, key string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []string:
		return slices.Clone(x), nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, invalid("%q must be a list of strings, found a %T", key, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, invalid("%q must be a string or a list of strings, not %T", key, v)
	}
}

package watch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]any
		err    string
		check  func(t *testing.T, p *Plan)
	}{
		{name: "key", params: map[string]any{"type": "key", "key": "a/b"}, check: func(t *testing.T, p *Plan) {
			require.Equal(t, "a/b", p.Key)
			require.Empty(t, p.Handler.Type)
		}},
		{name: "missing type", params: map[string]any{"key": "a"}, err: "watch type is required"},
		{name: "unknown type", params: map[string]any{"type": "nope"}, err: `unknown watch type "nope"`},
		{name: "key without key", params: map[string]any{"type": "key"}, err: `needs the "key" parameter`},
		{name: "keyprefix", params: map[string]any{"type": "keyprefix", "prefix": "p/"}, check: func(t *testing.T, p *Plan) {
			require.Equal(t, "p/", p.Prefix)
		}},
		{name: "keyprefix without prefix", params: map[string]any{"type": "keyprefix"}, err: `"prefix"`},
		{name: "param of another type", params: map[string]any{"type": "key", "key": "a", "service": "web"}, err: `parameters service are not valid for a "key" watch`},
		{name: "service with tags", params: map[string]any{"type": "service", "service": "web", "tag": []any{"a", "b"}, "passingonly": true},
			check: func(t *testing.T, p *Plan) {
				require.Equal(t, []string{"a", "b"}, p.Tags)
				require.True(t, p.PassingOnly)
			}},
		{name: "service single tag string", params: map[string]any{"type": "service", "service": "web", "tag": "a", "passingonly": "true"},
			check: func(t *testing.T, p *Plan) {
				require.Equal(t, []string{"a"}, p.Tags)
				require.True(t, p.PassingOnly)
			}},
		{name: "service bad passingonly", params: map[string]any{"type": "service", "service": "web", "passingonly": "yes please"}, err: "must be a boolean"},
		{name: "service without service", params: map[string]any{"type": "service"}, err: `"service" parameter`},
		{name: "checks by state", params: map[string]any{"type": "checks", "state": "critical"}},
		{name: "checks bad state", params: map[string]any{"type": "checks", "state": "dead"}, err: "not one of any"},
		{name: "checks both", params: map[string]any{"type": "checks", "state": "critical", "service": "web"}, err: "not both"},
		{name: "event", params: map[string]any{"type": "event", "name": "deploy"}, check: func(t *testing.T, p *Plan) {
			require.Equal(t, "deploy", p.Name)
		}},
		{name: "services and nodes", params: map[string]any{"type": "services", "datacenter": "dc1", "token": "t", "stale": true},
			check: func(t *testing.T, p *Plan) {
				require.Equal(t, "dc1", p.Datacenter)
				require.Equal(t, "t", p.Token)
				require.True(t, p.Stale)
			}},
		{name: "wrong value type", params: map[string]any{"type": "key", "key": 5}, err: `"key" must be a string`},
		{name: "script args", params: map[string]any{"type": "nodes", "args": []any{"/bin/true", "x"}}, check: func(t *testing.T, p *Plan) {
			require.Equal(t, HandlerScript, p.Handler.Type)
			require.Equal(t, []string{"/bin/true", "x"}, p.Handler.Args)
		}},
		{name: "script shell handler", params: map[string]any{"type": "nodes", "handler": "cat > /tmp/x"}, check: func(t *testing.T, p *Plan) {
			require.Equal(t, HandlerScript, p.Handler.Type)
			require.Equal(t, "cat > /tmp/x", p.Handler.Shell)
		}},
		{name: "script both", params: map[string]any{"type": "nodes", "handler": "x", "args": []any{"y"}}, err: "not both"},
		{name: "script nothing", params: map[string]any{"type": "nodes", "handler_type": "script"}, err: `needs "args"`},
		{name: "args not strings", params: map[string]any{"type": "nodes", "args": []any{1}}, err: "list of strings"},
		{name: "http", params: map[string]any{"type": "nodes", "handler_type": "http", "http_handler_config": map[string]any{
			"path": "https://example.com/h", "method": "put", "timeout": "3s", "tls_skip_verify": true,
			"header": map[string]any{"X-A": []any{"1", "2"}}}},
			check: func(t *testing.T, p *Plan) {
				h := p.Handler.HTTP
				require.Equal(t, HandlerHTTP, p.Handler.Type)
				require.Equal(t, "PUT", h.Method)
				require.Equal(t, 3*time.Second, h.Timeout)
				require.True(t, h.TLSSkipVerify)
				require.Equal(t, []string{"1", "2"}, h.Header["X-A"])
			}},
		{name: "http defaults", params: map[string]any{"type": "nodes", "http_handler_config": map[string]any{"path": "http://h/"}},
			check: func(t *testing.T, p *Plan) {
				require.Equal(t, HandlerHTTP, p.Handler.Type)
				require.Equal(t, "POST", p.Handler.HTTP.Method)
				require.Equal(t, DefaultHTTPTimeout, p.Handler.HTTP.Timeout)
			}},
		{name: "http no path", params: map[string]any{"type": "nodes", "handler_type": "http"}, err: "needs http_handler_config"},
		{name: "http bad path", params: map[string]any{"type": "nodes", "http_handler_config": map[string]any{"path": "/x"}}, err: "must be an http"},
		{name: "http bad timeout", params: map[string]any{"type": "nodes", "http_handler_config": map[string]any{"path": "http://h", "timeout": "soon"}}, err: "timeout"},
		{name: "http unknown key", params: map[string]any{"type": "nodes", "http_handler_config": map[string]any{"path": "http://h", "retries": 3}}, err: `unknown key "retries"`},
		{name: "http with args", params: map[string]any{"type": "nodes", "handler_type": "http", "args": []any{"x"}}, err: "only valid with handler_type \"script\""},
		{name: "bad handler type", params: map[string]any{"type": "nodes", "handler_type": "grpc"}, err: `"grpc"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.params)
			if tc.err != "" {
				require.ErrorIs(t, err, ErrInvalid)
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("key", "a", "script", "x")
	f.Add("checks", "", "http", "http://h")
	f.Fuzz(func(t *testing.T, typ, key, htype, path string) {
		_, _ = Parse(map[string]any{"type": typ, "key": key, "handler_type": htype,
			"http_handler_config": map[string]any{"path": path}})
	})
}

package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoad_BadInput(t *testing.T) {
	const base = `"data_dir": "/d", "bind_addr": "10.1.1.1", "node_name": "n"`
	for _, tc := range []struct {
		name    string
		file    string // file name decides the format
		content string
		flags   []string
		want    []string // substrings of the error
		is      error
	}{
		{name: "unknown key", file: "bad.json", content: `{` + base + `, "nod_name": "x"}`,
			want: []string{"bad.json: unknown key \"nod_name\""}, is: ErrUnknownKey},
		{name: "nested unknown key", file: "bad.json", content: `{` + base + `, "ports": {"htp": 1}}`,
			want: []string{"bad.json: unknown key \"ports.htp\""}, is: ErrUnknownKey},
		{name: "unknown key hcl", file: "bad.hcl", content: `acl { tokens { mastr = "x" } }`,
			want: []string{"bad.hcl: unknown key \"acl.tokens.mastr\""}, is: ErrUnknownKey},
		{name: "wrong type", file: "bad.json", content: `{"data_dir": 5}`,
			want: []string{"bad.json: data_dir: expected string, got number"}, is: ErrType},
		{name: "wrong type bool", file: "bad.hcl", content: `server = "yes"`,
			want: []string{"server: expected bool, got string"}, is: ErrType},
		{name: "wrong type block", file: "bad.json", content: `{"ports": 8500}`,
			want: []string{"ports: expected object, got number"}, is: ErrType},
		{name: "wrong type list element", file: "bad.json", content: `{"retry_join": ["a", 1]}`,
			want: []string{"retry_join[1]: expected string, got number"}, is: ErrType},
		{name: "fractional integer", file: "bad.json", content: `{"bootstrap_expect": 1.5}`,
			want: []string{"bootstrap_expect: expected integer, got number"}, is: ErrType},
		{name: "node_meta value type", file: "bad.json", content: `{"node_meta": {"a": 1}}`,
			want: []string{"node_meta.a: expected string, got number"}, is: ErrType},
		{name: "bad duration", file: "bad.json", content: `{` + base + `, "retry_interval": "10 parsecs"}`,
			want: []string{"retry_interval: invalid duration \"10 parsecs\""}, is: ErrValue},
		{name: "duration as number", file: "bad.json", content: `{"check_update_interval": 300}`,
			want: []string{"check_update_interval: expected duration string, got number"}, is: ErrType},
		{name: "bad port range", file: "bad.json", content: `{` + base + `, "ports": {"http": 70000}}`,
			want: []string{"ports.http: port 70000 out of range"}, is: ErrValue},
		{name: "bad port string", file: "bad.hcl", content: `ports { dns = "abc" }`,
			want: []string{"ports.dns: expected port number, got string"}, is: ErrType},
		{name: "bad port flag range", flags: []string{"-dev", "-http-port", "70000"},
			want: []string{"command-line flags: ports.http: port 70000 out of range"}, is: ErrValue},
		{name: "missing data_dir server", file: "a.json", content: `{"server": true, "bind_addr": "10.1.1.1", "bootstrap_expect": 3}`,
			want: []string{"data_dir is required for server agents"}, is: ErrInvalid},
		{name: "missing data_dir client", file: "a.json", content: `{"bind_addr": "10.1.1.1"}`,
			want: []string{"data_dir is required for client agents"}, is: ErrInvalid},
		{name: "bootstrap and bootstrap_expect", file: "a.json", content: `{` + base + `, "server": true, "bootstrap": true, "bootstrap_expect": 3}`,
			want: []string{"bootstrap and bootstrap_expect are mutually exclusive"}, is: ErrInvalid},
		{name: "bootstrap_expect on client", file: "a.json", content: `{` + base + `, "bootstrap_expect": 3}`,
			want: []string{"bootstrap_expect > 0 requires server = true"}, is: ErrInvalid},
		{name: "session_ttl_min zero", file: "a.json", content: `{` + base + `, "session_ttl_min": "0s"}`,
			want: []string{"session_ttl_min must be between 1ns and 24h", "got 0s"}, is: ErrInvalid},
		{name: "session_ttl_min too long", file: "a.hcl", content: `data_dir = "/d"
bind_addr = "10.1.1.1"
session_ttl_min = "25h"`,
			want: []string{"session_ttl_min must be between 1ns and 24h", "got 25h0m0s"}, is: ErrInvalid},
		{name: "invalid log level", file: "a.json", content: `{` + base + `, "log_level": "loud"}`,
			want: []string{"log_level \"loud\" is invalid"}, is: ErrInvalid},
		{name: "invalid datacenter", file: "a.json", content: `{` + base + `, "datacenter": "dc 1"}`,
			want: []string{"datacenter \"dc 1\""}, is: ErrInvalid},
		{name: "invalid node id", file: "a.json", content: `{` + base + `, "node_id": "not-a-uuid"}`,
			want: []string{"node_id \"not-a-uuid\": must be a UUID"}, is: ErrInvalid},
		{name: "raft multiplier range", file: "a.hcl", content: `data_dir = "/d"
bind_addr = "10.1.1.1"
performance { raft_multiplier = 11 }`,
			want: []string{"raft_multiplier must be between 1 and 10"}, is: ErrInvalid},
		{name: "bad acl policy", file: "a.json", content: `{` + base + `, "acl": {"default_policy": "maybe"}}`,
			want: []string{"acl.default_policy \"maybe\" is invalid"}, is: ErrInvalid},
		{name: "bad bind addr", file: "a.json", content: `{"data_dir": "/d", "bind_addr": "not-an-ip"}`,
			want: []string{"bind_addr: \"not-an-ip\" is not an IP address"}, is: ErrInvalid},
		{name: "sockaddr template", file: "a.json", content: `{"data_dir": "/d", "bind_addr": "{{ GetPrivateIP }}"}`,
			want: []string{"go-sockaddr templates are not supported"}, is: ErrInvalid},
		{name: "serf lan disabled", file: "a.json", content: `{` + base + `, "ports": {"serf_lan": -1}}`,
			want: []string{"ports.serf_lan cannot be disabled"}, is: ErrInvalid},
		{name: "several problems at once", file: "a.json", content: `{"bind_addr": "10.1.1.1", "log_level": "loud"}`,
			want: []string{"data_dir is required", "log_level \"loud\""}, is: ErrInvalid},
		{name: "malformed json", file: "bad.json", content: "{\n  \"data_dir\": \"/d\",\n  \"server\" true\n}",
			want: []string{"bad.json: invalid JSON at line 3, column"}, is: ErrParse},
		{name: "truncated json", file: "bad.json", content: `{"data_dir": "/d"`,
			want: []string{"bad.json: invalid JSON at line 1", "unexpected end of file"}, is: ErrParse},
		{name: "json trailing data", file: "bad.json", content: `{"data_dir": "/d"} {"x": 1}`,
			want: []string{"bad.json: invalid JSON", "after the top-level object"}, is: ErrParse},
		{name: "json not an object", file: "bad.json", content: `["a"]`,
			want: []string{"bad.json: top level must be a JSON object, got list"}, is: ErrParse},
		{name: "empty json", file: "bad.json", content: ``,
			want: []string{"bad.json: invalid JSON: empty file"}, is: ErrParse},
		{name: "malformed hcl", file: "bad.hcl", content: "data_dir = \"/d\"\nports {\n  http = \n}",
			want: []string{"bad.hcl: invalid HCL", "At "}, is: ErrParse},
		{name: "malformed hcl snippet", flags: []string{"-dev", "-hcl", `ports {`},
			want: []string{"-hcl snippet 1: invalid HCL"}, is: ErrParse},
		{name: "unknown key in snippet", flags: []string{"-dev", "-hcl", `bogus = 1`},
			want: []string{"-hcl snippet 1: unknown key \"bogus\""}, is: ErrUnknownKey},
		{name: "data_dir is a file", flags: []string{"-data-dir", "errors_test.go", "-bind", "10.1.1.1"},
			want: []string{"data_dir \"errors_test.go\" is not a directory"}, is: ErrInvalid},
		{name: "missing file", flags: []string{"-config-file", "/nonexistent/x.json"},
			want: []string{"/nonexistent/x.json: stat: no such file"}, is: ErrValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.flags
			if tc.file != "" {
				args = append(args, "-config-file", writeFile(t, t.TempDir(), tc.file, tc.content))
			}
			c, _, err := Load(LoadOptions{Flags: parseFlags(t, args...)})
			require.Error(t, err)
			require.Nil(t, c)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.True(t, errors.Is(err, tc.is), "error %q should wrap %v", err, tc.is)
		})
	}
}

func TestRuntimeConfig_Validate(t *testing.T) {
	require.NoError(t, DevConfig().Validate())

	c := DefaultConfig()
	c.DataDir = "/d"
	c.AdvertiseAddr = "10.0.0.1"
	require.NoError(t, c.Validate())

	c.PortHTTP = 0
	require.ErrorContains(t, c.Validate(), "ports.http: port 0 out of range")

	c = DevConfig()
	c.Recursors = []string{"dns.google"}
	require.ErrorContains(t, c.Validate(), "recursors")
}

func TestLoad_DefaultConfigOption(t *testing.T) {
	base := DevConfig()
	base.NodeName = "fixed"
	base.RetryJoin = []string{"seed"}
	c, _, err := Load(LoadOptions{DefaultConfig: base, HCL: []string{`retry_join = ["more"]`}})
	require.NoError(t, err)
	require.Equal(t, "fixed", c.NodeName)
	require.Equal(t, []string{"seed", "more"}, c.RetryJoin)
	require.Equal(t, []string{"seed"}, base.RetryJoin, "DefaultConfig is not modified")
}

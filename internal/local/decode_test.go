package local

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestDecodeServiceDefinition_KeyStyles(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"camel", `{"ID":"web1","Name":"web","Tags":["a"],"Port":80,"Meta":{"Some_Key":"v"},
			"EnableTagOverride":true,"Weights":{"Passing":3,"Warning":1},
			"TaggedAddresses":{"lan":{"Address":"10.0.0.1","Port":81}},
			"Check":{"CheckID":"c1","TTL":"10s","DeregisterCriticalServiceAfter":"1m"},
			"Checks":[{"HTTP":"http://x/","Interval":"5s","Header":{"X-Foo":["bar"]}}]}`},
		{"snake", `{"id":"web1","name":"web","tags":["a"],"port":80,"meta":{"Some_Key":"v"},
			"enable_tag_override":true,"weights":{"passing":3,"warning":1},
			"tagged_addresses":{"lan":{"address":"10.0.0.1","port":81}},
			"check":{"check_id":"c1","ttl":"10s","deregister_critical_service_after":"1m"},
			"checks":[{"http":"http://x/","interval":"5s","header":{"X-Foo":["bar"]}}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(tc.in), &m))
			def, err := DecodeServiceDefinition(m)
			require.NoError(t, err)
			require.Equal(t, "web1", def.ID)
			require.Equal(t, "web", def.Name)
			require.Equal(t, []string{"a"}, def.Tags)
			require.Equal(t, 80, def.Port)
			require.Equal(t, map[string]string{"Some_Key": "v"}, def.Meta)
			require.True(t, def.EnableTagOverride)
			require.Equal(t, &state.Weights{Passing: 3, Warning: 1}, def.Weights)
			require.Equal(t, state.ServiceAddress{Address: "10.0.0.1", Port: 81}, def.TaggedAddresses["lan"])
			require.NotNil(t, def.Check)
			require.Equal(t, "c1", def.Check.CheckID)
			require.Equal(t, state.Duration(10*time.Second), def.Check.TTL)
			require.Equal(t, state.Duration(time.Minute), def.Check.DeregisterCriticalServiceAfter)
			require.Len(t, def.Checks, 1)
			require.Equal(t, "http://x/", def.Checks[0].HTTP)
			require.Equal(t, []string{"bar"}, def.Checks[0].Header["X-Foo"])
		})
	}
}

func TestDecodeCheckDefinition_HCLShapes(t *testing.T) {
	// HCL v1 decodes nested blocks as lists of maps and numbers as ints.
	m := map[string]any{
		"name":        "mem",
		"args":        []any{"/bin/check", "-x"},
		"interval":    "10s",
		"timeout":     1000000000,
		"service_id":  "web",
		"status":      "passing",
		"script_args": nil,
	}
	def, err := DecodeCheckDefinition(m)
	require.NoError(t, err)
	require.Equal(t, []string{"/bin/check", "-x"}, def.Args)
	require.Equal(t, state.Duration(time.Second), def.Timeout)
	require.Equal(t, "web", def.ServiceID)

	svc, err := DecodeServiceDefinition(map[string]any{
		"name":  "db",
		"check": []map[string]any{{"tcp": "localhost:5432", "interval": "5s"}},
	})
	require.NoError(t, err)
	require.Equal(t, "localhost:5432", svc.Check.TCP)
}

func TestDecodeDefinition_Errors(t *testing.T) {
	tests := []map[string]any{
		{"name": 5},
		{"port": "eighty"},
		{"tags": 7},
		{"check": "nope"},
		{"check": map[string]any{"ttl": "soon"}},
	}
	for _, m := range tests {
		_, err := DecodeServiceDefinition(m)
		require.Error(t, err, "%v", m)
		require.True(t, errors.Is(err, ErrDecode))
	}
}

func TestBuildCheck_Validation(t *testing.T) {
	tests := []struct {
		name    string
		def     CheckDefinition
		opts    ValidateOptions
		wantErr string
		kind    string
	}{
		{name: "ttl", def: CheckDefinition{Name: "t", TTL: state.Duration(time.Second)}, kind: KindTTL},
		{name: "no name", def: CheckDefinition{TTL: state.Duration(time.Second)}, wantErr: "Missing check name"},
		{name: "no kind", def: CheckDefinition{Name: "x"}, wantErr: "must set one of"},
		{name: "two kinds", def: CheckDefinition{Name: "x", TTL: 1, HTTP: "http://a"}, wantErr: "exactly one kind"},
		{name: "http no interval", def: CheckDefinition{Name: "x", HTTP: "http://a"}, wantErr: "Interval is required"},
		{name: "http bad url", def: CheckDefinition{Name: "x", HTTP: "ftp://a", Interval: 1}, wantErr: "http:// or https://"},
		{name: "script disabled", def: CheckDefinition{Name: "x", Args: []string{"true"}, Interval: 1}, wantErr: "Scripts are disabled"},
		{name: "script enabled", def: CheckDefinition{Name: "x", Args: []string{"true"}, Interval: 1}, opts: ValidateOptions{AllowScripts: true}, kind: KindScript},
		{name: "docker", def: CheckDefinition{Name: "x", DockerContainerID: "c", Args: []string{"true"}, Interval: 1}, opts: ValidateOptions{AllowScripts: true}, kind: KindDocker},
		{name: "bad status", def: CheckDefinition{Name: "x", TTL: 1, Status: "fine"}, wantErr: "invalid Status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := BuildCheck(&tc.def, tc.opts)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorIs(t, err, rpc.ErrBadRequest)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.kind, hc.Type)
			require.Equal(t, state.HealthCritical, hc.Status)
			require.Equal(t, tc.def.Name, hc.CheckID)
		})
	}
}

func TestBuildService_Defaults(t *testing.T) {
	svc, chks, err := BuildService(&ServiceDefinition{
		Name:   "web",
		Check:  &CheckDefinition{TTL: 1},
		Checks: []*CheckDefinition{{HTTP: "http://x", Interval: 1}, {CheckID: "own", TCP: "x:1", Interval: 1}},
	})
	require.NoError(t, err)
	require.Equal(t, "web", svc.ID)
	require.Equal(t, state.Weights{Passing: 1, Warning: 1}, svc.Weights)
	require.Len(t, chks, 3)
	require.Equal(t, "service:web:1", chks[0].ID)
	require.Equal(t, "service:web:2", chks[1].ID)
	require.Equal(t, "own", chks[2].ID)
	for _, c := range chks {
		require.Equal(t, "web", c.ServiceID)
		require.Equal(t, "Service 'web' check", c.Name)
	}

	_, one, err := BuildService(&ServiceDefinition{ID: "w1", Name: "web", Check: &CheckDefinition{TTL: 1}})
	require.NoError(t, err)
	require.Equal(t, "service:w1", one[0].ID)

	_, _, err = BuildService(&ServiceDefinition{ID: "x"})
	require.ErrorContains(t, err, "Missing service name")
	_, _, err = BuildService(&ServiceDefinition{Name: "x", Weights: &state.Weights{}})
	require.ErrorIs(t, err, rpc.ErrBadRequest)
}

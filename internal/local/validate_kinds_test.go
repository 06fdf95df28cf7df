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

func TestBuildCheck_Kinds(t *testing.T) {
	iv := state.Duration(time.Second)
	tests := []struct {
		name    string
		def     CheckDefinition
		opts    ValidateOptions
		kind    string
		wantErr string
	}{
		{"ttl", CheckDefinition{Name: "c", TTL: iv}, ValidateOptions{}, KindTTL, ""},
		{"http", CheckDefinition{Name: "c", HTTP: "http://127.0.0.1/", Interval: iv}, ValidateOptions{}, KindHTTP, ""},
		{"tcp", CheckDefinition{Name: "c", TCP: "127.0.0.1:80", Interval: iv}, ValidateOptions{}, KindTCP, ""},
		{"tcp bad address", CheckDefinition{Name: "c", TCP: "127.0.0.1", Interval: iv}, ValidateOptions{}, "", "TCP must be host:port"},
		{"udp", CheckDefinition{Name: "c", UDP: "localhost:53", Interval: iv}, ValidateOptions{}, KindUDP, ""},
		{"udp bad address", CheckDefinition{Name: "c", UDP: "localhost", Interval: iv}, ValidateOptions{}, "", "UDP must be host:port"},
		{"grpc", CheckDefinition{Name: "c", GRPC: "127.0.0.1:9000", Interval: iv}, ValidateOptions{}, KindGRPC, ""},
		{"grpc with service", CheckDefinition{Name: "c", GRPC: "127.0.0.1:9000/my.Svc", Interval: iv}, ValidateOptions{}, KindGRPC, ""},
		{"grpc bad address", CheckDefinition{Name: "c", GRPC: "nope/my.Svc", Interval: iv}, ValidateOptions{}, "", "GRPC must be host:port"},
		{"h2ping", CheckDefinition{Name: "c", H2PING: "127.0.0.1:443", Interval: iv}, ValidateOptions{}, KindH2Ping, ""},
		{"h2ping no interval", CheckDefinition{Name: "c", H2PING: "127.0.0.1:443"}, ValidateOptions{}, "", "Interval is required"},
		{"script allowed", CheckDefinition{Name: "c", Args: []string{"/bin/true"}, Interval: iv}, ValidateOptions{AllowScripts: true}, KindScript, ""},
		{"script refused", CheckDefinition{Name: "c", Args: []string{"/bin/true"}, Interval: iv}, ValidateOptions{}, "", "Scripts are disabled"},
		{"script empty command", CheckDefinition{Name: "c", Args: []string{""}, Interval: iv}, ValidateOptions{AllowScripts: true}, "", "Args[0]"},
		{"docker allowed", CheckDefinition{Name: "c", DockerContainerID: "abc", Args: []string{"true"}, Interval: iv}, ValidateOptions{AllowScripts: true}, KindDocker, ""},
		{"docker refused", CheckDefinition{Name: "c", DockerContainerID: "abc", Args: []string{"true"}, Interval: iv}, ValidateOptions{}, "", "Scripts are disabled"},
		{"docker without args", CheckDefinition{Name: "c", DockerContainerID: "abc", Interval: iv}, ValidateOptions{AllowScripts: true}, "", "Args"},
		{"alias service", CheckDefinition{Name: "c", AliasService: "web"}, ValidateOptions{}, KindAlias, ""},
		{"alias node", CheckDefinition{Name: "c", AliasNode: "n2"}, ValidateOptions{}, KindAlias, ""},
		{"two kinds", CheckDefinition{Name: "c", TCP: "a:1", UDP: "a:1", Interval: iv}, ValidateOptions{}, "", "exactly one kind"},
		{"negative threshold", CheckDefinition{Name: "c", TCP: "a:1", Interval: iv, FailuresBeforeCritical: -1}, ValidateOptions{}, "", "must not be negative"},
		{"negative output size", CheckDefinition{Name: "c", TCP: "a:1", Interval: iv, OutputMaxSize: -1}, ValidateOptions{}, "", "OutputMaxSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := BuildCheck(&tc.def, tc.opts)
			if tc.wantErr != "" {
				require.Error(t, err)
				require.True(t, errors.Is(err, rpc.ErrBadRequest), "error %v must wrap ErrBadRequest", err)
				require.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.kind, hc.Type)
		})
	}
}

func TestDecodeCheckDefinition_H2PingTLSDefault(t *testing.T) {
	decode := func(s string) *CheckDefinition {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(s), &m))
		def, err := DecodeCheckDefinition(m)
		require.NoError(t, err)
		return def
	}
	require.True(t, decode(`{"name":"h","h2ping":"a:1","interval":"1s"}`).H2PingUseTLS, "TLS is the default")
	require.False(t, decode(`{"name":"h","h2ping":"a:1","interval":"1s","h2ping_use_tls":false}`).H2PingUseTLS)

	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"name":"web","checks":[{"h2ping":"a:1","interval":"1s"},{"h2ping":"a:1","interval":"1s","h2ping_use_tls":false}]}`), &m))
	svc, err := DecodeServiceDefinition(m)
	require.NoError(t, err)
	require.Len(t, svc.Checks, 2)
	require.True(t, svc.Checks[0].H2PingUseTLS)
	require.False(t, svc.Checks[1].H2PingUseTLS)
}

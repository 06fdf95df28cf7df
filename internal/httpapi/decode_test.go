package httpapi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/state"
)

func TestDecode_ServiceDefinitionSnakeCase(t *testing.T) {
	body := `{
		"name": "web", "id": "web1", "port": 8080, "tags": ["v1"],
		"enable_tag_override": true,
		"tagged_addresses": {"lan_ipv4": {"address": "10.0.0.1", "port": 80}},
		"meta": {"Build_ID": "42"},
		"weights": {"passing": 3, "warning": 1},
		"check": {"check_id": "c1", "name": "ttl", "ttl": "10s", "deregister_critical_service_after": "90m"},
		"checks": [{"name": "http", "http": "http://localhost/health", "interval": "5s",
		            "tls_skip_verify": true, "header": {"X_Custom": ["a"]}},
		           {"Name": "script", "ScriptArgs": ["/bin/true"], "Interval": "1s"}]
	}`
	def, err := decodeServiceDefinition([]byte(body))
	require.NoError(t, err)
	require.Equal(t, "web", def.Name)
	require.Equal(t, "web1", def.ID)
	require.Equal(t, 8080, def.Port)
	require.True(t, def.EnableTagOverride)
	require.Equal(t, state.ServiceAddress{Address: "10.0.0.1", Port: 80}, def.TaggedAddresses["lan_ipv4"])
	require.Equal(t, map[string]string{"Build_ID": "42"}, def.Meta)
	require.Equal(t, &state.Weights{Passing: 3, Warning: 1}, def.Weights)
	require.Equal(t, "c1", def.Check.CheckID)
	require.Equal(t, state.Duration(10*time.Second), def.Check.TTL)
	require.Equal(t, state.Duration(90*time.Minute), def.Check.DeregisterCriticalServiceAfter)
	require.Len(t, def.Checks, 2)
	require.True(t, def.Checks[0].TLSSkipVerify)
	require.Equal(t, map[string][]string{"X_Custom": {"a"}}, def.Checks[0].Header)
	require.Equal(t, []string{"/bin/true"}, def.Checks[1].Args)
}

func TestDecode_ExactSpellingWins(t *testing.T) {
	def, err := decodeServiceDefinition([]byte(`{"Name":"exact","name":"lower","NAME":"upper"}`))
	require.NoError(t, err)
	require.Equal(t, "exact", def.Name)
	def, err = decodeServiceDefinition([]byte(`{"name":"lower","NAME":"upper"}`))
	require.NoError(t, err)
	require.Equal(t, "upper", def.Name, "deterministic: first in sorted order")
}

func TestDecode_CheckDefinition(t *testing.T) {
	def, err := decodeCheckDefinition([]byte(`{"ID":"mem","Name":"Memory","service_id":"web","TTL":"15s","Notes":"n","Status":"passing","docker_container_id":"abc","h2ping_use_tls":true}`))
	require.NoError(t, err)
	require.Equal(t, "mem", def.ID)
	require.Equal(t, "web", def.ServiceID)
	require.Equal(t, state.Duration(15*time.Second), def.TTL)
	require.Equal(t, "abc", def.DockerContainerID)
	require.True(t, def.H2PingUseTLS)
	_, err = decodeCheckDefinition([]byte(`{"TTL":15}`)) // nanoseconds are accepted
	require.NoError(t, err)
}

func TestDecode_RegisterEmbeddedFields(t *testing.T) {
	req, err := decodeRegister([]byte(`{"Node":"n","Address":"a","Datacenter":"dc9","Token":"body-tok","skip_node_update":true}`))
	require.NoError(t, err)
	require.Equal(t, "dc9", req.Datacenter)
	require.Equal(t, "body-tok", req.Token)
	require.True(t, req.SkipNodeUpdate)
}

func TestDecode_H2PingUseTLSDefaultsTrue(t *testing.T) {
	chk, err := decodeCheckDefinition([]byte(`{"Name":"p","H2PING":"127.0.0.1:1","Interval":"1s"}`))
	require.NoError(t, err)
	require.True(t, chk.H2PingUseTLS)
	chk, err = decodeCheckDefinition([]byte(`{"Name":"p","H2PING":"127.0.0.1:1","Interval":"1s","h2ping_use_tls":false}`))
	require.NoError(t, err)
	require.False(t, chk.H2PingUseTLS)

	svc, err := decodeServiceDefinition([]byte(`{"Name":"s","Check":{"H2PING":"a:1","Interval":"1s"},
		"Checks":[{"H2PING":"a:2","Interval":"1s","H2PingUseTLS":false},{"H2PING":"a:3","Interval":"1s"}]}`))
	require.NoError(t, err)
	require.True(t, svc.Check.H2PingUseTLS)
	require.False(t, svc.Checks[0].H2PingUseTLS)
	require.True(t, svc.Checks[1].H2PingUseTLS)
}

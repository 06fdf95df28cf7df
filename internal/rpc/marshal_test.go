package rpc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMarshal_RoundTripKeepsShadowedFields: Marshal and Unmarshal use the
// call encoding, mirror struct included, so a field an embedded struct's
// field of the same name would shadow survives.
func TestMarshal_RoundTripKeepsShadowedFields(t *testing.T) {
	in := &RegisterRequest{Node: "n1", Datacenter: "dc-node", Address: "10.0.0.1",
		NodeMeta: map[string]string{"rack": "r1"}, WriteRequest: WriteRequest{Datacenter: "dc-route", Token: "tok"}}
	b, err := Marshal(in)
	require.NoError(t, err)
	var out RegisterRequest
	require.NoError(t, Unmarshal(b, &out))
	require.Equal(t, *in, out)

	_, err = Marshal(RegisterRequest{})
	require.Error(t, err, "not a pointer")
	require.Error(t, Unmarshal([]byte{0xc1}, &out), "invalid msgpack")
	require.Error(t, Unmarshal(b, out), "not a pointer")
}

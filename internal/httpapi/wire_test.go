package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// rawExchange sends one raw HTTP/1.1 request to h over TCP and returns the
// raw response with its Date header masked.
func rawExchange(t *testing.T, h *testEnv, request string) string {
	t.Helper()
	srv := httptest.NewServer(h.h)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, request)
	require.NoError(t, err)
	raw, err := io.ReadAll(bufio.NewReader(conn))
	require.NoError(t, err)
	return regexp.MustCompile(`(?m)^Date: .*\r$`).ReplaceAllString(string(raw), "Date: -\r")
}

// TestWire_KVReadResponses pins the bytes of KV read responses on the wire:
// status line, header names as written (X-Consul-Knownleader, the
// canonical form of X-Consul-KnownLeader), header order and body. The
// fast paths for blocking reads must not change any of it.
func TestWire_KVReadResponses(t *testing.T) {
	tests := []struct {
		name, target, want string
	}{
		{"get", "/v1/kv/app/a?index=5", "HTTP/1.1 200 OK\r\n" +
			"Content-Type: application/json\r\n" +
			"X-Consul-Effective-Consistency: leader\r\n" +
			"X-Consul-Index: 12345678901\r\n" +
			"X-Consul-Knownleader: true\r\n" +
			"X-Consul-Lastcontact: 1500\r\n" +
			"Date: -\r\n" +
			"Content-Length: 111\r\n" +
			"Connection: close\r\n\r\n" +
			`[{"LockIndex":0,"Key":"app/a","Flags":7,"Value":"AAH/eyI8Pg==","Session":"s1","CreateIndex":3,"ModifyIndex":4}]`},
		{"get stale pretty", "/v1/kv/app/b?index=5&stale&pretty", "HTTP/1.1 200 OK\r\n" +
			"Content-Type: application/json\r\n" +
			"X-Consul-Effective-Consistency: stale\r\n" +
			"X-Consul-Index: 12345678901\r\n" +
			"X-Consul-Knownleader: true\r\n" +
			"X-Consul-Lastcontact: 1500\r\n" +
			"Date: -\r\n" +
			"Content-Length: 155\r\n" +
			"Connection: close\r\n\r\n" +
			"[\n    {\n        \"LockIndex\": 0,\n        \"Key\": \"app/b\",\n        \"Flags\": 0,\n        \"Value\": \"\",\n        \"CreateIndex\": 5,\n        \"ModifyIndex\": 6\n    }\n]"},
		{"recurse", "/v1/kv/app/?recurse&index=5", "HTTP/1.1 200 OK\r\n" +
			"Content-Type: application/json\r\n" +
			"X-Consul-Effective-Consistency: leader\r\n" +
			"X-Consul-Index: 12345678901\r\n" +
			"X-Consul-Knownleader: true\r\n" +
			"X-Consul-Lastcontact: 1500\r\n" +
			"Date: -\r\n" +
			"Content-Length: 194\r\n" +
			"Connection: close\r\n\r\n" +
			`[{"LockIndex":0,"Key":"app/a","Flags":7,"Value":"AAH/eyI8Pg==","Session":"s1","CreateIndex":3,"ModifyIndex":4},` +
			`{"LockIndex":0,"Key":"app/b","Flags":0,"Value":"","CreateIndex":5,"ModifyIndex":6}]`},
		{"missing", "/v1/kv/nope?index=5", "HTTP/1.1 404 Not Found\r\n" +
			"X-Consul-Effective-Consistency: leader\r\n" +
			"X-Consul-Index: 12345678901\r\n" +
			"X-Consul-Knownleader: true\r\n" +
			"X-Consul-Lastcontact: 1500\r\n" +
			"Date: -\r\n" +
			"Content-Length: 0\r\n" +
			"Connection: close\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.caller.index = 12345678901
			env.caller.meta.LastContact = 1500 * time.Millisecond
			env.caller.kv["app/a"] = &state.KVEntry{Key: "app/a", Flags: 7, Value: []byte("\x00\x01\xff{\"<>"), Session: "s1", CreateIndex: 3, ModifyIndex: 4}
			env.caller.kv["app/b"] = &state.KVEntry{Key: "app/b", Value: []byte{}, CreateIndex: 5, ModifyIndex: 6}
			// Twice: a second identical read may be answered from a cache.
			for range 2 {
				got := rawExchange(t, env, "GET "+tc.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
				require.Equal(t, tc.want, got)
			}
			require.False(t, strings.Contains(tc.want, "KnownLeader"))
		})
	}
}

// TestWire_ReadHeaderNamesAreCanonical: setMeta sets its headers without
// Header.Set, so their names must already be in canonical form, or the wire
// (and Header.Get) would change.
func TestWire_ReadHeaderNamesAreCanonical(t *testing.T) {
	for _, name := range []string{hdrIndex, hdrKnownLeader, hdrLastContact, hdrEffectiveConsistency} {
		require.Equal(t, http.CanonicalHeaderKey(name), name)
	}
	rec := httptest.NewRecorder()
	setMeta(rec, rpc.QueryMeta{Index: 7, KnownLeader: true, LastContact: 2 * time.Second}, rpc.QueryOptions{AllowStale: true})
	rec.Header().Add(hdrIndex, "8")
	require.Equal(t, []string{"7", "8"}, rec.Header().Values("X-Consul-Index"))
	require.Equal(t, "true", rec.Header().Get("X-Consul-KnownLeader"))
	require.Equal(t, "2000", rec.Header().Get("X-Consul-LastContact"))
	require.Equal(t, "stale", rec.Header().Get("X-Consul-Effective-Consistency"))
}

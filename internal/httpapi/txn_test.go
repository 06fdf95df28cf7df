package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// prefixAuthorizer allows every key operation under prefix only (reads
// not of keys containing "secret"), and
// catalog writes for node "mine" and service "mine" only.
type prefixAuthorizer struct {
	acl.Authorizer
	prefix string
}

func (p prefixAuthorizer) KeyRead(k string) bool {
	return strings.HasPrefix(k, p.prefix) && !strings.Contains(k, "secret")
}
func (p prefixAuthorizer) KeyWrite(k string) bool        { return strings.HasPrefix(k, p.prefix) }
func (p prefixAuthorizer) KeyWritePrefix(k string) bool  { return strings.HasPrefix(k, p.prefix) }
func (p prefixAuthorizer) NodeWrite(n string) bool       { return n == "mine" }
func (p prefixAuthorizer) ServiceWrite(name string) bool { return name == "mine" }

type txnBody = txnReply

func TestTxn_WritesGoThroughApply(t *testing.T) {
	env := newTestEnv(t)
	env.caller.on(rpc.MethodTxnApply, func(args, reply any) error {
		req := args.(*rpc.TxnRequest)
		out := reply.(*rpc.TxnResponse)
		for _, op := range req.Ops {
			if op.KV != nil {
				e := op.KV.Entry
				e.Value = nil
				out.Results = append(out.Results, &state.TxnResult{KV: &e})
			}
		}
		return nil
	})
	body := `[{"KV":{"Verb":"set","Key":"a","Value":"aGk=","Flags":3}},
	          {"KV":{"Verb":"cas","Key":"b","Value":"","Index":7}},
	          {"KV":{"Verb":"lock","Key":"c","Session":"s1"}},
	          {"Node":{"Verb":"set","Node":{"Node":"n1","Address":"10.0.0.1"}}},
	          {"Service":{"Verb":"set","Node":"n1","Service":{"Service":"web","Port":80}}},
	          {"Check":{"Verb":"delete","Check":{"Node":"n1","CheckID":"c1"}}}]`
	rec := env.do("PUT", "/v1/txn", body)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	req := env.caller.lastCall(rpc.MethodTxnApply).(*rpc.TxnRequest)
	require.Len(t, req.Ops, 6)
	require.Equal(t, "hi", string(req.Ops[0].KV.Entry.Value))
	require.EqualValues(t, 3, req.Ops[0].KV.Entry.Flags)
	require.EqualValues(t, 7, req.Ops[1].KV.Entry.ModifyIndex, "Index is the CAS index")
	require.Equal(t, "s1", req.Ops[2].KV.Entry.Session)
	require.Equal(t, "web", req.Ops[4].Service.Service.ID, "service ID defaults to its name")
	var out txnBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	require.Len(t, out.Results, 3)
	require.Nil(t, out.Errors)
	require.Nil(t, env.caller.lastCall(rpc.MethodTxnRead))
}

func TestTxn_ReadOnlyUsesReadWithConsistency(t *testing.T) {
	env := newTestEnv(t)
	env.caller.on(rpc.MethodTxnRead, func(args, reply any) error {
		out := reply.(*rpc.TxnReadResponse)
		out.Index, out.KnownLeader = 77, true
		out.Results = []*state.TxnResult{{KV: &state.KVEntry{Key: "a", Value: []byte("x")}}}
		return nil
	})
	rec := env.do("PUT", "/v1/txn?stale", `[{"KV":{"Verb":"get","Key":"a"}}]`)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	require.Equal(t, "77", rec.Header().Get("X-Consul-Index"))
	require.True(t, env.caller.lastCall(rpc.MethodTxnRead).(*rpc.TxnReadRequest).AllowStale)
	require.Contains(t, rec.Body.String(), `"Value":"eA=="`)
}

func TestTxn_RolledBackIs409(t *testing.T) {
	env := newTestEnv(t)
	env.caller.on(rpc.MethodTxnApply, func(args, reply any) error {
		reply.(*rpc.TxnResponse).Errors = []*state.TxnError{{OpIndex: 1, What: "failed to set key \"b\", index is stale"}}
		return nil
	})
	rec := env.do("PUT", "/v1/txn", `[{"KV":{"Verb":"set","Key":"a"}},{"KV":{"Verb":"cas","Key":"b","Index":3}}]`)
	require.Equal(t, 409, rec.Code)
	require.JSONEq(t, `{"Results":null,"Errors":[{"OpIndex":1,"What":"failed to set key \"b\", index is stale"}]}`, rec.Body.String())
}

func TestTxn_BadRequests(t *testing.T) {
	tooMany := "[" + strings.TrimSuffix(strings.Repeat(`{"KV":{"Verb":"get","Key":"a"}},`, rpc.MaxTxnOps+1), ",") + "]"
	cases := []struct {
		name, body, msg string
		code            int
	}{
		{"not json", `{`, "Failed to parse body", 400},
		{"not a list", `{"KV":{}}`, "Failed to parse body", 400},
		{"empty op", `[{}]`, "Operation 0 must have exactly one", 400},
		{"two kinds", `[{"KV":{"Verb":"get","Key":"a"},"Node":{"Verb":"get"}}]`, "exactly one", 400},
		{"unknown kv verb", `[{"KV":{"Verb":"explode","Key":"a"}}]`, `unknown KV verb "explode"`, 400},
		{"unknown node verb", `[{"Node":{"Verb":"get-tree"}}]`, "unknown Node verb", 400},
		{"service set without name", `[{"Service":{"Verb":"set","Node":"n","Service":{"ID":"x"}}}]`, "must provide service name", 400},
		{"too many operations", tooMany, fmt.Sprintf("Transaction contains too many operations (%d > %d)", rpc.MaxTxnOps+1, rpc.MaxTxnOps), 413},
		{"value too large", `[{"KV":{"Verb":"set","Key":"a","Value":"` + strings.Repeat("QUFB", 20) + `"}}]`, "too large", 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config) { c.KVMaxValueSize = 10 })
			rec := env.do("PUT", "/v1/txn", tc.body)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.msg)
			require.Nil(t, env.caller.lastCall(rpc.MethodTxnApply))
			require.Nil(t, env.caller.lastCall(rpc.MethodTxnRead))
		})
	}
	t.Run("body over the limit", func(t *testing.T) {
		env := newTestEnv(t)
		big := `[{"KV":{"Verb":"set","Key":"a","Value":"` + strings.Repeat("A", minTxnMaxReqLen) + `"}}]`
		rec := env.do("PUT", "/v1/txn", big)
		require.Equal(t, 413, rec.Code)
	})
	t.Run("configured txn_max_req_len", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) { c.TxnMaxReqLen = 64 })
		rec := env.do("PUT", "/v1/txn", `[{"KV":{"Verb":"get","Key":"`+strings.Repeat("k", 64)+`"}}]`)
		require.Equal(t, 413, rec.Code)
		require.Contains(t, rec.Body.String(), "max size: 64 bytes")
	})
}

// TestTxn_EachOpAuthorizedLikeItsEndpoint: denied operations are reported
// per operation (409) and nothing is sent to the servers.
func TestTxn_EachOpAuthorizedLikeItsEndpoint(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		denied []int
	}{
		{"kv inside prefix", `[{"KV":{"Verb":"set","Key":"ok/a"}},{"KV":{"Verb":"get","Key":"ok/b"}}]`, nil},
		{"kv write outside", `[{"KV":{"Verb":"set","Key":"ok/a"}},{"KV":{"Verb":"delete","Key":"no/b"}}]`, []int{1}},
		{"kv read outside", `[{"KV":{"Verb":"check-index","Key":"no/a","Index":1}}]`, []int{0}},
		{"delete-tree needs the prefix", `[{"KV":{"Verb":"delete-tree","Key":"o"}}]`, []int{0}},
		{"node write", `[{"Node":{"Verb":"set","Node":{"Node":"mine"}}},{"Node":{"Verb":"delete","Node":{"Node":"theirs"}}}]`, []int{1}},
		{"service write", `[{"Service":{"Verb":"set","Node":"mine","Service":{"Service":"theirs"}}}]`, []int{0}},
		{"check write", `[{"Check":{"Verb":"set","Check":{"Node":"theirs","CheckID":"c"}}}]`, []int{0}},
		{"check of own service", `[{"Check":{"Verb":"set","Check":{"Node":"theirs","CheckID":"c","ServiceID":"m","ServiceName":"mine"}}}]`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config) {
				c.ACL = acl.StaticResolver(prefixAuthorizer{Authorizer: acl.DenyAll(), prefix: "ok/"})
			})
			env.caller.on(rpc.MethodTxnApply, func(args, reply any) error { return nil })
			env.caller.on(rpc.MethodTxnRead, func(args, reply any) error { return nil })
			rec := env.do("PUT", "/v1/txn", tc.body)
			if tc.denied == nil {
				require.Equal(t, 200, rec.Code, rec.Body.String())
				return
			}
			require.Equal(t, 409, rec.Code)
			var out txnBody
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
			var got []int
			for _, e := range out.Errors {
				require.Equal(t, "Permission denied", e.What)
				got = append(got, e.OpIndex)
			}
			require.Equal(t, tc.denied, got)
			require.Nil(t, env.caller.lastCall(rpc.MethodTxnApply))
		})
	}
	t.Run("get-tree results filtered by key:read", func(t *testing.T) {
		env := newTestEnv(t, func(c *Config) {
			c.ACL = acl.StaticResolver(prefixAuthorizer{Authorizer: acl.DenyAll(), prefix: "ok/"})
		})
		env.caller.on(rpc.MethodTxnRead, func(args, reply any) error {
			reply.(*rpc.TxnReadResponse).Results = []*state.TxnResult{
				{KV: &state.KVEntry{Key: "ok/a"}}, {KV: &state.KVEntry{Key: "ok/secret"}}}
			return nil
		})
		rec := env.do("PUT", "/v1/txn", `[{"KV":{"Verb":"get-tree","Key":"ok/"}}]`)
		require.Equal(t, 200, rec.Code)
		var out txnBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		require.Len(t, out.Results, 1)
		require.Equal(t, "ok/a", out.Results[0].KV.Key)
	})
}

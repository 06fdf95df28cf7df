package httpapi

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// captureSessionCreate makes Session.Apply record its request and answer
// with a fixed ID.
func captureSessionCreate(env *testEnv) *rpc.SessionRequest {
	var got rpc.SessionRequest
	env.caller.on(rpc.MethodSessionApply, func(args, reply any) error {
		got = *args.(*rpc.SessionRequest)
		*reply.(*string) = "sid"
		return nil
	})
	return &got
}

func TestSession_CreateDefaultsAndParsing(t *testing.T) {
	cases := []struct {
		name       string
		body       string
		node       string
		lockDelay  time.Duration
		nodeChecks []string
		services   []state.ServiceCheck
	}{
		{"empty body", "", "node1", 15 * time.Second, []string{"serfHealth"}, nil},
		{"official client shape", `{"Name":"x","LockDelay":"2000ms","TTL":"15s","Behavior":"delete"}`,
			"node1", 2 * time.Second, []string{"serfHealth"}, nil},
		{"seconds as a number", `{"LockDelay":20}`, "node1", 20 * time.Second, []string{"serfHealth"}, nil},
		{"nanoseconds as a number", `{"LockDelay":3000000000}`, "node1", 3 * time.Second, []string{"serfHealth"}, nil},
		{"explicit node and no checks", `{"Node":"other","NodeChecks":[]}`, "other", 15 * time.Second, []string{}, nil},
		{"legacy Checks", `{"Checks":["a","b"]}`, "node1", 15 * time.Second, []string{"a", "b"}, nil},
		{"service checks only", `{"ServiceChecks":[{"ID":"web"}]}`, "node1", 15 * time.Second, nil,
			[]state.ServiceCheck{{ID: "web"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			got := captureSessionCreate(env)
			rec := env.do("PUT", "/v1/session/create", tc.body)
			require.Equal(t, 200, rec.Code, rec.Body.String())
			require.JSONEq(t, `{"ID":"sid"}`, rec.Body.String())
			require.Equal(t, rpc.SessionCreate, got.Op)
			require.Equal(t, tc.node, got.Session.Node)
			require.Equal(t, tc.lockDelay, got.Session.LockDelay)
			require.Equal(t, tc.nodeChecks, got.Session.NodeChecks)
			require.Equal(t, tc.services, got.Session.ServiceChecks)
		})
	}
}

func TestSession_BadRequests(t *testing.T) {
	cases := []struct {
		name, method, target, body, msg string
		code                            int
	}{
		{"bad json", "PUT", "/v1/session/create", `{"Name":`, "Request decode failed", 400},
		{"bad lock delay", "PUT", "/v1/session/create", `{"LockDelay":"soon"}`, "invalid LockDelay", 400},
		{"lock delay object", "PUT", "/v1/session/create", `{"LockDelay":{}}`, "LockDelay must be", 400},
		{"destroy without id", "PUT", "/v1/session/destroy/", "", "Missing session", 400},
		{"info without id", "GET", "/v1/session/info/", "", "Missing session", 400},
		{"node without name", "GET", "/v1/session/node/", "", "Missing node name", 400},
		{"create with GET", "GET", "/v1/session/create", "", "not allowed", 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.do(tc.method, tc.target, tc.body)
			require.Equal(t, tc.code, rec.Code)
			require.Contains(t, rec.Body.String(), tc.msg)
			require.Nil(t, env.caller.lastCall(rpc.MethodSessionApply))
		})
	}
}

func TestSession_ReadsAndRenew(t *testing.T) {
	env := newTestEnv(t)
	sess := &state.Session{ID: "s1", Node: "node1", LockDelay: 15 * time.Second, Behavior: "release", TTL: "10s",
		NodeChecks: []string{"serfHealth"}, CreateIndex: 5, ModifyIndex: 5}
	for _, m := range []string{rpc.MethodSessionGet, rpc.MethodSessionList, rpc.MethodSessionNodeSessions} {
		env.caller.on(m, func(args, reply any) error {
			out := reply.(*rpc.IndexedSessions)
			out.Index, out.KnownLeader = 42, true
			if r, ok := args.(*rpc.SessionSpecificRequest); ok && r.SessionID != "s1" {
				return nil // missing: nil list
			}
			out.Sessions = []*state.Session{sess}
			return nil
		})
	}
	env.caller.on(rpc.MethodSessionRenew, func(args, reply any) error {
		id := args.(*rpc.SessionSpecificRequest).SessionID
		if id != "s1" {
			return fmt.Errorf("no such session: %w", rpc.ErrNotFound)
		}
		reply.(*rpc.IndexedSessions).Sessions = []*state.Session{sess}
		return nil
	})

	rec := env.do("GET", "/v1/session/info/s1?index=3&wait=1s", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "42", rec.Header().Get("X-Consul-Index"))
	var list []map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 1)
	require.EqualValues(t, 15e9, list[0]["LockDelay"], "LockDelay is nanoseconds, like Consul")
	require.Equal(t, "10s", list[0]["TTL"])
	req := env.caller.lastCall(rpc.MethodSessionGet).(*rpc.SessionSpecificRequest)
	require.EqualValues(t, 3, req.MinQueryIndex)
	require.Equal(t, time.Second, req.MaxQueryTime)

	rec = env.do("GET", "/v1/session/info/missing", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "[]", rec.Body.String())

	require.Equal(t, 200, env.do("GET", "/v1/session/list", "").Code)
	require.Equal(t, 200, env.do("GET", "/v1/session/node/node1", "").Code)
	require.Equal(t, "node1", env.caller.lastCall(rpc.MethodSessionNodeSessions).(*rpc.NodeSpecificRequest).Node)

	rec = env.do("PUT", "/v1/session/renew/s1", "")
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Body.String(), `"ID":"s1"`)
	rec = env.do("PUT", "/v1/session/renew/gone", "")
	require.Equal(t, 404, rec.Code)
	require.Equal(t, "Session id 'gone' not found", rec.Body.String())

	env.caller.on(rpc.MethodSessionApply, func(args, reply any) error { return nil })
	rec = env.do("PUT", "/v1/session/destroy/s1", "")
	require.Equal(t, 200, rec.Code)
	require.Equal(t, "true", rec.Body.String())
	d := env.caller.lastCall(rpc.MethodSessionApply).(*rpc.SessionRequest)
	require.Equal(t, rpc.SessionDestroy, d.Op)
	require.Equal(t, "s1", d.Session.ID)
}

func TestKV_AcquireRelease(t *testing.T) {
	cases := []struct {
		target  string
		op      rpc.KVOp
		session string
		flags   uint64
		modify  uint64
	}{
		{"/v1/kv/k?acquire=s1", rpc.KVLock, "s1", 0, 0},
		{"/v1/kv/k?acquire=s1&flags=9", rpc.KVLock, "s1", 9, 0},
		{"/v1/kv/k?release=s1&flags=2", rpc.KVUnlock, "s1", 2, 0},
		// As in Consul, acquire/release take precedence over cas.
		{"/v1/kv/k?cas=5&acquire=s1", rpc.KVLock, "s1", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			env := newTestEnv(t)
			rec := env.do("PUT", tc.target, "body")
			require.Equal(t, 200, rec.Code, rec.Body.String())
			req := env.caller.lastCall(rpc.MethodKVSApply).(*rpc.KVSRequest)
			require.Equal(t, tc.op, req.Op)
			require.Equal(t, tc.session, req.Entry.Session)
			require.Equal(t, tc.flags, req.Entry.Flags)
			require.Equal(t, tc.modify, req.Entry.ModifyIndex)
			require.Equal(t, "body", string(req.Entry.Value))
		})
	}
}

// sessionRules is an Authorizer with session rules: session:write and
// session:read on node "node1" only.
type sessionRules struct{ acl.Authorizer }

func (sessionRules) SessionRead(node string) bool  { return node == "node1" }
func (sessionRules) SessionWrite(node string) bool { return node == "node1" }

func TestSession_SessionRulesWhenTheAuthorizerHasThem(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.ACL = acl.StaticResolver(sessionRules{acl.DenyAll()}) })
	captureSessionCreate(env)
	require.Equal(t, 200, env.do("PUT", "/v1/session/create", "").Code, "own node by default")
	rec := env.do("PUT", "/v1/session/create", `{"Node":"other"}`)
	require.Equal(t, 403, rec.Code)
	require.Equal(t, "Permission denied", rec.Body.String())

	sessions := map[string]*state.Session{
		"mine":   {ID: "mine", Node: "node1"},
		"theirs": {ID: "theirs", Node: "other"},
	}
	env.caller.on(rpc.MethodSessionGet, func(args, reply any) error {
		if s, ok := sessions[args.(*rpc.SessionSpecificRequest).SessionID]; ok {
			reply.(*rpc.IndexedSessions).Sessions = []*state.Session{s}
		}
		return nil
	})
	env.caller.on(rpc.MethodSessionList, func(args, reply any) error {
		reply.(*rpc.IndexedSessions).Sessions = []*state.Session{sessions["mine"], sessions["theirs"]}
		return nil
	})
	env.caller.on(rpc.MethodSessionRenew, func(args, reply any) error { return nil })
	require.Equal(t, 200, env.do("PUT", "/v1/session/destroy/mine", "").Code)
	require.Equal(t, 403, env.do("PUT", "/v1/session/destroy/theirs", "").Code)
	require.Equal(t, 403, env.do("PUT", "/v1/session/renew/theirs", "").Code)
	require.Equal(t, 200, env.do("PUT", "/v1/session/destroy/unknown", "").Code, "nothing to protect")

	rec = env.do("GET", "/v1/session/list", "")
	require.Equal(t, 200, rec.Code)
	var list []state.Session
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	require.Len(t, list, 1)
	require.Equal(t, "mine", list[0].ID)
	rec = env.do("GET", "/v1/session/info/theirs", "")
	require.Equal(t, "[]", rec.Body.String())
}

package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// fakeOperator installs operator methods on env's fake caller: a two-server
// configuration and an autopilot config with CAS.
func fakeOperator(env *testEnv) *state.AutopilotConfig {
	apc := state.DefaultAutopilotConfig()
	apc.CreateIndex, apc.ModifyIndex = 5, 5
	c := env.caller
	c.on(rpc.MethodOperatorRaftGetConfiguration, func(_, reply any) error {
		*reply.(*rpc.RaftConfigurationResponse) = rpc.RaftConfigurationResponse{Index: 12, Servers: []*rpc.RaftServer{
			{ID: "id1", Node: "s1", Address: "10.0.0.1:8300", Leader: true, ProtocolVersion: "3", Voter: true, LastIndex: 40},
			{ID: "id2", Node: "(unknown)", Address: "10.0.0.2:8300", ProtocolVersion: "3", LastIndex: 38},
		}}
		return nil
	})
	remove := func(args, _ any) error {
		req := args.(*rpc.RaftRemovePeerRequest)
		if req.Address == "10.0.0.2:8300" || req.ID == "id2" {
			return nil
		}
		return fmt.Errorf("address %q was not found in the Raft configuration: %w", req.Address, rpc.ErrNotFound)
	}
	c.on(rpc.MethodOperatorRaftRemovePeerByAddress, remove)
	c.on(rpc.MethodOperatorRaftRemovePeerByID, remove)
	c.on(rpc.MethodOperatorTransferLeader, func(args, reply any) error {
		reply.(*rpc.TransferLeaderResponse).Success = true
		return nil
	})
	c.on(rpc.MethodOperatorAutopilotGetConfiguration, func(_, reply any) error {
		*reply.(*state.AutopilotConfig) = apc
		return nil
	})
	c.on(rpc.MethodOperatorAutopilotSetConfiguration, func(args, reply any) error {
		req := args.(*rpc.AutopilotSetConfigRequest)
		if req.CAS && req.Config.ModifyIndex != apc.ModifyIndex {
			*reply.(*bool) = false
			return nil
		}
		next := req.Config
		next.CreateIndex, next.ModifyIndex = apc.CreateIndex, apc.ModifyIndex+1
		apc = next
		*reply.(*bool) = true
		return nil
	})
	return &apc
}

func healthReply(healthy bool) rpc.OperatorHealthReply {
	stable := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return rpc.OperatorHealthReply{Healthy: healthy, FailureTolerance: 1, Servers: []rpc.ServerHealth{
		{ID: "id1", Name: "s1", Address: "10.0.0.1:8300", SerfStatus: "alive", Version: "1.0.0", Leader: true,
			LastContact: 0, LastTerm: 3, LastIndex: 40, Healthy: true, Voter: true, StableSince: stable},
		{ID: "id2", Name: "s2", Address: "10.0.0.2:8300", SerfStatus: "alive", Version: "1.0.0",
			LastContact: state.Duration(15 * time.Millisecond), LastTerm: 3, LastIndex: 38, Healthy: healthy, Voter: true, StableSince: stable},
	}}
}

func TestOfficialClient_OperatorRaft(t *testing.T) {
	env := newTestEnv(t)
	fakeOperator(env)
	op := newOfficialClient(t, env).Operator()

	cfg, err := op.RaftGetConfiguration(&api.QueryOptions{AllowStale: true})
	require.NoError(t, err)
	require.EqualValues(t, 12, cfg.Index)
	require.Len(t, cfg.Servers, 2)
	require.Equal(t, api.RaftServer{ID: "id1", Node: "s1", Address: "10.0.0.1:8300", Leader: true,
		ProtocolVersion: "3", Voter: true, LastIndex: 40}, *cfg.Servers[0])
	require.True(t, env.caller.lastCall(rpc.MethodOperatorRaftGetConfiguration).(*rpc.DCSpecificRequest).AllowStale)

	require.NoError(t, op.RaftRemovePeerByAddress("10.0.0.2:8300", nil))
	require.Equal(t, "client-token", env.caller.lastCall(rpc.MethodOperatorRaftRemovePeerByAddress).(*rpc.RaftRemovePeerRequest).Token)
	require.NoError(t, op.RaftRemovePeerByID("id2", nil))
	err = op.RaftRemovePeerByAddress("10.9.9.9:1", nil)
	require.ErrorContains(t, err, "404")
	require.ErrorContains(t, err, `address "10.9.9.9:1" was not found in the Raft configuration`)

	res, err := op.RaftLeaderTransfer("id2", nil)
	require.NoError(t, err)
	require.True(t, res.Success)
	require.Equal(t, "id2", env.caller.lastCall(rpc.MethodOperatorTransferLeader).(*rpc.TransferLeaderRequest).ID)
	_, err = op.RaftLeaderTransfer("", nil)
	require.NoError(t, err)
	require.Equal(t, "", env.caller.lastCall(rpc.MethodOperatorTransferLeader).(*rpc.TransferLeaderRequest).ID)
}

func TestOfficialClient_OperatorAutopilot(t *testing.T) {
	env := newTestEnv(t)
	fakeOperator(env)
	op := newOfficialClient(t, env).Operator()

	conf, err := op.AutopilotGetConfiguration(nil)
	require.NoError(t, err)
	require.True(t, conf.CleanupDeadServers)
	require.Equal(t, 200*time.Millisecond, conf.LastContactThreshold.Duration())
	require.Equal(t, 10*time.Second, conf.ServerStabilizationTime.Duration())
	require.EqualValues(t, 250, conf.MaxTrailingLogs)
	require.EqualValues(t, 5, conf.ModifyIndex)

	// CAS with a stale index fails, with the current one succeeds.
	conf.MinQuorum = 3
	conf.ModifyIndex = 4
	ok, err := op.AutopilotCASConfiguration(conf, nil)
	require.NoError(t, err)
	require.False(t, ok)
	conf.ModifyIndex = 5
	conf.LastContactThreshold = api.NewReadableDuration(time.Second)
	ok, err = op.AutopilotCASConfiguration(conf, nil)
	require.NoError(t, err)
	require.True(t, ok)
	got, err := op.AutopilotGetConfiguration(nil)
	require.NoError(t, err)
	require.EqualValues(t, 3, got.MinQuorum)
	require.Equal(t, time.Second, got.LastContactThreshold.Duration())
	req := env.caller.lastCall(rpc.MethodOperatorAutopilotSetConfiguration).(*rpc.AutopilotSetConfigRequest)
	require.True(t, req.CAS)
	require.Equal(t, "client-token", req.Token)

	// A plain set is not a CAS.
	got.CleanupDeadServers = false
	require.NoError(t, op.AutopilotSetConfiguration(got, nil))
	require.False(t, env.caller.lastCall(rpc.MethodOperatorAutopilotSetConfiguration).(*rpc.AutopilotSetConfigRequest).CAS)

	// Health: 200 when healthy, 429 (still decoded) when not.
	for _, healthy := range []bool{true, false} {
		env.caller.on(rpc.MethodOperatorServerHealth, func(_, reply any) error {
			*reply.(*rpc.OperatorHealthReply) = healthReply(healthy)
			return nil
		})
		h, err := op.AutopilotServerHealth(nil)
		require.NoError(t, err)
		require.Equal(t, healthy, h.Healthy)
		require.Equal(t, 1, h.FailureTolerance)
		require.Len(t, h.Servers, 2)
		require.Equal(t, api.ServerHealth{ID: "id2", Name: "s2", Address: "10.0.0.2:8300", SerfStatus: "alive",
			Version: "1.0.0", LastContact: api.NewReadableDuration(15 * time.Millisecond), LastTerm: 3, LastIndex: 38,
			Healthy: healthy, Voter: true, StableSince: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, h.Servers[1])
	}

	env.caller.on(rpc.MethodOperatorAutopilotState, func(_, reply any) error {
		*reply.(*rpc.AutopilotStateReply) = rpc.AutopilotStateReply{Healthy: true, FailureTolerance: 0,
			Leader: "id1", Voters: []string{"id1"}, Servers: map[string]*rpc.AutopilotServer{
				"id1": {ID: "id1", Name: "s1", Address: "10.0.0.1:8300", NodeStatus: "alive", Version: "1.0.0",
					LastTerm: 3, LastIndex: 40, Healthy: true, Status: "leader", NodeType: "voter"},
			}}
		return nil
	})
	st, err := op.AutopilotState(nil)
	require.NoError(t, err)
	require.True(t, st.Healthy)
	require.Equal(t, "id1", st.Leader)
	require.Equal(t, []string{"id1"}, st.Voters)
	require.Equal(t, api.AutopilotServerLeader, st.Servers["id1"].Status)
	require.Equal(t, api.AutopilotTypeVoter, st.Servers["id1"].NodeType)
	require.Equal(t, time.Duration(0), st.Servers["id1"].LastContact.Duration())
}

func TestOperator_StatusCodes(t *testing.T) {
	readOnly := acl.ResolverFunc(func(string) (acl.Authorizer, error) { return operatorReadOnly{acl.AllowAll()}, nil })
	tests := []struct {
		name, method, target, body string
		resolver                   acl.Resolver
		code                       int
		contains                   string
	}{
		{"config", "GET", "/v1/operator/raft/configuration", "", nil, 200, `"ProtocolVersion":"3"`},
		{"config bad consistency", "GET", "/v1/operator/raft/configuration?stale&consistent", "", nil, 400, "conflicting"},
		{"peer without address or id", "DELETE", "/v1/operator/raft/peer", "", nil, 400, "Must specify either ?id"},
		{"peer with both", "DELETE", "/v1/operator/raft/peer?id=a&address=b", "", nil, 400, "not both"},
		{"peer unknown", "DELETE", "/v1/operator/raft/peer?address=1.2.3.4:5", "", nil, 404, "was not found"},
		{"peer ok", "DELETE", "/v1/operator/raft/peer?id=id2", "", nil, 200, ""},
		{"peer needs operator write", "DELETE", "/v1/operator/raft/peer?id=id2", "", readOnly, 403, "Permission denied"},
		{"transfer wrong method", "GET", "/v1/operator/raft/transfer-leader", "", nil, 405, ""},
		{"transfer", "POST", "/v1/operator/raft/transfer-leader", "", nil, 200, `{"Success":true}`},
		{"transfer needs operator write", "POST", "/v1/operator/raft/transfer-leader", "", readOnly, 403, "Permission denied"},
		{"autopilot get", "GET", "/v1/operator/autopilot/configuration", "", readOnly, 200, `"LastContactThreshold":"200ms"`},
		{"autopilot get denied", "GET", "/v1/operator/autopilot/configuration", "",
			acl.StaticResolver(acl.DenyAll()), 403, "Permission denied"},
		{"autopilot put", "PUT", "/v1/operator/autopilot/configuration",
			`{"CleanupDeadServers":true,"LastContactThreshold":"1s","MaxTrailingLogs":10,"ServerStabilizationTime":"5s"}`, nil, 200, "true"},
		{"autopilot put snake case and nanoseconds", "PUT", "/v1/operator/autopilot/configuration",
			`{"cleanup_dead_servers":true,"last_contact_threshold":1000000}`, nil, 200, "true"},
		{"autopilot cas stale", "PUT", "/v1/operator/autopilot/configuration?cas=1", `{"MaxTrailingLogs":1}`, nil, 200, "false"},
		{"autopilot bad cas", "PUT", "/v1/operator/autopilot/configuration?cas=x", `{}`, nil, 400, "Invalid cas index"},
		{"autopilot bad json", "PUT", "/v1/operator/autopilot/configuration", `{"MaxTrailingLogs":`, nil, 400, "Request decode failed"},
		{"autopilot bad duration", "PUT", "/v1/operator/autopilot/configuration", `{"LastContactThreshold":"soon"}`, nil, 400, "Request decode failed"},
		{"autopilot negative duration", "PUT", "/v1/operator/autopilot/configuration", `{"ServerStabilizationTime":"-1s"}`, nil, 400, "ServerStabilizationTime"},
		{"autopilot put needs operator write", "PUT", "/v1/operator/autopilot/configuration", `{}`, readOnly, 403, "Permission denied"},
		{"autopilot delete not allowed", "DELETE", "/v1/operator/autopilot/configuration", "", nil, 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, func(c *Config) {
				if tc.resolver != nil {
					c.ACL = tc.resolver
				}
			})
			fakeOperator(env)
			rec := env.do(tc.method, tc.target, tc.body)
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.contains)
		})
	}
}

// operatorReadOnly grants everything but operator:write.
type operatorReadOnly struct{ acl.Authorizer }

func (operatorReadOnly) OperatorWrite() bool { return false }

func TestOperator_AutopilotPutBody(t *testing.T) {
	env := newTestEnv(t)
	fakeOperator(env)
	body := `{"CleanupDeadServers":false,"LastContactThreshold":"300ms","MaxTrailingLogs":99,"MinQuorum":3,
		"ServerStabilizationTime":"20s","RedundancyZoneTag":"zone","CreateIndex":77,"ModifyIndex":77}`
	rec := env.do("PUT", "/v1/operator/autopilot/configuration?cas=5", body)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "true", rec.Body.String())
	req := env.caller.lastCall(rpc.MethodOperatorAutopilotSetConfiguration).(*rpc.AutopilotSetConfigRequest)
	require.Equal(t, state.AutopilotConfig{CleanupDeadServers: false, LastContactThreshold: state.Duration(300 * time.Millisecond),
		MaxTrailingLogs: 99, MinQuorum: 3, ServerStabilizationTime: state.Duration(20 * time.Second),
		RedundancyZoneTag: "zone", ModifyIndex: 5}, req.Config, "the index comes from ?cas, never the body")
	require.True(t, req.CAS)
}

func TestOperator_HealthAndStateShapes(t *testing.T) {
	env := newTestEnv(t)
	env.caller.on(rpc.MethodOperatorServerHealth, func(_, reply any) error {
		*reply.(*rpc.OperatorHealthReply) = healthReply(false)
		return nil
	})
	env.caller.on(rpc.MethodOperatorAutopilotState, func(_, reply any) error { return nil })
	rec := env.do("GET", "/v1/operator/autopilot/health", "")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	srv := raw["Servers"].([]any)[1].(map[string]any)
	require.Equal(t, "15ms", srv["LastContact"])
	require.Equal(t, "2026-01-02T03:04:05Z", srv["StableSince"])

	// An empty state still has the collections clients range over.
	rec = env.do("GET", "/v1/operator/autopilot/state", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.JSONEq(t, `{"Healthy":false,"FailureTolerance":0,"OptimisticFailureTolerance":0,"Servers":{},"Leader":"","Voters":[]}`,
		rec.Body.String())

	env.caller.on(rpc.MethodOperatorServerHealth, func(_, _ any) error { return rpc.ErrNoLeader })
	rec = env.do("GET", "/v1/operator/autopilot/health", "")
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Equal(t, "No cluster leader", rec.Body.String())
}

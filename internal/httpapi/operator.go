package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// operatorRead and operatorWrite are the ACL checks of every operator
// route.
func operatorRead(a acl.Authorizer) bool  { return a.OperatorRead() }
func operatorWrite(a acl.Authorizer) bool { return a.OperatorWrite() }

// operatorRaftConfiguration serves GET /v1/operator/raft/configuration.
func (h *handler) operatorRaftConfiguration(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, operatorRead); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.RaftConfigurationResponse
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodOperatorRaftGetConfiguration,
		&rpc.DCSpecificRequest{QueryOptions: opts}, &out); err != nil {
		return err
	}
	if out.Servers == nil {
		out.Servers = []*rpc.RaftServer{}
	}
	return writeJSON(w, r, &out)
}

// operatorRaftPeer serves DELETE /v1/operator/raft/peer?address=|?id=.
func (h *handler) operatorRaftPeer(w http.ResponseWriter, r *http.Request, _ string) error {
	q := queryParams(r)
	addr, id := q.Get("address"), q.Get("id")
	switch {
	case addr != "" && id != "":
		return badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove, not both")
	case addr == "" && id == "":
		return badRequest("Must specify either ?id with the server's ID or ?address with IP:port of peer to remove")
	}
	if err := authorize(r, operatorWrite); err != nil {
		return err
	}
	args := &rpc.RaftRemovePeerRequest{Address: addr, ID: id, WriteRequest: h.writeRequest(r)}
	method := rpc.MethodOperatorRaftRemovePeerByAddress
	if id != "" {
		method = rpc.MethodOperatorRaftRemovePeerByID
	}
	if err := h.cfg.Caller.RPC(r.Context(), method, args, &struct{}{}); err != nil {
		return err
	}
	return writeEmpty(w)
}

// operatorTransferLeader serves POST /v1/operator/raft/transfer-leader
// (?id= picks the new leader).
func (h *handler) operatorTransferLeader(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, operatorWrite); err != nil {
		return err
	}
	args := &rpc.TransferLeaderRequest{ID: queryParams(r).Get("id"), WriteRequest: h.writeRequest(r)}
	var out rpc.TransferLeaderResponse
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodOperatorTransferLeader, args, &out); err != nil {
		return err
	}
	return writeJSON(w, r, &out)
}

// operatorAutopilotConfiguration serves GET and PUT
// /v1/operator/autopilot/configuration.
func (h *handler) operatorAutopilotConfiguration(w http.ResponseWriter, r *http.Request, _ string) error {
	if r.Method == http.MethodPut {
		return h.operatorAutopilotSetConfiguration(w, r)
	}
	if err := authorize(r, operatorRead); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out state.AutopilotConfig
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodOperatorAutopilotGetConfiguration,
		&rpc.DCSpecificRequest{QueryOptions: opts}, &out); err != nil {
		return err
	}
	return writeJSON(w, r, &out)
}

// operatorAutopilotSetConfiguration replaces the configuration with the
// body (api.AutopilotConfiguration's JSON; durations as "10s" strings or
// nanoseconds). With ?cas=N it writes only if the stored ModifyIndex is N
// and replies true or false.
func (h *handler) operatorAutopilotSetConfiguration(w http.ResponseWriter, r *http.Request) error {
	cas, isCAS, err := uintParam(queryParams(r), "cas", "cas index")
	if err != nil {
		return err
	}
	if err := authorize(r, operatorWrite); err != nil {
		return err
	}
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	cfg, err := decodeAutopilotConfig(body)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return badRequest("Invalid autopilot configuration: %v", err)
	}
	cfg.CreateIndex, cfg.ModifyIndex = 0, 0
	if isCAS {
		cfg.ModifyIndex = cas
	}
	args := &rpc.AutopilotSetConfigRequest{Config: *cfg, CAS: isCAS, WriteRequest: h.writeRequest(r)}
	var ok bool
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodOperatorAutopilotSetConfiguration, args, &ok); err != nil {
		return err
	}
	return writeJSON(w, r, ok)
}

// decodeAutopilotConfig decodes the body of a configuration PUT. Fields
// that are absent take their zero value, as in Consul: a PUT replaces the
// whole configuration.
func decodeAutopilotConfig(data []byte) (*state.AutopilotConfig, error) {
	var cfg state.AutopilotConfig
	if err := decodeNormalized(data, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// operatorAutopilotHealth serves GET /v1/operator/autopilot/health; an
// unhealthy cluster answers 429 with the same body, as Consul does, so
// load balancers can probe it.
func (h *handler) operatorAutopilotHealth(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, operatorRead); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.OperatorHealthReply
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodOperatorServerHealth,
		&rpc.DCSpecificRequest{QueryOptions: opts}, &out); err != nil {
		return err
	}
	if out.Servers == nil {
		out.Servers = []rpc.ServerHealth{}
	}
	if !out.Healthy {
		return writeJSONStatus(w, http.StatusTooManyRequests, &out)
	}
	return writeJSON(w, r, &out)
}

// operatorAutopilotState serves GET /v1/operator/autopilot/state.
func (h *handler) operatorAutopilotState(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, operatorRead); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.AutopilotStateReply
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodOperatorAutopilotState,
		&rpc.DCSpecificRequest{QueryOptions: opts}, &out); err != nil {
		return err
	}
	if out.Servers == nil {
		out.Servers = map[string]*rpc.AutopilotServer{}
	}
	if out.Voters == nil {
		out.Voters = []string{}
	}
	return writeJSON(w, r, &out)
}

// writeJSONStatus writes v as JSON with a status other than 200.
func writeJSONStatus(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
	return nil
}

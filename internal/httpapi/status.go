package httpapi

import (
	"net/http"

	"github.com/cairn-io/cairn/internal/rpc"
)

// statusLeader serves GET /v1/status/leader: the leader's server address
// as a JSON string, "" when there is none.
func (h *handler) statusLeader(w http.ResponseWriter, r *http.Request, _ string) error {
	var leader string
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodStatusLeader, &struct{}{}, &leader); err != nil {
		return err
	}
	return writeJSON(w, r, leader)
}

// statusPeers serves GET /v1/status/peers: the Raft peers' addresses.
func (h *handler) statusPeers(w http.ResponseWriter, r *http.Request, _ string) error {
	var peers []string
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodStatusPeers, &struct{}{}, &peers); err != nil {
		return err
	}
	return writeJSON(w, r, nonNilStrings(peers))
}

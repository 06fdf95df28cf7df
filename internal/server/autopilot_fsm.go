package server

import (
	"fmt"

	"github.com/cairn-io/cairn/internal/rpc"
)

// applyAutopilot applies an AutopilotRequestType command: it returns
// whether the configuration was written (false only when a CAS failed).
func (f *fsm) applyAutopilot(idx uint64, body []byte) any {
	var req rpc.AutopilotSetConfigRequest
	if err := decodeCommand(body, &req); err != nil {
		return fmt.Errorf("server: decode autopilot command: %w", err)
	}
	st := f.State()
	if req.CAS {
		ok, err := st.AutopilotCASConfig(idx, req.Config.ModifyIndex, &req.Config)
		if err != nil {
			return err
		}
		return ok
	}
	if err := st.AutopilotSetConfig(idx, &req.Config); err != nil {
		return err
	}
	return true
}

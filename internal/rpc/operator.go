package rpc

import (
	"time"

	"github.com/cairn-io/cairn/internal/state"
)

// Operator method names (Raft peer set and autopilot). Writes are served by
// the leader only; the reads too unless AllowStale is set, except
// MethodOperatorRaftStats, which a server always answers about itself.
const (
	MethodOperatorRaftGetConfiguration    = "Operator.RaftGetConfiguration"    // *DCSpecificRequest -> *RaftConfigurationResponse
	MethodOperatorRaftRemovePeerByAddress = "Operator.RaftRemovePeerByAddress" // *RaftRemovePeerRequest -> *struct{}
	MethodOperatorRaftRemovePeerByID      = "Operator.RaftRemovePeerByID"      // *RaftRemovePeerRequest -> *struct{}
	MethodOperatorTransferLeader          = "Operator.TransferLeader"          // *TransferLeaderRequest -> *TransferLeaderResponse

	MethodOperatorAutopilotGetConfiguration = "Operator.AutopilotGetConfiguration" // *DCSpecificRequest -> *state.AutopilotConfig
	MethodOperatorAutopilotSetConfiguration = "Operator.AutopilotSetConfiguration" // *AutopilotSetConfigRequest -> *bool
	MethodOperatorServerHealth              = "Operator.ServerHealth"              // *DCSpecificRequest -> *OperatorHealthReply
	MethodOperatorAutopilotState            = "Operator.AutopilotState"            // *DCSpecificRequest -> *AutopilotStateReply

	// MethodOperatorRaftStats is asked of one specific server by the
	// leader's autopilot; it must never be forwarded to the leader.
	MethodOperatorRaftStats = "Operator.RaftStats" // *RaftStatsRequest -> *RaftStats
)

// RaftServer is one server of the Raft configuration, as
// /v1/operator/raft/configuration shows it.
type RaftServer struct {
	ID              string
	Node            string // "(unknown)" when the server is not known by name
	Address         string
	Leader          bool
	ProtocolVersion string
	Voter           bool
	LastIndex       uint64
}

// RaftConfigurationResponse is the reply of Operator.RaftGetConfiguration.
type RaftConfigurationResponse struct {
	Servers []*RaftServer
	// Index is the Raft index of this configuration.
	Index uint64
}

// RaftRemovePeerRequest names the peer to remove: Address for
// Operator.RaftRemovePeerByAddress, ID for Operator.RaftRemovePeerByID.
type RaftRemovePeerRequest struct {
	Address string
	ID      string
	WriteRequest
}

// TransferLeaderRequest asks the leader to hand over leadership, to ID when
// set, otherwise to the most up-to-date voter.
type TransferLeaderRequest struct {
	ID string
	WriteRequest
}

// TransferLeaderResponse is the reply of Operator.TransferLeader.
type TransferLeaderResponse struct {
	Success bool
}

// AutopilotSetConfigRequest replaces the autopilot configuration. With CAS
// it is written only if the stored ModifyIndex equals Config.ModifyIndex (0:
// only if none is stored); the reply says whether it was written.
type AutopilotSetConfigRequest struct {
	Config state.AutopilotConfig
	CAS    bool
	WriteRequest
}

// ServerHealth is autopilot's view of one server (Consul's JSON names).
type ServerHealth struct {
	ID          string
	Name        string
	Address     string
	SerfStatus  string
	Version     string
	Leader      bool
	LastContact state.Duration
	LastTerm    uint64
	LastIndex   uint64
	Healthy     bool
	Voter       bool
	StableSince time.Time
}

// OperatorHealthReply is the reply of Operator.ServerHealth
// (/v1/operator/autopilot/health).
type OperatorHealthReply struct {
	Healthy          bool
	FailureTolerance int
	Servers          []ServerHealth
}

// AutopilotServer is one server in /v1/operator/autopilot/state.
type AutopilotServer struct {
	ID          string
	Name        string
	Address     string
	NodeStatus  string
	Version     string
	LastContact state.Duration
	LastTerm    uint64
	LastIndex   uint64
	Healthy     bool
	StableSince time.Time
	ReadReplica bool
	// Status is the server's Raft role: leader, voter, non-voter, staging.
	Status   string
	Meta     map[string]string
	NodeType string
}

// AutopilotStateReply is the reply of Operator.AutopilotState
// (/v1/operator/autopilot/state).
type AutopilotStateReply struct {
	Healthy                    bool
	FailureTolerance           int
	OptimisticFailureTolerance int
	Servers                    map[string]*AutopilotServer
	Leader                     string
	Voters                     []string
}

// RaftStatsRequest asks a server for its own Raft progress.
type RaftStatsRequest struct{}

// RaftStats is a server's Raft progress as autopilot needs it.
type RaftStats struct {
	// LastContact is the time since the server last heard from the leader
	// (0 on the leader; negative when it never has).
	LastContact time.Duration
	LastTerm    uint64
	LastIndex   uint64
}

// operatorMethods are the request and reply types of the operator methods,
// merged into DefaultRegistry.
func operatorMethods() map[string]methodTypes {
	return map[string]methodTypes{
		MethodOperatorRaftGetConfiguration:      method[DCSpecificRequest, RaftConfigurationResponse](),
		MethodOperatorRaftRemovePeerByAddress:   method[RaftRemovePeerRequest, struct{}](),
		MethodOperatorRaftRemovePeerByID:        method[RaftRemovePeerRequest, struct{}](),
		MethodOperatorTransferLeader:            method[TransferLeaderRequest, TransferLeaderResponse](),
		MethodOperatorAutopilotGetConfiguration: method[DCSpecificRequest, state.AutopilotConfig](),
		MethodOperatorAutopilotSetConfiguration: method[AutopilotSetConfigRequest, bool](),
		MethodOperatorServerHealth:              method[DCSpecificRequest, OperatorHealthReply](),
		MethodOperatorAutopilotState:            method[DCSpecificRequest, AutopilotStateReply](),
		MethodOperatorRaftStats:                 method[RaftStatsRequest, RaftStats](),
	}
}

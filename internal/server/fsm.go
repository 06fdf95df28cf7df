package server

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// MessageType is the first byte of every Raft log command; the rest is the
// encoded request (msgpack, or JSON in older logs: see command.go).
type MessageType uint8

// Message types. Never renumber: they are in every Raft log on disk.
const (
	RegisterRequestType   MessageType = 0
	DeregisterRequestType MessageType = 1
	KVSRequestType        MessageType = 2
	// SessionRequestType creates or destroys a session (endpoint_session.go).
	SessionRequestType MessageType = 3
	// TxnRequestType applies a transaction (endpoint_txn.go).
	TxnRequestType MessageType = 8
	// AutopilotRequestType sets the autopilot configuration (autopilot_fsm.go).
	AutopilotRequestType MessageType = 9
)

// IgnoreUnknownTypeFlag marks a command that servers which do not know its
// type may skip. Without it an unknown type stops the server, because
// skipping a command silently would make its state diverge.
const IgnoreUnknownTypeFlag MessageType = 0x80

// fsm applies committed Raft entries to the state store. Raft calls Apply,
// Snapshot and Restore from one goroutine (Persist may run concurrently
// with later Applies, on its own snapshot view).
type fsm struct {
	logger   *slog.Logger
	handlers map[MessageType]func(idx uint64, body []byte) any

	mu    sync.RWMutex // guards state (swapped by Restore)
	state *state.Store
}

func newFSM(logger *slog.Logger) (*fsm, error) {
	st, err := state.NewStore()
	if err != nil {
		return nil, err
	}
	f := &fsm{logger: logger, state: st}
	f.handlers = map[MessageType]func(uint64, []byte) any{
		RegisterRequestType:   f.applyRegister,
		DeregisterRequestType: f.applyDeregister,
		KVSRequestType:        f.applyKVS,
		AutopilotRequestType:  f.applyAutopilot,
		SessionRequestType:    f.applySession,
		TxnRequestType:        f.applyTxn,
	}
	return f, nil
}

// State returns the current state store.
func (f *fsm) State() *state.Store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

// Apply implements raft.FSM. It returns the command's result: a bool for
// KV operations, nil for catalog writes, or an error.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	t := MessageType(l.Data[0])
	ignorable := t&IgnoreUnknownTypeFlag != 0
	t &^= IgnoreUnknownTypeFlag
	h, ok := f.handlers[t]
	if !ok {
		if ignorable {
			f.logger.Warn("ignoring unknown raft command type", "type", int(t), "index", l.Index)
			return nil
		}
		// Skipping would make this server's state diverge from the others.
		panic(fmt.Sprintf("server: unknown raft command type %d at index %d", t, l.Index))
	}
	return h(l.Index, l.Data[1:])
}

func (f *fsm) applyKVS(idx uint64, body []byte) any {
	var req rpc.KVSRequest
	if err := decodeCommand(body, &req); err != nil {
		return fmt.Errorf("server: decode kvs command: %w", err)
	}
	st := f.State()
	e := &req.Entry
	switch req.Op {
	case rpc.KVSet:
		if err := st.KVSet(idx, e); err != nil {
			return err
		}
		return true
	case rpc.KVCAS:
		ok, err := st.KVSetCAS(idx, e)
		if err != nil {
			return err
		}
		return ok
	case rpc.KVDelete:
		if err := st.KVDelete(idx, e.Key); err != nil {
			return err
		}
		return true
	case rpc.KVDeleteCAS:
		ok, err := st.KVDeleteCAS(idx, e.ModifyIndex, e.Key)
		if err != nil {
			return err
		}
		return ok
	case rpc.KVDeleteTree:
		if err := st.KVDeleteTree(idx, e.Key); err != nil {
			return err
		}
		return true
	case rpc.KVLock:
		ok, err := st.KVLock(idx, e)
		if err != nil {
			return err
		}
		return ok
	case rpc.KVUnlock:
		ok, err := st.KVUnlock(idx, e)
		if err != nil {
			return err
		}
		return ok
	default:
		return fmt.Errorf("server: kv operation %q is not supported: %w", req.Op, rpc.ErrBadRequest)
	}
}

func (f *fsm) applyRegister(idx uint64, body []byte) any {
	var req rpc.RegisterRequest
	if err := decodeCommand(body, &req); err != nil {
		return fmt.Errorf("server: decode register command: %w", err)
	}
	return f.State().EnsureRegistration(idx, registrationFromRequest(&req))
}

func (f *fsm) applyDeregister(idx uint64, body []byte) any {
	var req rpc.DeregisterRequest
	if err := decodeCommand(body, &req); err != nil {
		return fmt.Errorf("server: decode deregister command: %w", err)
	}
	st := f.State()
	if req.ServiceID == "" && req.CheckID == "" {
		return st.DeleteNode(idx, req.Node)
	}
	if req.ServiceID != "" {
		if err := st.DeleteService(idx, req.Node, req.ServiceID); err != nil {
			return err
		}
	}
	if req.CheckID != "" {
		if err := st.DeleteCheck(idx, req.Node, req.CheckID); err != nil {
			return err
		}
	}
	return nil
}

// registrationFromRequest converts a validated register request.
func registrationFromRequest(req *rpc.RegisterRequest) *state.Registration {
	reg := &state.Registration{
		Node: &state.Node{
			ID: req.ID, Node: req.Node, Address: req.Address, Datacenter: req.Datacenter,
			TaggedAddresses: req.TaggedAddresses, Meta: req.NodeMeta,
		},
		Service:        req.Service,
		Checks:         req.Checks,
		SkipNodeUpdate: req.SkipNodeUpdate,
	}
	if req.Check != nil {
		reg.Checks = append(append([]*state.HealthCheck(nil), reg.Checks...), req.Check)
	}
	return reg
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.State().Snapshot()}, nil
}

// Restore implements raft.FSM: it replaces the state store with the one in
// the snapshot and wakes every blocking query on the old one.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := state.Restore(rc)
	if err != nil {
		return fmt.Errorf("server: restore snapshot: %w", err)
	}
	f.mu.Lock()
	old := f.state
	f.state = st
	f.mu.Unlock()
	old.Abandon()
	return nil
}

type fsmSnapshot struct {
	snap *state.Snapshot
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.Persist(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("server: close snapshot: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() { s.snap.Release() }

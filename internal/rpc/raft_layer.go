package rpc

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer is the raft.StreamLayer of the shared server port: Accept
// yields the Mux's Raft connections and Dial opens a connection to another
// server's port and writes the Raft type byte first.
type RaftLayer struct {
	addr net.Addr
	ln   net.Listener
}

var _ raft.StreamLayer = (*RaftLayer)(nil)

// NewRaftLayer returns the Raft stream layer over mux. advertise is the
// address other servers reach this one at (it becomes this server's Raft
// address); nil means the mux listener's address.
func NewRaftLayer(advertise net.Addr, mux *Mux) *RaftLayer {
	if advertise == nil {
		advertise = mux.Addr()
	}
	return &RaftLayer{addr: advertise, ln: mux.RaftListener()}
}

// Accept implements net.Listener.
func (l *RaftLayer) Accept() (net.Conn, error) { return l.ln.Accept() }

// Close implements net.Listener; it stops Raft's accepts only, not the Mux.
func (l *RaftLayer) Close() error { return l.ln.Close() }

// Addr implements net.Listener and returns the advertised address.
func (l *RaftLayer) Addr() net.Addr { return l.addr }

// Dial implements raft.StreamLayer.
func (l *RaftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial raft %s: %w", address, err)
	}
	_ = conn.SetWriteDeadline(deadline)
	if _, err := conn.Write([]byte{TypeRaft}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("rpc: raft handshake with %s: %w", address, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

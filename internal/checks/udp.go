package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// DefaultUDPPayload is the datagram a UDP check sends when none is set.
var DefaultUDPPayload = []byte("cairn udp health check")

// UDPConfig configures a UDP check.
type UDPConfig struct {
	ID       string
	Address  string // host:port
	Interval time.Duration
	Timeout  time.Duration // default DefaultTimeout
	Payload  []byte        // default DefaultUDPPayload
}

// UDP is a check that sends a datagram every interval and waits up to the
// timeout for an answer. As in Consul, any reply is passing and so is
// silence until the timeout (UDP cannot tell a quiet server from a missing
// one); an error, such as the ICMP port-unreachable a closed port answers
// with, is critical.
type UDP struct {
	*intervalRunner
}

// NewUDP returns a UDP check; it runs from Start until Stop.
func NewUDP(cfg UDPConfig, n Notifier) *UDP {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if len(cfg.Payload) == 0 {
		cfg.Payload = DefaultUDPPayload
	}
	p := func(ctx context.Context) (string, string) { return probeUDP(ctx, cfg) }
	return &UDP{newIntervalRunner(cfg.ID, cfg.Interval, p, n, nil)}
}

func probeUDP(ctx context.Context, cfg UDPConfig) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", cfg.Address)
	if err != nil {
		return "critical", fmt.Sprintf("UDP %s: %v", cfg.Address, err)
	}
	defer func() { _ = conn.Close() }()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	// Stop (ctx cancelled before the deadline) unblocks the read at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	if _, err := conn.Write(cfg.Payload); err != nil {
		return "critical", fmt.Sprintf("UDP %s: send: %v", cfg.Address, err)
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err == nil {
		return "passing", fmt.Sprintf("UDP %s: Success (%d bytes received)", cfg.Address, n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "passing", fmt.Sprintf("UDP %s: Success (no reply within %s)", cfg.Address, cfg.Timeout)
	}
	return "critical", fmt.Sprintf("UDP %s: %v", cfg.Address, err)
}

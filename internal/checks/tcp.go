package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// TCPConfig configures a TCP check.
type TCPConfig struct {
	ID       string
	Address  string // host:port
	Interval time.Duration
	Timeout  time.Duration // default DefaultTimeout

	UseTLS        bool
	TLSServerName string
	TLSSkipVerify bool
}

// TCP is a check that opens a connection every interval: a successful
// connect (and TLS handshake with UseTLS) is passing, anything else
// critical.
type TCP struct {
	*intervalRunner
}

// NewTCP returns a TCP check; it runs from Start until Stop.
func NewTCP(cfg TCPConfig, n Notifier) *TCP {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	p := func(ctx context.Context) (string, string) { return probeTCP(ctx, cfg) }
	return &TCP{newIntervalRunner(cfg.ID, cfg.Interval, p, n, nil)}
}

func probeTCP(ctx context.Context, cfg TCPConfig) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return "critical", fmt.Sprintf("TCP connect %s: %v", cfg.Address, err)
	}
	defer func() { _ = conn.Close() }()
	if cfg.UseTLS {
		serverName := cfg.TLSServerName
		if serverName == "" {
			// Verify against the dialled host, as an HTTPS client would.
			serverName, _, _ = net.SplitHostPort(cfg.Address)
		}
		tc := tls.Client(conn, &tls.Config{
			InsecureSkipVerify: cfg.TLSSkipVerify, //nolint:gosec // user-configured tls_skip_verify
			ServerName:         serverName,
		})
		if err := tc.HandshakeContext(ctx); err != nil {
			return "critical", fmt.Sprintf("TCP+TLS connect %s: %v", cfg.Address, err)
		}
		return "passing", fmt.Sprintf("TCP+TLS connect %s: Success", cfg.Address)
	}
	return "passing", fmt.Sprintf("TCP connect %s: Success", cfg.Address)
}

package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// H2PingConfig configures an H2PING check.
type H2PingConfig struct {
	ID       string
	Address  string // host:port
	Interval time.Duration
	Timeout  time.Duration // default DefaultTimeout

	// UseTLS speaks HTTP/2 over TLS (ALPN "h2"); without it the check uses
	// cleartext HTTP/2 with prior knowledge (h2c).
	UseTLS        bool
	TLSServerName string
	TLSSkipVerify bool
}

// H2Ping is a check that opens an HTTP/2 connection every interval and
// sends a PING frame: an acknowledged ping is passing, anything else
// critical.
type H2Ping struct {
	*intervalRunner
}

// NewH2Ping returns an H2PING check; it runs from Start until Stop.
func NewH2Ping(cfg H2PingConfig, n Notifier) *H2Ping {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	p := func(ctx context.Context) (string, string) { return probeH2Ping(ctx, cfg) }
	return &H2Ping{newIntervalRunner(cfg.ID, cfg.Interval, p, n, nil)}
}

func probeH2Ping(ctx context.Context, cfg H2PingConfig) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if cfg.UseTLS {
		d := &tls.Dialer{Config: &tls.Config{
			NextProtos:         []string{http2.NextProtoTLS},
			InsecureSkipVerify: cfg.TLSSkipVerify, //nolint:gosec // user-configured tls_skip_verify
			ServerName:         cfg.TLSServerName,
		}}
		conn, err = d.DialContext(ctx, "tcp", cfg.Address)
		if err == nil {
			if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
				_ = conn.Close()
				return "critical", fmt.Sprintf("HTTP2 ping %s: server did not negotiate h2 (got %q)", cfg.Address, p)
			}
		}
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", cfg.Address)
	}
	if err != nil {
		return "critical", fmt.Sprintf("HTTP2 ping %s: %v", cfg.Address, err)
	}
	// net/http's own ClientConn has no Ping, so this uses x/net/http2.
	//lint:ignore SA1019 the replacement (net/http) cannot send PING frames
	tr := &http2.Transport{AllowHTTP: !cfg.UseTLS}
	//lint:ignore SA1019 see above
	cc, err := tr.NewClientConn(conn)
	if err != nil {
		_ = conn.Close()
		return "critical", fmt.Sprintf("HTTP2 ping %s: %v", cfg.Address, err)
	}
	defer func() { _ = cc.Close() }()
	if err := cc.Ping(ctx); err != nil {
		return "critical", fmt.Sprintf("HTTP2 ping %s: %v", cfg.Address, err)
	}
	return "passing", fmt.Sprintf("HTTP2 ping %s: success", cfg.Address)
}

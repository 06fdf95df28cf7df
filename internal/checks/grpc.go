package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// GRPCConfig configures a gRPC check.
type GRPCConfig struct {
	ID string
	// Target is "host:port" or "host:port/service": the optional part after
	// the first slash is the service name sent in the health request (empty
	// asks about the server as a whole).
	Target   string
	Interval time.Duration
	Timeout  time.Duration // default DefaultTimeout

	UseTLS        bool
	TLSServerName string
	TLSSkipVerify bool
}

// GRPC is a check that calls grpc.health.v1.Health/Check every interval:
// SERVING is passing, any other answer or error critical.
type GRPC struct {
	*intervalRunner
}

// NewGRPC returns a gRPC check; it runs from Start until Stop.
func NewGRPC(cfg GRPCConfig, n Notifier) *GRPC {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	p := func(ctx context.Context) (string, string) { return probeGRPC(ctx, cfg) }
	return &GRPC{newIntervalRunner(cfg.ID, cfg.Interval, p, n, nil)}
}

// SplitGRPCTarget splits "host:port/service" into its address and service.
func SplitGRPCTarget(target string) (addr, service string) {
	addr, service, _ = strings.Cut(target, "/")
	return addr, service
}

func probeGRPC(ctx context.Context, cfg GRPCConfig) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	addr, service := SplitGRPCTarget(cfg.Target)
	creds := insecure.NewCredentials()
	if cfg.UseTLS {
		creds = credentials.NewTLS(&tls.Config{
			InsecureSkipVerify: cfg.TLSSkipVerify, //nolint:gosec // user-configured tls_skip_verify
			ServerName:         cfg.TLSServerName,
		})
	}
	// A fresh connection per probe: a long-lived one would hide a server
	// that stopped accepting connections and would reconnect with backoff.
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return "critical", fmt.Sprintf("gRPC check %s: %v", cfg.Target, err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "critical", fmt.Sprintf("gRPC check %s: %v", cfg.Target, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return "critical", fmt.Sprintf("gRPC check %s: status %s", cfg.Target, st)
	}
	return "passing", fmt.Sprintf("gRPC check %s: success", cfg.Target)
}

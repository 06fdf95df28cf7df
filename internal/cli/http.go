package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/consul/api"
)

// httpFlags are the connection flags every client command takes, as in
// Consul: -http-addr, -token, -token-file, -datacenter, -stale, plus TLS
// paths. Unset flags fall back to the CONSUL_HTTP_* environment variables
// that api.DefaultConfig reads.
type httpFlags struct {
	addr       string
	token      string
	tokenFile  string
	datacenter string
	stale      bool
	caFile     string
	clientCert string
	clientKey  string
	tlsServer  string
}

func (h *httpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.addr, "http-addr", "", "The `address` and port of the Cairn HTTP agent (CONSUL_HTTP_ADDR).")
	fs.StringVar(&h.token, "token", "", "ACL token to use in the request (CONSUL_HTTP_TOKEN).")
	fs.StringVar(&h.tokenFile, "token-file", "", "File containing the ACL token (CONSUL_HTTP_TOKEN_FILE).")
	fs.StringVar(&h.datacenter, "datacenter", "", "Name of the datacenter to query.")
	fs.BoolVar(&h.stale, "stale", false, "Permit any server to answer the read.")
	fs.StringVar(&h.caFile, "ca-file", "", "CA file for TLS (CONSUL_CACERT).")
	fs.StringVar(&h.clientCert, "client-cert", "", "Client certificate for TLS (CONSUL_CLIENT_CERT).")
	fs.StringVar(&h.clientKey, "client-key", "", "Client key for TLS (CONSUL_CLIENT_KEY).")
	fs.StringVar(&h.tlsServer, "tls-server-name", "", "SNI name for TLS (CONSUL_TLS_SERVER_NAME).")
}

func (h *httpFlags) client() (*api.Client, error) {
	cfg := api.DefaultConfig()
	if h.addr != "" {
		cfg.Address = h.addr
	}
	if h.token != "" {
		cfg.Token = h.token
	}
	if h.tokenFile != "" {
		b, err := os.ReadFile(h.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading token file: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if h.datacenter != "" {
		cfg.Datacenter = h.datacenter
	}
	if h.caFile != "" {
		cfg.TLSConfig.CAFile = h.caFile
	}
	if h.clientCert != "" {
		cfg.TLSConfig.CertFile = h.clientCert
	}
	if h.clientKey != "" {
		cfg.TLSConfig.KeyFile = h.clientKey
	}
	if h.tlsServer != "" {
		cfg.TLSConfig.Address = h.tlsServer
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating API client: %w", err)
	}
	return c, nil
}

func (h *httpFlags) queryOptions() *api.QueryOptions {
	return &api.QueryOptions{AllowStale: h.stale}
}

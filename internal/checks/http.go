package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HTTPConfig configures an HTTP check.
type HTTPConfig struct {
	ID       string
	URL      string
	Method   string // default GET
	Header   map[string][]string
	Body     string
	Interval time.Duration
	Timeout  time.Duration // default DefaultTimeout

	TLSServerName string
	TLSSkipVerify bool
	// FollowRedirects makes the check follow redirects; by default a
	// redirect response is the result (and so critical).
	FollowRedirects bool
	OutputMaxSize   int // default DefaultOutputMaxSize
}

// HTTP is a check that requests a URL every interval: a 2xx response is
// passing, 429 Too Many Requests is warning, anything else (including a
// redirect, a timeout or a connection error) is critical.
type HTTP struct {
	*intervalRunner
}

// NewHTTP returns an HTTP check; it runs from Start until Stop.
func NewHTTP(cfg HTTPConfig, n Notifier) *HTTP {
	if cfg.Method == "" {
		cfg.Method = http.MethodGet
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	transport := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: cfg.TLSSkipVerify, //nolint:gosec // user-configured tls_skip_verify
			ServerName:         cfg.TLSServerName,
		},
	}
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout}
	if !cfg.FollowRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	p := func(ctx context.Context) (string, string) { return probeHTTP(ctx, client, cfg) }
	return &HTTP{newIntervalRunner(cfg.ID, cfg.Interval, p, n, transport.CloseIdleConnections)}
}

func probeHTTP(ctx context.Context, client *http.Client, cfg HTTPConfig) (string, string) {
	var body io.Reader
	if cfg.Body != "" {
		body = strings.NewReader(cfg.Body)
	}
	req, err := http.NewRequestWithContext(ctx, cfg.Method, cfg.URL, body)
	if err != nil {
		return "critical", fmt.Sprintf("HTTP %s %s: invalid request: %v", cfg.Method, cfg.URL, err)
	}
	for k, vs := range cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Consul Health Check")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/plain, text/*, */*")
	}
	resp, err := client.Do(req)
	if err != nil {
		return "critical", fmt.Sprintf("HTTP %s %s: %v", cfg.Method, cfg.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	max := cfg.OutputMaxSize
	if max <= 0 {
		max = DefaultOutputMaxSize
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(max)))
	// Drain a little more so the server sees a clean close; bounded.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	output := truncate(fmt.Sprintf("HTTP %s %s: %s Output: %s", cfg.Method, cfg.URL, resp.Status, b), max)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return "passing", output
	case resp.StatusCode == http.StatusTooManyRequests:
		return "warning", output
	}
	return "critical", output
}

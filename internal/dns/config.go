package dns

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/cairn-io/cairn/internal/rpc"
)

// Sentinel errors of the package.
var (
	// ErrInvalidConfig wraps every validation failure of Config.
	ErrInvalidConfig = errors.New("dns: invalid config")
	// ErrServerClosed is returned by ListenAndServe after Shutdown.
	ErrServerClosed = errors.New("dns: server closed")
	// ErrAlreadyStarted is returned by a second ListenAndServe.
	ErrAlreadyStarted = errors.New("dns: server already started")
)

// Defaults, as Consul's dns_config.
const (
	DefaultDomain          = "consul."
	DefaultRecursorTimeout = 2 * time.Second
	DefaultMaxStale        = 87600 * time.Hour
	DefaultUDPAnswerLimit  = 3
	defaultRecursorPort    = "53"
)

// Config is everything the DNS server needs. Zero values of durations,
// Domain and UDPAnswerLimit mean the defaults; the two booleans that default
// to true in Consul (AllowStale, EnableNodeMetaTXT) cannot be told apart from
// an explicit false, so start from DefaultConfig when mapping a RuntimeConfig.
type Config struct {
	// Caller is the only way the server reads the catalog and health.
	Caller     rpc.Caller
	Datacenter string
	NodeName   string

	Domain    string // default "consul."
	AltDomain string // "" = none

	// Recursors are "ip" or "ip:port" (port 53 when missing). Names outside
	// the domains are forwarded to them in order; the first that answers
	// with NOERROR or NXDOMAIN wins.
	Recursors       []string
	RecursorTimeout time.Duration // per recursor; default 2s

	AllowStale bool          // read from any server (default true)
	MaxStale   time.Duration // re-read from the leader when staler; default 87600h

	NodeTTL time.Duration
	// ServiceTTL maps service names to TTLs. A key ending in "*" matches
	// every service with that prefix ("*" alone matches all); an exact key
	// wins over wildcards and the longest wildcard wins among them.
	ServiceTTL map[string]time.Duration

	OnlyPassing    bool // drop instances with a warning check too
	EnableTruncate bool // set TC when a UDP answer was trimmed
	UDPAnswerLimit int  // answers in a UDP response without EDNS; default 3
	ARecordLimit   int  // A/AAAA answers (UDP and TCP); 0 = no limit

	// EnableNodeMetaTXT adds node meta TXT records to the additional
	// section (enable_additional_node_meta_txt, default true).
	EnableNodeMetaTXT bool

	// DisableCache makes every lookup an RPC. By default lookups are
	// answered from memory, kept fresh by background blocking queries
	// (cache.go): a catalog change shows in DNS as soon as the blocking
	// query wakes.
	DisableCache bool
	// CacheMaxEntries bounds the cached reads (one per service and
	// datacenter, one per node); the least recently used goes first.
	// Default DefaultCacheMaxEntries.
	CacheMaxEntries int
	// CacheIdleTimeout stops refreshing an entry that no lookup used for
	// this long. Default DefaultCacheIdleTimeout.
	CacheIdleTimeout time.Duration

	Logger *slog.Logger
}

// DefaultConfig returns a Config with Consul's defaults; callers fill in
// Caller, Datacenter and NodeName.
func DefaultConfig() Config {
	return Config{
		Domain:            DefaultDomain,
		RecursorTimeout:   DefaultRecursorTimeout,
		AllowStale:        true,
		MaxStale:          DefaultMaxStale,
		UDPAnswerLimit:    DefaultUDPAnswerLimit,
		EnableNodeMetaTXT: true,
	}
}

// normalize validates cfg and fills in defaults.
func (cfg *Config) normalize() error {
	if cfg.Caller == nil {
		return fmt.Errorf("%w: Caller is required", ErrInvalidConfig)
	}
	if cfg.Datacenter == "" {
		return fmt.Errorf("%w: Datacenter is required", ErrInvalidConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	var err error
	if cfg.Domain, err = normalizeDomain("domain", cfg.Domain); err != nil {
		return err
	}
	if cfg.AltDomain != "" {
		if cfg.AltDomain, err = normalizeDomain("alt_domain", cfg.AltDomain); err != nil {
			return err
		}
		if cfg.AltDomain == cfg.Domain {
			return fmt.Errorf("%w: alt_domain %q equals domain", ErrInvalidConfig, cfg.AltDomain)
		}
	}
	recs := make([]string, 0, len(cfg.Recursors))
	for _, r := range cfg.Recursors {
		addr, err := normalizeRecursor(r)
		if err != nil {
			return err
		}
		recs = append(recs, addr)
	}
	cfg.Recursors = recs
	switch {
	case cfg.RecursorTimeout < 0:
		return fmt.Errorf("%w: recursor_timeout %s is negative", ErrInvalidConfig, cfg.RecursorTimeout)
	case cfg.RecursorTimeout == 0:
		cfg.RecursorTimeout = DefaultRecursorTimeout
	}
	switch {
	case cfg.MaxStale < 0:
		return fmt.Errorf("%w: max_stale %s is negative", ErrInvalidConfig, cfg.MaxStale)
	case cfg.MaxStale == 0:
		cfg.MaxStale = DefaultMaxStale
	}
	if cfg.NodeTTL < 0 {
		return fmt.Errorf("%w: node_ttl %s is negative", ErrInvalidConfig, cfg.NodeTTL)
	}
	for k, v := range cfg.ServiceTTL {
		if v < 0 {
			return fmt.Errorf("%w: service_ttl %q: %s is negative", ErrInvalidConfig, k, v)
		}
		if i := strings.IndexByte(k, '*'); i >= 0 && i != len(k)-1 {
			return fmt.Errorf("%w: service_ttl %q: '*' is only allowed at the end", ErrInvalidConfig, k)
		}
	}
	switch {
	case cfg.UDPAnswerLimit < 0:
		return fmt.Errorf("%w: udp_answer_limit %d is negative", ErrInvalidConfig, cfg.UDPAnswerLimit)
	case cfg.UDPAnswerLimit == 0:
		cfg.UDPAnswerLimit = DefaultUDPAnswerLimit
	}
	switch {
	case cfg.CacheMaxEntries < 0:
		return fmt.Errorf("%w: cache max entries %d is negative", ErrInvalidConfig, cfg.CacheMaxEntries)
	case cfg.CacheMaxEntries == 0:
		cfg.CacheMaxEntries = DefaultCacheMaxEntries
	}
	switch {
	case cfg.CacheIdleTimeout < 0:
		return fmt.Errorf("%w: cache idle timeout %s is negative", ErrInvalidConfig, cfg.CacheIdleTimeout)
	case cfg.CacheIdleTimeout == 0:
		cfg.CacheIdleTimeout = DefaultCacheIdleTimeout
	}
	if cfg.ARecordLimit < 0 {
		return fmt.Errorf("%w: a_record_limit %d is negative", ErrInvalidConfig, cfg.ARecordLimit)
	}
	return nil
}

func normalizeDomain(key, d string) (string, error) {
	d = strings.ToLower(dns.Fqdn(d))
	if d == "." {
		return "", fmt.Errorf("%w: %s must not be the root", ErrInvalidConfig, key)
	}
	if _, ok := dns.IsDomainName(d); !ok || strings.ContainsAny(d, `\ `) {
		return "", fmt.Errorf("%w: %s %q is not a valid domain name", ErrInvalidConfig, key, d)
	}
	return d, nil
}

func normalizeRecursor(r string) (string, error) {
	if r == "" {
		return "", fmt.Errorf("%w: empty recursor", ErrInvalidConfig)
	}
	host, port, err := net.SplitHostPort(r)
	if err != nil {
		// No port: a bare IPv4/IPv6 address or host name.
		host, port = strings.Trim(r, "[]"), defaultRecursorPort
	}
	if host == "" {
		return "", fmt.Errorf("%w: recursor %q has no host", ErrInvalidConfig, r)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("%w: recursor %q has an invalid port", ErrInvalidConfig, r)
	}
	return net.JoinHostPort(host, port), nil
}

// ttlTable resolves service_ttl with exact keys and "prefix*" wildcards.
type ttlTable struct {
	exact    map[string]uint32
	prefixes []ttlPrefix // longest first
}

type ttlPrefix struct {
	prefix string
	ttl    uint32
}

func newTTLTable(m map[string]time.Duration) ttlTable {
	t := ttlTable{exact: make(map[string]uint32, len(m))}
	for k, v := range m {
		k = strings.ToLower(k)
		if p, ok := strings.CutSuffix(k, "*"); ok {
			t.prefixes = append(t.prefixes, ttlPrefix{prefix: p, ttl: seconds(v)})
			continue
		}
		t.exact[k] = seconds(v)
	}
	sort.Slice(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].prefix) > len(t.prefixes[j].prefix) })
	return t
}

// lookup returns the TTL for a lowercase service name.
func (t ttlTable) lookup(service string) uint32 {
	if v, ok := t.exact[service]; ok {
		return v
	}
	for _, p := range t.prefixes {
		if strings.HasPrefix(service, p.prefix) {
			return p.ttl
		}
	}
	return 0
}

func seconds(d time.Duration) uint32 {
	s := d / time.Second
	if s > 1<<31-1 {
		s = 1<<31 - 1
	}
	return uint32(s)
}

package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	datacenterRe = regexp.MustCompile(`^[a-z0-9_-]+$`)
	uuidRe       = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	dnsLabelRe   = regexp.MustCompile(`^[a-zA-Z0-9-]+$`)
)

// logLevels are the accepted log levels; Load maps "warning" and "err" to
// "warn" and "error".
var logLevels = map[string]bool{"trace": true, "debug": true, "info": true, "warn": true, "error": true}

// privateIPv4 finds the address to advertise when bind_addr is 0.0.0.0. A
// variable so tests need not depend on the host's interfaces.
var privateIPv4 = func() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("listing interface addresses: %w", err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip4 := ipn.IP.To4(); ip4 != nil && ip4.IsPrivate() {
			return ip4.String(), nil
		}
	}
	return "", errors.New("no private IPv4 address found")
}

// finalize fills values that depend on other values (defaults that differ
// for servers and clients, the advertise address, normalised spellings).
func finalize(c *RuntimeConfig, set map[string]bool, skipAdvertise bool) ([]string, error) {
	var warnings []string
	c.Datacenter = strings.ToLower(strings.TrimSpace(c.Datacenter))
	c.PrimaryDatacenter = strings.ToLower(strings.TrimSpace(c.PrimaryDatacenter))
	if c.PrimaryDatacenter == "" {
		c.PrimaryDatacenter = c.Datacenter
	}
	c.NodeID = strings.ToLower(strings.TrimSpace(c.NodeID))
	c.LogLevel = normaliseLogLevel(c.LogLevel)
	c.Domain = dotted(c.Domain)
	c.AltDomain = dotted(c.AltDomain)

	if c.Server && !c.Bootstrap && c.BootstrapExpect == 1 {
		warnings = append(warnings, "bootstrap_expect = 1: this is the same as bootstrap mode (a single server elects itself)")
		c.Bootstrap = true
		c.BootstrapExpect = 0
	}
	warnings = append(warnings, unimplementedWarnings(c, set)...)
	if !set["leave_on_terminate"] {
		c.LeaveOnTerminate = !c.Server
	}
	if !set["skip_leave_on_interrupt"] {
		c.SkipLeaveOnInterrupt = c.Server
	}

	if c.AdvertiseAddr == "" {
		ip := net.ParseIP(c.BindAddr)
		switch {
		case ip != nil && !ip.IsUnspecified():
			c.AdvertiseAddr = c.BindAddr
		case ip != nil && !skipAdvertise:
			addr, err := privateIPv4()
			if err != nil {
				return warnings, invalidf("cannot pick an advertise address (bind_addr is %s): %v; set advertise_addr or bind_addr", c.BindAddr, err)
			}
			c.AdvertiseAddr = addr
		}
	}
	if c.AdvertiseAddrWAN == "" {
		c.AdvertiseAddrWAN = c.AdvertiseAddr
	}
	return warnings, nil
}

func normaliseLogLevel(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "warning":
		return "warn"
	case "err":
		return "error"
	}
	return s
}

func dotted(s string) string {
	s = strings.TrimSpace(s)
	if s != "" && !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// Validate reports every rule the configuration breaks, joined into one
// error (each wraps ErrInvalid or ErrValue). It does not modify c.
func (c *RuntimeConfig) Validate() error {
	_, err := c.validate()
	return err
}

func (c *RuntimeConfig) validate() ([]string, error) {
	var (
		errs     []error
		warnings []string
	)
	bad := func(format string, args ...any) { errs = append(errs, invalidf(format, args...)) }

	switch {
	case c.NodeName == "":
		bad("node_name cannot be empty (and the host name could not be read)")
	case len(c.NodeName) > 63:
		warnings = append(warnings, fmt.Sprintf("node_name %q will not be discoverable via DNS: longer than 63 characters", c.NodeName))
	case !dnsLabelRe.MatchString(c.NodeName):
		warnings = append(warnings, fmt.Sprintf("node_name %q will not be discoverable via DNS due to invalid characters; valid characters are letters, digits and dashes", c.NodeName))
	}
	if !datacenterRe.MatchString(strings.ToLower(c.Datacenter)) {
		bad("datacenter %q: may only contain lowercase letters, digits, - and _", c.Datacenter)
	}
	if c.PrimaryDatacenter != "" && !datacenterRe.MatchString(strings.ToLower(c.PrimaryDatacenter)) {
		bad("primary_datacenter %q: may only contain lowercase letters, digits, - and _", c.PrimaryDatacenter)
	}
	if c.NodeID != "" && !uuidRe.MatchString(strings.ToLower(c.NodeID)) {
		bad("node_id %q: must be a UUID like 8ba7b810-9dad-11d1-80b4-00c04fd430c8", c.NodeID)
	}

	if !c.Dev && c.DataDir == "" {
		if c.Server {
			bad("data_dir is required for server agents (only -dev runs without one)")
		} else {
			bad("data_dir is required for client agents (only -dev runs without one)")
		}
	}
	if c.Bootstrap && c.BootstrapExpect > 0 {
		bad("bootstrap and bootstrap_expect are mutually exclusive")
	}
	if c.BootstrapExpect < 0 {
		bad("bootstrap_expect cannot be negative, got %d", c.BootstrapExpect)
	}
	if c.Bootstrap && !c.Server {
		bad("bootstrap = true requires server = true")
	}
	if c.BootstrapExpect > 0 && !c.Server {
		bad("bootstrap_expect > 0 requires server = true")
	}
	if c.Server && c.BootstrapExpect > 1 && c.BootstrapExpect%2 == 0 {
		warnings = append(warnings, fmt.Sprintf("bootstrap_expect = %d is even: an odd number of servers tolerates the same failures with fewer machines", c.BootstrapExpect))
	}

	for _, p := range []struct {
		key     string
		v       int
		canStop bool
	}{
		{"ports.http", c.PortHTTP, true}, {"ports.https", c.PortHTTPS, true},
		{"ports.dns", c.PortDNS, true}, {"ports.serf_lan", c.PortSerfLAN, false},
		{"ports.serf_wan", c.PortSerfWAN, true}, {"ports.server", c.PortServer, false},
		{"ports.grpc", c.PortGRPC, true}, {"ports.grpc_tls", c.PortGRPCTLS, true},
	} {
		if err := checkPort(p.v); err != nil {
			bad("%s: %v", p.key, err)
		} else if p.v == -1 && !p.canStop {
			bad("%s cannot be disabled (-1)", p.key)
		}
	}

	if err := checkIP(c.BindAddr, false); err != nil {
		bad("bind_addr: %v", err)
	}
	if err := checkIPList(c.ClientAddr, false); err != nil {
		bad("client_addr: %v", err)
	}
	if c.AdvertiseAddr != "" {
		if err := checkIP(c.AdvertiseAddr, true); err != nil {
			bad("advertise_addr: %v", err)
		}
	}
	if c.AdvertiseAddrWAN != "" {
		if err := checkIP(c.AdvertiseAddrWAN, true); err != nil {
			bad("advertise_addr_wan: %v", err)
		}
	}
	for key, v := range map[string]string{"addresses.http": c.AddrHTTP, "addresses.https": c.AddrHTTPS, "addresses.dns": c.AddrDNS, "addresses.grpc": c.AddrGRPC} {
		if v == "" {
			continue
		}
		if err := checkIPList(v, key != "addresses.dns"); err != nil {
			bad("%s: %v", key, err)
		}
	}

	if !logLevels[normaliseLogLevel(c.LogLevel)] {
		bad("log_level %q is invalid (valid: trace, debug, info, warn, error)", c.LogLevel)
	}
	if c.RaftMultiplier < 1 || c.RaftMultiplier > 10 {
		bad("performance.raft_multiplier must be between 1 and 10, got %d", c.RaftMultiplier)
	}
	if c.RaftProtocol != 3 {
		bad("raft_protocol %d is not supported (only 3)", c.RaftProtocol)
	}
	if c.RaftSnapshotThreshold < 1 {
		bad("raft_snapshot_threshold must be positive, got %d", c.RaftSnapshotThreshold)
	}
	if c.RaftTrailingLogs < 0 {
		bad("raft_trailing_logs cannot be negative, got %d", c.RaftTrailingLogs)
	}
	switch c.ACL.DefaultPolicy {
	case "allow", "deny":
	default:
		bad("acl.default_policy %q is invalid (valid: allow, deny)", c.ACL.DefaultPolicy)
	}
	switch c.ACL.DownPolicy {
	case "allow", "deny", "extend-cache", "async-cache":
	default:
		bad("acl.down_policy %q is invalid (valid: allow, deny, extend-cache, async-cache)", c.ACL.DownPolicy)
	}
	if c.KVMaxValueSize == 0 {
		bad("limits.kv_max_value_size must be positive")
	}
	if c.TxnMaxReqLen == 0 {
		bad("limits.txn_max_req_len must be positive")
	}
	if c.HTTPMaxConnsPerClient < 0 {
		bad("limits.http_max_conns_per_client cannot be negative")
	}
	if c.SessionTTLMin <= 0 || c.SessionTTLMin > 24*time.Hour {
		bad("session_ttl_min must be between 1ns and 24h (the longest session TTL), got %s", c.SessionTTLMin)
	}
	if c.RetryInterval <= 0 {
		bad("retry_interval must be positive, got %s", c.RetryInterval)
	}
	if c.RetryMax < 0 {
		bad("retry_max cannot be negative, got %d", c.RetryMax)
	}
	for i, a := range c.RetryJoin {
		if strings.TrimSpace(a) == "" {
			bad("retry_join[%d] is empty", i)
		}
	}
	for i, a := range c.StartJoin {
		if strings.TrimSpace(a) == "" {
			bad("start_join[%d] is empty", i)
		}
	}
	if c.DefaultQueryTime <= 0 || c.MaxQueryTime <= 0 {
		bad("default_query_time and max_query_time must be positive")
	}
	if c.CheckUpdateInterval < 0 {
		bad("check_update_interval cannot be negative")
	}
	if c.Domain == "" || c.Domain == "." {
		bad("domain cannot be empty")
	}
	if c.AltDomain != "" && strings.EqualFold(dotted(c.AltDomain), dotted(c.Domain)) {
		bad("alt_domain cannot equal domain (%s)", c.Domain)
	}
	for _, r := range c.Recursors {
		if err := checkRecursor(r); err != nil {
			bad("recursors: %v", err)
		}
	}
	if c.DNS.UDPAnswerLimit < 0 || c.DNS.ARecordLimit < 0 {
		bad("dns_config.udp_answer_limit and a_record_limit cannot be negative")
	}
	return warnings, errors.Join(errs...)
}

func checkIP(s string, specific bool) error {
	if strings.Contains(s, "{{") {
		return fmt.Errorf("%q: go-sockaddr templates are not supported by cairn; use an IP address", s)
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	if specific && ip.IsUnspecified() {
		return fmt.Errorf("%q cannot be advertised; use a specific address", s)
	}
	return nil
}

// checkIPList checks a space-separated list of IPs (and unix:// sockets
// where allowed), as client_addr and addresses.* accept.
func checkIPList(s string, unixOK bool) error {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return errors.New("empty address")
	}
	for _, f := range fields {
		if strings.HasPrefix(f, "unix://") {
			if unixOK && len(f) > len("unix://") {
				continue
			}
			return fmt.Errorf("%q: unix sockets are not allowed here", f)
		}
		if err := checkIP(f, false); err != nil {
			return err
		}
	}
	return nil
}

func checkRecursor(s string) error {
	if net.ParseIP(s) != nil {
		return nil
	}
	host, p, err := net.SplitHostPort(s)
	if err == nil && net.ParseIP(host) != nil {
		if n, err := strconv.Atoi(p); err == nil && n >= 1 && n <= 65535 {
			return nil
		}
	}
	return fmt.Errorf("%q is not an IP address or IP:port", s)
}

// unimplementedWarnings names the keys that were set and are accepted,
// because Consul has them, but that configure something Cairn does not run
// yet, so the setting has no effect.
func unimplementedWarnings(c *RuntimeConfig, set map[string]bool) []string {
	var out []string
	for _, k := range []struct {
		key    string
		active bool   // the value asks for something
		why    string // what happens instead
		always bool   // warn even when set through a legacy key
	}{
		{"ports.https", c.PortHTTPS >= 0, "ignored (there is no HTTPS listener; TLS is not implemented)", false},
		{"addresses.https", true, "ignored (there is no HTTPS listener; TLS is not implemented)", false},
		{"ports.grpc", c.PortGRPC >= 0, "ignored (there is no gRPC listener)", false},
		{"ports.grpc_tls", c.PortGRPCTLS >= 0, "ignored (there is no gRPC listener)", false},
		{"addresses.grpc", true, "ignored (there is no gRPC listener)", false},
		{"log_file", c.LogFile != "", "ignored (logs go to stderr only)", false},
		{"ui_config.enabled", c.UIEnabled, "ignored (there is no web UI)", false},
		{"performance.leave_drain_time", true, "ignored (a leave does not wait for a drain)", false},
		{"disable_host_node_id", !c.DisableHostNodeID, "ignored (node IDs are random and kept in data_dir)", false},
		{"acl.enabled", c.ACL.Enabled, "ACLs are not enforced, so the agent refuses to start with acl.enabled on rather than run open", true},
	} {
		if (set[k.key] || k.always) && k.active {
			out = append(out, k.key+": not implemented by cairn yet; "+k.why)
		}
	}
	return out
}

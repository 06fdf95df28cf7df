package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flags holds the agent's command-line flags. A nil pointer (or empty slice)
// means the flag was not given, so only flags actually on the command line
// override config files. Tests can build a Flags by hand.
type Flags struct {
	Dev             *bool
	Server          *bool
	Bootstrap       *bool
	BootstrapExpect *int
	DataDir         *string

	ConfigFiles  []string // -config-file, repeatable
	ConfigDirs   []string // -config-dir, repeatable
	ConfigFormat *string  // -config-format json|hcl
	HCL          []string // -hcl snippets, repeatable

	NodeName          *string
	NodeID            *string
	Datacenter        *string
	BindAddr          *string // -bind
	ClientAddr        *string // -client
	AdvertiseAddr     *string // -advertise
	AdvertiseAddrWAN  *string // -advertise-wan
	DisableHostNodeID *bool

	PortHTTP    *int
	PortHTTPS   *int
	PortDNS     *int
	PortSerfLAN *int
	PortSerfWAN *int
	PortServer  *int
	PortGRPC    *int

	StartJoin     []string // -join
	RetryJoin     []string
	RetryInterval *time.Duration
	RetryMax      *int
	Rejoin        *bool // -rejoin

	LogLevel *string
	LogJSON  *bool
	LogFile  *string

	NodeMeta map[string]string // -node-meta key:value, repeatable

	EnableScriptChecks      *bool
	EnableLocalScriptChecks *bool

	UI        *bool
	Domain    *string
	AltDomain *string
	Recursors []string // -recursor

	DefaultQueryTime *time.Duration
	MaxQueryTime     *time.Duration

	// configPaths keeps -config-file and -config-dir in command-line order,
	// which is the order Consul reads them in.
	configPaths []string
}

// AddAgentFlags registers the agent's flags on fs (Consul's names, single
// dash Go flag syntax) and returns where their values land after fs.Parse.
func AddAgentFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	boolVar(fs, &f.Dev, "dev", "Start the agent in development mode: in-memory single server on 127.0.0.1.")
	boolVar(fs, &f.Server, "server", "Switch the agent to server mode.")
	boolVar(fs, &f.Bootstrap, "bootstrap", "Set the server to bootstrap mode.")
	intVar(fs, &f.BootstrapExpect, "bootstrap-expect", "Set the server to expect this many servers before bootstrapping.")
	stringVar(fs, &f.DataDir, "data-dir", "Path to a data directory to store agent state.")

	fs.Func("config-file", "Path to a config file in JSON or HCL format (by extension). Can be given several times.", func(s string) error {
		f.ConfigFiles = append(f.ConfigFiles, s)
		f.configPaths = append(f.configPaths, s)
		return nil
	})
	fs.Func("config-dir", "Path to a directory of config files (*.json, *.hcl) read in lexical order. Can be given several times.", func(s string) error {
		f.ConfigDirs = append(f.ConfigDirs, s)
		f.configPaths = append(f.configPaths, s)
		return nil
	})
	fs.Func("config-format", "Read config files in this format regardless of extension: json or hcl.", func(s string) error {
		if s != FormatJSON && s != FormatHCL {
			return fmt.Errorf("must be %q or %q", FormatJSON, FormatHCL)
		}
		f.ConfigFormat = &s
		return nil
	})
	sliceVar(fs, &f.HCL, "hcl", "An HCL config fragment; applied after config files. Can be given several times.")

	stringVar(fs, &f.NodeName, "node", "Name of this node. Must be unique in the cluster.")
	stringVar(fs, &f.NodeID, "node-id", "A unique UUID for this node.")
	stringVar(fs, &f.Datacenter, "datacenter", "Datacenter of the agent.")
	stringVar(fs, &f.Datacenter, "dc", "Deprecated: use -datacenter.")
	stringVar(fs, &f.BindAddr, "bind", "Address to bind for cluster communication.")
	stringVar(fs, &f.ClientAddr, "client", "Address to bind client interfaces (HTTP, DNS, gRPC).")
	stringVar(fs, &f.AdvertiseAddr, "advertise", "Address to advertise to other cluster members.")
	stringVar(fs, &f.AdvertiseAddrWAN, "advertise-wan", "Address to advertise on the WAN.")
	boolVar(fs, &f.DisableHostNodeID, "disable-host-node-id", "Do not derive the node ID from host information.")

	intVar(fs, &f.PortHTTP, "http-port", "HTTP API port (-1 disables).")
	intVar(fs, &f.PortHTTPS, "https-port", "HTTPS API port (-1 disables).")
	intVar(fs, &f.PortDNS, "dns-port", "DNS port (-1 disables).")
	intVar(fs, &f.PortSerfLAN, "serf-lan-port", "Serf LAN port.")
	intVar(fs, &f.PortSerfWAN, "serf-wan-port", "Serf WAN port (-1 disables).")
	intVar(fs, &f.PortServer, "server-port", "Server RPC port.")
	intVar(fs, &f.PortGRPC, "grpc-port", "gRPC port (-1 disables).")

	sliceVar(fs, &f.StartJoin, "join", "Address of an agent to join at start time. Can be given several times.")
	sliceVar(fs, &f.RetryJoin, "retry-join", "Address of an agent to join, retrying until it works. Can be given several times.")
	durationVar(fs, &f.RetryInterval, "retry-interval", "Time to wait between join attempts.")
	intVar(fs, &f.RetryMax, "retry-max", "Maximum number of join attempts (0 = forever).")
	boolVar(fs, &f.Rejoin, "rejoin", "Ignore a previous leave and try to rejoin the cluster.")

	stringVar(fs, &f.LogLevel, "log-level", "Log level: trace, debug, info, warn, error.")
	boolVar(fs, &f.LogJSON, "log-json", "Write logs as JSON.")
	stringVar(fs, &f.LogFile, "log-file", "Path to a file to write logs to.")

	fs.Func("node-meta", "Node metadata as key:value. Can be given several times.", func(s string) error {
		k, v, err := ParseNodeMeta(s)
		if err != nil {
			return err
		}
		if f.NodeMeta == nil {
			f.NodeMeta = map[string]string{}
		}
		f.NodeMeta[k] = v
		return nil
	})

	boolVar(fs, &f.EnableScriptChecks, "enable-script-checks", "Enable health checks that run scripts (any registration source).")
	boolVar(fs, &f.EnableLocalScriptChecks, "enable-local-script-checks", "Enable script checks defined in local config files only.")

	boolVar(fs, &f.UI, "ui", "Enable the built-in web UI.")
	stringVar(fs, &f.Domain, "domain", "DNS domain to answer for (default \"consul.\").")
	stringVar(fs, &f.AltDomain, "alt-domain", "Alternate DNS domain to answer for.")
	sliceVar(fs, &f.Recursors, "recursor", "Address of an upstream DNS server. Can be given several times.")

	durationVar(fs, &f.DefaultQueryTime, "default-query-time", "Default wait time of blocking queries.")
	durationVar(fs, &f.MaxQueryTime, "max-query-time", "Maximum wait time of blocking queries.")
	return f
}

// ParseNodeMeta splits a -node-meta argument "key:value". The value may be
// empty and may itself contain colons; the key must not be empty.
func ParseNodeMeta(s string) (k, v string, err error) {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("node meta %q: want key:value", s)
	}
	if k == "" {
		return "", "", fmt.Errorf("node meta %q: empty key", s)
	}
	return k, v, nil
}

// configSource turns the flags that were given into a source map with the
// same keys a config file uses, so one decoder handles both.
func (f *Flags) configSource() map[string]any {
	m := map[string]any{}
	ports := map[string]any{}
	putS := func(dst map[string]any, k string, p *string) {
		if p != nil {
			dst[k] = *p
		}
	}
	putB := func(k string, p *bool) {
		if p != nil {
			m[k] = *p
		}
	}
	putI := func(dst map[string]any, k string, p *int) {
		if p != nil {
			dst[k] = *p
		}
	}
	putD := func(k string, p *time.Duration) {
		if p != nil {
			m[k] = *p
		}
	}
	putL := func(k string, l []string) {
		if len(l) > 0 {
			a := make([]any, len(l))
			for i, s := range l {
				a[i] = s
			}
			m[k] = a
		}
	}
	putB("server", f.Server)
	putB("bootstrap", f.Bootstrap)
	putI(m, "bootstrap_expect", f.BootstrapExpect)
	putS(m, "data_dir", f.DataDir)
	putS(m, "node_name", f.NodeName)
	putS(m, "node_id", f.NodeID)
	putS(m, "datacenter", f.Datacenter)
	putS(m, "bind_addr", f.BindAddr)
	putS(m, "client_addr", f.ClientAddr)
	putS(m, "advertise_addr", f.AdvertiseAddr)
	putS(m, "advertise_addr_wan", f.AdvertiseAddrWAN)
	putB("disable_host_node_id", f.DisableHostNodeID)
	putI(ports, "http", f.PortHTTP)
	putI(ports, "https", f.PortHTTPS)
	putI(ports, "dns", f.PortDNS)
	putI(ports, "serf_lan", f.PortSerfLAN)
	putI(ports, "serf_wan", f.PortSerfWAN)
	putI(ports, "server", f.PortServer)
	putI(ports, "grpc", f.PortGRPC)
	if len(ports) > 0 {
		m["ports"] = ports
	}
	putL("start_join", f.StartJoin)
	putL("retry_join", f.RetryJoin)
	putD("retry_interval", f.RetryInterval)
	putI(m, "retry_max", f.RetryMax)
	putB("rejoin_after_leave", f.Rejoin)
	putS(m, "log_level", f.LogLevel)
	putB("log_json", f.LogJSON)
	putS(m, "log_file", f.LogFile)
	if len(f.NodeMeta) > 0 {
		nm := make(map[string]any, len(f.NodeMeta))
		for k, v := range f.NodeMeta {
			nm[k] = v
		}
		m["node_meta"] = nm
	}
	putB("enable_script_checks", f.EnableScriptChecks)
	putB("enable_local_script_checks", f.EnableLocalScriptChecks)
	if f.UI != nil {
		m["ui_config"] = map[string]any{"enabled": *f.UI}
	}
	putS(m, "domain", f.Domain)
	putS(m, "alt_domain", f.AltDomain)
	putL("recursors", f.Recursors)
	putD("default_query_time", f.DefaultQueryTime)
	putD("max_query_time", f.MaxQueryTime)
	return m
}

// paths returns -config-file and -config-dir values in command-line order.
func (f *Flags) paths() []string {
	if len(f.configPaths) == len(f.ConfigFiles)+len(f.ConfigDirs) {
		return f.configPaths
	}
	// built by hand: files first, then directories
	return append(append([]string{}, f.ConfigFiles...), f.ConfigDirs...)
}

// Flag value helpers: each allocates its target on first Set, so nil means
// "not given".

type boolFlag struct{ p **bool }

func (b boolFlag) String() string {
	if b.p == nil || *b.p == nil {
		return "false"
	}
	return strconv.FormatBool(**b.p)
}

func (b boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*b.p = &v
	return nil
}

func (b boolFlag) IsBoolFlag() bool { return true }

func boolVar(fs *flag.FlagSet, p **bool, name, usage string) {
	fs.Var(boolFlag{p}, name, usage)
}

func stringVar(fs *flag.FlagSet, p **string, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		*p = &s
		return nil
	})
}

func intVar(fs *flag.FlagSet, p **int, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		*p = &v
		return nil
	})
}

func durationVar(fs *flag.FlagSet, p **time.Duration, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s")
		}
		*p = &v
		return nil
	})
}

func sliceVar(fs *flag.FlagSet, p *[]string, name, usage string) {
	fs.Func(name, usage, func(s string) error {
		*p = append(*p, s)
		return nil
	})
}

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadOptions are the sources Load merges.
type LoadOptions struct {
	// Flags are the parsed command-line flags; nil means none. Their
	// -config-file/-config-dir paths are read after ConfigFiles and
	// ConfigDirs, and their -hcl snippets after HCL.
	Flags *Flags
	// ConfigFiles are read in order. A directory is read like a ConfigDir.
	ConfigFiles []string
	// ConfigDirs are read in order; each one's *.json and *.hcl files (all
	// regular files when ConfigFormat is set) in lexical order.
	ConfigDirs []string
	// ConfigFormat forces "json" or "hcl" for every file; by extension when empty.
	ConfigFormat string
	// HCL snippets are applied after all files, in order.
	HCL []string
	// DefaultConfig, when set, replaces the built-in defaults (DefaultConfig,
	// or DevConfig with -dev). It is not modified.
	DefaultConfig *RuntimeConfig

	// skipAdvertiseDetection leaves AdvertiseAddr empty instead of looking
	// at the host's interfaces (ValidateFiles).
	skipAdvertiseDetection bool
}

// source is one parsed configuration source.
type source struct {
	name string
	data map[string]any
}

// Load builds the agent's RuntimeConfig: defaults (dev defaults with -dev),
// then every config file, then -hcl snippets, then the flags that were given.
// It returns the validated configuration and warnings (deprecated keys, keys
// Cairn does not implement yet, files skipped, ...).
func Load(opts LoadOptions) (*RuntimeConfig, []string, error) {
	var warnings []string
	flags := opts.Flags
	if flags == nil {
		flags = &Flags{}
	}
	format := opts.ConfigFormat
	if flags.ConfigFormat != nil {
		format = *flags.ConfigFormat
	}
	if format != "" && format != FormatJSON && format != FormatHCL {
		return nil, nil, &Error{Key: "config-format", Msg: fmt.Sprintf("invalid value %q (want json or hcl)", format), Err: ErrValue}
	}

	var rc *RuntimeConfig
	switch {
	case opts.DefaultConfig != nil:
		rc = opts.DefaultConfig.Clone()
	case flags.Dev != nil && *flags.Dev:
		rc = DevConfig()
	default:
		rc = DefaultConfig()
	}
	if flags.Dev != nil {
		rc.Dev = *flags.Dev
	}

	// collect sources in merge order
	var sources []source
	paths := append(append(append([]string{}, opts.ConfigFiles...), opts.ConfigDirs...), flags.paths()...)
	for _, p := range paths {
		srcs, warns, err := readPath(p, format)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, warns...)
		sources = append(sources, srcs...)
	}
	snippets := append(append([]string{}, opts.HCL...), flags.HCL...)
	for i, s := range snippets {
		name := fmt.Sprintf("-hcl snippet %d", i+1)
		m, err := parseSource(name, FormatHCL, []byte(s))
		if err != nil {
			return nil, nil, err
		}
		sources = append(sources, source{name: name, data: m})
	}
	sources = append(sources, source{name: "command-line flags", data: flags.configSource()})

	set := map[string]bool{}
	for _, s := range sources {
		d := &decoder{src: s.name, rc: rc, warnings: &warnings, set: set}
		if err := d.object("", s.data); err != nil {
			return nil, nil, err
		}
		if !strings.HasPrefix(s.name, "-hcl") && s.name != "command-line flags" {
			rc.Files = append(rc.Files, s.name)
		}
	}

	warns, err := finalize(rc, set, opts.skipAdvertiseDetection)
	warnings = append(warnings, warns...)
	if err != nil {
		return nil, warnings, err
	}
	warns, err = rc.validate()
	warnings = append(warnings, warns...)
	if err != nil {
		return nil, warnings, err
	}
	if rc.DataDir != "" {
		// a missing data_dir is created by the agent; a file in its place is a mistake
		if fi, err := os.Stat(rc.DataDir); err == nil && !fi.IsDir() {
			return nil, warnings, invalidf("data_dir %q is not a directory", rc.DataDir)
		}
	}
	return rc, warnings, nil
}

// ValidateFiles loads the given files and directories the way an agent
// would, without flags, and validates the result (`cairn validate`). format
// is "", "json" or "hcl". The host's interfaces are not consulted.
func ValidateFiles(paths []string, format string) ([]string, error) {
	if len(paths) == 0 {
		return nil, invalidf("no config files or directories given")
	}
	_, warnings, err := Load(LoadOptions{
		ConfigFiles:            paths,
		ConfigFormat:           format,
		skipAdvertiseDetection: true,
	})
	return warnings, err
}

// readPath reads one -config-file or -config-dir argument.
func readPath(path, format string) ([]source, []string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, &Error{Source: path, Msg: errMsg(err), Err: ErrValue}
	}
	if !fi.IsDir() {
		src, warn, err := readFile(path, format)
		if err != nil || src == nil {
			return nil, warn, err
		}
		return []source{*src}, warn, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, nil, &Error{Source: path, Msg: errMsg(err), Err: ErrValue}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var (
		sources  []source
		warnings []string
	)
	for _, n := range names {
		fp := filepath.Join(path, n)
		fi, err := os.Stat(fp) // follows symlinks, as Consul does
		if err != nil {
			return nil, nil, &Error{Source: fp, Msg: errMsg(err), Err: ErrValue}
		}
		if fi.IsDir() {
			continue // config dirs are not recursive
		}
		if format == "" && formatOf(fp) == "" {
			continue // e.g. README or editor backups in /etc/consul.d
		}
		src, warn, err := readFile(fp, format)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, warn...)
		if src != nil {
			sources = append(sources, *src)
		}
	}
	return sources, warnings, nil
}

func readFile(path, format string) (*source, []string, error) {
	if format == "" {
		format = formatOf(path)
	}
	if format == "" {
		return nil, []string{fmt.Sprintf("%s: skipped: config files must end in .json or .hcl, or -config-format must be set", path)}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &Error{Source: path, Msg: errMsg(err), Err: ErrValue}
	}
	m, err := parseSource(path, format, data)
	if err != nil {
		return nil, nil, err
	}
	return &source{name: path, data: m}, nil, nil
}

func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return FormatJSON
	case ".hcl":
		return FormatHCL
	}
	return ""
}

// errMsg drops the path from a PathError, since Error already names it.
func errMsg(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

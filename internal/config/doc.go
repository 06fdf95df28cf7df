// Package config turns an agent's configuration sources into one validated
// RuntimeConfig, the way Consul's agent does:
//
//	built-in defaults (DevConfig with -dev)
//	→ config files (-config-file / -config-dir, JSON or HCL, in order)
//	→ -hcl snippets
//	→ command-line flags that were actually given
//
// Each source is parsed into a plain map (parse.go), normalised so JSON and
// HCL v1 give the same shape, and applied key by key through one table of
// every key Consul accepts (schema.go). Scalars are last-wins, lists append,
// maps merge. Unknown keys are errors naming the key and the file; keys Consul
// knows but Cairn does not implement yet produce warnings.
//
// The package owns only configuration: it does no network I/O, starts no
// goroutines and never creates files. Finding the advertise address reads the
// host's interface list, nothing more.
package config

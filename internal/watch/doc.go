// Package watch implements Consul-style watches: a Plan is a view of data
// (a key, a key prefix, the service list, the node list, the instances of
// a service, checks, user events) followed with blocking queries over the
// official HTTP client, and a handler run once per change of that view.
//
// It owns parsing and validating watch definitions (the map form used in
// the agent's "watches" config and built by `cairn watch`), the blocking
// loop with change detection, and the script and HTTP handlers. It is
// shared by the `cairn watch` command and the agent's config watches; it
// knows nothing of the agent and talks to it only over HTTP.
package watch

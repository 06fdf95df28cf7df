// Package httpapi serves Consul's /v1 HTTP API.
//
// It owns the wire contract only: one visible route table (routes.go), one
// file per resource (kv.go, catalog.go, health.go, agent.go, status.go), the
// parsing of the common query parameters (query.go), token extraction and
// authorization (token.go) and the mapping of errors to status codes
// (errors.go). Paths, parameters, JSON field names, status codes and headers
// follow Consul so that the official github.com/hashicorp/consul/api client
// works unchanged.
//
// It must not hold state or talk to Raft: every catalog, KV, health and
// status read and write goes through an rpc.Caller, and the /v1/agent/*
// endpoints go through an AgentBackend. Blocking queries are the server's
// job; this package only forwards index/wait and reports X-Consul-Index.
package httpapi

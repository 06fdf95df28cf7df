// Package bench drives a running Cairn cluster (or one it starts itself)
// over the /v1 HTTP API with the official github.com/hashicorp/consul/api
// client and measures throughput, latency percentiles and errors.
// watch-fanout can instead run its watchers as raw HTTP/1.1 connections
// that send consul/api's exact request and check each answer by hand
// (rawwatch.go), so that 10,000 watchers cost little next to the servers.
//
// It owns the workloads behind `cairn bench` (kv-put, kv-get, kv-mix,
// catalog-churn, health-read, watch-fanout, failover), a log-bucket latency
// histogram, the closed-loop runner that every workload (and the etcd driver
// in bench/etcdbench) shares, and the result formats (table and JSON).
//
// It must not import server, state or agent code: it measures the product
// from the outside, the way an operator would.
package bench

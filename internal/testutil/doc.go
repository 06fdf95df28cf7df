// Package testutil holds helpers shared by Cairn's tests: polling with a
// deadline (Retry), free loopback ports (FreePorts), building the cairn binary
// once per test binary (BuildBinary), and a process harness (StartAgent) that
// runs the real binary on distinct loopback ports and talks to it through the
// official github.com/hashicorp/consul/api client.
//
// It must not import any other Cairn package: end-to-end tests see Cairn only
// through its binary and its wire contract.
package testutil

// Package testutil holds helpers shared by Cairn's tests: polling with a
// deadline (Retry), free loopback ports (FreePorts), building the cairn binary
// once per test binary (BuildBinary), a process harness (StartAgent) that
// runs the real binary on distinct loopback ports and talks to it through the
// official github.com/hashicorp/consul/api client, a multi-process cluster
// harness on top of it (StartCluster: servers with -bootstrap-expect and
// -retry-join, client agents, leader and membership waits, kill -9,
// SIGSTOP/SIGCONT, restart), and network namespaces joined by a bridge
// (NewNetwork) so cluster tests can partition and heal nodes.
//
// It must not import any other Cairn package: end-to-end tests see Cairn only
// through its binary and its wire contract.
package testutil

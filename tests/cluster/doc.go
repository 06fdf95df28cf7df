// Package cluster holds end-to-end tests of multi-node clusters: real cairn
// processes (3 servers, client agents) started by testutil.StartCluster on
// loopback, or in network namespaces for partition tests. Figures the issue
// asks for are logged with a "MEASURE" prefix:
//
//	go test -count=1 -v ./tests/cluster/ | grep MEASURE
//
// CAIRN_FAILOVER_RUNS sets how many kill-the-leader runs are measured
// (default 10). Partition tests need root and iproute2 and skip otherwise.
package cluster

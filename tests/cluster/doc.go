// Package cluster holds end-to-end tests of multi-node clusters: real cairn
// processes (3 servers, client agents) started by testutil.StartCluster on
// loopback, or in network namespaces for partition tests. Figures the issue
// asks for are logged with a "MEASURE" prefix.
package cluster

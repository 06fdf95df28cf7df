// Package robustness runs KV clients against a real cairn cluster while a
// nemesis kills, partitions and pauses nodes, records every operation with
// its call and return time, and checks the history for linearizability with
// github.com/anishathalye/porcupine.
//
// model.go is the sequential specification (one register per key, with
// put, compare-and-swap and consistent get) and history.go the recorder,
// the checker and the failure artifacts; both are plain code so their unit
// tests run without a cluster. The cluster runs are in the _test.go files:
// one short run in the default suite, 20+ long runs behind the
// `robustness` build tag (see README.md).
package robustness

// Package e2e holds end-to-end tests that build and run the real cairn
// binary and talk to it only over its wire contract: the official
// github.com/hashicorp/consul/api client, plain net/http where the client
// cannot express a case, and the CLI as a subprocess.
//
// Run: go test ./tests/e2e/ (set CAIRN_BIN to skip the build,
// CAIRN_E2E_LOGS=1 to see agent output, -bench . for benchmarks,
// CAIRN_MEASURE=1 for the start-time and RSS measurements).
package e2e

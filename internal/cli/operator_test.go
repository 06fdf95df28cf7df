package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCLI_OperatorRaft(t *testing.T) {
	addr := "-http-addr=" + startAgent(t)

	r := run(t, "", "operator", "raft", "list-peers", addr)
	requireOK(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2, r.stdout)
	require.Regexp(t, `^Node\s+ID\s+Address\s+State\s+Voter\s+RaftProtocol\s+Commit Index\s+Trails Leader By$`, lines[0])
	require.Regexp(t, `^cli-node\s+\S+\s+\S+\s+leader\s+true\s+3\s+[1-9]\d*\s+-$`, lines[1])

	requireOK(t, run(t, "", "operator", "raft", "list-peers", addr, "-stale"))

	requireFail(t, run(t, "", "operator", "raft", "remove-peer", addr), "an address or id is required")
	requireFail(t, run(t, "", "operator", "raft", "remove-peer", addr, "-id=a", "-address=b:1"), "cannot give both")
	requireFail(t, run(t, "", "operator", "raft", "remove-peer", addr, "-address=10.1.2.3:8300"),
		`address "10.1.2.3:8300" was not found in the Raft configuration`)
	requireFail(t, run(t, "", "operator", "raft", "remove-peer", addr, "-id=nope"), `id "nope" was not found`)
	requireFail(t, run(t, "", "operator", "raft", "transfer-leader", addr), "no other voter")
	requireFail(t, run(t, "", "operator", "raft", "list-peers", addr, "extra"), "too many arguments")

	// Still one peer.
	r = run(t, "", "operator", "raft", "list-peers", addr)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 2)
}

func TestCLI_OperatorAutopilot(t *testing.T) {
	addr := "-http-addr=" + startAgent(t)

	r := run(t, "", "operator", "autopilot", "get-config", addr)
	requireOK(t, r)
	require.Equal(t, `CleanupDeadServers = true
LastContactThreshold = 200ms
MaxTrailingLogs = 250
MinQuorum = 0
ServerStabilizationTime = 10s
RedundancyZoneTag = ""
DisableUpgradeMigration = false
UpgradeVersionTag = ""
`, r.stdout)

	// Only the given flags change.
	r = run(t, "", "operator", "autopilot", "set-config", addr,
		"-min-quorum=3", "-last-contact-threshold=1s", "-cleanup-dead-servers=false")
	requireOK(t, r)
	require.Equal(t, "Configuration updated!\n", r.stdout)
	r = run(t, "", "operator", "autopilot", "get-config", addr)
	requireOK(t, r)
	require.Contains(t, r.stdout, "CleanupDeadServers = false\n")
	require.Contains(t, r.stdout, "LastContactThreshold = 1s\n")
	require.Contains(t, r.stdout, "MinQuorum = 3\n")
	require.Contains(t, r.stdout, "MaxTrailingLogs = 250\n")
	require.Contains(t, r.stdout, "ServerStabilizationTime = 10s\n")

	requireOK(t, run(t, "", "operator", "autopilot", "set-config", addr, "-max-trailing-logs=17", "-server-stabilization-time=3s"))
	r = run(t, "", "operator", "autopilot", "get-config", addr)
	require.Contains(t, r.stdout, "MaxTrailingLogs = 17\n")
	require.Contains(t, r.stdout, "ServerStabilizationTime = 3s\n")
	require.Contains(t, r.stdout, "MinQuorum = 3\n")

	requireFail(t, run(t, "", "operator", "autopilot", "set-config", addr, "-last-contact-threshold=soon"), "invalid value")
	requireFail(t, run(t, "", "operator", "autopilot", "set-config", addr, "-server-stabilization-time=-1s"), "must not be negative")
	requireFail(t, run(t, "", "operator", "autopilot", "set-config", addr, "-max-trailing-logs=-1"), "invalid value")

	// State, once autopilot has looked at the server.
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = run(t, "", "operator", "autopilot", "state", addr)
		if r.code == 0 {
			out = r.stdout
			break
		}
		require.Truef(t, time.Now().Before(deadline), "autopilot state never became available: %s", r.stderr)
		time.Sleep(50 * time.Millisecond)
	}
	require.Regexp(t, `(?m)^Healthy:\s+true$`, out)
	require.Regexp(t, `(?m)^Failure Tolerance:\s+0$`, out)
	require.Regexp(t, `(?m)^\s+Name:\s+cli-node$`, out)
	require.Regexp(t, `(?m)^\s+Status:\s+leader$`, out)
	require.Regexp(t, `(?m)^\s+Node Status:\s+alive$`, out)

	r = run(t, "", "operator", "autopilot", "state", addr, "-format=json")
	requireOK(t, r)
	require.Contains(t, r.stdout, `"Healthy": true`)
	requireFail(t, run(t, "", "operator", "autopilot", "state", addr, "-format=yaml"), "unknown -format")
}

#!/usr/bin/env bash
# Single-server put latency after a compacted fill, for A/B tests of the
# Raft log store: starts `cairn agent -server -bootstrap` on a fresh data
# dir (snapshot threshold 4096, interval 5 s, 1024 trailing logs, so the
# fill is snapshotted and the log compacted), writes 30,000 x 1 KiB keys
# with 50 clients, waits 12 s, then runs 10 s of single-client 256-byte
# puts and prints ops/s and the latency percentiles (JSON).
#
#   bench/single-server-put.sh BINARY LABEL
#
# Run it under `flock /tmp/cairn-bench.lock` and alternate the binaries.
# Ports 19300-19600 must be free.
set -euo pipefail
B=$1 L=$2 D=$(mktemp -d /var/tmp/cairn-sput.XXXX)
"$B" agent -server -bootstrap -data-dir "$D" -node n1 -bind 127.0.0.1 -advertise 127.0.0.1 -client 127.0.0.1 \
  -http-port 19500 -dns-port 19600 -serf-lan-port 19301 -serf-wan-port 19302 -server-port 19300 -log-level warn \
  -hcl 'raft_snapshot_threshold = 4096' -hcl 'raft_snapshot_interval = "5s"' -hcl 'raft_trailing_logs = 1024' >"$D/log" 2>&1 &
P=$!
trap 'kill $P; wait $P 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -fs localhost:19500/v1/status/leader | grep -q : && break; sleep 0.1; done
"$B" kv put -http-addr 127.0.0.1:19500 ready 1 >/dev/null
"$B" bench kv-put -http-addr 127.0.0.1:19500 -clients 50 -requests 30000 -keys 30000 -value-size 1024 -sequential -format json >"$D/fill.json"
sleep 12
"$B" bench kv-put -http-addr 127.0.0.1:19500 -clients 1 -duration 10s -keys 10000 -value-size 256 -format json >"$D/put1.json"
python3 - "$D/put1.json" "$L" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))[0]
print(sys.argv[2], json.dumps({k: d[k] for k in ("ops_per_sec", "latency_ms", "errors")}))
PY

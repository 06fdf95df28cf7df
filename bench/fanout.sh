#!/usr/bin/env bash
# Watch fan-out on its own, for A/B tests of the blocking-query path:
# starts 3 Cairn servers on a fresh data dir (ports 18301-18603, as in
# compare.sh), blocks 10,000 lean watchers (`watch-fanout -watch-client
# raw`) on one key, writes it WRITES times and prints one line: latency from
# the write's ack, the servers' and this client's CPU per write, and the
# servers' CPU between writes, and how often a follower started an
# election.
#
#   bench/fanout.sh BINARY [WRITES] [api|raw] [TARGETS]
#
# TARGETS (default all 3, e.g. "1" or "1,3") picks the servers the watchers
# are spread over. PROFILE=SECONDS also saves a CPU profile of each server
# (enable_debug) taken 12 s into the run, as $OUT/prof-<port>.pb.gz
# (OUT defaults to the current directory). Run it under
# `flock /tmp/cairn-bench.lock`.
set -euo pipefail
BIN=$1 WRITES=${2:-10} CL=${3:-raw} TARGETS=${4:-1,2,3} PROF=${PROFILE:-0} OUT=${OUT:-.}
W=$(mktemp -d /var/tmp/cairn-fanout.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
for i in 1 2 3; do
  args=(agent -server -bootstrap-expect=3 -data-dir "$W/c$i" -node "s$i" -bind 127.0.0.1 -advertise 127.0.0.1 -client 127.0.0.1
    -http-port $((18500 + i)) -dns-port $((18600 + i)) -serf-lan-port $((18310 + i)) -serf-wan-port $((18320 + i))
    -server-port $((18330 + i)) -log-level warn -retry-interval 200ms
      -hcl 'limits { http_max_conns_per_client = 0 }' -hcl 'enable_debug = true')
  for j in 1 2 3; do [[ $j == "$i" ]] || args+=(-retry-join "127.0.0.1:$((18310 + j))"); done
  "$BIN" "${args[@]}" >"$W/c$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 600); do
    [[ "$(curl -fsS "http://127.0.0.1:$((18500 + i))/v1/status/leader" 2>/dev/null)" == *:* ]] && break
    sleep 0.1
  done
done
"$BIN" kv put -http-addr 127.0.0.1:18501 bench/ready 1 >/dev/null
L=$(curl -fsS http://127.0.0.1:18501/v1/status/leader | tr -d '"')
echo "leader: server $(( ${L##*:} - 18330 ))" >&2
elections() { cat "$W"/c?.log | grep -c 'starting election' || true; }
E0=$(elections)
ADDRS=() PP=
for t in ${TARGETS//,/ }; do ADDRS+=("127.0.0.1:$((18500 + t))"); done
if [[ $PROF != 0 ]]; then
  (sleep 12; for i in 1 2 3; do
    curl -fsS -o "$OUT/prof-$((18500 + i)).pb.gz" "http://127.0.0.1:$((18500 + i))/debug/pprof/profile?seconds=$PROF" &
  done; wait) &
  PP=$!
fi
"$BIN" bench watch-fanout -http-addr "$(IFS=,; echo "${ADDRS[*]}")" -watch-client "$CL" -watchers 10000 \
  -writes "$WRITES" -pid "$(IFS=,; echo "${PIDS[*]}")" -format json >"$W/out.json"
python3 - "$W/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))[0]
l, e = r["latency_ms"], r["extra"]
print("p50 %.1f p90 %.1f p99 %.1f max %.1f ms | CPU per write: servers %d ms, client %d ms | servers between writes %.1f %% | errors %d" % (
    l["p50"], l["p90"], l["p99"], l["max"], e["agent_cpu_ms_per_write"], e["client_cpu_ms_per_write"],
    e["agent_cpu_idle_pct_avg"], r["errors"]))
PY
if [[ -n $PP ]]; then wait "$PP"; fi
# Followers that timed out waiting for the leader during the run: a sign
# the fan-out starved Raft.
echo "election attempts after the first leader (\"starting election\" log lines): $(( $(elections) - E0 ))"

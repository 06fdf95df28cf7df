#!/usr/bin/env bash
# Server RSS after a fill, for A/B tests of memory changes: starts
# `cairn agent -server -bootstrap` on a fresh data dir, writes 100,000 x 1 KiB
# keys with 100 clients, and prints the server's VmRSS 2 s and 45 s later.
#
#   bench/single-server-rss.sh BINARY LABEL
#
# Run it under `flock /tmp/cairn-bench.lock` and alternate the binaries.
# Ports 19300-19600 must be free.
set -euo pipefail
B=$1 L=$2 D=$(mktemp -d /var/tmp/cairn-rss.XXXX)
"$B" agent -server -bootstrap -data-dir "$D" -node n1 -bind 127.0.0.1 -advertise 127.0.0.1 -client 127.0.0.1 \
  -http-port 19500 -dns-port 19600 -serf-lan-port 19301 -serf-wan-port 19302 -server-port 19300 -log-level warn >"$D/log" 2>&1 &
P=$!
trap 'kill $P; wait $P 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 100); do curl -fs localhost:19500/v1/status/leader | grep -q : && break; sleep 0.1; done
"$B" kv put -http-addr 127.0.0.1:19500 ready 1 >/dev/null
"$B" bench kv-put -http-addr 127.0.0.1:19500 -clients 100 -requests 100000 -keys 100000 -value-size 1024 -sequential -format json >"$D/fill.json"
rss() { awk '/VmRSS/{print int($2/1024)}' "/proc/$P/status"; }
sleep 2; r2=$(rss)
sleep 43; r45=$(rss)
echo "$L rss_2s_mib=$r2 rss_45s_mib=$r45"

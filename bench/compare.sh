#!/usr/bin/env bash
# Side-by-side KV benchmark: a 3-server Cairn cluster and a 3-member etcd
# cluster (Debian's etcd-server, fsync on, as shipped) on this machine, one
# after the other, driven by the same workloads through each one's native
# client (Cairn: `cairn bench`, HTTP via the consul/api client; etcd:
# bench/etcdbench, gRPC via go.etcd.io/etcd/client/v3). Prints the ratios.
# Every listener is on 127.0.0.1; everything is stopped and removed on exit.
#
# Usage: bench/compare.sh [-quick] [-profile] [-keep]
#   -quick    5 s per workload, 20,000-key fill, 1,000 watchers, 2 failover rounds
#   -profile  Cairn agents run with enable_debug; CPU profiles of the put,
#             get and blocking paths are saved as $OUT/prof-*.pb.gz
#   -keep     keep the data dirs and logs
# Environment: OUT (results dir, default bench/results/<timestamp>),
#   DURATION (20s), FILL_KEYS (100000), WATCHERS (10000), ROUNDS (5),
#   SETTLE (45: seconds after the fill before RSS is read a second time),
#   WORK (data dirs, default a new dir under /var/tmp).
set -euo pipefail

QUICK=0 PROFILE=0 KEEP=0
for a in "$@"; do
  case "$a" in
    -quick|--quick) QUICK=1 ;;
    -profile|--profile) PROFILE=1 ;;
    -keep|--keep) KEEP=1 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $QUICK == 1 ]]; then
  : "${DURATION:=5s}" "${FILL_KEYS:=20000}" "${WATCHERS:=1000}" "${ROUNDS:=2}" "${SETTLE:=5}"
else
  : "${DURATION:=20s}" "${FILL_KEYS:=100000}" "${WATCHERS:=10000}" "${ROUNDS:=5}" "${SETTLE:=45}"
fi
OUT="${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
WORK="${WORK:-$(mktemp -d /var/tmp/cairn-compare.XXXXXX)}"
mkdir -p "$OUT" "$WORK"
BIN="$WORK/bin"
mkdir -p "$BIN"

PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $KEEP == 0 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
  exit $rc
}
trap cleanup EXIT INT TERM

log() { printf '==> %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  log "installing etcd-server and etcd-client"
  DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client >/dev/null; }
fi
# Debian enables an etcd systemd unit on 2379/2380; this script uses 1237x/1238x.
log "building cairn and etcdbench"
(cd "$ROOT" && go build -o "$BIN/cairn" ./cmd/cairn && go build -o "$BIN/httpfloor" ./bench/httpfloor)
(cd "$ROOT/bench/etcdbench" && go build -o "$BIN/etcdbench" .)
CAIRN="$BIN/cairn" EB="$BIN/etcdbench"

{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpus: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -r)"
  echo "etcd: $(etcd --version | head -1 | sed 's/etcd Version: //') ($(etcd --version | grep 'Go Version' | sed 's/Go Version: //'))"
  echo "cairn: $("$CAIRN" version | head -1) ($(go version | awk '{print $3}'))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt" >&2

# measure STEM CMD...: runs a bench command into $OUT/STEM.json and records
# the CPU the servers ($SPIDS, clock ticks) and the client (s) spent on it.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
measure() {
  local stem=$1 before; shift
  before=$(ticks "${SPIDS[@]}")
  local TIMEFORMAT='%U %S'
  { time "$@" >"$OUT/$stem.json" 2>>"$WORK/bench-stderr.log"; } 2>"$OUT/clientcpu-$stem.txt"
  echo $(( $(ticks "${SPIDS[@]}") - before )) >"$OUT/cpu-$stem.txt"
}
rss_of() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_http() { # url, seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timeout waiting for $1" >&2; return 1
}

# --- Cairn -------------------------------------------------------------------
CAIRN_PIDS=() CAIRN_ADDRS=()
start_cairn() {
  local i args
  for i in 1 2 3; do
    mkdir -p "$WORK/cairn$i"
    args=(agent -server -bootstrap-expect=3 -data-dir "$WORK/cairn$i" -node "s$i"
      -bind 127.0.0.1 -advertise 127.0.0.1 -client 127.0.0.1
      -http-port $((18500 + i)) -dns-port $((18600 + i)) -serf-lan-port $((18310 + i))
      -serf-wan-port $((18320 + i)) -server-port $((18330 + i)) -log-level warn -retry-interval 200ms
      -hcl 'limits { http_max_conns_per_client = 0 }')
    for j in 1 2 3; do [[ $j == "$i" ]] || args+=(-retry-join "127.0.0.1:$((18310 + j))"); done
    [[ $PROFILE == 1 ]] && args+=(-hcl 'enable_debug = true')
    "$CAIRN" "${args[@]}" >"$WORK/cairn$i.log" 2>&1 &
    CAIRN_PIDS+=($!) PIDS+=($!)
    CAIRN_ADDRS+=("127.0.0.1:$((18500 + i))")
  done
  for a in "${CAIRN_ADDRS[@]}"; do
    for _ in $(seq 1 600); do
      [[ "$(curl -fsS "http://$a/v1/status/leader" 2>/dev/null)" == *:* ]] && break
      sleep 0.1
    done
  done
  # The cluster takes writes once a leader is elected and has reconciled.
  "$CAIRN" kv put -http-addr "${CAIRN_ADDRS[0]}" bench/ready 1 >/dev/null
}
cairn_leader_addr() {
  local l; l="$(curl -fsS "http://${CAIRN_ADDRS[0]}/v1/status/leader" | tr -d '"')"
  local port=${l##*:}; echo "127.0.0.1:$((port - 18330 + 18500))"
}
cb() { "$CAIRN" bench -format=json -http-addr "$(IFS=,; echo "${CAIRN_ADDRS[*]}")" "$@"; }
profile() { # name, seconds: CPU profile of the leader while the next command runs
  [[ $PROFILE == 1 ]] || return 0
  local leader; leader="$(cairn_leader_addr)"
  curl -fsS -o "$OUT/prof-$1.pb.gz" "http://$leader/debug/pprof/profile?seconds=$2" &
  PIDS+=($!)
}
secs() { local d=$1; d=${d%s}; echo "${d%.*}"; }

log "starting 3 Cairn servers"
start_cairn
SPIDS=("${CAIRN_PIDS[@]}")
cairn_elections() { cat "$WORK"/cairn?.log | grep -c "starting election" || true; }
CAIRN_E0=$(cairn_elections)
log "cairn: fill $FILL_KEYS x 1 KiB"
echo "$(for p in "${CAIRN_PIDS[@]}"; do rss_of "$p"; done)" >"$OUT/rss-cairn-before.txt"
measure cairn-fill cb kv-put -clients 100 -requests "$FILL_KEYS" -keys "$FILL_KEYS" -value-size 1024 -sequential -key-prefix fill/
sleep 2
echo "$(for p in "${CAIRN_PIDS[@]}"; do rss_of "$p"; done)" >"$OUT/rss-cairn.txt"
# Again once Raft has had time to snapshot the 100 MB of state (Cairn
# snapshots every 30 s past 16,384 entries; etcd at 100,000 entries).
sleep "$SETTLE"
echo "$(for p in "${CAIRN_PIDS[@]}"; do rss_of "$p"; done)" >"$OUT/rss-cairn-settled.txt"
D=$(secs "$DURATION")
log "cairn: put, 100 clients"; profile put $((D - 2))
measure cairn-put100 cb kv-put -clients 100 -duration "$DURATION" -keys 10000 -value-size 256
wait_profiles() { [[ $PROFILE == 1 ]] && wait "${PIDS[-1]}" 2>/dev/null || true; }
wait_profiles
log "cairn: put, 1 client"
measure cairn-put1 cb kv-put -clients 1 -duration "$DURATION" -keys 10000 -value-size 256
# The single client above talks to server 1, which may or may not lead
# (etcd's client balancer instead spreads its requests over all members):
# measure both placements on each side, so the comparison does not hang on
# which server won the election.
CAIRN_LEAD="$(cairn_leader_addr)" CAIRN_FOLL=
for a in "${CAIRN_ADDRS[@]}"; do [[ $a == "$CAIRN_LEAD" ]] || { CAIRN_FOLL=$a; break; }; done
log "cairn: put, 1 client, through the leader ($CAIRN_LEAD), then a follower ($CAIRN_FOLL)"
measure cairn-put1-leader "$CAIRN" bench -format=json -http-addr "$CAIRN_LEAD" kv-put -clients 1 -duration "$DURATION" -keys 10000 -value-size 256
measure cairn-put1-follower "$CAIRN" bench -format=json -http-addr "$CAIRN_FOLL" kv-put -clients 1 -duration "$DURATION" -keys 10000 -value-size 256
for mode in default stale; do
  log "cairn: get ($mode), 100 clients"; profile "get-$mode" $((D - 2))
  measure "cairn-get-$mode" cb kv-get -clients 100 -duration "$DURATION" -keys 10000 -value-size 256 -no-prefill -consistency "$mode"
  wait_profiles
  log "cairn: get ($mode), 1 client"
  measure "cairn-get1-$mode" cb kv-get -clients 1 -duration "$DURATION" -keys 10000 -value-size 256 -no-prefill -consistency "$mode"
done
log "cairn: watch fan-out, $WATCHERS watchers"; profile watch 15
cb watch-fanout -watchers "$WATCHERS" -writes 5 -pid "$(IFS=,; echo "${CAIRN_PIDS[*]}")" >"$OUT/cairn-watch.json"
wait_profiles
# The same with a cheap load generator: each watcher writes consul/api's
# request on a plain connection and parses the answer itself.
log "cairn: watch fan-out, $WATCHERS raw HTTP/1.1 watchers"
cb watch-fanout -watch-client raw -watchers "$WATCHERS" -writes 5 -pid "$(IFS=,; echo "${CAIRN_PIDS[*]}")" >"$OUT/cairn-watch-raw.json"
# Leader elections after the first one: a sign the servers starved.
echo $(( $(cairn_elections) - CAIRN_E0 )) >"$OUT/elections-cairn.txt"
for p in "${CAIRN_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
# The floor under that figure: the same watchers and writes against 3 Go
# net/http servers that only park and answer (no Raft, state or RPC).
log "floor: $WATCHERS raw watchers on 3 empty net/http servers"
"$BIN/httpfloor" -servers 3 -server h1 -client raw -watchers "$WATCHERS" -writes 5 >"$OUT/floor-watch.txt"
log "cairn: failover, $ROUNDS rounds (own cluster)"
"$CAIRN" bench failover -cluster -data-dir "$WORK/failover" -rounds "$ROUNDS" -format=json >"$OUT/cairn-failover.json"

# --- etcd --------------------------------------------------------------------
ETCD_PIDS=() ETCD_EPS=() ETCD_ARGS=()
CLUSTER="e1=http://127.0.0.1:12381,e2=http://127.0.0.1:12382,e3=http://127.0.0.1:12383"
etcd_args() { # i
  echo --name "e$1" --data-dir "$WORK/etcd$1" \
    --listen-client-urls "http://127.0.0.1:$((12370 + $1))" --advertise-client-urls "http://127.0.0.1:$((12370 + $1))" \
    --listen-peer-urls "http://127.0.0.1:$((12380 + $1))" --initial-advertise-peer-urls "http://127.0.0.1:$((12380 + $1))" \
    --initial-cluster "$CLUSTER" --initial-cluster-token cairn-compare --log-level warn --logger zap
}
start_etcd_member() { # i [state]
  # shellcheck disable=SC2046
  etcd $(etcd_args "$1") --initial-cluster-state "${2:-new}" >>"$WORK/etcd$1.log" 2>&1 &
  ETCD_PIDS[$1]=$! PIDS+=($!)
}
log "starting 3 etcd members"
for i in 1 2 3; do start_etcd_member "$i"; ETCD_EPS+=("127.0.0.1:$((12370 + i))"); done
EPS="$(IFS=,; echo "${ETCD_EPS[*]}")"
for _ in $(seq 1 600); do
  ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint health >/dev/null 2>&1 && break; sleep 0.1
done
eb() { "$EB" -format=json -endpoints "$EPS" "$@"; }
etcd_leader_ep() { ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint status -w simple | awk -F', ' '$5=="true" {print $1}'; }
ETCD_TERM0=$(ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint status -w json | grep -o '"raft_term":[0-9]*' | head -1 | cut -d: -f2)
EPIDS=("${ETCD_PIDS[1]}" "${ETCD_PIDS[2]}" "${ETCD_PIDS[3]}")
SPIDS=("${EPIDS[@]}")
log "etcd: fill $FILL_KEYS x 1 KiB"
echo "$(for p in "${EPIDS[@]}"; do rss_of "$p"; done)" >"$OUT/rss-etcd-before.txt"
measure etcd-fill eb put -clients 100 -requests "$FILL_KEYS" -keys "$FILL_KEYS" -value-size 1024 -sequential -key-prefix fill/
sleep 2
echo "$(for p in "${EPIDS[@]}"; do rss_of "$p"; done)" >"$OUT/rss-etcd.txt"
sleep "$SETTLE"
echo "$(for p in "${EPIDS[@]}"; do rss_of "$p"; done)" >"$OUT/rss-etcd-settled.txt"
log "etcd: put, 100 clients"
measure etcd-put100 eb put -clients 100 -duration "$DURATION" -keys 10000 -value-size 256
log "etcd: put, 1 client"
measure etcd-put1 eb put -clients 1 -duration "$DURATION" -keys 10000 -value-size 256
ETCD_LEAD="$(etcd_leader_ep)" ETCD_FOLL=
for a in "${ETCD_EPS[@]}"; do [[ $a == "$ETCD_LEAD" ]] || { ETCD_FOLL=$a; break; }; done
log "etcd: put, 1 client, through the leader ($ETCD_LEAD), then a follower ($ETCD_FOLL)"
measure etcd-put1-leader "$EB" -format=json -endpoints "$ETCD_LEAD" put -clients 1 -duration "$DURATION" -keys 10000 -value-size 256
measure etcd-put1-follower "$EB" -format=json -endpoints "$ETCD_FOLL" put -clients 1 -duration "$DURATION" -keys 10000 -value-size 256
for mode in linearizable serializable; do
  log "etcd: get ($mode), 100 clients"
  measure "etcd-get-$mode" eb get -clients 100 -duration "$DURATION" -keys 10000 -value-size 256 -no-prefill -consistency "$mode"
  log "etcd: get ($mode), 1 client"
  measure "etcd-get1-$mode" eb get -clients 1 -duration "$DURATION" -keys 10000 -value-size 256 -no-prefill -consistency "$mode"
done
log "etcd: watch fan-out, $WATCHERS watchers"
eb watch-fanout -watchers "$WATCHERS" -writes 5 >"$OUT/etcd-watch.json"
etcd_term() { ETCDCTL_API=3 etcdctl --endpoints "$EPS" endpoint status -w json | grep -o '"raft_term":[0-9]*' | head -1 | cut -d: -f2; }
echo $(( $(etcd_term) - ETCD_TERM0 )) >"$OUT/elections-etcd.txt"
log "etcd: failover, $ROUNDS rounds"
: >"$OUT/etcd-failover.txt"
for r in $(seq 1 "$ROUNDS"); do
  lid="$(etcd_leader_ep)"
  li=$(( ${lid##*:} - 12370 ))
  surv=(); for i in 1 2 3; do [[ $i == "$li" ]] || surv+=("127.0.0.1:$((12370 + i))"); done
  t0=$(date +%s%N)
  kill -9 "${ETCD_PIDS[$li]}"; wait "${ETCD_PIDS[$li]}" 2>/dev/null || true
  "$EB" probe -endpoints "$(IFS=,; echo "${surv[*]}")" -since "$t0" >>"$OUT/etcd-failover.txt"
  start_etcd_member "$li" existing
  for _ in $(seq 1 600); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$((12370 + li))" endpoint health >/dev/null 2>&1 && break; sleep 0.1
  done
done
"$EB" hist -workload failover -in "$OUT/etcd-failover.txt" >"$OUT/etcd-failover.json"

# --- report ------------------------------------------------------------------
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
# watch_raw_row: the watch fan-out row again for the raw-client run, against
# the same etcd figure (etcdbench compare reads cairn-watch.json; give it a
# dir where that name is the raw result).
watch_raw_row() {
  [[ -f "$OUT/cairn-watch-raw.json" && -f "$OUT/etcd-watch.json" ]] || return 0
  local d="$WORK/compare-raw"
  mkdir -p "$d"
  ln -sf "$OUT/cairn-watch-raw.json" "$d/cairn-watch.json"
  ln -sf "$OUT/etcd-watch.json" "$d/etcd-watch.json"
  { "$EB" compare -dir "$d" 2>/dev/null || true; } | sed -n 's/^| Watch fan-out,/| Watch fan-out (raw HTTP\/1.1 watchers),/p'
  local errs; errs="$(grep -o '"errors": [0-9]*' "$OUT/cairn-watch-raw.json" | head -1 | grep -o '[0-9]*$' || true)"
  [[ -z $errs || $errs == 0 ]] || echo "note: cairn watch-fanout (raw) had $errs errors (see $OUT/cairn-watch-raw.json)" >&2
}
RAW_ROW="$(watch_raw_row)"
# floor_row: bench/httpfloor's p99 with the raw watchers, no etcd twin.
floor_row() {
  [[ -f "$OUT/floor-watch.txt" ]] || return 0
  awk '/^all:/ { for (i = 1; i <= NF; i++) if ($i == "p99") printf "| Watch fan-out floor: 3 empty Go net/http servers, raw watchers, p99 (ms) | %s | | | ≤ 200 ms | %s |\n", $(i+1), ($(i+1) <= 200 ? "yes" : "no") }' "$OUT/floor-watch.txt"
}
FLOOR_ROW="$(floor_row)"
"$EB" compare -dir "$OUT" | awk -v raw="$RAW_ROW" -v floor="$FLOOR_ROW" '{ print } /^\| Watch fan-out,/ { if (raw != "") print raw; if (floor != "") print floor }' | tee "$OUT/ratios.md"
if [[ $PROFILE == 1 ]]; then
  for f in "$OUT"/prof-*.pb.gz; do
    go tool pprof -top -nodecount=30 "$BIN/cairn" "$f" >"${f%.pb.gz}.top.txt" 2>/dev/null || true
  done
  log "profiles: $OUT/prof-*.top.txt"
fi
log "results in $OUT"

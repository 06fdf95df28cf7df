#!/usr/bin/env bash
# DNS benchmark for issue 5: Cairn (a -dev agent holding SERVICES x INSTANCES
# service instances) side by side with NSD serving the same answers from a
# static zone, both measured with dnsperf for A and SRV lookups.
#
#   bench/dns/run.sh               # against `cairn agent -dev`
#   bench/dns/run.sh --standalone  # internal/dns alone over an in-memory
#                                  # catalog (before the agent wires DNS)
#
# Environment: SERVICES (1000) INSTANCES (3) DURATION (20 s per throughput
# run) LAT_QPS (10000: fixed rate of the latency runs) LAT_DURATION (10)
# CLIENTS (4) THREADS (2) CAIRN_DNS_PORT (18600) CAIRN_HTTP_PORT (18500)
# NSD_PORT (18653). Needs root for apt-get when dnsperf/nsd/dig are missing.
set -euo pipefail

MODE=agent
[[ "${1:-}" == "--standalone" ]] && MODE=standalone

SERVICES=${SERVICES:-1000}
INSTANCES=${INSTANCES:-3}
DURATION=${DURATION:-20}
LAT_QPS=${LAT_QPS:-10000}
LAT_DURATION=${LAT_DURATION:-10}
CLIENTS=${CLIENTS:-4}
THREADS=${THREADS:-2}
CAIRN_DNS_PORT=${CAIRN_DNS_PORT:-18600}
CAIRN_HTTP_PORT=${CAIRN_HTTP_PORT:-18500}
NSD_PORT=${NSD_PORT:-18653}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/cairn-dnsbench.XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
log() { printf '==> %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------
missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v nsd >/dev/null || missing+=(nsd)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi

log "building into $WORK"
(cd "$ROOT" && go build -o "$WORK/cairn" ./cmd/cairn && go build -o "$WORK/dnsbench" ./bench/dns/dnsbench)
"$WORK/dnsbench" zone -out "$WORK" -services "$SERVICES" -instances "$INSTANCES"
LAST="svc-$((SERVICES - 1)).service.consul."

# wait_dns PORT NAME TYPE: until the server answers NAME with a record.
wait_dns() {
	for _ in $(seq 1 150); do
		if [[ -n "$(dig @127.0.0.1 -p "$1" "$2" "$3" +short +time=1 +tries=1 2>/dev/null)" ]]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# --- NSD ---------------------------------------------------------------------
cat >"$WORK/nsd.conf" <<CONF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    port: $NSD_PORT
    username: ""
    chroot: ""
    zonesdir: "$WORK"
    pidfile: "$WORK/nsd.pid"
    xfrdfile: "$WORK/xfrd.state"
    zonelistfile: "$WORK/zone.list"
    logfile: "$WORK/nsd.log"
    server-count: $(nproc)
    rrl-ratelimit: 0
    verbosity: 0
remote-control:
    control-enable: no
zone:
    name: consul.
    zonefile: consul.zone
CONF
nsd-checkconf "$WORK/nsd.conf"
log "starting nsd on 127.0.0.1:$NSD_PORT"
nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.out" 2>&1 &
PIDS+=($!)
wait_dns "$NSD_PORT" "$LAST" A || { cat "$WORK/nsd.out" "$WORK/nsd.log" >&2 || true; echo "nsd did not answer" >&2; exit 1; }

# --- Cairn -------------------------------------------------------------------
if [[ $MODE == agent ]]; then
	log "starting cairn agent -dev (dns 127.0.0.1:$CAIRN_DNS_PORT, http 127.0.0.1:$CAIRN_HTTP_PORT)"
	"$WORK/cairn" agent -dev -log-level warn -dns-port "$CAIRN_DNS_PORT" -http-port "$CAIRN_HTTP_PORT" \
		>"$WORK/cairn.out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 150); do
		leader=$(curl -fsS "http://127.0.0.1:$CAIRN_HTTP_PORT/v1/status/leader" 2>/dev/null || true)
		[[ -n "$leader" && "$leader" != '""' ]] && break
		sleep 0.2
	done
	[[ -n "${leader:-}" && "$leader" != '""' ]] || { cat "$WORK/cairn.out" >&2; echo "cairn agent has no leader" >&2; exit 1; }
	log "registering $SERVICES services x $INSTANCES instances"
	"$WORK/dnsbench" register -http "127.0.0.1:$CAIRN_HTTP_PORT" -services "$SERVICES" -instances "$INSTANCES"
else
	log "starting internal/dns standalone on 127.0.0.1:$CAIRN_DNS_PORT"
	"$WORK/dnsbench" serve -addr "127.0.0.1:$CAIRN_DNS_PORT" -services "$SERVICES" -instances "$INSTANCES" >"$WORK/cairn.out" 2>&1 &
	PIDS+=($!)
fi
if ! wait_dns "$CAIRN_DNS_PORT" "$LAST" SRV; then
	cat "$WORK/cairn.out" >&2
	echo "cairn does not answer DNS on port $CAIRN_DNS_PORT (is the DNS server wired into the agent yet? try --standalone)" >&2
	exit 1
fi

# --- measure -----------------------------------------------------------------
# qps PORT FILE: throughput with CLIENTS x THREADS senders, 100 outstanding.
qps() {
	dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$DURATION" -c "$CLIENTS" -T "$THREADS" -q 100 2>&1 |
		awk '/Queries per second/ {printf "%.0f", $4} /Queries lost/ {lost=$3} END {if (lost+0 > 0) printf " (lost %s)", lost}'
}
# latency PORT FILE: p50 and p99 in ms at the fixed rate LAT_QPS.
latency() {
	dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$LAT_DURATION" -Q "$LAT_QPS" -v >"$WORK/lat.txt" 2>&1
	"$WORK/dnsbench" percentiles "$WORK/lat.txt" | awk '{printf "%s %s\n", $1, $2}'
}

RESULTS="$WORK/results.md"
{
	echo "| server | query | QPS | p50 ms @${LAT_QPS} qps | p99 ms @${LAT_QPS} qps |"
	echo "|---|---|---:|---:|---:|"
} >"$RESULTS"
declare -A QPS
for qtype in A SRV; do
	file="$WORK/queries-$(echo "$qtype" | tr A-Z a-z).txt"
	for target in nsd cairn; do
		port=$NSD_PORT
		[[ $target == cairn ]] && port=$CAIRN_DNS_PORT
		log "dnsperf $target $qtype"
		q=$(qps "$port" "$file")
		read -r p50 p99 < <(latency "$port" "$file")
		QPS[$target$qtype]=${q%% *}
		echo "| $target ($MODE) | $qtype | $q | $p50 | $p99 |" | sed 's/nsd ([a-z]*)/nsd 4 (static zone)/' >>"$RESULTS"
	done
done
{
	echo
	for qtype in A SRV; do
		awk -v c="${QPS[cairn$qtype]}" -v n="${QPS[nsd$qtype]}" -v t="$qtype" \
			'BEGIN {printf "cairn/nsd QPS ratio (%s): %.2f\n", t, c / n}'
	done
	echo
	echo "$SERVICES services x $INSTANCES instances; dnsperf 2.10 -c $CLIENTS -T $THREADS -q 100 for ${DURATION}s;" \
		"latency at -Q $LAT_QPS for ${LAT_DURATION}s; $(nproc) CPUs ($(uname -m)), all on one machine."
} >>"$RESULTS"
cat "$RESULTS"

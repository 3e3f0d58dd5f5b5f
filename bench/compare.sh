#!/usr/bin/env bash
# The side-by-side benchmark (bench/README.md): gatehouse, nginx, HAProxy
# and Caddy as the secure-ingress walkthrough's mTLS ingress on this
# machine, measured in turn (A B C D, A B C D, ...), three rounds; writes
# bench/RESULTS.md.
#
#   bench/compare.sh            full run (three rounds)
#   bench/compare.sh --quick    one short round, for development
#   options: --out FILE (default bench/RESULTS.md), --keep (keep the work
#   folder under /tmp), --no-build (use the release binaries as they are),
#   --baseline BIN (also measure another gatehouse build, e.g. an older
#   commit's release binary, as the proxy "gatehouse-base": the regression
#   check), --keepalive-only (only (a), the keep-alive requests/s)
#
# Measures: (a) keep-alive HTTP/1.1, (b) full handshakes, (c) p99 at a fixed
# rate, (d) memory per idle connection, (e) gatehouse's credential push and
# many hosts, (f) keep-alive HTTP/2 (10 streams per connection), (g) mixed
# load (every 10th request on a new connection), (h) gatehouse at
# --workers 1 and 2.
#
# Loopback only. Every load is bounded in time. It stops only the processes
# it started (their PIDs are recorded; trap on EXIT).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
OUT=$ROOT/bench/RESULTS.md
KEEP=0
BUILD=1
BASE=""
KA_ONLY=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	--no-build) BUILD=0 ;;
	--baseline) BASE=$(realpath "$2"); shift ;;
	--keepalive-only) KA_ONLY=1 ;;
	-h | --help) sed -n '2,23p' "$0"; exit 0 ;;
	*) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

PROXIES=(gatehouse nginx haproxy caddy)
if [ "$QUICK" = 1 ]; then
	ROUNDS=1 DUR=3 WARM=1 HS_DUR=3 IDLE_NS="1000 2000" HOLD=2 ROTATIONS=10 NHOSTS=1000 UPDATES=3
else
	ROUNDS=3 DUR=10 WARM=2 HS_DUR=10 IDLE_NS="1000 10000" HOLD=3 ROTATIONS=50 NHOSTS=10000 UPDATES=3
fi
CONNS=50 HS_CONC=32
# (f) HTTP/2: connections x streams in flight; (g) every MIX_EVERY-th
# request of a connection closes it (a new full handshake follows).
H2_CONNS=10 H2_STREAMS=10 MIX_EVERY=10
if [ -n "$BASE" ]; then
	[ -x "$BASE" ] || { echo "--baseline $BASE: not an executable" >&2; exit 2; }
	PROXIES=(gatehouse gatehouse-base nginx haproxy caddy)
fi

log() { printf '%s  %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- the processes we start, and only those, are stopped on exit ---------
PIDS=()
T=""
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [ -n "$T" ] && [ "$KEEP" = 0 ] && [ "${FAILED:-0}" = 0 ]; then
		rm -rf "$T"
	elif [ -n "$T" ]; then
		log "work files kept in $T"
	fi
}
FAILED=1
trap cleanup EXIT

# --- install the peers from Debian if missing (services not started) ----
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v caddy >/dev/null || need+=(caddy)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}"
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		# Keep the packages' services from starting on install.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
	[ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

if [ "$BUILD" = 1 ]; then
	log "building gatehouse (release)"
	(cd "$ROOT" && cargo build --release --locked --quiet -p gatehouse -p gatehouse-loadgen)
fi
G=$ROOT/target/release/gatehouse
L=$ROOT/target/release/gatehouse-loadgen

T=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
mkdir -p "$T/logs" "$T/runs"
RES=$T/results.jsonl
: >"$RES"
PKI=$T/pki
CLK_TCK=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
B1=127.0.0.1:$(free_port) B2=127.0.0.1:$(free_port)
GH_PORT=$(free_port) GH_ADMIN=$(free_port) NGX_PORT=$(free_port)
GHB_PORT=$(free_port) GHB_ADMIN=$(free_port)
HAP_PORT=$(free_port) CAD_PORT=$(free_port) CAD_HTTP_PORT=$(free_port)
# shellcheck source=bench/proxies.sh
. "$ROOT/bench/proxies.sh"

# --- the walkthrough: certificates, secrets, Gateway, VirtualServices ----
log "walkthrough setup in $T"
GS=(--store "dir:$T/store")
for h in "${HOSTS[@]}"; do
	"$G" "${GS[@]}" pki init "$h" --out "$PKI" >/dev/null
	name=${h%%.*}-credential
	"$G" "${GS[@]}" create -n istio-system secret generic "$name" \
		--from-file=key="$(srv_key "$h")" --from-file=cert="$(srv_cert "$h")" \
		--from-file=cacert="$(ca_chain "$h")" >/dev/null
done
"$G" "${GS[@]}" apply -f "$ROOT/examples/foocorp/" >/dev/null
service_entry() { # name host addr
	cat <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: default}
spec:
  hosts: [$2]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: ${3%:*}, ports: {http: ${3##*:}}}]
EOF
}
{
	service_entry frontend frontend.ux.svc.cluster.local "$B1"
	echo ---
	service_entry inventory inventory.corp-services.svc.cluster.local "$B2"
} >"$T/serviceentries.yaml"
"$G" "${GS[@]}" apply -f "$T/serviceentries.yaml" >/dev/null
write_nginx_conf
write_haproxy_conf
write_caddyfile

start_backend() { # addr body
	"$L" --threads 1 backend --listen "$1" --body "$2" --max-seconds 7200 >"$T/logs/backend-${1##*:}.log" 2>&1 &
	PIDS+=($!)
}
start_backend "$B1" "Welcome to FooCorp - Public Site"
start_backend "$B2" "FooCorp - Inventory [INTERNAL]"

FRONT=frontend.foocorp.com
CLIENT=(--ca "$(ca_chain $FRONT)" --cert "$PKI/$FRONT/4_client/certs/$FRONT.cert.pem"
	--key "$PKI/$FRONT/4_client/private/$FRONT.key.pem" --sni $FRONT)

curl_host() { # port host [host-header] -> "status body"
	local hh=${3:-$2}
	curl -s --max-time 3 -o "$T/curl.out" -w '%{http_code}' -H "Host: $hh" \
		--resolve "$2:$1:127.0.0.1" --cacert "$(ca_chain "$2")" \
		--cert "$PKI/$2/4_client/certs/$2.cert.pem" --key "$PKI/$2/4_client/private/$2.key.pem" \
		"https://$2:$1/" 2>/dev/null || true
}

# Starts proxy $1 and waits until it serves the walkthrough's request.
start_proxy() {
	launch_proxy "$1"
	local port i
	port=$(port_of "$1")
	for i in $(seq 1 200); do
		[ "$(curl_host "$port" $FRONT)" = 200 ] && return 0
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.1
	done
	die "$1 did not start (see $T/logs/$1.log): $(tail -5 "$T/logs/$1.log")"
}
stop_proxy() {
	stop_pid "$PROXY_PID"
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$PROXY_PID" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

proxy_pids() { # the proxy and its children (nginx workers)
	echo "$PROXY_PID"
	cat /proc/"$PROXY_PID"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true
}
cpu_ticks() { # utime+stime of the proxy's processes, in clock ticks
	local p s=0 t
	for p in $(proxy_pids); do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
		s=$((s + ${t:-0}))
	done
	echo "$s"
}
pss_kib() { # PSS of the proxy's processes
	local p s=0 t
	for p in $(proxy_pids); do
		t=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || t=0
		s=$((s + ${t:-0}))
	done
	echo "$s"
}

jget() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }
rec() { # round proxy metric value
	printf '{"round":%s,"proxy":"%s","metric":"%s","value":%s}\n' "$1" "$2" "$3" "$4" >>"$RES"
}
calc() { python3 -c "print($1)"; }
lg() { "$L" --threads 2 "$@"; }

# --- sanity: each proxy answers both hosts and refuses a cross-host request
check_proxy() {
	local p=$1 port
	start_proxy "$p"
	port=$(port_of "$p")
	local f i m
	f=$(curl_host "$port" frontend.foocorp.com)
	i=$(curl_host "$port" inventory.foocorp.com)
	m=$(curl_host "$port" frontend.foocorp.com inventory.foocorp.com)
	stop_proxy
	log "check $p: frontend $f, inventory $i, frontend's mTLS with Host inventory: $m"
	echo "| $p | $f | $i | $m |" >>"$T/checks.md"
	[ "$f" = 200 ] && [ "$i" = 200 ] || die "$p does not serve the walkthrough"
}
: >"$T/checks.md"
for p in "${PROXIES[@]}"; do check_proxy "$p"; done

# --- (a) keep-alive, (b) handshakes, (c) fixed rate, (d) idle memory ----
# (f) HTTP/2, (g) mixed load and (h) workers are keep-alive loads too.
load_run() { # round proxy metric-prefix loadgen-keepalive-options...
	local r=$1 p=$2 m=$3 out=$T/runs/$3-$1-$2.json c0 c1
	shift 3
	start_proxy "$p"
	lg keepalive --connect "127.0.0.1:$(port_of "$p")" "${CLIENT[@]}" "$@" --duration "$WARM" --json >/dev/null
	c0=$(cpu_ticks)
	lg keepalive --connect "127.0.0.1:$(port_of "$p")" "${CLIENT[@]}" "$@" --duration "$DUR" --json >"$out"
	c1=$(cpu_ticks)
	stop_proxy
	local ok err
	ok=$(jget "$out" requests_ok) err=$(jget "$out" errors_total)
	rec "$r" "$p" "${m}_rps" "$(jget "$out" requests_per_s)"
	rec "$r" "$p" "${m}_p50_ms" "$(jget "$out" latency.p50_ms)"
	rec "$r" "$p" "${m}_p99_ms" "$(jget "$out" latency.p99_ms)"
	rec "$r" "$p" "${m}_errors" "$err"
	rec "$r" "$p" "${m}_cpu_us" "$(calc "($c1-$c0)*1e6/$CLK_TCK/max(1,$ok+$err)")"
	[ "$m" = ka ] || rec "$r" "$p" "${m}_handshakes" "$(jget "$out" handshakes.full)"
	log "($m) round $r $p: $(jget "$out" requests_per_s) req/s, $err errors $(jget "$out" errors)"
}
keepalive_run() { load_run "$1" "$2" ka -c $CONNS; }
h2_run() { load_run "$1" "$2" h2 --http2 -c $H2_CONNS --streams $H2_STREAMS; }
mixed_run() { load_run "$1" "$2" mix -c $CONNS --new-connection-every $MIX_EVERY; }
handshake_run() {
	local out=$T/runs/b-$1-$2.json c0 c1
	start_proxy "$2"
	c0=$(cpu_ticks)
	lg handshakes --connect "127.0.0.1:$(port_of "$2")" "${CLIENT[@]}" -c $HS_CONC --duration "$HS_DUR" --json >"$out"
	c1=$(cpu_ticks)
	stop_proxy
	local ok err
	ok=$(jget "$out" requests_ok) err=$(jget "$out" errors_total)
	rec "$1" "$2" hs_rate "$(jget "$out" requests_per_s)"
	rec "$1" "$2" hs_p50_ms "$(jget "$out" latency.p50_ms)"
	rec "$1" "$2" hs_errors "$err"
	rec "$1" "$2" hs_resumed "$(jget "$out" handshakes.resumed)"
	rec "$1" "$2" hs_cpu_us "$(calc "($c1-$c0)*1e6/$CLK_TCK/max(1,$ok+$err)")"
	log "(b) round $1 $2: $(jget "$out" requests_per_s) handshakes/s, $err errors"
}
rate_run() { # round proxy rate
	local out=$T/runs/c-$1-$2.json
	start_proxy "$2"
	lg keepalive --connect "127.0.0.1:$(port_of "$2")" "${CLIENT[@]}" -c $CONNS --duration "$WARM" --rate "$3" --json >/dev/null
	lg keepalive --connect "127.0.0.1:$(port_of "$2")" "${CLIENT[@]}" -c $CONNS --duration "$DUR" --rate "$3" --json >"$out"
	stop_proxy
	rec "$1" "$2" rate_target "$3"
	rec "$1" "$2" rate_rps "$(jget "$out" requests_per_s)"
	rec "$1" "$2" rate_p50_ms "$(jget "$out" latency.p50_ms)"
	rec "$1" "$2" rate_p99_ms "$(jget "$out" latency.p99_ms)"
	rec "$1" "$2" rate_errors "$(jget "$out" errors_total)"
	log "(c) round $1 $2 at $3/s: p99 $(jget "$out" latency.p99_ms) ms"
}
idle_run() { # round proxy n
	local out=$T/runs/d-$1-$2-$3.json ready=$T/runs/ready-$1-$2-$3 pss0 pss1 pid i
	rm -f "$ready"
	start_proxy "$2"
	lg keepalive --connect "127.0.0.1:$(port_of "$2")" "${CLIENT[@]}" -c 1 --duration 0.3 --json >/dev/null
	sleep 0.5
	pss0=$(pss_kib)
	lg idle --connect "127.0.0.1:$(port_of "$2")" "${CLIENT[@]}" -n "$3" -c 50 --hold "$HOLD" \
		--open-timeout 100 --ready-file "$ready" --json >"$out" &
	pid=$!
	PIDS+=("$pid")
	for i in $(seq 1 1100); do
		[ -e "$ready" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	pss1=$(pss_kib)
	wait "$pid" || true
	stop_proxy
	local opened
	opened=$(jget "$out" extra.opened)
	rec "$1" "$2" "idle${3}_opened" "$opened"
	rec "$1" "$2" "idle${3}_open_at_end" "$(jget "$out" extra.open_at_end)"
	rec "$1" "$2" "idle${3}_base_mib" "$(calc "$pss0/1024")"
	rec "$1" "$2" "idle${3}_kib" "$(calc "($pss1-$pss0)/max(1,$opened)")"
	log "(d) round $1 $2 $3 idle: $opened opened, $(calc "round(($pss1-$pss0)/max(1,$opened),1)") KiB each"
}

for r in $(seq 1 "$ROUNDS"); do
	# Anything else running on the machine skews every number: say so.
	rec "$r" machine loadavg_1m "$(cut -d' ' -f1 /proc/loadavg)"
	for p in "${PROXIES[@]}"; do keepalive_run "$r" "$p"; done
	[ "$KA_ONLY" = 0 ] || continue
	for p in "${PROXIES[@]}"; do h2_run "$r" "$p"; done
	for p in "${PROXIES[@]}"; do mixed_run "$r" "$p"; done
	# (h) gatehouse alone, its data plane on one worker thread, then two.
	for w in 1 2; do load_run "$r" "gatehouse-w$w" scale -c $CONNS; done
	for p in "${PROXIES[@]}"; do handshake_run "$r" "$p"; done
	rate=$(calc "int($(jget "$T/runs/ka-$r-nginx.json" requests_per_s)/2)")
	for p in "${PROXIES[@]}"; do rate_run "$r" "$p" "$rate"; done
	for n in $IDLE_NS; do
		for p in "${PROXIES[@]}"; do idle_run "$r" "$p" "$n"; done
	done
done

# --- (e) gatehouse alone: credential push, and N hosts -------------------
[ "$KA_ONLY" = 0 ] || ROUNDS_E=0
for r in $(seq 1 "${ROUNDS_E:-$ROUNDS}"); do
	PROXY_PID=""
	start_proxy gatehouse
	out=$T/runs/e-push-$r.json
	lg push-latency --connect "127.0.0.1:$GH_PORT" "${CLIENT[@]}" --gatehouse "$G" --store "dir:$T/store" \
		--pki-dir "$PKI/$FRONT" --secret frontend-credential --rotations "$ROTATIONS" \
		--work-dir "$T/push" --json >"$out"
	stop_proxy
	rec "$r" gatehouse push_p50_ms "$(jget "$out" store_to_handshake.p50_ms)"
	rec "$r" gatehouse push_p99_ms "$(jget "$out" store_to_handshake.p99_ms)"
	rec "$r" gatehouse push_served "$(jget "$out" served)"
	rec "$r" gatehouse apply_p50_ms "$(jget "$out" apply_duration.p50_ms)"
	log "(e) round $r push: p50 $(jget "$out" store_to_handshake.p50_ms) ms, p99 $(jget "$out" store_to_handshake.p99_ms) ms"
done

if [ "$KA_ONLY" = 0 ]; then
log "(e) generating $NHOSTS hosts, each with its own credential"
H=$T/hosts
"$L" hosts --count "$NHOSTS" --out "$H" --backend "$B1" >/dev/null
t0=$(date +%s%N)
"$G" --store "dir:$H/store" apply -f "$H/manifests/" >/dev/null
t1=$(date +%s%N)
rec 1 gatehouse hosts_apply_s "$(calc "($t1-$t0)/1e9")"
HCLIENT=(--ca "$H/pki/bench.test/2_intermediate/certs/ca-chain.cert.pem"
	--cert "$H/pki/bench.test/4_client/certs/bench.test.cert.pem"
	--key "$H/pki/bench.test/4_client/private/bench.test.key.pem" --sni h0.bench.test)
for r in $(seq 1 "$ROUNDS"); do
	t0=$(date +%s%N)
	RUST_LOG=warn "$G" --store "dir:$H/store" run --listen "443=127.0.0.1:$GH_PORT" \
		--admin "127.0.0.1:$GH_ADMIN" >"$T/logs/gatehouse-hosts.log" 2>&1 &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	ready=""
	for i in $(seq 1 6000); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$GH_ADMIN/ready" || true)" = 200 ]; then
			ready=$(date +%s%N)
			break
		fi
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.01
	done
	[ -n "$ready" ] || die "gatehouse with $NHOSTS hosts did not become ready (see $T/logs/gatehouse-hosts.log)"
	active=0
	for i in $(seq 1 600); do
		curl -s --max-time 10 "http://127.0.0.1:$GH_ADMIN/credentials" >"$T/creds.json" || true
		active=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); print(sum(1 for c in d["credentials"] if c["state"]=="ACTIVE" and c["kind"]=="Cert Chain"))' "$T/creds.json" 2>/dev/null || echo 0)
		[ "$active" -ge "$NHOSTS" ] && break
		sleep 0.1
	done
	t2=$(date +%s%N)
	# The first handshake to the last host, after readiness.
	lg handshakes --connect "127.0.0.1:$GH_PORT" "${HCLIENT[@]/h0.bench.test/h$((NHOSTS - 1)).bench.test}" \
		-c 1 --duration 1 --json >"$T/runs/e-hosts-hs-$r.json" || true
	rec "$r" gatehouse hosts_ready_s "$(calc "($ready-$t0)/1e9")"
	rec "$r" gatehouse hosts_active_s "$(calc "($t2-$t0)/1e9")"
	rec "$r" gatehouse hosts_active "$active"
	rec "$r" gatehouse hosts_last_host_hs "$(jget "$T/runs/e-hosts-hs-$r.json" requests_ok)"
	rec "$r" gatehouse hosts_rss_mib "$(awk '/^VmRSS:/{print $2/1024}' "/proc/$PROXY_PID/status")"
	rec "$r" gatehouse hosts_pss_mib "$(awk '/^Pss:/{print $2/1024}' "/proc/$PROXY_PID/smaps_rollup")"
	out=$T/runs/e-update-$r.json
	lg push-latency --connect "127.0.0.1:$GH_PORT" "${HCLIENT[@]}" --gatehouse "$G" --store "dir:$H/store" \
		--pki-dir "$H/pki/bench.test" --secret h0-credential --rotations "$UPDATES" --wait 120 \
		--work-dir "$T/push" --json >"$out"
	rec "$r" gatehouse hosts_update_p50_ms "$(jget "$out" store_to_handshake.p50_ms)"
	rec "$r" gatehouse hosts_update_p99_ms "$(jget "$out" store_to_handshake.p99_ms)"
	stop_proxy
	log "(e) round $r, $NHOSTS hosts: ready in $(calc "round(($ready-$t0)/1e9,3)") s, $active active, update p50 $(jget "$out" store_to_handshake.p50_ms) ms"
done

fi

# --- the report ----------------------------------------------------------
CMD="bench/compare.sh"
[ "$QUICK" = 0 ] || CMD="$CMD --quick"
[ -z "$BASE" ] || CMD="$CMD --baseline $BASE"
[ "$KA_ONLY" = 0 ] || CMD="$CMD --keepalive-only"
versions=()
[ -z "$BASE" ] || versions+=(--version "gatehouse-base=$(version_of gatehouse-base)")
python3 "$ROOT/bench/summarize.py" --results "$RES" --checks "$T/checks.md" --out "$OUT" \
	--command "$CMD" --rounds "$ROUNDS" --duration "$DUR" --hs-duration "$HS_DUR" \
	--connections "$CONNS" --hs-concurrency "$HS_CONC" --idle "$IDLE_NS" --hold "$HOLD" \
	--rotations "$ROTATIONS" --hosts "$NHOSTS" --updates "$UPDATES" --fd-limit "$FD_LIMIT" \
	--h2-connections "$H2_CONNS" --h2-streams "$H2_STREAMS" --mix-every "$MIX_EVERY" \
	--version "gatehouse=$(version_of gatehouse)" --version "nginx=$(version_of nginx)" \
	--version "haproxy=$(version_of haproxy)" --version "caddy=$(version_of caddy)" "${versions[@]}"
cp "$RES" "${OUT%.md}.jsonl"
log "wrote $OUT"
FAILED=0

#!/usr/bin/env bash
# Where gatehouse's CPU goes under one of the benchmark's loads: a `perf
# record` of the release binary, then the split by part (crypto, kernel,
# hyper, rustls, tokio, gatehouse, ...) that bench/README.md quotes
# ("Where the time goes").
#
#   bench/compare.sh --quick --keepalive-only --keep   # makes a work folder
#   bench/profile.sh /tmp/gatehouse-bench.XXXXXX keepalive -c 50
#   bench/profile.sh /tmp/gatehouse-bench.XXXXXX keepalive -c 10 --streams 10 --http2
#   bench/profile.sh /tmp/gatehouse-bench.XXXXXX handshakes -c 32
#
# Arguments after the work folder are `gatehouse-loadgen`'s (its mode and
# options). Environment: BIN (the gatehouse binary, default
# target/release/gatehouse), SECONDS_ (measured seconds, default 8), FREQ
# (samples/s, default 499). Needs `perf` (apt-get install linux-perf).
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n '2,17p' "$0"; exit 2; }
T=$1; shift
[ -d "$T/store" ] && [ -d "$T/pki" ] || { echo "$T: not a work folder of bench/compare.sh --keep" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 2; }
G=${BIN:-$ROOT/target/release/gatehouse}
L=$ROOT/target/release/gatehouse-loadgen
DUR=${SECONDS_:-8}
OUT=$T/profile
mkdir -p "$OUT"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The backends the work folder's ServiceEntries name.
for addr in $(sed -n 's/.*address: \([0-9.]*\), ports: {http: \([0-9]*\)}.*/\1:\2/p' "$T/serviceentries.yaml"); do
	"$L" --threads 1 backend --listen "$addr" --body "profile" --max-seconds $((DUR + 60)) >/dev/null 2>&1 &
	PIDS+=($!)
done
PORT=$(free_port) ADMIN=$(free_port)
RUST_LOG=warn "$G" --store "dir:$T/store" run --listen "443=127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" \
	>"$OUT/gatehouse.log" 2>&1 &
GP=$!
PIDS+=("$GP")
for _ in $(seq 1 100); do
	curl -s -o /dev/null -f "http://127.0.0.1:$ADMIN/ready" && break
	kill -0 "$GP" 2>/dev/null || { cat "$OUT/gatehouse.log" >&2; exit 1; }
	sleep 0.1
done

FRONT=frontend.foocorp.com
CLIENT=(--ca "$T/pki/$FRONT/2_intermediate/certs/ca-chain.cert.pem"
	--cert "$T/pki/$FRONT/4_client/certs/$FRONT.cert.pem"
	--key "$T/pki/$FRONT/4_client/private/$FRONT.key.pem" --sni $FRONT)
MODE=$1; shift
"$L" "$MODE" --connect "127.0.0.1:$PORT" "${CLIENT[@]}" "$@" --duration 2 --json >/dev/null
perf record -F "${FREQ:-499}" --call-graph dwarf,32768 -p "$GP" -o "$OUT/perf.data" -- sleep "$DUR" \
	>/dev/null 2>&1 &
PP=$!
"$L" "$MODE" --connect "127.0.0.1:$PORT" "${CLIENT[@]}" "$@" --duration "$DUR" --json >"$OUT/load.json"
wait "$PP"
echo "load: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["requests_per_s"]), "requests/s,", d["errors_total"], "errors")' "$OUT/load.json")"
perf script -i "$OUT/perf.data" -F ip,sym,dso 2>/dev/null >"$OUT/perf.script"
python3 "$ROOT/bench/profile_split.py" "$OUT/perf.script"
echo "perf data: $OUT/perf.data"

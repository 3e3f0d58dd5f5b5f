#!/usr/bin/env bash
# The CPU an idle `gatehouse run` uses, as a percentage of one core.
#
#   bench/idle-cpu.sh BINARY [SECONDS]
#
# Sets up the walkthrough in a scratch directory (its own store; nothing of
# yours is touched): `pki init` for both hosts, the two secrets, the
# Gateway and VirtualServices of examples/foocorp/, then starts
# `gatehouse run` on loopback (port 0), lets it settle, and reads the
# process's utime+stime from /proc/PID/stat before and after SECONDS
# (default 30) of no traffic. It builds nothing: pass the binary, e.g.
# target/debug/gatehouse or target/release/gatehouse.
#
# With FILE_MOUNT=1 the Gateway also has a server whose certificate is
# file-mounted (tls.serverCertificate/privateKey), so the file watcher runs.
set -euo pipefail

bin=$(realpath "${1:?usage: bench/idle-cpu.sh BINARY [SECONDS]}")
seconds=${2:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
export GATEHOUSE_STORE="dir:$work/store" HOME="$work" XDG_DATA_HOME="$work/xdg"
unset RUST_LOG
for host in frontend.foocorp.com inventory.foocorp.com; do
    "$bin" pki init "$host" --out . >/dev/null
    svc=${host%%.*}
    "$bin" create -n istio-system secret generic "$svc-credential" \
        --from-file=key="$host/3_application/private/$host.key.pem" \
        --from-file=cert="$host/3_application/certs/$host.cert.pem" \
        --from-file=cacert="$host/2_intermediate/certs/ca-chain.cert.pem" >/dev/null
done
"$bin" apply -f "$here/examples/foocorp/" >/dev/null
if [ "${FILE_MOUNT:-0}" = 1 ]; then
    h=frontend.foocorp.com
    cat >mounted.yaml <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mounted
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 8443, name: https-mounted, protocol: HTTPS}
    hosts: ["mounted.foocorp.com"]
    tls:
      mode: SIMPLE
      serverCertificate: $work/$h/3_application/certs/$h.cert.pem
      privateKey: $work/$h/3_application/private/$h.key.pem
EOF
    "$bin" apply -f mounted.yaml >/dev/null
fi

"$bin" run --admin 127.0.0.1:0 --listen 443=127.0.0.1:0 --listen 8443=127.0.0.1:0 \
    >run.out 2>run.log &
pid=$!
for _ in $(seq 100); do
    grep -q "listening on" run.out 2>/dev/null && break
    sleep 0.1
done
grep -q "listening on" run.out || { echo "gatehouse run did not start:" >&2; cat run.log >&2; exit 1; }
sleep 2 # let start-up work finish

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$seconds"
t1=$(ticks)
threads=$(ls "/proc/$pid/task" | wc -l)
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$seconds" -v n="$threads" 'BEGIN {
    printf "idle %ss: %d ticks (%d/s) = %.2f%% of one core; %d threads\n", s, d, hz, 100 * d / hz / s, n
}'

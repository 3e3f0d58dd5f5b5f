#!/usr/bin/env bash
# The one command that installs what the tests need and runs them all:
# formatting, lints, dependency policy (cargo deny), and every test of the
# workspace. Every cargo command that resolves dependencies runs with
# --locked: CI tests exactly the Cargo.lock in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

# The build must not need protoc (the etcd client's gRPC code is generated
# and committed: crates/etcd-rpc). prost-build reads PROTOC before PATH, so
# any build script that still wanted protoc fails here, even on a machine
# that has one.
export PROTOC=/nonexistent/protoc

# tool -> the Debian package that brings it (etcd for the scale-out tests;
# chromium and its WebDriver, chromedriver, for the dashboard's browser test)
need=()
for pair in curl:curl openssl:openssl etcd:etcd-server etcdctl:etcd-client \
            chromium:chromium chromedriver:chromium-driver kubectl:kubernetes-client; do
  tool=${pair%%:*}; pkg=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || need+=("$pkg")
done
# The HTTP/2 frame client of the edge tests (tests/edge/h2/flood.py) needs
# Python's h2 package; Debian's python3-h2 installs it for /usr/bin/python3.
if ! /usr/bin/python3 -c 'import h2' >/dev/null 2>&1 && ! python3 -c 'import h2' >/dev/null 2>&1; then
  need+=(python3-h2)
fi
# The metrics tests (tests/observe) parse /metrics with Python's
# prometheus_client OpenMetrics parser: Debian's python3-prometheus-client.
if ! /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1 \
  && ! python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; then
  need+=(python3-prometheus-client)
fi
# The observability tests read `proxy-config -o yaml` back with an
# independent YAML parser: PyYAML, Debian's python3-yaml.
if ! /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 && ! python3 -c 'import yaml' >/dev/null 2>&1; then
  need+=(python3-yaml)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Kubernetes tests (tests/kube) run a real kube-apiserver, which
# apiserver.sh builds once from Debian's source package (about 5 minutes on
# 2 cores, then cached in /var/cache/gatehouse-k8s; later calls return at
# once). It builds in the background while cargo builds, and the tests wait
# for it. The folder holding apiserver.sh: GATEHOUSE_K8S_DIR, else
# ../shared/k8s, else /work/shared/k8s (as tests/support/kube.rs looks).
k8s_dir=${GATEHOUSE_K8S_DIR:-}
if [ -z "$k8s_dir" ]; then
  for d in ../shared/k8s /work/shared/k8s; do
    if [ -f "$d/apiserver.sh" ]; then k8s_dir=$d; break; fi
  done
fi
if [ -z "$k8s_dir" ] || [ ! -f "$k8s_dir/apiserver.sh" ]; then
  echo "no apiserver.sh for the Kubernetes tests: set GATEHOUSE_K8S_DIR" >&2
  exit 1
fi
GATEHOUSE_K8S_DIR=$(cd "$k8s_dir" && pwd)
export GATEHOUSE_K8S_DIR
k8s_log=$(mktemp -t apiserver-build.XXXXXX)
bash "$GATEHOUSE_K8S_DIR/apiserver.sh" build >"$k8s_log" 2>&1 &
k8s_build=$!

if ! cargo deny --version >/dev/null 2>&1; then
  # A release build of cargo-deny: about 4 CPU-minutes (31 min of wall
  # time on a busy 2-core machine).
  echo "installing: cargo-deny"
  cargo install --locked cargo-deny
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
# The etcd-rpc generator is outside the workspace (it is the only part that
# needs protoc, and nothing builds it but scripts/gen-etcd-rpc.sh).
cargo fmt --manifest-path crates/etcd-rpc/gen/Cargo.toml -- --check

echo "== cargo build (PROTOC=$PROTOC)"
cargo build --workspace --locked --quiet

echo "== no source file over 500 lines (STYLE.md; generated code aside)"
long=$(find src bench/loadgen/src -name '*.rs' -print0 | xargs -0 wc -l | awk '$2 != "total" && $1 > 500')
if [ -n "$long" ]; then
  echo "split these files by job:" >&2
  echo "$long" >&2
  exit 1
fi

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

# Bans (ring: aws-lc-rs is the only crypto provider; etcd-client: needs
# protoc), licenses and sources, from deny.toml. Advisories are not run
# here: they need the RustSec database cloned from GitHub, and this CI
# reaches no network but package registries. Where GitHub is reachable,
# `cargo deny --locked check advisories` runs them (cargo-deny can also run
# them offline against a database already on disk: `--offline`).
echo "== cargo deny check bans licenses sources"
cargo deny --locked check bans licenses sources

echo "== kube-apiserver for the Kubernetes tests"
if ! wait "$k8s_build"; then
  cat "$k8s_log" >&2
  exit 1
fi
rm -f "$k8s_log"

echo "== cargo test --workspace"
cargo test --workspace --all-targets --locked 2>&1

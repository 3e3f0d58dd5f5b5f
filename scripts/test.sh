#!/usr/bin/env bash
# The one command that installs what the tests need and runs them all:
# formatting, lints, the one-crypto-provider check, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> the Debian package that brings it
need=()
for pair in curl:curl openssl:openssl protoc:protobuf-compiler etcd:etcd-server etcdctl:etcd-client; do
  tool=${pair%%:*}; pkg=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

echo "== one crypto provider (no ring)"
ring_users=$(cargo tree -e normal -i ring 2>/dev/null || true)
if [ -n "$ring_users" ]; then
  echo "ring is in the dependency graph: keep aws-lc-rs as the only provider" >&2
  echo "$ring_users" >&2
  exit 1
fi

echo "== cargo test"
cargo test --all-targets 2>&1

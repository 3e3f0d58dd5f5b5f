#!/usr/bin/env bash
# Regenerates crates/etcd-rpc/src/generated/ from etcd's .proto files.
#
# The generated Rust is committed so that building gatehouse needs no
# protoc; this script is the only thing that does (apt-get install
# protobuf-compiler). The .proto files are taken, at generation time, from
# the etcd-client crate package that cargo downloads (not committed here):
#
#   scripts/gen-etcd-rpc.sh [PROTO_DIR]
#
# PROTO_DIR defaults to etcd-client-$ETCD_CLIENT_VERSION/proto in cargo's
# registry, fetched first if missing. Which RPCs are kept is decided in
# crates/etcd-rpc/gen/src/main.rs (KEEP).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ETCD_CLIENT_VERSION=${ETCD_CLIENT_VERSION:-0.21.1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

proto=${1:-}
if [ -z "$proto" ]; then
  registry=${CARGO_HOME:-$HOME/.cargo}/registry/src
  find_proto() { find "$registry" -maxdepth 2 -type d -name "etcd-client-$ETCD_CLIENT_VERSION" 2>/dev/null | head -n1; }
  if [ -z "$(find_proto)" ]; then
    # A throwaway package whose only dependency is etcd-client makes cargo
    # download and unpack it; nothing is built.
    mkdir -p "$work/fetch/src"
    printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\netcd-client = "=%s"\n' \
      "$ETCD_CLIENT_VERSION" >"$work/fetch/Cargo.toml"
    : >"$work/fetch/src/lib.rs"
    (cd "$work/fetch" && cargo fetch --quiet)
  fi
  proto=$(find_proto)/proto
fi
[ -f "$proto/etcd/api/etcdserverpb/rpc.proto" ] || { echo "no etcd protos under $proto" >&2; exit 1; }
command -v protoc >/dev/null || { echo "protoc is needed to regenerate (apt-get install protobuf-compiler)" >&2; exit 1; }

protoc --include_imports --include_source_info -I "$proto" \
  --descriptor_set_out="$work/etcd.fds" "$proto/etcd/api/etcdserverpb/rpc.proto"

out=$root/crates/etcd-rpc/src/generated
rm -rf "$out" && mkdir -p "$out"
CARGO_TARGET_DIR=$work/target cargo run --quiet --locked \
  --manifest-path "$root/crates/etcd-rpc/gen/Cargo.toml" -- "$work/etcd.fds" "$out"
ls "$out"
echo "regenerated $out from $proto"

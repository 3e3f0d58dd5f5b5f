#!/usr/bin/env bash
# The long property-test profile: every `prop_*` test of the library, run
# again and again with many cases and a fresh random seed per round, until
# MINUTES (default 10) have passed. Stops at the first failure (exit 1)
# with the failing case and the command that replays it.
#
#   scripts/proptest-long.sh [MINUTES]
#   PROPTEST_LONG_CASES=N   cases per property per round (default 4096)
#   PROPTEST_LONG_THREADS=N test threads (default 2)
#
# CI runs the short profile instead: the same tests with proptest's default
# 256 cases, inside the ordinary `cargo test`.
#
# Counting is truthful: a round runs every listed property with exactly
# PROPTEST_CASES cases (no property overrides that variable), and a
# property's cases are counted only when the test reports `ok`.
#
# Nothing is written into the tree: failure persistence is off for these
# runs (PROPTEST_DISABLE_FAILURE_PERSISTENCE); a failure is replayed from
# its round's seed (PROPTEST_RNG_SEED) instead, and belongs in a unit test
# of its minimal case once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROTOC=/nonexistent/protoc

minutes=${1:-10}
if ! [[ "$minutes" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [MINUTES]   (a whole number of minutes, at least 1)" >&2
  exit 2
fi
cases=${PROPTEST_LONG_CASES:-4096}
threads=${PROPTEST_LONG_THREADS:-2}
for n in "$cases" "$threads"; do
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "PROPTEST_LONG_CASES and PROPTEST_LONG_THREADS must be positive integers" >&2
    exit 2
  fi
done

echo "== building the library's tests (release)"
# JSON on stdout names the test executable; diagnostics stay readable on stderr.
exe=$(cargo test --release --locked --lib --no-run --message-format=json-render-diagnostics |
  grep '"reason":"compiler-artifact"' | grep '"test":true' | grep '"kind":\["lib"\]' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1) || true
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  echo "no library test executable was built (see the build's errors above)" >&2
  exit 2
fi

# Every test whose own name starts with prop_, by its full path.
mapfile -t tests < <("$exe" --list 2>/dev/null | sed -n 's/: test$//p' |
  awk -F'::' '$NF ~ /^prop_/' | sort)
if [ ${#tests[@]} -eq 0 ]; then
  echo "no prop_ tests found in $exe" >&2
  exit 2
fi
echo "== ${#tests[@]} properties, $cases cases each per round, for $minutes minute(s)"

declare -A ran
for t in "${tests[@]}"; do ran[$t]=0; done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
deadline=$((start + minutes * 60))
rounds=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  round_start=$(date +%s)
  if ! PROPTEST_CASES=$cases PROPTEST_RNG_SEED=$seed PROPTEST_DISABLE_FAILURE_PERSISTENCE=1 \
    "$exe" --exact "${tests[@]}" --test-threads="$threads" >"$log" 2>&1; then
    echo "== round $((rounds + 1)) FAILED (seed $seed):"
    # libtest's failure section: each failing test's output, with
    # proptest's minimal failing input.
    sed -n '/^failures:$/,$p' "$log"
    echo "== replay a failing property with:"
    sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log" | while read -r t; do
      echo "PROPTEST_RNG_SEED=$seed PROPTEST_CASES=$cases cargo test --release --locked --lib -- --exact $t"
    done
    exit 1
  fi
  for t in "${tests[@]}"; do
    if ! grep -qxF "test $t ... ok" "$log"; then
      echo "property $t did not report ok in round $((rounds + 1)):" >&2
      cat "$log" >&2
      exit 1
    fi
    ran[$t]=$((ran[$t] + cases))
  done
  rounds=$((rounds + 1))
  echo "round $rounds (seed $seed): ${#tests[@]} properties x $cases cases ok in $(($(date +%s) - round_start)) s"
done

total=0
echo "== cases run per property"
for t in "${tests[@]}"; do
  printf '%12d  %s\n' "${ran[$t]}" "$t"
  total=$((total + ran[$t]))
done
echo "== $total cases in all: $rounds round(s) of ${#tests[@]} properties in $(($(date +%s) - start)) s; no failure"

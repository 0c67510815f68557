#!/usr/bin/env bash
# fuzz.sh SECONDS — run every libFuzzer target in build/fuzz for SECONDS each, starting
# from its seed corpus in tests/fuzz/corpus/<target>/ if there is one. Any finding fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-30}"
found=0
for t in build/fuzz/tests/fuzz/fuzz_*; do
  [ -x "$t" ] || continue
  name="$(basename "$t")"
  work="build/fuzz/corpus/$name"; mkdir -p "$work"
  seeds=(); [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
  echo "--- $name (${secs}s)"
  if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
        -artifact_prefix="build/fuzz/$name-" "$work" "${seeds[@]}" >"build/fuzz/$name.log" 2>&1; then
    echo "FINDING in $name:"; tail -40 "build/fuzz/$name.log"; found=1
  else
    grep -E '^Done|#[0-9]+.*DONE' "build/fuzz/$name.log" | tail -1 || true
  fi
done
exit $found

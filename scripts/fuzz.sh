#!/usr/bin/env bash
# fuzz.sh SECONDS — run every libFuzzer target in build/fuzz for SECONDS each, starting
# from its seed corpus in tests/fuzz/corpus/<target>/ if there is one, MTLS_FUZZ_JOBS
# targets at a time (default: the number of cores). Any finding fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-30}"
jobs="${MTLS_FUZZ_JOBS:-$(nproc)}"

# One target: runs it, then prints its result; returns 1 on a finding.
fuzz_one() {
  local t="$1" name work seeds=()
  name="$(basename "$t")"
  work="build/fuzz/corpus/$name"; mkdir -p "$work"
  [ -d "tests/fuzz/corpus/$name" ] && seeds=("tests/fuzz/corpus/$name")
  if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
        -artifact_prefix="build/fuzz/$name-" "$work" "${seeds[@]}" >"build/fuzz/$name.log" 2>&1; then
    echo "--- $name (${secs}s): FINDING"; tail -40 "build/fuzz/$name.log"
    return 1
  fi
  echo "--- $name (${secs}s): $(grep -E '^Done|#[0-9]+.*DONE' "build/fuzz/$name.log" | tail -1 || true)"
}

found=0
pids=()
for t in build/fuzz/tests/fuzz/fuzz_*; do
  [ -x "$t" ] || continue
  fuzz_one "$t" & pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    wait "${pids[0]}" || found=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || found=1; done
exit $found

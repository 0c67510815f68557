#!/usr/bin/env bash
# test.sh — the whole test suite, as a new user (and CI) runs it:
# installs what is missing, builds each preset, runs ctest on it, then runs every fuzz
# target for a bounded time.
#   MTLS_TEST_PRESETS="default asan"   which presets to build and test (default: both)
#   MTLS_FUZZ_SECONDS=20               seconds per fuzz target (0 skips fuzzing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
jobs="$(nproc)"
presets="${MTLS_TEST_PRESETS:-default asan}"
took() { echo "=== $1 took $(( SECONDS - t0 )) s"; t0=$SECONDS; }
t0=$SECONDS
for p in $presets; do
  echo "=== preset $p: configure, build, test"
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p" -j "$jobs"
  took "building $p"
  ctest --preset "$p" -j "$jobs"  # the same tests on every preset
  took "testing $p"
  # The end-to-end suite's figures (requests sent, failed, rotations, restarts).
  sed -n '/=== end-to-end figures ===/,/^restarts:/p' "build/$p/Testing/Temporary/LastTest.log" || true
done

secs="${MTLS_FUZZ_SECONDS:-20}"
if [ "$secs" != 0 ]; then
  echo "=== fuzz targets, ${secs}s each"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$jobs"
  took "building fuzz"
  scripts/fuzz.sh "$secs"
  took "fuzzing"
fi

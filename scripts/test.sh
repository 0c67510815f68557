#!/usr/bin/env bash
# test.sh — the whole test suite, as a new user (and CI) runs it:
# installs what is missing, builds each preset, runs ctest on it, runs the workers test under
# ThreadSanitizer, then runs every fuzz target for a bounded time.
#   MTLS_TEST_PRESETS="default asan"   which presets to build and test (default: both)
#   MTLS_FUZZ_SECONDS=10               seconds per fuzz target (0 skips fuzzing)
#   MTLS_TSAN=1                        the workers test under ThreadSanitizer (0 skips it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
jobs="$(nproc)"
# Tests mostly wait on each other's processes (at -j nproc they kept 1.3 of 2 cores busy), so
# ctest runs twice as many at once as there are cores; builds run one job per core.
test_jobs=$(( 2 * jobs ))
presets="${MTLS_TEST_PRESETS:-default asan}"
took() { echo "=== $1 took $(( SECONDS - t0 )) s"; t0=$SECONDS; }
t0=$SECONDS
for p in $presets; do
  echo "=== preset $p: configure, build, test"
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p" -j "$jobs"
  took "building $p"
  # The same tests on every preset. Under ASan the end-to-end suite (run alone) does half the
  # SIGKILLs and rotations: the same paths, each taking about three times as long.
  if [ "$p" = asan ]; then
    MTLS_E2E_KILLS="${MTLS_E2E_KILLS:-25}" MTLS_E2E_ROTATIONS="${MTLS_E2E_ROTATIONS:-10}" \
      ctest --preset "$p" -j "$test_jobs"
  else
    ctest --preset "$p" -j "$test_jobs"
  fi
  took "testing $p"
  # The end-to-end suite's figures (requests sent, failed, rotations, restarts).
  sed -n '/=== end-to-end figures ===/,/^restarts:/p' "build/$p/Testing/Temporary/LastTest.log" || true
done

# The proxy's workers under ThreadSanitizer (preset tsan): only the in-process workers test
# is built instrumented and run (label workers); its partner is the default preset's
# sandbox (MTLS_SANDBOX_PRESET, as for asan: built there if missing). MTLS_TSAN=0 skips it.
if [ "${MTLS_TSAN:-1}" != 0 ]; then
  echo "=== preset tsan: the workers test under ThreadSanitizer"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan -j "$jobs"
  took "building tsan"
  TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1 suppressions=$PWD/tests/workers/tsan.supp}" \
    ctest --preset tsan -j "$test_jobs"
  took "testing tsan"
fi

secs="${MTLS_FUZZ_SECONDS:-10}"
if [ "$secs" != 0 ]; then
  echo "=== fuzz targets, ${secs}s each"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$jobs"
  took "building fuzz"
  scripts/fuzz.sh "$secs"
  took "fuzzing"
fi

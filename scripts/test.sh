#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: installs dependencies, builds once with
# AddressSanitizer + UBSan (preset "ci") and runs unit tests, fuzz-corpus replays and integration
# tests on it, then builds the libFuzzer targets (preset "fuzz", clang) and fuzzes each for
# MOAT_FUZZ_SECONDS (default 15). Ends with one line "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# Every ASan check on, alloc-dealloc mismatches included (core/runtime/asio_impl.cpp says why
# Asio once tripped it).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
fuzz_seconds="${MOAT_FUZZ_SECONDS:-15}"

passed=0
failed=0
# Runs ctest with the given arguments and adds its counts to the totals.
run_ctest() {
  local log
  log=$(mktemp)
  set +e
  ctest "$@" 2>&1 | tee "$log"
  set -e
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  if [ -z "$line" ]; then
    echo "test.sh: ctest printed no summary" >&2
    failed=$((failed + 1))
  else
    local total bad
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    bad=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
    passed=$((passed + total - bad))
    failed=$((failed + bad))
  fi
  rm -f "$log"
}

echo "== build (ci: ASan + UBSan)"
./scripts/build.sh ci
echo "== unit, fuzz-corpus replay and integration tests"
run_ctest --preset ci

echo "== fuzz pass (libFuzzer, ${fuzz_seconds}s per target)"
cmake --preset fuzz -DMOAT_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
./scripts/build.sh fuzz
run_ctest --preset fuzz -j 2

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Runs every test: unit tests (plain and under ASan + UBSan), fuzz corpus
# replays, and the end-to-end suites that start the real server. Each part
# prints "N passed, M failed"; this script adds them up and prints the total
# as its last line. Exit status is non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
total_pass=0
total_fail=0
log=$(mktemp)

tally() { # name, command...
  local name=$1; shift
  echo "== $name"
  "$@" >"$log" 2>&1
  local rc=$?
  cat "$log"
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ -z "$line" ]; then
    echo "!! $name produced no summary (exit $rc)"
    total_fail=$((total_fail + 1))
    return
  fi
  local p f
  p=$(echo "$line" | awk '{print $1}')
  f=$(echo "$line" | awk '{print $3}')
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "!! $name exited $rc"
    total_fail=$((total_fail + 1))
  fi
}

for t in build/tests/test_*; do
  [ -x "$t" ] || continue
  tally "unit $(basename "$t")" "$t"
done
for t in build/tests/asan/test_*; do
  [ -x "$t" ] || continue
  tally "asan $(basename "$t")" "$t"
done
for t in build/tests/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  tally "fuzz replay $name" "$t" "tests/fuzz/corpus/${name#fuzz_}"
done
if [ -z "${TARN_SKIP_E2E:-}" ]; then
  for t in tests/e2e/test_*.py; do
    [ -f "$t" ] || continue
    tally "e2e $(basename "$t")" python3 "$t"
  done
fi
rm -f "$log"
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]

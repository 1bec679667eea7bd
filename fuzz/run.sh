#!/usr/bin/env bash
# Runs the libFuzzer targets of build/fuzz/fuzz/ (make fuzz-build makes them).
#
#   fuzz/run.sh smoke [NAME...]  FUZZ_SMOKE_SECONDS (4) each, seed 1, from the
#                                checked-in seeds only (nothing is written to
#                                fuzz/corpus/); the suite "fuzz" of make test
#   fuzz/run.sh long [NAME...]   FUZZ_SECONDS (60) each; what it finds grows
#                                var/fuzz/corpus/NAME/ (kept between runs)
#
# Every run first replays fuzz/corpus/NAME/ (the seeds and the regression
# inputs of past crashes). A crash, leak, timeout or failed property stops the
# target and leaves its input in var/fuzz/crashes/NAME-*; to keep it as a
# regression input, copy it into fuzz/corpus/NAME/ once it is fixed.
# Exits 1 when any target failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

mode=${1:-smoke}
shift || true
case $mode in
  smoke) secs=${FUZZ_SMOKE_SECONDS:-4} ;;
  long) secs=${FUZZ_SECONDS:-60} ;;
  *) echo "usage: fuzz/run.sh smoke|long [NAME...]" >&2; exit 2 ;;
esac

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for src in fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    names+=("${n#fuzz_}")
  done
fi

# libFuzzer reports leaks itself; these are the sanitizers' settings for it.
export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${FUZZ_UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
unset LSAN_OPTIONS

mkdir -p var/fuzz/crashes
bad=()
for n in "${names[@]}"; do
  bin=build/fuzz/fuzz/fuzz_$n
  seeds=fuzz/corpus/$n
  if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
    echo "fuzz: no $bin or $seeds (make fuzz-build)" >&2
    bad+=("$n")
    continue
  fi
  if [ "$mode" = smoke ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/co-fuzz-$n.XXXXXX")
    extra=(-seed=1)
  else
    work=var/fuzz/corpus/$n
    mkdir -p "$work"
    extra=()
  fi
  log=var/fuzz/$n.log
  t0=$(date +%s)
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="var/fuzz/crashes/$n-" "${extra[@]}" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $n: ok, ${runs:-?} runs in $(( $(date +%s) - t0 ))s"
  else
    echo "fuzz $n: FAILED (exit $rc), log $log:" >&2
    grep -E 'ERROR|property failed|SUMMARY|Test unit written' "$log" | head -20 >&2
    bad+=("$n")
  fi
  [ "$mode" = smoke ] && rm -rf "$work"
done
[ ${#bad[@]} -eq 0 ] || { echo "fuzz: failed: ${bad[*]}" >&2; exit 1; }

# What the Node suites' runners (tests/sdk/run.sh, tests/openapi/run.sh) share:
# source it after setting suite (the prefix of their messages) and root (the
# checkout). Sanitizer settings for the programs they start, die, wait_url
# (a "listening on URL" line) and stop (a clean stop is part of the test).

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}

die() { echo "$suite: $*" >&2; exit 1; }

# Waits for a "... listening on URL" line in file $1 from process $2; prints the URL.
wait_url() {
  local url
  for _ in $(seq 1 200); do
    url=$(sed -n 's/.* listening on \(http[^ ]*\).*/\1/p' "$1" | head -n1)
    [ -n "$url" ] && { echo "$url"; return 0; }
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# stop NAME PID ERRFILE [SECONDS]: SIGTERM, wait up to SECONDS (10), check the
# exit status and the sanitizer output (sanitizers report leaks at exit).
stop() {
  local name=$1 pid=$2 err=$3 secs=${4:-10} rc ok=0
  kill -TERM "$pid"
  for _ in $(seq 1 $((secs * 20))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$suite: $name did not stop within $secs s of SIGTERM" >&2
    ok=1
  else
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then echo "$suite: $name exited with status $rc" >&2; ok=1; fi
  fi
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' \
       "$err"; then
    echo "$suite: sanitizer report from $name" >&2
    ok=1
  fi
  if [ "$ok" -ne 0 ] && [ -s "$err" ]; then
    echo "--- $name stderr" >&2
    tail -n 80 "$err" >&2
  fi
  return "$ok"
}

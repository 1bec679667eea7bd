#!/usr/bin/env bash
# Checks bin/mock-stripe with the official stripe Node SDK (sdk_test.js, and
# publishable_test.js: the publishable key and client_secret of a shopper's app), and
# bin/mock-notify (notify_test.js).
#
# Starts a webhook receiver (receiver.js) and the sanitizer builds of the mocks
# ($CO_BIN_DIR, default build/san/bin) on free loopback ports, runs the suites with
# node's built-in runner, then stops the mocks with SIGTERM and fails if one did not
# exit cleanly or printed any ASan/UBSan/LSan report.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
bin_dir=${CO_BIN_DIR:-$root/build/san/bin}
mock_bin=$bin_dir/mock-stripe
notify_bin=$bin_dir/mock-notify

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}

die() { echo "sdk: $*" >&2; exit 1; }
[ -x "$mock_bin" ] || die "$mock_bin is not built (make SAN=1 build/san/bin/mock-stripe)"
[ -x "$notify_bin" ] || die "$notify_bin is not built (make SAN=1 build/san/bin/mock-notify)"
command -v node >/dev/null || die "node is not installed"

cd "$here" || exit 1
if [ ! -d node_modules/stripe ]; then
  echo "sdk: installing the stripe SDK (npm)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error
  else npm install --no-audit --no-fund --loglevel=error; fi || die "npm install failed"
fi

tmp=$(mktemp -d)
mock_pid='' notify_pid='' recv_pid=''
cleanup() {
  [ -n "$recv_pid" ] && kill "$recv_pid" 2>/dev/null
  [ -n "$mock_pid" ] && kill -KILL "$mock_pid" 2>/dev/null
  [ -n "$notify_pid" ] && kill -KILL "$notify_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

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

node receiver.js >"$tmp/receiver.out" 2>&1 &
recv_pid=$!
recv_url=$(wait_url "$tmp/receiver.out" "$recv_pid") || { cat "$tmp/receiver.out"; die "receiver did not start"; }

secret="whsec_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
publishable="pk_test_sdk_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
# Secrets go in the mocks' environment: a command line is readable by every local user (ps).
MOCK_STRIPE_WEBHOOK_SECRET=$secret MOCK_STRIPE_PUBLISHABLE_KEY=$publishable \
  "$mock_bin" --listen 127.0.0.1:0 --webhook-url "$recv_url/webhook" \
  --webhook-max-attempts 6 >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
mock_url=$(wait_url "$tmp/mock.out" "$mock_pid") || { cat "$tmp/mock.err"; die "mock-stripe did not start"; }
echo "sdk: mock-stripe at $mock_url, webhooks to $recv_url/webhook"

notify_secret="nsec_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
MOCK_NOTIFY_SECRET=$notify_secret "$notify_bin" --listen 127.0.0.1:0 --fail-first 1 \
  >"$tmp/notify.out" 2>"$tmp/notify.err" &
notify_pid=$!
notify_url=$(wait_url "$tmp/notify.out" "$notify_pid") || { cat "$tmp/notify.err"; die "mock-notify did not start"; }

MOCK_STRIPE_URL=$mock_url RECEIVER_URL=$recv_url WEBHOOK_SECRET=$secret \
MOCK_NOTIFY_URL=$notify_url NOTIFY_SECRET=$notify_secret PUBLISHABLE_KEY=$publishable \
  node --test --test-reporter=spec sdk_test.js publishable_test.js notify_test.js
status=$?

# A clean stop is part of the test: sanitizers report leaks at exit.
# stop NAME PID ERRFILE: SIGTERM, wait up to 10 s, check exit status and sanitizer output.
stop() {
  local name=$1 pid=$2 err=$3 rc ok=0
  kill -TERM "$pid"
  for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "sdk: $name did not stop within 10 s of SIGTERM" >&2
    ok=1
  else
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then echo "sdk: $name exited with status $rc" >&2; ok=1; fi
  fi
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' \
       "$err"; then
    echo "sdk: sanitizer report from $name" >&2
    ok=1
  fi
  if [ "$ok" -ne 0 ] && [ -s "$err" ]; then
    echo "--- $name stderr" >&2
    tail -n 80 "$err" >&2
  fi
  return "$ok"
}
stop mock-stripe "$mock_pid" "$tmp/mock.err" || status=1
mock_pid=''
stop mock-notify "$notify_pid" "$tmp/notify.err" || status=1
notify_pid=''
exit "$status"

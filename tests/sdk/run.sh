#!/usr/bin/env bash
# Checks bin/mock-stripe with the official stripe Node SDK (tests/sdk/sdk_test.js).
#
# Starts a webhook receiver (receiver.js) and the sanitizer build of the mock
# ($CO_BIN_DIR/mock-stripe, default build/san/bin) on free loopback ports, runs the
# suite with node's built-in runner, then stops the mock with SIGTERM and fails if it
# did not exit cleanly or printed any ASan/UBSan/LSan report.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
bin_dir=${CO_BIN_DIR:-$root/build/san/bin}
mock_bin=$bin_dir/mock-stripe

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}

die() { echo "sdk: $*" >&2; exit 1; }
[ -x "$mock_bin" ] || die "$mock_bin is not built (make SAN=1 build/san/bin/mock-stripe)"
command -v node >/dev/null || die "node is not installed"

cd "$here" || exit 1
if [ ! -d node_modules/stripe ]; then
  echo "sdk: installing the stripe SDK (npm)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error
  else npm install --no-audit --no-fund --loglevel=error; fi || die "npm install failed"
fi

tmp=$(mktemp -d)
mock_pid='' recv_pid=''
cleanup() {
  [ -n "$recv_pid" ] && kill "$recv_pid" 2>/dev/null
  [ -n "$mock_pid" ] && kill -KILL "$mock_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits for a "... listening on URL" line in file $1 from process $2; prints the URL.
wait_url() {
  local i url
  for i in $(seq 1 200); do
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
"$mock_bin" --listen 127.0.0.1:0 --webhook-url "$recv_url/webhook" --webhook-secret "$secret" \
  --webhook-max-attempts 6 >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
mock_url=$(wait_url "$tmp/mock.out" "$mock_pid") || { cat "$tmp/mock.err"; die "mock-stripe did not start"; }
echo "sdk: mock-stripe at $mock_url, webhooks to $recv_url/webhook"

MOCK_STRIPE_URL=$mock_url RECEIVER_URL=$recv_url WEBHOOK_SECRET=$secret \
  node --test --test-reporter=spec sdk_test.js
status=$?

# A clean stop is part of the test: sanitizers report leaks at exit.
kill -TERM "$mock_pid"
for _ in $(seq 1 200); do kill -0 "$mock_pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$mock_pid" 2>/dev/null; then
  echo "sdk: mock-stripe did not stop within 10 s of SIGTERM" >&2
  status=1
else
  wait "$mock_pid"
  mock_rc=$?
  mock_pid=''
  if [ "$mock_rc" -ne 0 ]; then
    echo "sdk: mock-stripe exited with status $mock_rc" >&2
    status=1
  fi
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' \
     "$tmp/mock.err"; then
  echo "sdk: sanitizer report from mock-stripe:" >&2
  status=1
fi
if [ "$status" -ne 0 ] && [ -s "$tmp/mock.err" ]; then
  echo "--- mock-stripe stderr" >&2
  tail -n 80 "$tmp/mock.err" >&2
fi
exit "$status"

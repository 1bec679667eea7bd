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

suite=sdk
# shellcheck source=tests/node_suite.sh
. "$root/tests/node_suite.sh"

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

stop mock-stripe "$mock_pid" "$tmp/mock.err" || status=1
mock_pid=''
stop mock-notify "$notify_pid" "$tmp/notify.err" || status=1
notify_pid=''
exit "$status"

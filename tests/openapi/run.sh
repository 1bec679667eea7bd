#!/usr/bin/env bash
# Checks docs/openapi.yaml against the server it describes:
#   1. lints it with @redocly/cli (rules in redocly.yaml);
#   2. starts a real checkoutd (sanitizer build, $CO_BIN_DIR) on a fresh database
#      cloned from the test template, with mock-stripe and mock-notify, and runs
#      validate.js: real calls to every operation, each answer validated (status
#      documented, media type, headers, body schema, error code and its status)
#      against the operation it reached;
#   3. stops the programs with SIGTERM and fails if one did not exit cleanly or
#      printed a sanitizer report.
#
# Run by scripts/test.sh (suite "openapi"), which provides CO_TEST_ADMIN_URL and
# CO_TEST_TEMPLATE; `scripts/test.sh openapi` runs it alone. OPENAPI_SPEC names
# another description to check (the default is docs/openapi.yaml).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)
bin_dir=${CO_BIN_DIR:-$root/build/san/bin}
spec=${OPENAPI_SPEC:-$root/docs/openapi.yaml}

suite=openapi
# shellcheck source=tests/node_suite.sh
. "$root/tests/node_suite.sh"
# The linter runs offline: no usage report, no update check.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

for b in checkoutd mock-stripe mock-notify; do
  [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is not built (make SAN=1 tests-build)"
done
[ -n "${CO_TEST_ADMIN_URL:-}" ] && [ -n "${CO_TEST_TEMPLATE:-}" ] ||
  die "CO_TEST_ADMIN_URL and CO_TEST_TEMPLATE are unset: run it as scripts/test.sh openapi"
command -v node >/dev/null || die "node is not installed"
[ -f "$spec" ] || die "$spec does not exist"

cd "$here" || exit 1
if [ ! -d node_modules/@redocly/cli ] || [ ! -d node_modules/ajv-formats ] ||
   [ ! -d node_modules/yaml ]; then
  echo "openapi: installing @redocly/cli, ajv, ajv-formats, yaml (npm)"
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
fi

echo "openapi: lint $spec"
# The linter's banner about Node.js versions is noise here; its findings are not.
lint_out=$(node_modules/.bin/redocly lint --config redocly.yaml --format=stylish "$spec" 2>&1)
lint_rc=$?
printf '%s\n' "$lint_out" | grep -v '[║╔╚═]' | sed '/^[[:space:]]*$/d'
[ "$lint_rc" -eq 0 ] || die "redocly lint failed"

tmp=$(mktemp -d)
db="co_openapi_$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
server_pid='' mock_pid='' notify_pid=''
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  [ -n "$mock_pid" ] && kill -KILL "$mock_pid" 2>/dev/null
  [ -n "$notify_pid" ] && kill -KILL "$notify_pid" 2>/dev/null
  psql -qX "$CO_TEST_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

psql -qX -v ON_ERROR_STOP=1 "$CO_TEST_ADMIN_URL" >/dev/null <<SQL || die "cannot create $db"
DROP DATABASE IF EXISTS "$db" WITH (FORCE);
CREATE DATABASE "$db" TEMPLATE "$CO_TEST_TEMPLATE";
SQL
db_url=$("$root/scripts/dburl.sh" "$CO_TEST_ADMIN_URL" "$db")

rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

whsec="whsec_$(rand 24)"
restock_secret="rsec_$(rand 16)"
notify_secret="nsec_$(rand 16)"
jwt_secret="jwt_$(rand 24)"
admin_key="adm_$(rand 24)"

# Secrets go in the programs' environment: a command line is readable by every local user.
MOCK_STRIPE_WEBHOOK_SECRET=$whsec "$bin_dir/mock-stripe" --listen 127.0.0.1:0 \
  >"$tmp/mock.out" 2>"$tmp/mock.err" &
mock_pid=$!
mock_url=$(wait_url "$tmp/mock.out" "$mock_pid") || { cat "$tmp/mock.err"; die "mock-stripe did not start"; }
MOCK_NOTIFY_SECRET=$notify_secret "$bin_dir/mock-notify" --listen 127.0.0.1:0 \
  >"$tmp/notify.out" 2>"$tmp/notify.err" &
notify_pid=$!
notify_url=$(wait_url "$tmp/notify.out" "$notify_pid") || { cat "$tmp/notify.err"; die "mock-notify did not start"; }

DATABASE_URL=$db_url LISTEN_ADDR=127.0.0.1:0 STRIPE_API_BASE=$mock_url \
STRIPE_SECRET_KEY=sk_test_openapi STRIPE_WEBHOOK_SECRET=$whsec \
RESTOCK_WEBHOOK_SECRET=$restock_secret AUTH_JWT_SECRET=$jwt_secret ADMIN_API_KEY=$admin_key \
NOTIFY_URL=$notify_url/notify NOTIFY_SECRET=$notify_secret WORKERS=8 DB_POOL_SIZE=4 \
MAX_UNPAID_UNITS=3 RECOVERY_INTERVAL_MS=200 STRIPE_TIMEOUT_MS=3000 STRIPE_MAX_RETRIES=1 \
LOG_LEVEL=warn \
  "$bin_dir/checkoutd" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
server_url=$(wait_url "$tmp/server.out" "$server_pid") || { cat "$tmp/server.err"; die "checkoutd did not start"; }
echo "openapi: checkoutd at $server_url, mock-stripe at $mock_url"

CHECKOUTD_URL=$server_url MOCK_STRIPE_URL=$mock_url STRIPE_WEBHOOK_SECRET=$whsec \
RESTOCK_WEBHOOK_SECRET=$restock_secret AUTH_JWT_SECRET=$jwt_secret ADMIN_API_KEY=$admin_key \
OPENAPI_SPEC=$spec CO_ROOT=$root \
  node validate.js
status=$?

stop checkoutd "$server_pid" "$tmp/server.err" 20 || status=1
server_pid=''
stop mock-stripe "$mock_pid" "$tmp/mock.err" 20 || status=1
mock_pid=''
stop mock-notify "$notify_pid" "$tmp/notify.err" 20 || status=1
notify_pid=''
exit "$status"

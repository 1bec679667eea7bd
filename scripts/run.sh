#!/usr/bin/env bash
# make run: the local demo. Starts what is not configured (Postgres under var/,
# the mock payment provider, the notification sink), applies migrations, seeds
# a demo catalogue, writes var/run.env, and runs bin/checkoutd in the
# foreground. Every variable of the README's Configuration table that is
# already set is honoured. Ctrl-C stops everything this script started.
#
# For tests only: RUN_VAR_DIR (default var) is where the settings, secrets and
# logs go, RUN_BIN_DIR (default bin) where the programs are.
set -euo pipefail
cd "$(dirname "$0")/.."
var=${RUN_VAR_DIR:-var}
bin=${RUN_BIN_DIR:-bin}
mkdir -p "$var"

pids=()
started_pg=0 started_bouncer=0
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$started_bouncer" = 1 ] && scripts/pgbouncer.sh stop
  [ "$started_pg" = 1 ] && scripts/pg.sh stop
  echo "run.sh: stopped"
}
trap cleanup INT TERM EXIT

# Writes stdin to the file $1, readable by its owner only (0600). The file is
# replaced whole (a new file renamed over it), so one that an older run.sh
# left world-readable does not keep its mode.
write_private() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX") # mktemp makes it 0600 whatever the umask
  cat >"$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$1"
}

# Secrets generated once and kept in var/secrets.env, so a restart keeps them.
if [ ! -f "$var/secrets.env" ]; then
  {
    echo "GEN_STRIPE_WEBHOOK_SECRET=whsec_$(openssl rand -hex 24)"
    echo "GEN_RESTOCK_WEBHOOK_SECRET=$(openssl rand -hex 24)"
    echo "GEN_AUTH_JWT_SECRET=$(openssl rand -hex 32)"
    echo "GEN_ADMIN_API_KEY=adm_$(openssl rand -hex 16)"
    echo "GEN_NOTIFY_SECRET=$(openssl rand -hex 24)"
  } | write_private "$var/secrets.env"
fi
chmod 600 "$var/secrets.env"
# shellcheck disable=SC1091
. "$var/secrets.env"
export STRIPE_WEBHOOK_SECRET=${STRIPE_WEBHOOK_SECRET:-$GEN_STRIPE_WEBHOOK_SECRET}
export RESTOCK_WEBHOOK_SECRET=${RESTOCK_WEBHOOK_SECRET:-$GEN_RESTOCK_WEBHOOK_SECRET}
export AUTH_JWT_SECRET=${AUTH_JWT_SECRET:-$GEN_AUTH_JWT_SECRET}
export ADMIN_API_KEY=${ADMIN_API_KEY:-$GEN_ADMIN_API_KEY}
export NOTIFY_SECRET=${NOTIFY_SECRET:-$GEN_NOTIFY_SECRET}
export LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1:8080}
export STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY:-sk_test_checkout_local}

if [ -z "${DATABASE_URL:-}" ]; then
  scripts/pg.sh status || started_pg=1
  admin=$(scripts/pg.sh start)
  psql -qAtX "$admin" -c "SELECT 1 FROM pg_database WHERE datname = 'checkout'" | grep -q 1 \
    || psql -qX "$admin" -c "CREATE DATABASE checkout" >/dev/null
  DATABASE_URL=$(scripts/dburl.sh "$admin" checkout)
  # PGBOUNCER=1: checkoutd (and everything below) through pgbouncer in
  # transaction pooling mode, as a deployment would run it (scripts/pgbouncer.sh).
  if [ "${PGBOUNCER:-0}" = 1 ]; then
    scripts/pgbouncer.sh status || started_bouncer=1
    DATABASE_URL=$(scripts/dburl.sh "$(scripts/pgbouncer.sh start)" checkout)
  fi
  export DATABASE_URL
fi
"$bin/checkoutd" migrate

# Starts a mock in the background and waits for its "listening on URL" line;
# sets mock_url. Not run in a subshell, so that pids (what Ctrl-C stops) sees it.
# Secrets reach the mocks through their environment (the assignments in front
# of the call): a command line is readable by every local user (ps).
start_mock() {
  local name=$1; shift
  local log="$var/$name.log"
  : >"$log"
  "$bin/$name" "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    mock_url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$mock_url" ] && return 0
    sleep 0.1
  done
  echo "run.sh: $name did not start; see $log" >&2
  return 1
}

if [ -z "${STRIPE_API_BASE:-}" ]; then
  MOCK_STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET \
    start_mock mock-stripe --listen 127.0.0.1:0 --webhook-url "http://$LISTEN_ADDR/webhooks/stripe" \
      --state-dir "$var/mock-stripe"
  export STRIPE_API_BASE=$mock_url
fi
if [ -z "${NOTIFY_URL:-}" ] && [ -x "$bin/mock-notify" ]; then
  MOCK_NOTIFY_SECRET=$NOTIFY_SECRET start_mock mock-notify --listen 127.0.0.1:0
  export NOTIFY_URL="$mock_url/notify"
fi

# The demo catalogue (skipped when the skus exist).
psql -qX -v ON_ERROR_STOP=1 "$DATABASE_URL" >/dev/null <<'SQL'
SELECT co_create_item(sku, name, price, 'usd', stock)
  FROM (VALUES ('PHN-PRO-256', 'Phone Pro 256 GB', 119900, 1),
               ('PHN-CASE-BLK', 'Phone case, black', 2900, 25),
               ('EAR-BUDS-2', 'Earbuds 2', 17900, 0)) AS v(sku, name, price, stock)
 WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.sku = v.sku);
SQL

{
  for v in DATABASE_URL LISTEN_ADDR STRIPE_API_BASE STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET \
           RESTOCK_WEBHOOK_SECRET AUTH_JWT_SECRET ADMIN_API_KEY NOTIFY_URL NOTIFY_SECRET; do
    printf '%s=%q\n' "$v" "${!v:-}"
  done
  [ -n "${RESERVATION_TTL_SECONDS:-}" ] && printf 'RESERVATION_TTL_SECONDS=%q\n' "$RESERVATION_TTL_SECONDS"
  echo "export DATABASE_URL LISTEN_ADDR STRIPE_API_BASE STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET RESTOCK_WEBHOOK_SECRET AUTH_JWT_SECRET ADMIN_API_KEY NOTIFY_URL NOTIFY_SECRET RESERVATION_TTL_SECONDS"
} | write_private "$var/run.env"

user=$(cat /proc/sys/kernel/random/uuid)
token=$("$bin/checkoutd" token "$user" 86400)
phone=$(psql -qAtX "$DATABASE_URL" -c "SELECT id FROM items WHERE sku = 'PHN-PRO-256'")
cat <<EOF

checkout saga orchestrator on http://$LISTEN_ADDR  (settings: . $var/run.env)
payment provider: $STRIPE_API_BASE   notifications: ${NOTIFY_URL:-none}

A shopper token (user $user, valid 24 h):
  TOKEN=$token

Buy the last Phone Pro (server-confirmed card payment):
  curl -s -X POST http://$LISTEN_ADDR/v1/checkout \\
    -H "Authorization: Bearer \$TOKEN" -H "Idempotency-Key: \$(date +%s%N)" \\
    -H 'Content-Type: application/json' \\
    -d '{"items":[{"item_id":"$phone","quantity":1}],"payment_method":"pm_card_visa"}'

The item:   curl -s http://$LISTEN_ADDR/v1/items/$phone
Admin view: curl -s http://$LISTEN_ADDR/v1/admin/orders -H "Authorization: Bearer \$ADMIN_API_KEY"

EOF
"$bin/checkoutd" &
pids+=($!)
wait "${pids[-1]}"

#!/usr/bin/env bash
# make run: the local demo. Starts what is not configured (Postgres under var/,
# the mock payment provider, the notification sink), applies migrations, seeds
# a demo catalogue, writes var/run.env, and runs bin/checkoutd in the
# foreground. Every variable of the README's Configuration table that is
# already set is honoured. Ctrl-C stops everything this script started.
#
#   scripts/run.sh          the demo
#   scripts/run.sh check    only the checks below; exit 0 when a run could start
#                           (make run calls it before it builds anything)
#
# Before it writes, starts or stops anything it checks that no live run owns
# var/ (run.lock, held by a live run.sh; run.pid names it) and that the listen
# port is free, and refuses naming what holds it: a second `make run` leaves the
# first one, its run.env and its mocks alone. The mocks listen on ports the
# kernel picks (port 0), so theirs cannot be taken. The banner is printed once
# the server answers /healthz.
#
# For tests only: RUN_VAR_DIR (default var) is where the settings, secrets and
# logs go, RUN_BIN_DIR (default bin) where the programs are.
set -euo pipefail
cd "$(dirname "$0")/.."
var=${RUN_VAR_DIR:-var}
bin=${RUN_BIN_DIR:-bin}
mode=${1:-run}
case $mode in
  run|check) ;;
  *) echo "usage: $0 [check]" >&2; exit 2 ;;
esac
export LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1:8080}

refuse() { echo "run.sh: $*" >&2; exit 1; }

# The live run that owns $var, if any: its pid (from run.pid) when run.lock is held.
live_run() {
  [ -f "$var/run.lock" ] || return 1
  flock -n "$var/run.lock" true 2>/dev/null && return 1
  cat "$var/run.pid" 2>/dev/null || echo "unknown"
}

# Who listens on TCP port $1 (any address): "pid N (name)", or less when ss cannot
# tell; empty when nobody does. Without ss a connection attempt at least tells
# that the port is taken.
port_holder() {
  local port=$1 line users
  if command -v ss >/dev/null; then
    line=$(ss -Htlnp "sport = :$port" 2>/dev/null | head -n1) || line=
    [ -n "$line" ] || return 0
    users=$(printf '%s' "$line" | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/pid \2 (\1)/p')
    echo "${users:-a process this user cannot see}"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "a process"
  fi
}

preflight() {
  local holder port=${LISTEN_ADDR##*:} owner
  [ "$port" != "$LISTEN_ADDR" ] || refuse "LISTEN_ADDR must be host:port, not '$LISTEN_ADDR'"
  if owner=$(live_run); then
    refuse "another make run (pid $owner) is live and owns $var/ (its settings:" \
      "$var/run.env); stop it first (Ctrl-C in its shell, or kill $owner)." \
      "Nothing was changed."
  fi
  # A fixed port: the mock's webhook URL and run.env name it.
  [ "$port" != 0 ] || refuse "LISTEN_ADDR $LISTEN_ADDR: make run needs a fixed port"
  holder=$(port_holder "$port")
  [ -z "$holder" ] || refuse "LISTEN_ADDR $LISTEN_ADDR: port $port is taken by $holder;" \
    "stop it or set LISTEN_ADDR to a free host:port. Nothing was changed."
}

mkdir -p "$var"
preflight
[ "$mode" = check ] && exit 0

# This run owns $var until it ends: the lock lives as long as this shell (fd 9,
# closed for every child, so that no left-over child can hold it), and run.pid
# says whose it is. Taken before anything is written; of two runs started in
# the same instant, the second loses here.
exec 9>>"$var/run.lock"
flock -n 9 || refuse "another make run started at the same time; nothing was changed"
echo $$ >"$var/run.pid"

pids=()
started_pg=0 started_bouncer=0
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$started_bouncer" = 1 ] && scripts/pgbouncer.sh stop
  [ "$started_pg" = 1 ] && scripts/pg.sh stop
  rm -f "$var/run.pid"
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
export STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY:-sk_test_checkout_local}
# The key a shopper's app (and the demo storefront) confirms payments with at the
# provider; public by design. The local mock accepts only this one.
export STRIPE_PUBLISHABLE_KEY=${STRIPE_PUBLISHABLE_KEY:-pk_test_checkout_local}
# The demo shop (bin/mock-shop): beside the API's default port, else on a free one.
if [ "$LISTEN_ADDR" = 127.0.0.1:8080 ]; then shop_default=127.0.0.1:8081
else shop_default=127.0.0.1:0; fi
export SHOP_LISTEN_ADDR=${SHOP_LISTEN_ADDR:-$shop_default}

if [ -z "${DATABASE_URL:-}" ]; then
  scripts/pg.sh status || started_pg=1
  admin=$(scripts/pg.sh start 9>&-) # the cluster outlives this run: no lock for it
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
"$bin/checkoutd" migrate 9>&-

# Starts a mock in the background and waits for its "listening on URL" line;
# sets mock_url. Not run in a subshell, so that pids (what Ctrl-C stops) sees it.
# Secrets reach the mocks through their environment (the assignments in front
# of the call): a command line is readable by every local user (ps).
start_mock() {
  local name=$1; shift
  local log="$var/$name.log"
  : >"$log"
  "$bin/$name" "$@" >"$log" 2>&1 9>&- &
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
  MOCK_STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET MOCK_STRIPE_PUBLISHABLE_KEY=$STRIPE_PUBLISHABLE_KEY \
    start_mock mock-stripe --listen 127.0.0.1:0 --webhook-url "http://$LISTEN_ADDR/webhooks/stripe" \
      --state-dir "$var/mock-stripe"
  export STRIPE_API_BASE=$mock_url
fi
if [ -z "${NOTIFY_URL:-}" ] && [ -x "$bin/mock-notify" ]; then
  MOCK_NOTIFY_SECRET=$NOTIFY_SECRET start_mock mock-notify --listen 127.0.0.1:0
  export NOTIFY_URL="$mock_url/notify"
fi
# The demo shop's backend: serves the storefront, signs its shoppers' tokens with
# AUTH_JWT_SECRET, passes their calls to checkoutd (mocks/shop/shop.c).
shop_url=
if [ -x "$bin/mock-shop" ]; then
  MOCK_SHOP_LISTEN=$SHOP_LISTEN_ADDR MOCK_SHOP_API_URL="http://$LISTEN_ADDR" \
  MOCK_SHOP_STRIPE_URL=$STRIPE_API_BASE MOCK_SHOP_PUBLISHABLE_KEY=$STRIPE_PUBLISHABLE_KEY \
    start_mock mock-shop
  shop_url=$mock_url
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
           RESTOCK_WEBHOOK_SECRET AUTH_JWT_SECRET ADMIN_API_KEY NOTIFY_URL NOTIFY_SECRET \
           STRIPE_PUBLISHABLE_KEY; do
    printf '%s=%q\n' "$v" "${!v:-}"
  done
  [ -n "${RESERVATION_TTL_SECONDS:-}" ] && printf 'RESERVATION_TTL_SECONDS=%q\n' "$RESERVATION_TTL_SECONDS"
  [ -n "$shop_url" ] && printf 'SHOP_URL=%q\n' "$shop_url"
  echo "export DATABASE_URL LISTEN_ADDR STRIPE_API_BASE STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET RESTOCK_WEBHOOK_SECRET AUTH_JWT_SECRET ADMIN_API_KEY NOTIFY_URL NOTIFY_SECRET RESERVATION_TTL_SECONDS STRIPE_PUBLISHABLE_KEY SHOP_URL"
} | write_private "$var/run.env"

user=$(cat /proc/sys/kernel/random/uuid)
token=$("$bin/checkoutd" token "$user" 86400 9>&-)
phone=$(psql -qAtX "$DATABASE_URL" -c "SELECT id FROM items WHERE sku = 'PHN-PRO-256'")
# The server first; the banner once it answers /healthz (a server that cannot
# start says why on its stderr, and the run ends without a banner).
"$bin/checkoutd" 9>&- &
pids+=($!)
server=$!
healthz="http://$LISTEN_ADDR/healthz"
for i in $(seq 300); do
  curl -fsS -o /dev/null --max-time 1 "$healthz" 2>/dev/null && break
  if ! kill -0 "$server" 2>/dev/null; then
    st=0; wait "$server" || st=$?
    refuse "checkoutd exited (status $st) before it answered $healthz"
  fi
  [ "$i" -lt 300 ] || refuse "checkoutd did not answer $healthz within 30 s"
  sleep 0.1
done

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
Admin page: http://$LISTEN_ADDR/admin  (user admin, password: ADMIN_API_KEY from $var/run.env)
Storefront: ${shop_url:-not started (no $bin/mock-shop)}  (two phones race for one unit; one pays in the app)

EOF
wait "$server"

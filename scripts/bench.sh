#!/usr/bin/env bash
# make bench: checkout throughput on one hot item, against the bare SQL
# baseline measured in the same run, printed as one table.
#
#   scripts/bench.sh          (make bench builds first, then runs this)
#
# Settings (environment):
#   BENCH_SECONDS            measured seconds per scenario            (10)
#   BENCH_CLIENTS            concurrent clients per scenario          (32)
#   BENCH_WARMUP             unmeasured seconds before each window    (1)
#   BENCH_PROVIDER_LATENCY   the far provider's delay per API call, ms (50)
#   BENCH_WORKERS            checkoutd's WORKERS                      (64)
#   DATABASE_URL             a server to use instead of the private cluster (it must
#                            allow CREATE DATABASE); the bench databases are made there
#
# Scenarios, each on its own fresh, migrated database (co_bench_<pid>_*):
#   1. bare SQL reserve: bench/sqlbase --mode reserve. One UPDATE per op on a
#      scratch copy of the hot item's row (bench_hot_item, made LIKE items);
#      items and its stock ledger are never touched by it.
#   2. SQL co_checkout_begin only: bench/sqlbase --mode begin, the saga's first
#      commit (idempotency row + order + line + reserve + ledger + history).
#   3./4. HTTP checkout: bench/loadgen against bin/checkoutd, which talks to
#      bin/mock-stripe answering at once, then with BENCH_PROVIDER_LATENCY ms
#      of delay on every call (a provider an ocean away). Server flow, card
#      pm_card_visa: the 201 comes after authorize + capture. The mock sends no
#      webhooks (no --webhook-url): the server flow does not wait for them.
#
# commits/op: pg_stat_database.xact_commit of the scenario's database, read
# before the load and after every client of it has disconnected (a backend
# flushes its counters when it exits; while it lives, PostgreSQL 15 may hold
# them back for up to 10 s), divided by the successful operations of the whole
# run (warm-up included). For HTTP the server's own start, its recovery sweep
# (once a second) and its shutdown are inside the count: a few commits.
#
# Exits non-zero when any operation failed, a correctness check failed, or a
# scenario could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECONDS:-10}
clients=${BENCH_CLIENTS:-32}
warmup=${BENCH_WARMUP:-1}
far_ms=${BENCH_PROVIDER_LATENCY:-50}
workers=${BENCH_WORKERS:-64}
bin=build/rel/bin
bb=build/rel/bench
work=var/bench
hot_stock=1000000000
mkdir -p "$work"

for f in "$bin/checkoutd" "$bin/mock-stripe" "$bb/sqlbase" "$bb/loadgen"; do
  [ -x "$f" ] || { echo "bench.sh: $f is missing (run make bench)" >&2; exit 1; }
done

pids=()
dbs=()
started_pg=0
admin=""
status=0

# shellcheck disable=SC2317  # reached through the trap
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$admin" ]; then
    for d in "${dbs[@]+"${dbs[@]}"}"; do
      psql -qX "$admin" -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
  fi
  if [ "$started_pg" = 1 ]; then scripts/pg.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { psql -qAtX -v ON_ERROR_STOP=1 "$1" -c "$2"; }

if [ -z "${DATABASE_URL:-}" ]; then
  scripts/pg.sh status || started_pg=1
  admin=$(scripts/pg.sh start)
else
  admin=$DATABASE_URL
fi

# A fresh migrated database; sets db_url. (Not run in $(...): dbs must grow
# in this shell for cleanup to drop it.)
new_db() {
  local name="co_bench_$$_$1"
  dbs+=("$name")
  q "$admin" "CREATE DATABASE \"$name\"" >/dev/null
  db_url=$(scripts/dburl.sh "$admin" "$name")
  DATABASE_URL="$db_url" LOG_LEVEL=warn "$bin/checkoutd" migrate >"$work/migrate.log" 2>&1 \
    || { cat "$work/migrate.log" >&2; return 1; }
}

# The hot item: huge stock, so no run ever sells out. Prints its id.
seed_hot_item() {
  q "$1" "SELECT co_create_item('BENCH-HOT', 'Bench hot item', 1999, 'usd', $hot_stock)"
}

# Waits until no client backend is connected to the database (they flush their
# statistics on exit), then prints its committed transactions.
commits() {
  local n
  for _ in $(seq 100); do
    n=$(q "$1" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                  AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
    [ "$n" = 0 ] && break
    sleep 0.1
  done
  q "$1" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
}

# Starts a program in the background and waits for its "listening on URL"
# line; sets server_url. (Not run in $(...), so that pids keeps its pid.)
start_server() {
  local name=$1 log=$2; shift 2
  : >"$log"
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    server_url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$server_url" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench.sh: $name did not start; see $log" >&2
  tail -5 "$log" >&2
  return 1
}

# Stops the last process start_server started (SIGTERM, then waits for it).
stop_last() {
  local p=${pids[-1]} rc=0
  kill "$p" 2>/dev/null || true
  wait "$p" || rc=$?
  unset 'pids[-1]'
  return $rc
}

# key=value line -> the value of one key.
val() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

rows=()      # "name|clients|seconds|ok/s|p50|p99|errors|commits/op"
checks=()
base_ops=""

# Records a scenario: $1 name, $2 result line, $3 commits before, $4 commits after.
record() {
  local line=$2 ok_all cpo
  ok_all=$(val "$line" ok_all)
  cpo=$(awk -v d="$(( $4 - $3 ))" -v n="$ok_all" 'BEGIN { if (n > 0) printf "%.2f", d / n; else print "-" }')
  rows+=("$1|$(val "$line" clients)|$(val "$line" seconds)|$(val "$line" ops_per_s)|$(val "$line" p50_ms)|$(val "$line" p99_ms)|$(val "$line" errors)|$cpo")
  if [ "$(val "$line" errors)" != 0 ]; then
    echo "bench.sh: $1: $(val "$line" errors) operation(s) failed" >&2
    status=1
  fi
}

echo "bench: $clients clients, ${warmup}s warm-up + ${secs}s per scenario, $(nproc) CPU(s)" >&2

# ---------------------------------------------------------------- SQL scenarios
new_db sql
sql_url=$db_url
item=$(seed_hot_item "$sql_url")
q "$sql_url" "CREATE TABLE bench_hot_item (LIKE items INCLUDING ALL);
              INSERT INTO bench_hot_item SELECT * FROM items WHERE id = '$item'" >/dev/null

for mode in reserve begin; do
  before=$(commits "$sql_url")
  if ! line=$(DATABASE_URL="$sql_url" "$bb/sqlbase" --mode "$mode" --item "$item" \
                --clients "$clients" --seconds "$secs" --warmup "$warmup"); then
    echo "bench.sh: sqlbase --mode $mode failed" >&2
    exit 1
  fi
  after=$(commits "$sql_url")
  if [ "$mode" = reserve ]; then
    record "bare SQL reserve (baseline)" "$line" "$before" "$after"
    base_ops=$(val "$line" ops_per_s)
  else
    record "SQL co_checkout_begin only" "$line" "$before" "$after"
    held=$(q "$sql_url" "SELECT count(*) FROM orders WHERE status = 'reserved' AND stock_held")
    audit=$(q "$sql_url" "SELECT count(*) FROM stock_audit")
    if [ "$audit" = 0 ] && [ "$held" = "$(val "$line" ok_all)" ]; then
      checks+=("ok   SQL co_checkout_begin: $held reserved orders = $held successful calls, stock_audit empty")
    else
      checks+=("FAIL SQL co_checkout_begin: $held reserved orders for $(val "$line" ok_all) successful calls, stock_audit rows $audit")
      status=1
    fi
  fi
done

# ---------------------------------------------------------------- HTTP scenarios
# Secrets for this run only (loadgen signs its shopper tokens with AUTH_JWT_SECRET).
STRIPE_SECRET_KEY=sk_test_bench
STRIPE_WEBHOOK_SECRET="whsec_$(openssl rand -hex 24)"
RESTOCK_WEBHOOK_SECRET=$(openssl rand -hex 24)
AUTH_JWT_SECRET=$(openssl rand -hex 32)
ADMIN_API_KEY="adm_$(openssl rand -hex 16)"
export STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET RESTOCK_WEBHOOK_SECRET AUTH_JWT_SECRET ADMIN_API_KEY

for lat in 0 "$far_ms"; do
  name="HTTP checkout, provider $lat ms"
  new_db "http$lat"
  url=$db_url
  item=$(seed_hot_item "$url")
  start_server mock-stripe "$work/mock-stripe-$lat.log" \
    "$bin/mock-stripe" --listen 127.0.0.1:0 --latency-ms "$lat"
  mock=$server_url
  # Read before the server connects: afterwards its backends hold counters back.
  before=$(commits "$url")
  start_server checkoutd "$work/checkoutd-$lat.log" \
    env DATABASE_URL="$url" LISTEN_ADDR=127.0.0.1:0 STRIPE_API_BASE="$mock" LOG_LEVEL=warn \
        WORKERS="$workers" "$bin/checkoutd"
  srv=$server_url
  if ! line=$("$bb/loadgen" --url "$srv" --item "$item" --clients "$clients" \
                --seconds "$secs" --warmup "$warmup"); then
    echo "bench.sh: loadgen failed" >&2
    exit 1
  fi
  stop_last || { echo "bench.sh: checkoutd did not stop cleanly; see $work/checkoutd-$lat.log" >&2; status=1; }
  after=$(commits "$url")
  record "$name" "$line" "$before" "$after"

  # Correctness of what the load did: every 201 is one confirmed order holding
  # its unit, nothing else was left behind, the ledger adds up, and the
  # provider captured exactly one payment per confirmed order.
  n201=$(val "$line" ok_all)
  read -r confirmed others audit stock < <(q "$url" "
    SELECT (SELECT count(*) FROM orders WHERE status = 'confirmed'),
           (SELECT count(*) FROM orders WHERE status <> 'confirmed'),
           (SELECT count(*) FROM stock_audit),
           (SELECT stock FROM items WHERE id = '$item')" | tr '|' ' ')
  stats=$(curl -s -H "Authorization: Bearer $STRIPE_SECRET_KEY" "$mock/_mock/stats")
  captured=$(grep -o '"captured": *[0-9]*' <<<"$stats" | grep -o '[0-9]*$' || echo "?")
  stop_last || true
  if [ "$confirmed" = "$n201" ] && [ "$others" = 0 ] && [ "$audit" = 0 ] &&
     [ "$stock" = $(( hot_stock - n201 )) ] && [ "$captured" = "$n201" ]; then
    checks+=("ok   $name: $confirmed confirmed orders = $n201 201s, 0 others, stock_audit empty, stock down by $n201, $captured captured at the provider")
  else
    checks+=("FAIL $name: $confirmed confirmed orders for $n201 201s, $others others, stock_audit rows $audit, stock $stock (want $(( hot_stock - n201 ))), $captured captured at the provider")
    status=1
  fi
done

# ---------------------------------------------------------------- the table
echo
printf '%-32s %7s %7s %9s %7s %7s %6s %10s %12s\n' \
  scenario clients seconds ok/s "p50 ms" "p99 ms" errors commits/op "ratio vs SQL"
for r in "${rows[@]}"; do
  IFS='|' read -r n c s o p50 p99 e cpo <<<"$r"
  ratio=$(awk -v a="$o" -v b="$base_ops" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-32s %7s %7.1f %9.1f %7.2f %7.2f %6s %10s %12s\n' "$n" "$c" "$s" "$o" "$p50" "$p99" "$e" "$cpo" "$ratio"
done
echo
for c in "${checks[@]}"; do echo "$c"; done
[ "$status" = 0 ] || echo "bench.sh: FAILED (see above)" >&2
exit "$status"

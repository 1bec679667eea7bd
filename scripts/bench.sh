#!/usr/bin/env bash
# make bench: full checkouts over HTTP against the seed's bare SQL purchase,
# measured in one run on one Postgres, printed as one table and written as
# var/bench/bench.csv, var/bench/bench.txt and var/bench/bench.svg.
#
#   scripts/bench.sh          (make bench builds first, then runs this)
#
# Settings (environment):
#   BENCH_SECONDS           measured seconds per row (whole seconds)        (10)
#   BENCH_WARMUP            unmeasured seconds before each window            (1)
#   BENCH_CLIENTS           concurrency list of the seed and HTTP rows  ("8 32 128")
#   BENCH_QUICK=1           only the hot-item 32-client row of each kind (a quick check)
#   BENCH_ITEMS             items of the spread shape                        (10000)
#   BENCH_GROWTH_ORDERS     past orders of the growth row (1000000; 100000 when quick)
#   BENCH_PROVIDER_LATENCY  the far provider's delay per API call, ms        (200)
#   BENCH_FAR_CLIENTS       shoppers of the latency-bound row                (256)
#   BENCH_DRAIN_MAX         seconds to wait for the webhook backlog to drain (60)
#   BENCH_WORKERS           checkoutd's WORKERS in the rows but the latency-bound one,
#                           which always runs the default (unset: the default everywhere)
#   DATABASE_URL            a server to use instead of the private cluster (it must
#                           allow CREATE DATABASE; pg_stat_statements wants a superuser)
#
# Rows, each on its own fresh database (co_bench_<pid>_*), dropped at the end:
#   seed      bench/seed.sql's seed.buy_item (lock FOR UPDATE, check, decrement,
#             insert the order; one function, one commit) in schema seed, driven
#             by pgbench -M prepared (bench/seed_buy.pgbench): one hot item, and
#             BENCH_ITEMS items with a random one per call; each BENCH_CLIENTS.
#   begin     diagnostic: co_checkout_begin alone (bench/sqlbase), hot item, 32.
#   http      bench/loadgen -> bin/checkoutd -> bin/mock-stripe, server flow
#             (pm_card_visa; a success is 201 confirmed after authorize and
#             capture), same shapes and clients as seed. The mock sends its
#             webhooks to checkoutd as make run deploys it (--webhook-url
#             .../webhooks/stripe, MOCK_STRIPE_WEBHOOK_SECRET in its environment).
#   rate      open loop (loadgen --rate) at half the ok/s of the hot 32 http row,
#             32 clients; latency counted from each request's scheduled time.
#   far       the provider BENCH_PROVIDER_LATENCY ms away, BENCH_FAR_CLIENTS shoppers
#             on the hot item, checkoutd's default WORKERS; against the ideal
#             clients / (2 calls x latency) checkouts/s.
#   inst      the spread 128 http row with BENCH_INSTANCES (1 2 3) checkoutd
#             processes behind nginx (round robin) on one database: how many
#             instances one primary feeds. CPU and conns: all instances.
#   growth    the hot 32 http row on a database already holding
#             BENCH_GROWTH_ORDERS terminal orders (bench/growth.sql), against the
#             hot 32 http row on an empty one.
#
# Columns: ok/s over the measured window; ratio to the row named in "vs" (seed:
# the seed row of the same shape and clients; rate: the target rate; ideal: the
# latency bound; empty: the http row on an empty database); p50/p95/p99 ms;
# errors; commits/co = pg_stat_database.xact_commit of the row's database, read
# before the load and after every client of it has gone (a backend flushes its
# counters when it exits; while it lives PostgreSQL 15 may hold them back for up
# to 10 s), over all successes (warm-up included); stmts/co and top/co =
# pg_stat_statements calls (track = all: statements inside functions too; top =
# the statements clients sent, round trips) over the same; backlog = webhooks
# the mock still had to deliver when the load stopped (/_mock/stats pending);
# drain s = the time until that backlog was 0; sust/s = ok / (window + drain);
# RSS = checkoutd's VmHWM (peak resident) before it is stopped; conns = the most
# client backends on the row's database seen during the load (sampled every
# 0.2 s from the maintenance database; only checkoutd connects there then).
# For http rows the server's own start, recovery sweep (once a second), webhook
# handling and shutdown are inside the counts.
#
# After each row: seed: orders = purchases, stock down by as many; begin:
# reserved orders = successes, stock_audit empty; http: confirmed orders = 201s,
# no other order, stock_audit empty, stock down by the 201s, captures at the
# provider = 201s, webhook backlog drained with no delivery given up; growth
# database: its counts, stock_audit empty. Exits non-zero when an operation
# failed, a check failed or a row could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-1}
quick=${BENCH_QUICK:-0}
nitems=${BENCH_ITEMS:-10000}
far_ms=${BENCH_PROVIDER_LATENCY:-200}
far_clients=${BENCH_FAR_CLIENTS:-256}
drain_max=${BENCH_DRAIN_MAX:-60}
workers=${BENCH_WORKERS:-}
if [ "$quick" = 1 ]; then
  clients_list=32
  shapes=(hot)
  growth_orders=${BENCH_GROWTH_ORDERS:-100000}
else
  clients_list=${BENCH_CLIENTS:-8 32 128}
  shapes=(hot spread)
  growth_orders=${BENCH_GROWTH_ORDERS:-1000000}
fi
read -r -a clients_arr <<<"$clients_list"
bin=build/rel/bin
bb=build/rel/bench
work=var/bench
hot_stock=1000000000
spread_stock=1000000
t_start=$(date +%s)
mkdir -p "$work"
rm -rf "$work/pgbench"
rm -f "$work"/profile-*.txt "$work"/conns-*.txt "$work"/*.log
mkdir -p "$work/pgbench"

case $secs in '' | *[!0-9]* | 0) echo "bench.sh: BENCH_SECONDS must be whole seconds" >&2; exit 2 ;; esac
for f in "$bin/checkoutd" "$bin/mock-stripe" "$bb/sqlbase" "$bb/loadgen"; do
  [ -x "$f" ] || { echo "bench.sh: $f is missing (run make bench)" >&2; exit 1; }
done
command -v pgbench >/dev/null || { echo "bench.sh: pgbench is missing (scripts/deps.sh)" >&2; exit 1; }
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

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
qa() { q "$admin" "$1"; }
now() { date +%s.%N; }
# Arithmetic on decimals: calc 'a / b' a=1 b=2 (comparisons print 1 or 0).
calc() {
  local expr=$1 v args=(-v OFMT=%.6f); shift
  for v in "$@"; do args+=(-v "$v"); done
  awk "${args[@]}" "BEGIN { print ($expr) }"
}
# a / b with the given decimals, "-" when b is 0 or either is not a number.
div() {
  awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
    if (a !~ /^[0-9.e+-]+$/ || b !~ /^[0-9.e+-]+$/ || b + 0 == 0) print "-";
    else printf "%.*f\n", d, a / b }'
}

if [ -z "${DATABASE_URL:-}" ]; then
  scripts/pg.sh status || started_pg=1
  admin=$(scripts/pg.sh start)
else
  admin=$DATABASE_URL
fi

# pg_stat_statements: loaded by scripts/pg.sh (shared_preload_libraries); a
# cluster started before that line existed needs a restart.
pgss=0
pgss_why=""
if [ "$(qa "SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'")" = t ]
then
  pgss=1
else
  pgss_why="pg_stat_statements is not in shared_preload_libraries of this server"
  [ -z "${DATABASE_URL:-}" ] && pgss_why="$pgss_why (scripts/pg.sh restart loads it)"
fi

# A fresh database; sets db_name and db_url. $2 = migrate (default) or bare.
# (Not run in $(...): dbs must grow in this shell for cleanup to drop it.)
new_db() {
  db_name="co_bench_$$_$1"
  dbs+=("$db_name")
  qa "CREATE DATABASE \"$db_name\"" >/dev/null
  db_url=$(scripts/dburl.sh "$admin" "$db_name")
  if [ "$pgss" = 1 ]; then
    q "$db_url" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    qa "ALTER DATABASE \"$db_name\" SET pg_stat_statements.track = 'all'" >/dev/null \
      || note "pg_stat_statements.track = all refused: statements inside functions not counted"
    # Planning time too: what prepared statements could save at most.
    qa "ALTER DATABASE \"$db_name\" SET pg_stat_statements.track_planning = on" >/dev/null \
      || note "pg_stat_statements.track_planning refused: planning not measured"
  fi
  if [ "${2:-migrate}" = migrate ]; then
    DATABASE_URL="$db_url" LOG_LEVEL=warn "$bin/checkoutd" migrate >"$work/migrate.log" 2>&1 \
      || { cat "$work/migrate.log" >&2; return 1; }
  fi
}

# Drops a database now (cleanup would, at the end) to keep the cluster small.
drop_db() {
  qa "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
  local keep=()
  for d in "${dbs[@]}"; do [ "$d" = "$1" ] || keep+=("$d"); done
  dbs=("${keep[@]+"${keep[@]}"}")
}

# Waits until no client backend is connected to database $1 (they flush their
# statistics on exit), then prints its committed transactions. Asked from the
# maintenance database, so that asking adds no backend and no commit there.
commits() {
  local n
  for _ in $(seq 200); do
    n=$(qa "SELECT count(*) FROM pg_stat_activity WHERE datname = '$1'
              AND backend_type = 'client backend'")
    [ "$n" = 0 ] && break
    sleep 0.05
  done
  qa "SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'"
}

# pg_stat_statements of database url $1: forget it (before a load), or print
# "all toplevel" calls (after), leaving out the probes' own statements.
pgss_reset() {
  [ "$pgss" = 1 ] || return 0
  q "$1" "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database
            WHERE datname = current_database()), 0)" >/dev/null
}
pgss_calls() {
  if [ "$pgss" != 1 ]; then echo "- -"; return 0; fi
  q "$1" "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE toplevel), 0)
            FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND query NOT LIKE '%pg_stat_statements%'" | tr '|' ' '
}
# Where the time went: the top statements of database url $1 appended to file
# $2, per checkout ($3 = successes).
pgss_top() {
  if [ "$pgss" != 1 ]; then echo "statements: $pgss_why" >>"$2"; return 0; fi
  # The statements checkoutd sends are planned on every call (unnamed, so that
  # they work through pgbouncer); inside the functions PL/pgSQL keeps its plans.
  q "$1" "SELECT 'planning the statements sent: ' || round(coalesce(sum(total_plan_time), 0)::numeric / greatest($3, 1), 3)
                 || ' ms per checkout (executing them: '
                 || round(coalesce(sum(total_exec_time), 0)::numeric / greatest($3, 1), 3) || ' ms)'
            FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND toplevel AND query NOT LIKE '%pg_stat_statements%'" >>"$2" 2>&1 || true
  psql -qX -v ON_ERROR_STOP=1 "$1" -c "
    SELECT round(total_exec_time::numeric, 1) AS total_ms,
           round(mean_exec_time::numeric, 3) AS mean_ms, calls,
           round(calls::numeric / greatest($3, 1), 2) AS per_checkout, toplevel,
           left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
      FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query NOT LIKE '%pg_stat_statements%'
     ORDER BY total_exec_time DESC LIMIT 25" >>"$2" 2>&1 || true
}

# CPU time: "pid ticks" of a process (utime + stime), of the client backends of
# database $1 (on this machine: the private cluster), and the machine's busy
# and total ticks.
ticks() { awk '{ print $1, $14 + $15 }' "/proc/$1/stat" 2>/dev/null || true; }
# The CPU ticks of several processes together, as ticks prints them ("0 total").
pids_ticks() {
  local p t=0
  for p in "$@"; do t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) )); done
  echo "0 $t"
}
backend_ticks() {
  local p
  for p in $(qa "SELECT pid FROM pg_stat_activity WHERE datname = '$1'
                   AND backend_type = 'client backend'"); do ticks "$p"; done
}
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i;
                                 print t - $5 - $6, t; exit }' /proc/stat; }
# Sum of the tick deltas from "pid ticks" list $1 to list $2 (pids new in $2 count from 0).
tick_delta() {
  awk 'NR == FNR { a[$1] = $2; next } { d += $2 - ($1 in a ? a[$1] : 0) } END { print d + 0 }' \
    <(echo "$1") <(echo "$2")
}

# Starts a program in the background and waits for its "listening on URL"
# line; sets server_url and server_pid. (Not run in $(...), so that pids keeps it.)
start_server() {
  local name=$1 log=$2; shift 2
  : >"$log"
  "$@" >"$log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 200); do
    server_url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$server_url" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench.sh: $name did not start; see $log" >&2
  tail -5 "$log" >&2
  return 1
}

# nginx (Debian's) in the foreground on 127.0.0.1:$2 in front of the upstream
# lines $3 (round robin, keep-alive to the instances); sets lb_pid.
start_lb() {
  local dir=$1 port=$2 ups=$3
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  upstream checkoutd {
$ups    keepalive 256;
  }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://checkoutd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  lb_pid=$!
  pids+=("$lb_pid")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench.sh: nginx did not start; see $dir/error.log" >&2
  return 1
}

# Stops one process this script started (SIGTERM, then waits); its exit status.
stop_pid() {
  local p=$1 rc=0 keep=()
  kill "$p" 2>/dev/null || true
  wait "$p" || rc=$?
  for x in "${pids[@]}"; do [ "$x" = "$p" ] || keep+=("$x"); done
  pids=("${keep[@]+"${keep[@]}"}")
  return $rc
}

# A TCP port free on 127.0.0.1 now: checkoutd's, which the mock must know
# before either starts (webhook URL one way, API base the other).
# Without python3: a port below the ephemeral range that nothing answers on.
free_port() {
  if [ -n "$py" ]; then
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local p
  for _ in $(seq 50); do
    p=$(( 10000 + RANDOM % 20000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  return 1
}

# key=value line -> the value of one key.
val() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
# A number field of the mock's /_mock/stats JSON.
jnum() { grep -o "\"$2\": *[0-9]*" <<<"$1" | head -1 | grep -o '[0-9]*$' || echo "?"; }
mock_stats() { curl -s -m 5 -H "Authorization: Bearer $STRIPE_SECRET_KEY" "$1/_mock/stats" || true; }

# Nearest-rank percentiles (ms) of the latencies (us) in pgbench's logs, "p50 p95 p99 max".
pgbench_pcts() {
  cat "$@" | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1 }
    function pct(p,  r) { r = int(p / 100 * NR + 0.999999); if (r < 1) r = 1; return v[r] / 1000 }
    END { if (NR == 0) { print "0 0 0 0"; exit }
          printf "%.2f %.2f %.2f %.2f\n", pct(50), pct(95), pct(99), v[NR] / 1000 }'
}

# ------------------------------------------------------------------ rows
# Each row: kind|name|items|clients|rate|seconds|ok|ok_all|ok/s|ratio|vs|p50|p95|p99|max|
#           errors|commits/co|stmts/co|top/co|backlog|drain_s|sust/s|rss_mib|conns
rows=()
checks=()
declare -A base_ops=()     # seed ok/s by "shape clients"
declare -A http_ops=()     # http ok/s by "shape clients"

row() { local IFS='|'; rows+=("$*"); }
check() {
  if [ "$1" = ok ]; then checks+=("ok   $2"); else checks+=("FAIL $2"); status=1; fi
}
shape_label() { if [ "$1" = hot ]; then echo hot; else echo "$nitems"; fi; }
note() { echo "bench: $*" >&2; }

note "$(nproc) CPU(s); ${warmup}s warm-up + ${secs}s per row; clients ${clients_list}" \
     "$([ "$quick" = 1 ] && echo '(quick)')"

# ------------------------------------------------------------------ 1. seed baseline
new_db seed bare
seed_url=$db_url
seed_db=$db_name
psql -qX -v ON_ERROR_STOP=1 -v nitems="$nitems" -v stock="$hot_stock" "$seed_url" \
  -f bench/seed.sql >/dev/null
seed_total=0     # purchases pgbench made, warm-ups included
for shape in "${shapes[@]}"; do
  n=1
  [ "$shape" = spread ] && n=$nitems
  for c in "${clients_arr[@]}"; do
    j=$(( c < $(nproc) ? c : $(nproc) ))
    note "seed buy_item, $(shape_label "$shape"), $c clients"
    args=(-n -M prepared -c "$c" -j "$j" -D nitems="$n" -f bench/seed_buy.pgbench)
    if [ "$(calc 'w > 0' w="$warmup")" = 1 ]; then
      wt=$(calc 'int(w) + (w > int(w))' w="$warmup")
      out=$(pgbench "${args[@]}" -T "$wt" "$seed_url" 2>&1) || true
      n_warm=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
      seed_total=$(( seed_total + ${n_warm:-0} ))
    fi
    pgss_reset "$seed_url"
    before=$(commits "$seed_db")
    prefix="$work/pgbench/$shape-$c"
    rc=0
    out=$(pgbench "${args[@]}" -T "$secs" -l --log-prefix="$prefix" "$seed_url" 2>&1) || rc=$?
    echo "$out" >"$prefix.out"
    after=$(commits "$seed_db")
    read -r calls top < <(pgss_calls "$seed_url")
    done_n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
    done_n=${done_n:-0} failed=${failed:-0} tps=${tps:-0}
    errs=$failed
    if [ "$rc" != 0 ]; then
      note "pgbench exited $rc: $(grep -i 'error\|abort' <<<"$out" | head -3)"
      errs=$(( errs + 1 ))
      status=1
    fi
    seed_total=$(( seed_total + done_n ))
    read -r p50 p95 p99 mx < <(pgbench_pcts "$prefix".*)
    base_ops["$shape $c"]=$tps
    row seed "seed buy_item (pgbench)" "$(shape_label "$shape")" "$c" - "$secs" "$done_n" \
        "$done_n" "$tps" 1.00 seed "$p50" "$p95" "$p99" "$mx" "$errs" \
        "$(div $(( after - before )) "$done_n")" "$(div "$calls" "$done_n")" \
        "$(div "$top" "$done_n")" - - - - -
  done
done
read -r orders units < <(q "$seed_url" "SELECT (SELECT count(*) FROM seed.orders),
    (SELECT $nitems::bigint * $hot_stock - sum(stock) FROM seed.items)" | tr '|' ' ')
if [ "$orders" = "$seed_total" ] && [ "$units" = "$seed_total" ]; then
  check ok "seed: $orders orders = $seed_total purchases by pgbench, stock down by $units"
else
  check FAIL "seed: $orders orders for $seed_total purchases by pgbench, stock down by $units"
fi
drop_db "$seed_db"

# Secrets for this run only (loadgen signs its shopper tokens with AUTH_JWT_SECRET).
STRIPE_SECRET_KEY=sk_test_bench
STRIPE_WEBHOOK_SECRET="whsec_$(openssl rand -hex 24)"
RESTOCK_WEBHOOK_SECRET=$(openssl rand -hex 24)
AUTH_JWT_SECRET=$(openssl rand -hex 32)
ADMIN_API_KEY="adm_$(openssl rand -hex 16)"
# mock-stripe signs its webhooks with the same secret, read from its environment (never argv).
MOCK_STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET
export STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET RESTOCK_WEBHOOK_SECRET AUTH_JWT_SECRET ADMIN_API_KEY \
       MOCK_STRIPE_WEBHOOK_SECRET

# The items a row buys, in database url $1: the hot item, or the spread catalogue.
# Sets items_arg (loadgen's option) and bought_stock (their opening stock).
seed_items() {
  if [ "$2" = hot ]; then
    local id
    id=$(q "$1" "SELECT co_create_item('BENCH-HOT', 'Bench hot item', 1999, 'usd', $hot_stock)")
    items_arg=(--item "$id")
    bought_stock=$hot_stock
  else
    q "$1" "SELECT count(co_create_item('BENCH-' || g, 'Bench item ' || g, 1999, 'usd',
                                        $spread_stock))
              FROM generate_series(1, $nitems) AS g" >/dev/null
    q "$1" "SELECT id FROM items WHERE sku LIKE 'BENCH-%' ORDER BY sku" >"$work/items.txt"
    items_arg=(--items-file "$work/items.txt")
    bought_stock=$(( nitems * spread_stock ))
  fi
}

# ------------------------------------------------------------------ 2. begin (diagnostic)
new_db begin
item=$(q "$db_url" "SELECT co_create_item('BENCH-HOT', 'Bench hot item', 1999, 'usd', $hot_stock)")
note "SQL co_checkout_begin only, hot, 32 clients"
pgss_reset "$db_url"
before=$(commits "$db_name")
if ! line=$(DATABASE_URL="$db_url" "$bb/sqlbase" --item "$item" --clients 32 \
              --seconds "$secs" --warmup "$warmup"); then
  echo "bench.sh: sqlbase failed" >&2
  exit 1
fi
after=$(commits "$db_name")
read -r calls top < <(pgss_calls "$db_url")
ok_all=$(val "$line" ok_all)
held=$(q "$db_url" "SELECT count(*) FROM orders WHERE status = 'reserved' AND stock_held")
audit=$(q "$db_url" "SELECT count(*) FROM stock_audit")
[ "$(val "$line" errors)" = 0 ] || status=1
row begin "SQL co_checkout_begin only" hot 32 - "$(val "$line" seconds)" "$(val "$line" ok)" \
    "$ok_all" "$(val "$line" ops_per_s)" "$(div "$(val "$line" ops_per_s)" "${base_ops[hot 32]:-}")" \
    seed "$(val "$line" p50_ms)" "$(val "$line" p95_ms)" "$(val "$line" p99_ms)" \
    "$(val "$line" max_ms)" "$(val "$line" errors)" "$(div $(( after - before )) "$ok_all")" \
    "$(div "$calls" "$ok_all")" "$(div "$top" "$ok_all")" - - - - -
if [ "$audit" = 0 ] && [ "$held" = "$ok_all" ]; then
  check ok "SQL co_checkout_begin: $held reserved orders = $ok_all successes, stock_audit empty"
else
  check FAIL "SQL co_checkout_begin: $held reserved orders for $ok_all successes, stock_audit rows $audit"
fi
drop_db "$db_name"

# ------------------------------------------------------------------ HTTP rows
# One HTTP row on the database db_name/db_url, whose items seed_items made:
#   http_row KIND NAME SHAPE CLIENTS LATENCY_MS RATE WORKERS REF_OPS REF_NAME
# RATE 0 = closed loop; WORKERS "" = checkoutd's default; REF_* = what the
# ratio is against. Sets last_ops (ok/s of the row).
http_row() {
  local kind=$1 name=$2 shape=$3 c=$4 lat=$5 rate=$6 wk=$7 ref=$8 refname=$9
  local tag="$kind-$shape-$c" port mock srv co_pid mock_pid line rc=0 t_end t_drained
  local backlog pending drain sust rss conns before after calls top ok ok_all stats
  local wenv=(-u WORKERS)
  [ -n "$wk" ] && wenv=(WORKERS="$wk")
  # row_env: more settings of checkoutd for this row (e.g. CHECKOUT_BATCH_MAX=1).
  [ -n "${row_env:-}" ] && wenv+=($row_env)
  local lg=(--clients "$c" --seconds "$secs" --warmup "$warmup")
  [ "$rate" != 0 ] && lg+=(--rate "$rate")
  note "$name, $(shape_label "$shape"), $c clients"

  port=$(free_port)
  start_server mock-stripe "$work/mock-stripe-$tag.log" \
    "$bin/mock-stripe" --listen 127.0.0.1:0 --latency-ms "$lat" \
    --webhook-url "http://127.0.0.1:$port/webhooks/stripe"
  mock=$server_url mock_pid=$server_pid
  pgss_reset "$db_url"
  # Read before the server connects: afterwards its backends hold counters back.
  before=$(commits "$db_name")
  # row_instances > 0: that many checkoutd behind nginx (round robin) on $port.
  local co_pids=() n_inst=${row_instances:-0} i lb_pid=""
  if [ "$n_inst" = 0 ]; then
    start_server checkoutd "$work/checkoutd-$tag.log" \
      env "${wenv[@]}" DATABASE_URL="$db_url" LISTEN_ADDR="127.0.0.1:$port" STRIPE_API_BASE="$mock" \
          LOG_LEVEL=warn PGAPPNAME=checkoutd "$bin/checkoutd"
    srv=$server_url co_pid=$server_pid
    co_pids=("$co_pid")
  else
    local ups=""
    for ((i = 1; i <= n_inst; i++)); do
      local p_i
      p_i=$(free_port)
      start_server checkoutd "$work/checkoutd-$tag-$i.log" \
        env "${wenv[@]}" DATABASE_URL="$db_url" LISTEN_ADDR="127.0.0.1:$p_i" STRIPE_API_BASE="$mock" \
            LOG_LEVEL=warn PGAPPNAME=checkoutd "$bin/checkoutd"
      co_pids+=("$server_pid")
      ups+="    server 127.0.0.1:$p_i max_fails=0;"$'\n'
    done
    co_pid=${co_pids[0]}
    start_lb "$work/nginx-$tag" "$port" "$ups"
    srv="http://127.0.0.1:$port"
  fi
  # The connections checkoutd holds, sampled from the maintenance database.
  psql -qAtX "$admin" >"$work/conns-$tag.txt" 2>/dev/null <<<"SELECT count(*) FROM pg_stat_activity
     WHERE datname = '$db_name' AND backend_type = 'client backend' \\watch 0.2" &
  local sampler=$!
  pids+=("$sampler")
  local cpu0_co cpu0_mock cpu0_pg cpu0_m
  cpu0_co=$(pids_ticks "${co_pids[@]}") cpu0_mock=$(ticks "$mock_pid")
  cpu0_pg=$(backend_ticks "$db_name")
  cpu0_m=$(machine_ticks)

  line=$("$bb/loadgen" --url "$srv" "${items_arg[@]}" "${lg[@]}") || rc=$?
  t_end=$(now)
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    echo "bench.sh: loadgen failed ($rc); see $work/checkoutd-$tag.log" >&2
    exit 1
  fi
  # The webhook backlog: deliveries the mock still has to make (sent minus
  # answered), then how long it takes to reach 0.
  stats=$(mock_stats "$mock")
  backlog=$(jnum "$stats" pending)
  pending=$backlog
  t_drained=""
  while :; do
    if [ "$pending" = 0 ]; then t_drained=$(now); break; fi
    [ "$(calc 'n - t > m' n="$(now)" t="$t_end" m="$drain_max")" = 1 ] && break
    sleep 0.1
    stats=$(mock_stats "$mock")
    pending=$(jnum "$stats" pending)
  done
  local cpu_co cpu_mock cpu_pg m0 m1 hz
  cpu_co=$(tick_delta "$cpu0_co" "$(pids_ticks "${co_pids[@]}")")
  cpu_mock=$(tick_delta "$cpu0_mock" "$(ticks "$mock_pid")")
  cpu_pg=$(tick_delta "$cpu0_pg" "$(backend_ticks "$db_name")")
  read -r -a m0 <<<"$cpu0_m"
  read -r -a m1 <<<"$(machine_ticks)"
  hz=$(getconf CLK_TCK)
  stop_pid "$sampler" || true
  conns=$(sort -n "$work/conns-$tag.txt" | tail -1)
  rss=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$co_pid/status" 2>/dev/null || echo "-")
  [ -n "$lb_pid" ] && { stop_pid "$lb_pid" || true; }
  for p in "${co_pids[@]}"; do
    stop_pid "$p" || {
      echo "bench.sh: checkoutd did not stop cleanly; see $work/checkoutd-$tag*.log" >&2
      status=1
    }
  done
  after=$(commits "$db_name")
  ok=$(val "$line" ok) ok_all=$(val "$line" ok_all)
  read -r calls top < <(pgss_calls "$db_url")
  {
    echo "$name, $(shape_label "$shape"), $c clients: $ok_all checkouts (warm-up included)"
    echo "CPU ms per checkout over the load and the drain: checkoutd" \
         "$(div "$(calc "t * 1000 / $hz" t="$cpu_co")" "$ok_all")," \
         "its Postgres backends $(div "$(calc "t * 1000 / $hz" t="$cpu_pg")" "$ok_all")," \
         "mock-stripe $(div "$(calc "t * 1000 / $hz" t="$cpu_mock")" "$ok_all");" \
         "the machine was $(div "$(calc '(b1 - b0) * 100' b1="${m1[0]}" b0="${m0[0]}")" \
                                 "$(calc 't1 - t0' t1="${m1[1]}" t0="${m0[1]}")" 0)% busy" \
         "(all $(nproc) CPUs, loadgen and everything else on the machine included)"
    echo
  } >"$work/profile-$tag.txt"
  pgss_top "$db_url" "$work/profile-$tag.txt" "$ok_all"
  if [ -n "$t_drained" ]; then
    drain=$(calc 'd < 0 ? 0 : d' d="$(calc 'a - b' a="$t_drained" b="$t_end")")
    drain=$(printf '%.1f' "$drain")
    sust=$(div "$ok" "$(calc 'w + d' w="$(val "$line" seconds)" d="$drain")" 1)
  else
    drain=">$drain_max" sust=-
  fi
  last_ops=$(val "$line" ops_per_s)
  row "$kind" "$name" "$(shape_label "$shape")" "$c" "$rate" "$(val "$line" seconds)" "$ok" \
      "$ok_all" "$last_ops" "$(div "$last_ops" "$ref")" "$refname" "$(val "$line" p50_ms)" \
      "$(val "$line" p95_ms)" "$(val "$line" p99_ms)" "$(val "$line" max_ms)" \
      "$(val "$line" errors)" "$(div $(( after - before )) "$ok_all")" "$(div "$calls" "$ok_all")" \
      "$(div "$top" "$ok_all")" "$backlog" "$drain" "$sust" "$rss" "${conns:--}"
  if [ "$(val "$line" errors)" != 0 ]; then
    echo "bench.sh: $name: $(val "$line" errors) checkout(s) failed" >&2
    status=1
  fi

  # What the load did: every 201 is one confirmed order of the row's items
  # holding its unit and nothing else was left behind, the ledger adds up, the
  # provider captured exactly one payment per confirmed order, and every
  # webhook was delivered.
  local confirmed others audit down events captured delivered failed label
  read -r confirmed others audit down events < <(q "$db_url" "
    WITH mine AS (SELECT DISTINCT o.id, o.status FROM orders o
                    JOIN order_lines l ON l.order_id = o.id JOIN items i ON i.id = l.item_id
                   WHERE i.sku LIKE 'BENCH-%')
    SELECT (SELECT count(*) FROM mine WHERE status = 'confirmed'),
           (SELECT count(*) FROM mine WHERE status <> 'confirmed'),
           (SELECT count(*) FROM stock_audit),
           (SELECT $bought_stock - sum(co_item_available(id)) FROM items WHERE sku LIKE 'BENCH-%'),
           (SELECT count(*) FROM payment_events e JOIN mine ON mine.id = e.order_id)" | tr '|' ' ')
  captured=$(jnum "$stats" captured)
  delivered=$(jnum "$stats" delivered)
  failed=$(jnum "$stats" failed)
  stop_pid "$mock_pid" || true
  label="$name ($(shape_label "$shape"), $c)"
  if [ "$confirmed" = "$ok_all" ] && [ "$others" = 0 ] && [ "$audit" = 0 ] &&
     [ "$down" = "$ok_all" ] && [ "$captured" = "$ok_all" ]; then
    check ok "$label: $confirmed confirmed orders = $ok_all 201s, 0 others, stock_audit empty, stock down by $down, $captured captured at the provider"
  else
    check FAIL "$label: $confirmed confirmed orders for $ok_all 201s, $others others, stock_audit rows $audit, stock down by $down, $captured captured at the provider"
  fi
  if [ "$pending" = 0 ] && [ "$failed" = 0 ]; then
    check ok "$label: webhooks $delivered delivered, 0 given up, backlog $backlog drained in ${drain}s; $events recorded as payment_events"
  else
    check FAIL "$label: webhooks $delivered delivered, $failed given up, $pending still pending after ${drain_max}s"
  fi
}

# ------------------------------------------------------------------ 3. HTTP checkouts
for shape in "${shapes[@]}"; do
  for c in "${clients_arr[@]}"; do
    new_db "http_${shape}_$c"
    seed_items "$db_url" "$shape"
    http_row http "HTTP checkout" "$shape" "$c" 0 0 "$workers" "${base_ops[$shape $c]:-}" seed
    http_ops["$shape $c"]=$last_ops
    drop_db "$db_name"
  done
done

# ------------------------------------------------------------------ 3a. one lever off
# The hot 32-client row again with group commit off (CHECKOUT_BATCH_MAX=1:
# every first commit and every move its own transaction), against the seed:
# what batching is worth, in the same run.
new_db nobatch
seed_items "$db_url" hot
row_env="CHECKOUT_BATCH_MAX=1" http_row nobatch "HTTP, group commit off" hot 32 0 0 "$workers" \
  "${base_ops[hot 32]:-}" seed
drop_db "$db_name"

# The peak the fixed-rate and growth rows refer to: hot 32, or the best hot row.
peak=${http_ops[hot 32]:-}
if [ -z "$peak" ]; then
  peak=0
  for k in "${!http_ops[@]}"; do
    [[ $k == hot\ * ]] && [ "$(calc 'a > b' a="${http_ops[$k]}" b="$peak")" = 1 ] && peak=${http_ops[$k]}
  done
fi

# ------------------------------------------------------------------ 3b. instances
# How many instances one primary feeds: 1, 2 and 3 checkoutd behind nginx
# (round robin, as a shop deploys several), BENCH_ITEMS items spread, 128
# clients (the hot item is bound by its rows' locks, not by the instances).
# BENCH_INSTANCES lists the counts; empty: none. Quick: none.
inst_list=${BENCH_INSTANCES-1 2 3}
[ "$quick" = 1 ] && inst_list=${BENCH_INSTANCES-}
for n in $inst_list; do
  new_db "inst_$n"
  seed_items "$db_url" spread
  row_instances=$n http_row inst "HTTP $n instance(s) behind nginx" spread 128 0 0 "$workers" \
    "${base_ops[spread 128]:-}" seed
  drop_db "$db_name"
done

# ------------------------------------------------------------------ 4. fixed rate
rate=$(calc 'int(p / 2 + 0.5)' p="$peak")
if [ "$(calc 'r >= 1' r="$rate")" = 1 ]; then
  new_db rate
  seed_items "$db_url" hot
  http_row rate "HTTP fixed rate ${rate}/s" hot 32 0 "$rate" "$workers" "$rate" rate
  drop_db "$db_name"
else
  check FAIL "fixed rate: no hot-item HTTP peak to take half of"
fi

# ------------------------------------------------------------------ 5. latency-bound
ideal=$(calc 'c / (2 * l / 1000)' c="$far_clients" l="$far_ms")
new_db far
seed_items "$db_url" hot
http_row far "HTTP provider ${far_ms} ms" hot "$far_clients" "$far_ms" 0 "" "$ideal" ideal
drop_db "$db_name"

# ------------------------------------------------------------------ 6. growth
new_db growth
note "growth: loading $growth_orders past orders"
t0=$(now)
psql -qX -v ON_ERROR_STOP=1 -v orders="$growth_orders" "$db_url" -f bench/growth.sql >/dev/null
q "$db_url" "VACUUM ANALYZE" >/dev/null
q "$db_url" "CHECKPOINT" >/dev/null || note "CHECKPOINT refused (not a superuser); going on"
load_s=$(printf '%.0f' "$(calc 'a - b' a="$(now)" b="$t0")")
read -r n_orders n_conf n_failed audit < <(q "$db_url" "
  SELECT count(*), count(*) FILTER (WHERE status = 'confirmed'),
         count(*) FILTER (WHERE status = 'failed'), (SELECT count(*) FROM stock_audit)
    FROM orders" | tr '|' ' ')
if [ "$n_orders" = "$growth_orders" ] && [ "$audit" = 0 ] &&
   [ $(( n_conf + n_failed )) = "$n_orders" ]; then
  check ok "growth database: $n_orders orders ($n_conf confirmed, $n_failed failed) loaded in ${load_s}s, keys re-added and checked, stock_audit empty"
else
  check FAIL "growth database: $n_orders orders for $growth_orders ($n_conf confirmed, $n_failed failed), stock_audit rows $audit"
fi
seed_items "$db_url" hot
if [ "$growth_orders" -ge 1000000 ] && [ $(( growth_orders % 1000000 )) = 0 ]; then
  gl="$(( growth_orders / 1000000 ))M"
elif [ $(( growth_orders % 1000 )) = 0 ]; then
  gl="$(( growth_orders / 1000 ))k"
else
  gl=$growth_orders
fi
http_row growth "HTTP $gl orders in the DB" hot 32 0 0 "$workers" "${http_ops[hot 32]:-}" empty
drop_db "$db_name"

# ------------------------------------------------------------------ the table
elapsed=$(( $(date +%s) - t_start ))
cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1)
pgver=$(qa "SHOW server_version")
{
  echo "machine: $(nproc) CPU(s), ${cpu:-unknown CPU}; PostgreSQL $pgver"
  echo "load average: $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine skews the numbers)"
  echo "run: ${warmup}s warm-up + ${secs}s per row, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${elapsed}s in all$([ "$quick" = 1 ] && echo ', BENCH_QUICK=1')"
  echo
  printf '%-28s %5s %4s %8s %5s %-5s %7s %7s %7s %4s %6s %6s %5s %7s %6s %7s %5s %5s\n' \
    scenario items cl ok/s ratio vs "p50" "p95" "p99 ms" err cmt/co stm/co top/co \
    backlog drain sust/s "RSS" conns
  for r in "${rows[@]}"; do
    IFS='|' read -r _ n it c _ _ _ _ o ra vs p50 p95 p99 _ e cpo spo tpo bl dr su rss cn <<<"$r"
    printf '%-28s %5s %4s %8.1f %5s %-5s %7.2f %7.2f %7.2f %4s %6s %6s %5s %7s %6s %7s %5s %5s\n' \
      "$n" "$it" "$c" "$o" "$ra" "$vs" "$p50" "$p95" "$p99" "$e" "$cpo" "$spo" "$tpo" \
      "$bl" "$dr" "$su" "$rss" "$cn"
  done
  echo
  echo "cl = clients; ratio = ok/s over the row named in vs; cmt/co = commits, stm/co = statements"
  echo "(all levels), top/co = statements sent (round trips), each per successful checkout;"
  echo "backlog = webhooks undelivered when the load stopped, drain = seconds until 0,"
  echo "sust/s = ok / (window + drain); RSS = checkoutd's peak MiB; conns = its Postgres connections."
  [ "$pgss" = 1 ] || echo "stm/co, top/co: $pgss_why"
  echo
  for c in "${checks[@]}"; do echo "$c"; done
} | tee "$work/bench.txt"

{
  echo "kind,scenario,items,clients,rate,seconds,ok,ok_all,ok_per_s,ratio,ratio_vs,p50_ms,p95_ms,p99_ms,max_ms,errors,commits_per_checkout,statements_per_checkout,toplevel_per_checkout,webhook_backlog,drain_s,sustained_per_s,rss_mib,pg_conns"
  for r in "${rows[@]}"; do
    IFS='|' read -r -a f <<<"$r"
    (IFS=,; echo "${f[*]//,/;}")
  done
} >"$work/bench.csv"
if [ -n "$py" ]; then
  "$py" bench/plot.py "$work/bench.csv" "$work/bench.svg" \
    "$(nproc) CPU(s), ${cpu:-unknown CPU}, PostgreSQL $pgver" \
    || { echo "bench.sh: plot failed" >&2; status=1; }
else
  echo "bench.sh: no python3: $work/bench.svg not drawn" >&2
fi
echo "bench: $work/bench.txt, $work/bench.csv, $work/bench.svg; CPU split and top statements per row in $work/profile-*.txt" >&2
[ "$status" = 0 ] || echo "bench.sh: FAILED (see above)" >&2
exit "$status"

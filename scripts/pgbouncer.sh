#!/usr/bin/env bash
# pgbouncer (Debian's package) in front of the private cluster of scripts/pg.sh,
# in transaction pooling mode, as a deployment would run it.
#
#   scripts/pgbouncer.sh start   start it (the cluster must be running); reuse it
#   scripts/pgbouncer.sh stop    stop it
#   scripts/pgbouncer.sh url     print the URL of the maintenance database through it
#   scripts/pgbouncer.sh status  exit 0 when it is running
#
# Its port is the cluster's plus 20000. It listens on 127.0.0.1 only, takes
# every database name (a fallback entry: each test's fresh database too), and
# authenticates clients with SCRAM as the role `checkout`, with the cluster's
# password; it logs in to the cluster the same way. Its files (configuration,
# the user list holding the password, 0600) live beside the cluster's data and
# belong to the unprivileged user it runs as (pgbouncer refuses root). The URL
# names a passfile of its own (var/pg/pgbouncer.pgpass), so it carries no secret.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd -P)

PGUSER_OS=${PG_OS_USER:-postgres}
bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$bin" ] || { echo "pgbouncer.sh: pgbouncer not found (scripts/deps.sh installs it)" >&2; exit 1; }

pg_url=$(scripts/pg.sh url)
pg_port=${pg_url#*@127.0.0.1:}
pg_port=${pg_port%%/*}
port=$((pg_port + 20000))
link="$top/var/pg"
passfile="$link/pgbouncer.pgpass"
url="${pg_url/127.0.0.1:$pg_port/127.0.0.1:$port}"
url="${url%pgpass}pgbouncer.pgpass" # pg.sh's URL names var/pg/pgpass last

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi; }

dir() { echo "$(readlink -f "$link")/pgbouncer"; }

running() {
  local d pid
  d=$(dir)
  [ -f "$d/pgbouncer.pid" ] || return 1
  pid=$(cat "$d/pgbouncer.pid")
  [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = pgbouncer ]
}

start() {
  local d password
  [ -s "$link/pgpass" ] || { echo "pgbouncer.sh: start the cluster first (scripts/pg.sh start)" >&2; exit 1; }
  d=$(dir)
  running && return 0
  mkdir -p "$d"
  password=$(cut -d: -f5 "$link/pgpass")
  (umask 077
   printf '"checkout" "%s"\n' "$password" >"$d/userlist.txt"
   printf '127.0.0.1:%s:*:checkout:%s\n' "$port" "$password" >"$passfile")
  cat >"$d/pgbouncer.ini" <<INI
; Written by scripts/pgbouncer.sh.
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $d/userlist.txt
pool_mode = transaction
max_client_conn = 4000
default_pool_size = 40
max_db_connections = 120
server_reset_query =
server_check_delay = 1
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
logfile = $d/pgbouncer.log
pidfile = $d/pgbouncer.pid
INI
  if [ "$(id -u)" -eq 0 ]; then chown -R "$PGUSER_OS" "$d"; fi
  rm -f "$d/pgbouncer.pid"
  as_pg "$bin" -d -q "$d/pgbouncer.ini" || { tail -20 "$d/pgbouncer.log" >&2; exit 1; }
  for _ in $(seq 100); do
    PGCONNECT_TIMEOUT=2 psql -qAtX -w "$url" -c 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "pgbouncer.sh: pgbouncer did not answer on port $port" >&2
  tail -20 "$d/pgbouncer.log" >&2
  exit 1
}

stop() {
  local d
  d=$(dir)
  running || return 0
  kill "$(cat "$d/pgbouncer.pid")"
  for _ in $(seq 100); do running || return 0; sleep 0.05; done
}

case "${1:-}" in
  start) start; echo "$url" ;;
  stop) stop ;;
  url) echo "$url" ;;
  status) running ;;
  *) echo "usage: $0 start|stop|url|status" >&2; exit 2 ;;
esac

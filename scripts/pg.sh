#!/usr/bin/env bash
# The private PostgreSQL cluster under var/pg, run as an unprivileged user
# (PostgreSQL refuses to run as root).
#
#   scripts/pg.sh start    start it (initdb on first use); reuse it when running
#   scripts/pg.sh stop     stop it (fast shutdown)
#   scripts/pg.sh restart  stop then start (keeps the data)
#   scripts/pg.sh url      print the connection URL of the maintenance database
#   scripts/pg.sh status   exit 0 when it is running
#
# The port is derived from the project's path, so two checkouts on one machine
# do not collide. When the unprivileged user cannot reach var/ (a checkout under
# /root, say), the data lives under /var/tmp and var/pg links to it.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd -P)

PGUSER_OS=${PG_OS_USER:-postgres}
pgbin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && pgbin=$d; done
[ -n "$pgbin" ] || { echo "pg.sh: PostgreSQL server binaries not found (scripts/deps.sh installs them)" >&2; exit 1; }

port=$(( 20000 + $(printf '%s' "$top" | cksum | cut -d' ' -f1) % 20000 ))
link="$top/var/pg"
url="postgresql://checkout@127.0.0.1:$port/postgres"

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi; }

data_dir() {
  if [ -L "$link" ] || [ -d "$link" ]; then readlink -f "$link"; return; fi
  mkdir -p "$top/var"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u "$PGUSER_OS" -- test -x "$top/var"; then
    local alt
    alt="/var/tmp/checkout-pg-$(printf '%s' "$top" | cksum | cut -d' ' -f1)"
    mkdir -p "$alt"
    ln -sfn "$alt" "$link"
  else
    mkdir -p "$link"
  fi
  readlink -f "$link"
}

running() {
  local dir
  dir=$(data_dir)
  [ -f "$dir/data/PG_VERSION" ] && as_pg "$pgbin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

start() {
  local dir
  dir=$(data_dir)
  [ "$(id -u)" -eq 0 ] && chown "$PGUSER_OS" "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    as_pg "$pgbin/initdb" -D "$dir/data" -U checkout --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
  fi
  # pg_stat_statements (make bench reads it; loaded at start, so also added to
  # a cluster made before this line existed: it takes effect at its next start).
  grep -q "^shared_preload_libraries" "$dir/data/postgresql.conf" \
    || echo "shared_preload_libraries = 'pg_stat_statements'" >>"$dir/data/postgresql.conf"
  if running; then return 0; fi
  # A pid file left by a killed server whose pid is not a live postgres: remove it.
  local pidf="$dir/data/postmaster.pid"
  if [ -f "$pidf" ]; then
    local pid
    pid=$(head -1 "$pidf")
    if ! { [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = postgres ]; }; then
      rm -f "$pidf"
    fi
  fi
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -20 "$dir/server.log" >&2; exit 1; }
}

stop() {
  local dir
  dir=$(data_dir)
  [ -f "$dir/data/PG_VERSION" ] || return 0
  running || return 0
  as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
  start) start; echo "$url" ;;
  stop) stop ;;
  restart) stop; start; echo "$url" ;;
  url) echo "$url" ;;
  status) running ;;
  *) echo "usage: $0 start|stop|restart|url|status" >&2; exit 2 ;;
esac

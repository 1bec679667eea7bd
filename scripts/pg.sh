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
#
# Nothing is trusted: every connection (TCP on 127.0.0.1 only) authenticates
# with scram-sha-256 as the role `checkout`, whose password is generated at
# initdb and kept in var/pg/pgpass (a libpq passfile, mode 0600, owned by the
# user running this script). The URL printed names that file (`?passfile=`),
# so it carries no secret and works as is for psql, pgbench, checkoutd and the
# tests, and the password is never on a command line. A cluster made by an
# older pg.sh with `trust` is upgraded in place at start (password set, pg_hba
# rewritten, configuration reloaded); its data is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd -P)

PGUSER_OS=${PG_OS_USER:-postgres}
pgbin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && pgbin=$d; done
[ -n "$pgbin" ] || { echo "pg.sh: PostgreSQL server binaries not found (scripts/deps.sh installs them)" >&2; exit 1; }

port=$(( 20000 + $(printf '%s' "$top" | cksum | cut -d' ' -f1) % 20000 ))
link="$top/var/pg"
passfile="$link/pgpass"

# A path as a URI query value: every byte but [A-Za-z0-9/._~-] percent-encoded.
uri_encode() {
  local s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9/._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}
url="postgresql://checkout@127.0.0.1:$port/postgres?passfile=$(uri_encode "$passfile")"

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

# Writes a new random password into the passfile (0600, replaced whole) and
# prints nothing: readers take it from the file.
new_password() {
  local tmp
  tmp=$(mktemp "$passfile.XXXXXX") # 0600 whatever the umask
  printf '127.0.0.1:%s:*:checkout:%s\n' "$port" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$tmp"
  mv -f "$tmp" "$passfile"
}
password() { cut -d: -f5 "$passfile"; }

# The pg_hba.conf of every cluster: a password for every connection, no trust.
# (There is no Unix socket: unix_socket_directories is empty.)
write_hba() {
  as_pg tee "$1/data/pg_hba.conf" >/dev/null <<'HBA'
# Written by scripts/pg.sh: every connection authenticates (SCRAM); no trust.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
HBA
}

# Does the cluster in $1 trust some connection (a pg_hba.conf line ending in trust)?
hba_trusts() {
  grep -Eq '^[[:space:]]*[^#[:space:]].*[[:space:]]trust[[:space:]]*$' "$1/data/pg_hba.conf"
}

# A cluster an older pg.sh made with `trust` (running, so still open): give
# the role its password, then require it. The statement is sent on stdin and
# kept out of the server log (it holds the password).
upgrade_trust() {
  local dir=$1
  hba_trusts "$dir" || return 0
  echo "pg.sh: this cluster trusted every local connection: setting a password (kept in $passfile)" >&2
  [ -s "$passfile" ] || new_password
  PGPASSFILE=/nonexistent psql -qX -v ON_ERROR_STOP=1 \
    "postgresql://checkout@127.0.0.1:$port/postgres" >/dev/null <<SQL
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET password_encryption = 'scram-sha-256';
ALTER ROLE checkout PASSWORD '$(password)';
SQL
  write_hba "$dir"
  as_pg "$pgbin/pg_ctl" -D "$dir/data" reload >/dev/null
  # The reload is asynchronous: wait until a connection without the password is refused.
  for _ in $(seq 100); do
    PGPASSFILE=/nonexistent PGCONNECT_TIMEOUT=2 psql -qAtX -w \
      "postgresql://checkout@127.0.0.1:$port/postgres" -c 'SELECT 1' >/dev/null 2>&1 || return 0
    sleep 0.05
  done
  echo "pg.sh: the cluster still accepts connections without a password" >&2
  exit 1
}

start() {
  local dir
  dir=$(data_dir)
  [ "$(id -u)" -eq 0 ] && chown "$PGUSER_OS" "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    new_password
    # initdb reads the password from a file of the unprivileged user's, gone after.
    local pwtmp
    pwtmp=$(mktemp "$dir/initdb-pw.XXXXXX")
    password >"$pwtmp"
    [ "$(id -u)" -eq 0 ] && chown "$PGUSER_OS" "$pwtmp"
    if ! as_pg "$pgbin/initdb" -D "$dir/data" -U checkout --auth=scram-sha-256 --pwfile="$pwtmp" \
         -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
      rm -f "$pwtmp"
      cat "$dir/initdb.log" >&2
      exit 1
    fi
    rm -f "$pwtmp"
    write_hba "$dir"
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
  if [ ! -s "$passfile" ] && ! hba_trusts "$dir"; then
    echo "pg.sh: $passfile (the cluster's password) is missing; remove $link to start afresh" >&2
    exit 1
  fi
  if running; then upgrade_trust "$dir"; return 0; fi
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
  upgrade_trust "$dir"
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

#!/usr/bin/env bash
# Runs every test suite against a real PostgreSQL (the private cluster under
# var/pg unless DATABASE_URL names another server) with the sanitizer build.
#
#   scripts/test.sh            every suite (PGBOUNCER=1: through pgbouncer)
#   scripts/test.sh NAME...    only build/san/tests/test_NAME (unit/DIR/NAME for
#                              build/san/tests/unit/DIR/test_NAME, pgbouncer for
#                              checkout and indoubt through pgbouncer, sdk and openapi for
#                              the Node suites, pages for the headless-Chromium one
#                              (tests/pages), style for scripts/style.sh, fuzz for a
#                              short smoke of each libFuzzer target: fuzz/run.sh)
#
# The format check (scripts/style.sh) runs first as the suite "style"; when it
# fails the other suites still run, but the run fails. Each Check suite gets
# fresh databases cloned from a migrated template (tests/harness.c). Prints
# "N passed, N failed" (suites) at the end.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
top=$(pwd -P)

export CO_ROOT="$top"
export CO_BIN_DIR="$top/build/san/bin"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}

want=("$@")
selected() {
  [ ${#want[@]} -eq 0 ] && return 0
  local w
  for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

passed=0 failed=0 failed_names=()
start_all=$(date +%s)

# The format check needs no database, so it runs before Postgres starts.
if selected style; then
  echo "=== style"
  if scripts/style.sh; then passed=$((passed+1)); else failed=$((failed+1)); failed_names+=(style); fi
fi
# The fuzz smoke needs no database either: FUZZ_SMOKE_SECONDS (4) per target of
# build/fuzz (make test builds it), from the seeds in fuzz/corpus/ only.
if selected fuzz; then
  echo "=== fuzz"
  t0=$(date +%s)
  if fuzz/run.sh smoke; then passed=$((passed+1)); else failed=$((failed+1)); failed_names+=(fuzz); fi
  echo "--- fuzz: $(( $(date +%s) - t0 ))s"
fi
summary() {
  echo "test.sh: $(( $(date +%s) - start_all ))s${failed_names[*]:+, failed: ${failed_names[*]}}"
  echo "suites: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
# Only "style" and "fuzz" asked for: no database needed.
if [ ${#want[@]} -gt 0 ]; then
  only_style=1
  for w in "${want[@]}"; do [ "$w" = style ] || [ "$w" = fuzz ] || only_style=0; done
  if [ "$only_style" = 1 ]; then summary; exit; fi
fi

started_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
  if ! scripts/pg.sh status; then started_pg=1; fi
  admin_url=$(scripts/pg.sh start) || exit 1
else
  admin_url=$DATABASE_URL
fi
# PGBOUNCER=1 (make test-pgbouncer): every connection of checkoutd and of the
# suites goes through pgbouncer in transaction pooling mode (scripts/pgbouncer.sh);
# creating and dropping databases still goes straight to the cluster.
started_bouncer=0
if [ "${PGBOUNCER:-0}" = 1 ]; then
  [ -z "${DATABASE_URL:-}" ] || { echo "test.sh: PGBOUNCER=1 runs against the private cluster only" >&2; exit 1; }
  scripts/pgbouncer.sh status || started_bouncer=1
  CO_TEST_CLIENT_URL=$(scripts/pgbouncer.sh start) || exit 1
  export CO_TEST_CLIENT_URL
  echo "test.sh: through pgbouncer ($CO_TEST_CLIENT_URL)"
fi
cleanup() {
  [ "$started_bouncer" = 1 ] && scripts/pgbouncer.sh stop
  [ "$started_pg" = 1 ] && scripts/pg.sh stop
}
# The chaos suite restarts Postgres once, but only a cluster this run started:
# one that was already running (a `make run` using it, say) is never restarted
# nor stopped. CO_TEST_PG_RESTART= (empty) turns the restart off in any case.
if [ -z "${DATABASE_URL:-}" ]; then
  if [ "$started_pg" = 1 ]; then
    export CO_TEST_PG_RESTART="${CO_TEST_PG_RESTART-$top/scripts/pg.sh restart >/dev/null}"
  else
    export CO_TEST_PG_RESTART=
    selected chaos && echo "test.sh: the private cluster was already running (not started by" \
      "this run): the chaos suite will not restart Postgres"
  fi
  export CO_TEST_PRIVATE_PG=1 # the trust suite checks the cluster's authentication
fi
trap cleanup EXIT

template="co_tpl_$(printf '%s' "$top" | cksum | cut -d' ' -f1)"
export CO_TEST_ADMIN_URL="$admin_url"
export CO_TEST_TEMPLATE="$template"
# The template: dropped and rebuilt each run so it always has every migration.
tpl_url=$(scripts/dburl.sh "$admin_url" "$template")
psql -qX -v ON_ERROR_STOP=1 "$admin_url" >/dev/null <<SQL || { echo "test.sh: cannot reach PostgreSQL" >&2; exit 1; }
UPDATE pg_database SET datistemplate = false WHERE datname = '$template';
DROP DATABASE IF EXISTS "$template" WITH (FORCE);
CREATE DATABASE "$template";
SQL
DATABASE_URL="$tpl_url" "$CO_BIN_DIR/checkoutd" migrate || { echo "test.sh: migrations failed" >&2; exit 1; }
psql -qX -v ON_ERROR_STOP=1 "$admin_url" -c "UPDATE pg_database SET datistemplate = true WHERE datname = '$template'" >/dev/null

# The unit layer first (fast, no servers), then the suites.
for t in "$CO_BIN_DIR"/../tests/unit/*/test_* "$CO_BIN_DIR"/../tests/test_*; do
  [ -x "$t" ] || continue
  case $t in
    */tests/unit/*) dir=$(basename "$(dirname "$t")"); name=$(basename "$t")
                    name="unit/$dir/${name#test_}" ;;
    *) name=$(basename "$t"); name=${name#test_} ;;
  esac
  selected "$name" || continue
  echo "=== $name"
  t0=$(date +%s)
  if "$t"; then passed=$((passed+1)); else failed=$((failed+1)); failed_names+=("$name"); fi
  echo "--- $name: $(( $(date +%s) - t0 ))s"
done
if [ -x tests/sdk/run.sh ] && selected sdk; then
  echo "=== sdk"
  if tests/sdk/run.sh; then passed=$((passed+1)); else failed=$((failed+1)); failed_names+=(sdk); fi
fi
# docs/openapi.yaml against real answers of a real checkoutd (Node: redocly, ajv).
if [ -x tests/openapi/run.sh ] && selected openapi; then
  echo "=== openapi"
  t0=$(date +%s)
  if tests/openapi/run.sh; then passed=$((passed+1)); else failed=$((failed+1)); failed_names+=(openapi); fi
  echo "--- openapi: $(( $(date +%s) - t0 ))s"
fi
if [ -x tests/pages/run.sh ] && selected pages; then
  echo "=== pages"
  t0=$(date +%s)
  if tests/pages/run.sh; then passed=$((passed+1)); else failed=$((failed+1)); failed_names+=(pages); fi
  echo "--- pages: $(( $(date +%s) - t0 ))s"
fi
# The smoke of make test-pgbouncer: two suites again with every connection
# through pgbouncer (transaction pooling). Last, since it rebuilds the template.
if [ "${PGBOUNCER:-0}" != 1 ] && [ -z "${DATABASE_URL:-}" ] && selected pgbouncer; then
  echo "=== pgbouncer"
  t0=$(date +%s)
  if PGBOUNCER=1 scripts/test.sh checkout indoubt; then passed=$((passed+1))
  else failed=$((failed+1)); failed_names+=(pgbouncer); fi
  echo "--- pgbouncer: $(( $(date +%s) - t0 ))s"
fi
summary

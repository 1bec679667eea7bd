/* bench/sqlbase: the saga's first commit alone, a diagnostic row of `make bench`.
 *
 *   DATABASE_URL=... sqlbase --item UUID [--clients 32] [--seconds 10] [--warmup 1]
 *
 * Each client thread has its own connection and loops co_checkout_begin in
 * autocommit, sent the way the server sends it (PQexecParams, unnamed
 * statement, text parameters): it records the Idempotency-Key, creates the
 * order and its line, reserves the unit (item row locked, ledger row written)
 * and writes the history rows, in one round trip and one commit. It succeeds
 * when the outcome is "reserved". Each call has its own key and order id; the
 * shoppers are a few fixed users, as in the HTTP run. Set against the seed's
 * buy_item (bench/seed.sql) on the same hot item, it shows what the product's
 * first transaction costs before any HTTP or payment call.
 *
 * Prints the result line of bench.h on stdout; exits 0 when the run happened
 * (errors are in the line, for the script to judge), 1 when it could not. */
#include "bench.h"

#include <libpq-fe.h>
#include <uuid/uuid.h>

#define SQL_USERS 8

typedef struct {
    const char *conninfo;
    const char *item;
    char items_json[128];
    char users[SQL_USERS][37];
    unsigned run_id;
} sql_bench;

typedef struct {
    PGconn *conn;
    unsigned long long seq;
} sql_client;

static sql_bench g_bench;

static bool sql_setup(bench_thread *t)
{
    sql_client *c = calloc(1, sizeof *c);

    if (c == NULL)
        return false;
    t->ctx = c;
    c->conn = PQconnectdb(g_bench.conninfo);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        fprintf(stderr, "sqlbase: client %d: %s", t->index, PQerrorMessage(c->conn));
        return false;
    }
    return true;
}

static void sql_teardown(bench_thread *t)
{
    sql_client *c = t->ctx;

    if (c == NULL)
        return;
    /* Closing ends the backend, which flushes its statistics (xact_commit)
     * at once: the script reads them after the last backend is gone. */
    PQfinish(c->conn);
    free(c);
    t->ctx = NULL;
}

/* Classifies a failed result into the error text; FATAL when the connection is gone. */
static bench_op_result sql_failed(sql_client *c, PGresult *res, char *err, size_t errlen)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    snprintf(err, errlen, "%s: %s", state ? state : "-", PQerrorMessage(c->conn));
    return PQstatus(c->conn) == CONNECTION_OK ? BENCH_OP_ERROR : BENCH_OP_FATAL;
}

static bench_op_result sql_begin(bench_thread *t, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT outcome FROM co_checkout_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    sql_client *c = t->ctx;
    char key[96], order_id[37];
    uuid_t u;
    const char *params[10] = {g_bench.users[(size_t)t->index % SQL_USERS], key,
                              "bench-request-hash", order_id, g_bench.items_json, "server",
                              "pm_card_visa", "900", "30", "bench"};
    PGresult *res;
    bench_op_result r = BENCH_OP_OK;

    snprintf(key, sizeof key, "sqlbench-%u-%d-%llu", g_bench.run_id, t->index, c->seq++);
    uuid_generate_random(u);
    uuid_unparse_lower(u, order_id);
    res = PQexecParams(c->conn, sql, 10, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        r = sql_failed(c, res, err, errlen);
    } else if (strcmp(PQgetvalue(res, 0, 0), "reserved") != 0) {
        snprintf(err, errlen, "co_checkout_begin answered %s", PQgetvalue(res, 0, 0));
        r = BENCH_OP_ERROR;
    }
    PQclear(res);
    return r;
}

static void usage(void)
{
    fputs("usage: DATABASE_URL=... sqlbase --item UUID [--clients N] [--seconds S] [--warmup S]\n",
          stderr);
}

int main(int argc, char **argv)
{
    static bench_run run;
    double clients = 32;
    uuid_t u;

    run.seconds = 10;
    run.warmup_s = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(argv[i], "--item") == 0 && v != NULL) {
            g_bench.item = v;
        } else if (strcmp(argv[i], "--clients") == 0) {
            if (!bench_parse_num("--clients", v, 1, BENCH_MAX_CLIENTS, &clients))
                return 2;
        } else if (strcmp(argv[i], "--seconds") == 0) {
            if (!bench_parse_num("--seconds", v, 0.1, 3600, &run.seconds))
                return 2;
        } else if (strcmp(argv[i], "--warmup") == 0) {
            if (!bench_parse_num("--warmup", v, 0, 600, &run.warmup_s))
                return 2;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    g_bench.conninfo = getenv("DATABASE_URL");
    if (g_bench.item == NULL || g_bench.conninfo == NULL) {
        usage();
        return 2;
    }
    snprintf(g_bench.items_json, sizeof g_bench.items_json,
             "[{\"item_id\":\"%s\",\"quantity\":1}]", g_bench.item);
    for (int i = 0; i < SQL_USERS; i++) {
        uuid_generate_random(u);
        uuid_unparse_lower(u, g_bench.users[i]);
    }
    g_bench.run_id = (unsigned)time(NULL);

    run.clients = (int)clients;
    run.setup = sql_setup;
    run.op = sql_begin;
    run.teardown = sql_teardown;
    return bench_run_all(&run);
}

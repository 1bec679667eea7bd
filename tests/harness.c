#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

static const char *need_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0')
        ck_abort_msg("%s is not set: run the tests through scripts/test.sh (make test)", name);
    return v;
}

/* The same connection as url, to database dbname (URI or keyword form). */
static void with_dbname(const char *url, const char *dbname, char *out, size_t n)
{
    const char *scheme = strstr(url, "://");

    if (scheme != NULL) {
        const char *host = scheme + 3;
        const char *slash = strchr(host, '/');
        const char *query = strchr(host, '?');
        size_t head = slash ? (size_t)(slash - url) : (query ? (size_t)(query - url) : strlen(url));
        snprintf(out, n, "%.*s/%s%s", (int)head, url, dbname, query ? query : "");
    } else {
        snprintf(out, n, "%s dbname=%s", url, dbname);
    }
}

static PGconn *admin_connect(void)
{
    PGconn *c = PQconnectdb(need_env("CO_TEST_ADMIN_URL"));

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "admin connect: %s", PQerrorMessage(c));
    return c;
}

void co_test_db_create(co_test_db *db)
{
    static int counter;
    const char *tpl = need_env("CO_TEST_TEMPLATE");
    char sql[256];
    PGconn *c = admin_connect();

    snprintf(db->name, sizeof db->name, "co_t_%d_%d", (int)getpid(), counter++);
    /* One of this name already there is left by a run killed before its
     * teardown, in a process that had our pid: nobody uses it. */
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db->name);
    co_test_exec(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\" TEMPLATE \"%s\"", db->name, tpl);
    co_test_exec(c, sql);
    PQfinish(c);
    /* CO_TEST_CLIENT_URL: the same server through pgbouncer (make test-pgbouncer). */
    with_dbname(getenv("CO_TEST_CLIENT_URL") ? getenv("CO_TEST_CLIENT_URL")
                                             : need_env("CO_TEST_ADMIN_URL"),
                db->name, db->url, sizeof db->url);
}

void co_test_db_drop(const co_test_db *db)
{
    char sql[256];
    PGconn *c = admin_connect();

    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db->name);
    co_test_exec(c, sql);
    PQfinish(c);
}

PGconn *co_test_connect(const co_test_db *db)
{
    PGconn *c = PQconnectdb(db->url);

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

PGconn *co_test_connect_direct(const co_test_db *db)
{
    char url[512];
    PGconn *c;

    with_dbname(need_env("CO_TEST_ADMIN_URL"), db->name, url, sizeof url);
    c = PQconnectdb(url);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

void co_test_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);

    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    PQclear(r);
}

long long co_test_llp(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    long long v;

    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0, "%s: %s", sql,
                  PQresultErrorMessage(r));
    v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

long long co_test_ll(PGconn *c, const char *sql)
{
    return co_test_llp(c, sql, 0, NULL);
}

long long co_test_ll1(PGconn *c, const char *sql, const char *param)
{
    const char *params[1] = {param};

    return co_test_llp(c, sql, 1, params);
}

void co_test_strp(PGconn *c, char *out, size_t n, const char *sql, int np,
                  const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, np, NULL, params, NULL, NULL, 0);

    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
                  PQresultErrorMessage(r));
    snprintf(out, n, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

void co_test_item(PGconn *c, const char *sku, long long price, int stock, char id[37])
{
    char p[32];
    char s[32];
    const char *params[5] = {sku, "Test item", p, "usd", s};
    PGresult *r;

    snprintf(p, sizeof p, "%lld", price);
    snprintf(s, sizeof s, "%d", stock);
    r = PQexecParams(c, "SELECT co_create_item($1, $2, $3, $4, $5)", 5, NULL, params, NULL, NULL,
                     0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "create item: %s", PQresultErrorMessage(r));
    snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

long long co_test_audit(PGconn *c)
{
    return co_test_ll(c, "SELECT count(*) FROM stock_audit");
}

void co_test_stock_invariant(PGconn *c)
{
    ck_assert_int_eq(co_test_audit(c), 0);
    ck_assert_int_eq(co_test_ll(c, "SELECT count(*) FROM items WHERE stock < 0"), 0);
}

void co_test_uuid(char out[37])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

TCase *co_test_tcase(Suite *s, const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);

    if (timeout_s > 0)
        tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

int co_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

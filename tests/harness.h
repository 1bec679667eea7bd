/* Test harness: each test gets its own database, cloned from the template that
 * scripts/test.sh migrated (CO_TEST_ADMIN_URL, CO_TEST_TEMPLATE), on the real
 * PostgreSQL server. Open connections in checked fixtures (they run in the
 * forked child). */
#ifndef CO_TEST_HARNESS_H
#define CO_TEST_HARNESS_H

#include <check.h>
#include <libpq-fe.h>
#include <stdbool.h>

typedef struct {
    char name[64];
    char url[512]; /* connection string for the new database (through pgbouncer when
                    * CO_TEST_CLIENT_URL names it: checkoutd's and the suite's connections) */
} co_test_db;

/* Creates a fresh, migrated database; aborts the test on failure. */
void co_test_db_create(co_test_db *db);
void co_test_db_drop(const co_test_db *db);

/* A new connection to db; aborts the test on failure. Caller PQfinish'es. */
PGconn *co_test_connect(const co_test_db *db);

/* The same, straight to the server even when the suite runs through
 * pgbouncer: a backend of its own (for statistics of one backend's
 * transactions, say). */
PGconn *co_test_connect_direct(const co_test_db *db);
/* Runs sql (no parameters) and aborts the test unless it succeeds. */
void co_test_exec(PGconn *c, const char *sql);
/* First column of the first row as a long long; aborts on error or no row. */
long long co_test_ll(PGconn *c, const char *sql);
/* The same with parameters. */
long long co_test_llp(PGconn *c, const char *sql, int n, const char *const *params);
/* The same with one parameter. */
long long co_test_ll1(PGconn *c, const char *sql, const char *param);
/* First column of the first row as text ("" for no row or NULL), copied into
 * out (n bytes, truncated); aborts the test when the query fails. */
void co_test_strp(PGconn *c, char *out, size_t n, const char *sql, int np,
                  const char *const *params);

/* Creates an item with co_create_item; writes its uuid into id (37 bytes). */
void co_test_item(PGconn *c, const char *sku, long long price, int stock, char id[37]);
/* Rows of stock_audit (0 when invariant 1 holds). */
long long co_test_audit(PGconn *c);
/* SPEC invariant 1 on the database alone: stock_audit empty (every unit is in
 * the ledger) and no item below zero. Part of co_test_invariants (server.h). */
void co_test_stock_invariant(PGconn *c);

/* A fresh random uuid string. */
void co_test_uuid(char out[37]);

/* A test case named name, added to s, whose tests may each run timeout_s
 * seconds (0: Check's default). Its fixture and tests are added after. */
TCase *co_test_tcase(Suite *s, const char *name, double timeout_s);

/* Runs a suite with the standard runner; returns the process exit code. */
int co_test_run(Suite *s);

#endif

/* Postgres access: a small pool of connections shared by every thread (a
 * PGconn is used by one thread at a time: each statement borrows one for its
 * round trip), results classified four ways, and bounded retries of soft
 * failures. Every
 * write the server makes is one SQL function, so one statement is one
 * transaction: co_db_call is the transaction runner (no BEGIN/COMMIT pairs,
 * no transaction open across anything else).
 * Every query with outside data goes through PQexecParams (unnamed statements,
 * so the server also works behind pgbouncer's transaction pooling). */
#ifndef CO_DB_H
#define CO_DB_H

#include <libpq-fe.h>
#include <stdbool.h>

typedef enum {
    CO_DB_HARD = -2, /* an error that a retry will not fix (or a raised business error) */
    CO_DB_SOFT = -1, /* retry: serialization failure, deadlock, lost connection */
    CO_DB_NONE = 0,  /* success, no rows */
    CO_DB_ROWS = 1,  /* success, one or more rows */
} co_db_status;

typedef struct co_db co_db;

/* The outcome of one statement. res is owned here: co_dbr_clear frees it. */
typedef struct {
    co_db_status status;
    PGresult *res;
    char sqlstate[6];
    char message[256];
    char detail[256];
} co_dbr;

/* A pool of at most size connections, opened as statements need them (and
 * reopened after the server went away). Never NULL except on OOM. Safe to
 * share between threads; a statement waits while all size are in use. */
co_db *co_db_open_pool(const char *conninfo, int size);
/* A pool of one, connected now (a failed connect is retried on the first
 * query): for one thread's session work, e.g. migrations. */
co_db *co_db_open(const char *conninfo);
/* Closes every connection; no statement may be running. */
void co_db_close(co_db *db);
/* The live connection of a pool of one, reconnecting if needed; NULL when the
 * server is unreachable. For session work only (one thread, co_db_open). */
PGconn *co_db_conn(co_db *db);

/* Maps a result to the four values; fills sqlstate/message/detail on errors.
 * SQLSTATE class 40 (40001, 40P01), 08 (connection), 57P0x (shutdown) are soft. */
co_db_status co_db_classify(PGconn *conn, PGresult *res, co_dbr *out);

/* Runs one parameterised statement (text params, NULL = SQL NULL). */
co_db_status co_db_exec(co_db *db, co_dbr *r, const char *sql, int nparams,
                        const char *const *params);
/* The same, in autocommit, retried (bounded, with backoff) while soft. Only for
 * statements that are a whole transaction by themselves. */
co_db_status co_db_call(co_db *db, co_dbr *r, const char *sql, int nparams,
                        const char *const *params);
/* The same as co_db_exec, but within timeout_ms from the call, waiting for a
 * pool connection included: past it the statement is cancelled, its
 * connection dropped, and the result soft ("timed out"). For probes that
 * must answer fast (GET /readyz, the gauges of GET /metrics). */
co_db_status co_db_exec_within(co_db *db, co_dbr *r, const char *sql, int nparams,
                               const char *const *params, int timeout_ms);
void co_dbr_clear(co_dbr *r);

#define CO_DB_MAX_RETRIES 8

/* Cells by column name: results are read by name, never by position.
 * NULL for SQL NULL or a column the result does not have. */
const char *co_dbr_str(const co_dbr *r, int row, const char *col);
long long co_dbr_int(const co_dbr *r, int row, const char *col); /* 0 for NULL */
bool co_dbr_is(const co_dbr *r, int row, const char *col);       /* true for 't' */

/* Cell helpers by position (for single-column results). */
const char *co_dbr_get(const co_dbr *r, int row, int col); /* NULL for SQL NULL */
long long co_dbr_ll(const co_dbr *r, int row, int col);
bool co_dbr_bool(const co_dbr *r, int row, int col);
int co_dbr_rows(const co_dbr *r);

#endif

#include "co_db.h"

#include "co_backoff.h"
#include "co_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct co_db {
    PGconn *pg;
    char *conninfo;
    unsigned int seed;      /* rand_r state for the retry jitter */
};

co_db *co_db_open(const char *conninfo)
{
    co_db *db = calloc(1, sizeof *db);

    if (db == NULL)
        return NULL;
    db->conninfo = strdup(conninfo);
    db->seed = (unsigned int)time(NULL) ^ (unsigned int)(size_t)db;
    if (db->conninfo == NULL) {
        free(db);
        return NULL;
    }
    (void)co_db_conn(db);
    return db;
}

void co_db_close(co_db *db)
{
    if (db == NULL)
        return;
    if (db->pg != NULL)
        PQfinish(db->pg);
    free(db->conninfo);
    free(db);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *co_db_conn(co_db *db)
{
    if (db->pg != NULL && PQstatus(db->pg) == CONNECTION_OK)
        return db->pg;
    if (db->pg != NULL) {
        PQfinish(db->pg);
        db->pg = NULL;
    }
    db->pg = PQconnectdb(db->conninfo);
    if (PQstatus(db->pg) != CONNECTION_OK) {
        /* The message names host and port, never the password. */
        char msg[512];
        size_t len;

        snprintf(msg, sizeof msg, "%s", PQerrorMessage(db->pg));
        len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            msg[--len] = '\0';
        CO_WARN("db", "connect failed: %s", msg);
        PQfinish(db->pg);
        db->pg = NULL;
        return NULL;
    }
    /* Notices (e.g. "already exists, skipping") are not errors: keep the log clean. */
    PQsetNoticeProcessor(db->pg, ignore_notice, NULL);
    return db->pg;
}

static void copy_field(char *dst, size_t n, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    strncpy(dst, src, n - 1);
    dst[n - 1] = '\0';
}

co_db_status co_db_classify(PGconn *conn, PGresult *res, co_dbr *out)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;

    out->sqlstate[0] = out->message[0] = out->detail[0] = '\0';
    if (st == PGRES_TUPLES_OK)
        return PQntuples(res) > 0 ? CO_DB_ROWS : CO_DB_NONE;
    if (st == PGRES_COMMAND_OK)
        return CO_DB_NONE;
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    copy_field(out->sqlstate, sizeof out->sqlstate, state);
    copy_field(out->message, sizeof out->message,
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(conn));
    copy_field(out->detail, sizeof out->detail,
               res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK || state == NULL)
        return CO_DB_SOFT; /* lost connection: no SQLSTATE, or the link is down */
    if (strncmp(state, "40", 2) == 0 || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P0", 4) == 0 || strcmp(state, "55P03") == 0)
        return CO_DB_SOFT;
    return CO_DB_HARD;
}

co_db_status co_db_exec(co_db *db, co_dbr *r, const char *sql, int nparams,
                        const char *const *params)
{
    PGconn *c = co_db_conn(db);

    memset(r, 0, sizeof *r);
    if (c == NULL) {
        copy_field(r->message, sizeof r->message, "database unreachable");
        r->status = CO_DB_SOFT;
        return r->status;
    }
    r->res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    r->status = co_db_classify(c, r->res, r);
    if (r->status == CO_DB_HARD && r->sqlstate[0] != 'C')
        CO_WARN("db", "%s: %s (%s)", r->sqlstate, r->message, r->detail);
    return r->status;
}

co_db_status co_db_call(co_db *db, co_dbr *r, const char *sql, int nparams,
                        const char *const *params)
{
    for (int attempt = 0;; attempt++) {
        if (co_db_exec(db, r, sql, nparams, params) != CO_DB_SOFT || attempt >= CO_DB_MAX_RETRIES)
            return r->status;
        CO_WARN("db", "retrying after %s: %s", r->sqlstate[0] ? r->sqlstate : "lost connection",
                r->message);
        co_dbr_clear(r);
        /* 5 ms, 10, 20 ... capped at 200 ms: contention clears fast. */
        co_sleep_ms(co_backoff_ms(5, 200, attempt, &db->seed));
    }
}

void co_dbr_clear(co_dbr *r)
{
    if (r->res != NULL)
        PQclear(r->res);
    r->res = NULL;
}

const char *co_dbr_get(const co_dbr *r, int row, int col)
{
    if (r->res == NULL || row >= PQntuples(r->res) || col >= PQnfields(r->res) ||
        PQgetisnull(r->res, row, col))
        return NULL;
    return PQgetvalue(r->res, row, col);
}

long long co_dbr_ll(const co_dbr *r, int row, int col)
{
    const char *v = co_dbr_get(r, row, col);

    return v ? strtoll(v, NULL, 10) : 0;
}

bool co_dbr_bool(const co_dbr *r, int row, int col)
{
    const char *v = co_dbr_get(r, row, col);

    return v != NULL && v[0] == 't';
}

int co_dbr_rows(const co_dbr *r)
{
    return r->res ? PQntuples(r->res) : 0;
}

const char *co_dbr_str(const co_dbr *r, int row, const char *col)
{
    int c = r->res != NULL ? PQfnumber(r->res, col) : -1;

    return c < 0 ? NULL : co_dbr_get(r, row, c);
}

long long co_dbr_int(const co_dbr *r, int row, const char *col)
{
    const char *v = co_dbr_str(r, row, col);

    return v ? strtoll(v, NULL, 10) : 0;
}

bool co_dbr_is(const co_dbr *r, int row, const char *col)
{
    const char *v = co_dbr_str(r, row, col);

    return v != NULL && v[0] == 't';
}

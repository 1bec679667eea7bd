#include "co_db.h"

#include "co_backoff.h"
#include "co_log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A pool of connections: each statement borrows one for its one round trip
 * and gives it back, so any number of threads share a small fixed number of
 * server connections (a saga waiting on the provider holds none). */
typedef struct {
    PGconn *pg;             /* NULL until first used, or after it was lost */
    bool busy;
} co_slot;

struct co_db {
    char *conninfo;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    int size;
    co_slot *slots;
};

/* The retry jitter's rand_r state: per thread, so nothing is shared. */
static _Thread_local unsigned int jitter_seed;

co_db *co_db_open_pool(const char *conninfo, int size)
{
    co_db *db = calloc(1, sizeof *db);

    if (db == NULL)
        return NULL;
    db->size = size > 0 ? size : 1;
    db->conninfo = strdup(conninfo);
    db->slots = calloc((size_t)db->size, sizeof *db->slots);
    if (db->conninfo == NULL || db->slots == NULL) {
        free(db->conninfo);
        free(db->slots);
        free(db);
        return NULL;
    }
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->freed, NULL);
    return db;
}

co_db *co_db_open(const char *conninfo)
{
    co_db *db = co_db_open_pool(conninfo, 1);

    if (db != NULL)
        (void)co_db_conn(db);
    return db;
}

void co_db_close(co_db *db)
{
    if (db == NULL)
        return;
    for (int i = 0; i < db->size; i++)
        if (db->slots[i].pg != NULL)
            PQfinish(db->slots[i].pg);
    pthread_cond_destroy(&db->freed);
    pthread_mutex_destroy(&db->lock);
    free(db->slots);
    free(db->conninfo);
    free(db);
}

static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* The slot's live connection, (re)connecting if needed; NULL when the server
 * is unreachable. The caller holds the slot. */
static PGconn *slot_conn(co_db *db, co_slot *slot)
{
    if (slot->pg != NULL && PQstatus(slot->pg) == CONNECTION_OK)
        return slot->pg;
    if (slot->pg != NULL) {
        PQfinish(slot->pg);
        slot->pg = NULL;
    }
    {
        /* checkoutd's connections are named in pg_stat_activity, unless the
         * conninfo names them itself (its keywords come later, and win). */
        static const char *const keys[] = {"application_name", "dbname", NULL};
        const char *values[] = {"checkoutd", db->conninfo, NULL};

        slot->pg = PQconnectdbParams(keys, values, 1);
    }
    if (PQstatus(slot->pg) != CONNECTION_OK) {
        /* The message names host and port, never the password. */
        char msg[512];
        size_t len;

        snprintf(msg, sizeof msg, "%s", PQerrorMessage(slot->pg));
        len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            msg[--len] = '\0';
        CO_WARN("db", "connect failed: %s", msg);
        PQfinish(slot->pg);
        slot->pg = NULL;
        return NULL;
    }
    /* Notices (e.g. "already exists, skipping") are not errors: keep the log clean. */
    PQsetNoticeProcessor(slot->pg, ignore_notice, NULL);
    return slot->pg;
}

/* Borrows a slot, waiting while all are busy; prefers one already connected. */
static co_slot *borrow(co_db *db)
{
    co_slot *slot = NULL;

    pthread_mutex_lock(&db->lock);
    for (;;) {
        for (int i = 0; i < db->size; i++) {
            if (db->slots[i].busy)
                continue;
            if (slot == NULL || (slot->pg == NULL && db->slots[i].pg != NULL))
                slot = &db->slots[i];
        }
        if (slot != NULL)
            break;
        pthread_cond_wait(&db->freed, &db->lock);
    }
    slot->busy = true;
    pthread_mutex_unlock(&db->lock);
    return slot;
}

static void give_back(co_db *db, co_slot *slot)
{
    pthread_mutex_lock(&db->lock);
    slot->busy = false;
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
}

PGconn *co_db_conn(co_db *db)
{
    return slot_conn(db, &db->slots[0]);
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
    co_slot *slot = borrow(db);
    PGconn *c = slot_conn(db, slot);

    memset(r, 0, sizeof *r);
    if (c == NULL) {
        give_back(db, slot);
        copy_field(r->message, sizeof r->message, "database unreachable");
        r->status = CO_DB_SOFT;
        return r->status;
    }
    r->res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    r->status = co_db_classify(c, r->res, r);
    give_back(db, slot);
    if (r->status == CO_DB_HARD && r->sqlstate[0] != 'C')
        CO_WARN("db", "%s: %s (%s)", r->sqlstate, r->message, r->detail);
    else if (r->status == CO_DB_HARD)
        CO_DEBUG("db", "refused %s: %s (%s)", r->sqlstate, r->message, r->detail);
    return r->status;
}

co_db_status co_db_call(co_db *db, co_dbr *r, const char *sql, int nparams,
                        const char *const *params)
{
    for (int attempt = 0;; attempt++) {
        long delay;

        if (co_db_exec(db, r, sql, nparams, params) != CO_DB_SOFT)
            return r->status;
        if (attempt >= CO_DB_MAX_RETRIES) {
            CO_WARN("db", "giving up after %d attempts: %s%s%s", attempt + 1, r->sqlstate,
                    r->sqlstate[0] ? " " : "", r->message[0] ? r->message : "lost connection");
            return r->status;
        }
        /* 5 ms, 10, 20 ... capped at 200 ms: contention clears fast. */
        if (jitter_seed == 0)
            jitter_seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)&jitter_seed;
        delay = co_backoff_ms(5, 200, attempt, &jitter_seed);
        {
            co_log_field f[] = {CO_LOG_INT("attempt", attempt + 1),
                                CO_LOG_STR("sqlstate", r->sqlstate[0] ? r->sqlstate : NULL),
                                CO_LOG_INT("retry_in_ms", delay)};

            CO_LOGF(CO_LOG_DEBUG, "db", f, "retrying after %s: %s",
                    r->sqlstate[0] ? r->sqlstate : "lost connection", r->message);
        }
        co_dbr_clear(r);
        co_sleep_ms(delay);
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

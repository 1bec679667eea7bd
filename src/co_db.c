#include "co_db.h"

#include "co_backoff.h"
#include "co_log.h"
#include "co_metrics.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
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
    co_gauge_add(CO_GAUGE_DB_POOL, db->size);
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
    co_gauge_add(CO_GAUGE_DB_POOL, -db->size);
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

/* Borrows a slot, waiting while all are busy (until deadline_us on the
 * monotonic clock when it is not 0: NULL then); prefers one already connected. */
static co_slot *borrow_until(co_db *db, long long deadline_us)
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
        if (deadline_us == 0) {
            pthread_cond_wait(&db->freed, &db->lock);
        } else {
            long long left = deadline_us - co_metric_now_us();
            struct timespec until;

            if (left <= 0)
                break;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)(left / 1000000);
            until.tv_nsec += (long)(left % 1000000) * 1000;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&db->freed, &db->lock, &until);
        }
    }
    if (slot != NULL)
        slot->busy = true;
    pthread_mutex_unlock(&db->lock);
    if (slot != NULL)
        co_gauge_add(CO_GAUGE_DB_POOL_BUSY, 1);
    return slot;
}

static co_slot *borrow(co_db *db)
{
    return borrow_until(db, 0);
}

static void give_back(co_db *db, co_slot *slot)
{
    co_gauge_add(CO_GAUGE_DB_POOL_BUSY, -1);
    pthread_mutex_lock(&db->lock);
    slot->busy = false;
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
}

/* The name /metrics counts a statement under: the text of a leading comment
 * (slash-star, space, the name, space, star-slash, as co_store_load_order's),
 * else the first function of ours the statement calls (co_..., the inner one
 * when one call wraps another, as in co_item_json(co_create_item(...))), else
 * "other". */
static void statement_name(const char *sql, char *out, size_t n)
{
    static const char ident[] = "abcdefghijklmnopqrstuvwxyz0123456789_";
    const char *p = sql;

    while (*p == ' ' || *p == '\n')
        p++;
    if (strncmp(p, "/* ", 3) == 0) {
        const char *end = strstr(p + 3, " */");

        if (end != NULL && end > p + 3) {
            snprintf(out, n, "%.*s", (int)(end - p - 3), p + 3);
            return;
        }
    }
    for (p = strstr(sql, "co_"); p != NULL; p = strstr(p + 3, "co_")) {
        size_t len = 3 + strspn(p + 3, ident);

        if ((p > sql && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) || p[len] != '(')
            continue;
        while (strncmp(p + len + 1, "co_", 3) == 0) {
            const char *inner = p + len + 1;
            size_t ilen = 3 + strspn(inner + 3, ident);

            if (inner[ilen] != '(')
                break;
            p = inner;
            len = ilen;
        }
        snprintf(out, n, "%.*s", (int)len, p);
        return;
    }
    snprintf(out, n, "other");
}

/* Counts one round trip of sql that started at start_us, with r's outcome. */
static void observe(const char *sql, const co_dbr *r, long long start_us)
{
    char name[48];

    statement_name(sql, name, sizeof name);
    co_metric_db(name,
                 r->status >= 0                ? "ok"
                 : r->status == CO_DB_SOFT     ? "retry"
                 : r->sqlstate[0] == 'C'       ? "refused"
                                               : "error",
                 start_us);
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
    long long t0 = co_metric_now_us();
    co_slot *slot = borrow(db);
    PGconn *c = slot_conn(db, slot);

    memset(r, 0, sizeof *r);
    if (c == NULL) {
        give_back(db, slot);
        copy_field(r->message, sizeof r->message, "database unreachable");
        r->status = CO_DB_SOFT;
        observe(sql, r, t0);
        return r->status;
    }
    r->res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    r->status = co_db_classify(c, r->res, r);
    give_back(db, slot);
    observe(sql, r, t0);
    if (r->status == CO_DB_HARD && r->sqlstate[0] != 'C')
        CO_WARN("db", "%s: %s (%s)", r->sqlstate, r->message, r->detail);
    else if (r->status == CO_DB_HARD)
        CO_DEBUG("db", "refused %s: %s (%s)", r->sqlstate, r->message, r->detail);
    return r->status;
}

/* Waits for c's answer until deadline_us; false on timeout or a lost link. */
static bool await_answer(PGconn *c, long long deadline_us)
{
    while (PQisBusy(c)) {
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        long long left = deadline_us - co_metric_now_us();
        int n;

        if (left <= 0 || pfd.fd < 0)
            return false;
        n = poll(&pfd, 1, (int)((left + 999) / 1000));
        if (n < 0 && errno != EINTR)
            return false;
        if (n > 0 && !PQconsumeInput(c))
            return false;
    }
    return true;
}

co_db_status co_db_exec_within(co_db *db, co_dbr *r, const char *sql, int nparams,
                               const char *const *params, int timeout_ms)
{
    long long t0 = co_metric_now_us();
    long long deadline = t0 + (long long)timeout_ms * 1000;
    co_slot *slot = borrow_until(db, deadline);
    PGconn *c = slot != NULL ? slot_conn(db, slot) : NULL;

    memset(r, 0, sizeof *r);
    r->status = CO_DB_SOFT;
    if (c == NULL) {
        copy_field(r->message, sizeof r->message,
                   slot ? "database unreachable" : "no pool connection free in time");
        goto out;
    }
    if (!PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0)) {
        r->status = co_db_classify(c, NULL, r);
        goto out;
    }
    if (!await_answer(c, deadline)) {
        /* Cancel what runs and drop the link: its state is unknown now. */
        PGcancel *cancel = PQgetCancel(c);
        char err[128];

        if (cancel != NULL) {
            PQcancel(cancel, err, sizeof err);
            PQfreeCancel(cancel);
        }
        copy_field(r->message, sizeof r->message,
                   PQstatus(c) == CONNECTION_OK ? "timed out" : "connection lost");
        PQfinish(c);
        slot->pg = NULL;
        goto out;
    }
    for (;;) {
        PGresult *res = PQgetResult(c);

        if (res == NULL)
            break;
        if (r->res != NULL)
            PQclear(r->res);
        r->res = res;
    }
    r->status = co_db_classify(c, r->res, r);
out:
    if (slot != NULL)
        give_back(db, slot);
    observe(sql, r, t0);
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

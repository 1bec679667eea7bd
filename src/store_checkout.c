/* The checkout's first commit (sql/0008 co_checkout_begin), alone or in a
 * batch (sql/0017 co_checkout_begin_many, src/co_batch.c): concurrent
 * checkouts of one-line carts share one transaction, the one-row-lock-per-
 * checkout limit of a hot item becomes one per batch. A batch answers each
 * request as it would have been answered alone; what it leaves unanswered (an
 * item in hot mode, an unknown item: sql/0017) and every request of a batch
 * that failed as a whole runs alone, on its own thread, so what a shopper sees
 * never depends on who else was in the batch. */
#include "co_batch.h"
#include "co_metrics.h"
#include "store_internal.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *text;
    co_begun_outcome outcome;
} begun_outcomes[] = {
    {"reserved", CO_BEGUN_RESERVED},     {"out_of_stock", CO_BEGUN_OUT_OF_STOCK},
    {"replay", CO_BEGUN_REPLAY},         {"in_progress", CO_BEGUN_IN_PROGRESS},
    {"reused", CO_BEGUN_REUSED},         {"limited", CO_BEGUN_LIMITED},
};

/* Row row of r (the columns of co_checkout_begin) into *out. CO_DB_HARD for a
 * replay without its answer (cannot be). */
static co_db_status begun_of(const co_dbr *r, int row, co_checkout_begun *out)
{
    const char *outcome = co_dbr_str(r, row, "outcome");
    const char *body = co_dbr_str(r, row, "response_body");

    memset(out, 0, sizeof *out);
    out->outcome = CO_BEGUN_IN_PROGRESS;
    for (size_t i = 0; outcome && i < sizeof begun_outcomes / sizeof begun_outcomes[0]; i++)
        if (strcmp(outcome, begun_outcomes[i].text) == 0)
            out->outcome = begun_outcomes[i].outcome;
    co_store_copy(out->order_id, sizeof out->order_id, co_dbr_str(r, row, "order_id"));
    out->answer.code = (unsigned)co_dbr_int(r, row, "response_status");
    if (body != NULL)
        out->answer.body = strdup(body);
    co_store_copy(out->short_item, sizeof out->short_item, co_dbr_str(r, row, "short_item"));
    out->amount = co_dbr_int(r, row, "amount");
    co_store_copy(out->currency, sizeof out->currency, co_dbr_str(r, row, "currency"));
    co_store_copy(out->expires_at, sizeof out->expires_at, co_dbr_str(r, row, "expires_at"));
    out->retry_after = (int)co_dbr_int(r, row, "retry_after");
    if (out->outcome == CO_BEGUN_REPLAY && out->answer.body == NULL)
        return CO_DB_HARD;
    return CO_DB_ROWS;
}

/* One request, one transaction. */
static co_store_rc begin_alone(co_db *db, const co_checkout_args *a, co_checkout_begun *out)
{
    static const char sql[] =
        "SELECT outcome, order_id, response_status, response_body, short_item, amount, currency,"
        "       expires_at, retry_after"
        "  FROM co_checkout_begin(p_user_id => $1, p_key => $2, p_hash => $3,"
        "       p_order_id => $4, p_items => $5, p_flow => $6, p_payment_method => $7,"
        "       p_ttl_seconds => $8, p_lease_seconds => $9, p_owner => $10,"
        "       p_max_unpaid_units => $11)";
    char ttl[16], lease[16], cap[16];
    const char *params[11] = {a->user_id, a->idempotency_key, a->request_hash, a->order_id,
                              a->items_json, a->mobile ? "mobile" : "server", a->payment_method,
                              ttl, lease, a->owner, a->max_unpaid_units > 0 ? cap : NULL};
    co_dbr r;
    co_db_status st;

    memset(out, 0, sizeof *out);
    snprintf(ttl, sizeof ttl, "%d", a->ttl_seconds);
    snprintf(lease, sizeof lease, "%d", a->lease_seconds);
    snprintf(cap, sizeof cap, "%d", a->max_unpaid_units);
    st = co_db_call(db, &r, sql, 11, params);
    if (st == CO_DB_ROWS)
        st = begun_of(&r, 0, out);
    else
        co_store_refusal_of(&r, &out->refusal);
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

/* ------------------------------------------------------------- batches */

typedef struct {
    co_batch_req req;           /* group: the pool; key: the cart's one item */
    char item[37];              /* that key, in lower case (one spelling per item) */
    const co_checkout_args *a;
    json_t *items;              /* the parsed cart */
    co_checkout_begun *out;
    co_store_rc rc;
    bool alone;                 /* not answered by the batch: run alone, on its own thread */
} begin_req;

/* One request as co_checkout_begin_many reads it (a new reference). */
static json_t *request_json(const begin_req *b)
{
    const co_checkout_args *a = b->a;

    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:s?, s:i, s:i, s:s, s:o}", "user_id",
                     a->user_id, "key", a->idempotency_key, "hash", a->request_hash,
                     "order_id", a->order_id, "items", b->items, "flow",
                     a->mobile ? "mobile" : "server", "payment_method", a->payment_method,
                     "ttl_seconds", a->ttl_seconds, "lease_seconds", a->lease_seconds, "owner",
                     a->owner, "max_unpaid_units",
                     a->max_unpaid_units > 0 ? json_integer(a->max_unpaid_units) : json_null());
}

/* Runs reqs as one co_checkout_begin_many and answers each request it got a
 * row for. CO_DB_SOFT: the database could not be reached (co_db_call retried
 * already), none answered; CO_DB_HARD: some were left unanswered. */
static co_db_status run_many(co_db *db, begin_req **reqs, int n)
{
    json_t *all = json_array();
    char *text = NULL;
    const char *params[1];
    bool answered[CO_BATCH_MAX] = {false};
    bool ok = all != NULL;
    co_dbr r;
    co_db_status st;
    int rows;

    for (int i = 0; ok && i < n; i++)
        ok = json_array_append_new(all, request_json(reqs[i])) == 0;
    text = ok ? json_dumps(all, JSON_COMPACT) : NULL;
    json_decref(all);
    if (text == NULL)
        return CO_DB_HARD;
    params[0] = text;
    st = co_db_call(db, &r,
                    "SELECT n, outcome, order_id, response_status, response_body, short_item,"
                    "       amount, currency, expires_at, retry_after"
                    "  FROM co_checkout_begin_many($1)",
                    1, params);
    free(text);
    if (st == CO_DB_SOFT) {
        co_dbr_clear(&r);
        return CO_DB_SOFT;
    }
    rows = st == CO_DB_ROWS ? co_dbr_rows(&r) : 0;
    for (int row = 0; row < rows; row++) {
        long long k = co_dbr_int(&r, row, "n") - 1;
        begin_req *b;

        if (k < 0 || k >= n || answered[k])
            continue;
        b = reqs[k];
        answered[k] = true;
        b->rc = co_store_rc_of(begun_of(&r, row, b->out));
    }
    co_dbr_clear(&r);
    for (int i = 0; i < n; i++)
        if (!answered[i])
            return CO_DB_HARD;
    return CO_DB_ROWS;
}

static void run_begins(void *ctx, co_batch_req **reqs, int n)
{
    begin_req *b[CO_BATCH_MAX];
    co_db *db = (co_db *)reqs[0]->group;
    co_db_status st;

    (void)ctx;
    for (int i = 0; i < n; i++) {
        b[i] = (begin_req *)reqs[i];
        b[i]->rc = CO_STORE_RETRY;
        b[i]->alone = false;
    }
    if (n == 1) {
        /* Alone, here: the slot stays taken while it runs, and that is what
         * lets the next requests gather. */
        co_answer_clear(&b[0]->out->answer);
        b[0]->rc = begin_alone(db, b[0]->a, b[0]->out);
        return;
    }
    st = run_many(db, b, n);
    if (st == CO_DB_ROWS) {
        co_metric_add("checkout_batch", 1);
        co_metric_add("checkout_batched", n);
    }
    if (st == CO_DB_SOFT)
        return; /* each answers what it would alone after the retries */
    /* The batch failed as a whole, or left some unanswered (a hot item, an
     * unknown one): those run alone, each on its own thread, after the batch
     * committed. One answered by the batch keeps its answer. */
    for (int i = 0; i < n; i++)
        b[i]->alone = b[i]->rc == CO_STORE_RETRY && st != CO_DB_ROWS;
}

static co_batch begins = CO_BATCH_INIT(run_begins, NULL);

void co_store_batching(int max_batch, int max_inflight)
{
    co_batch_configure(&begins, max_batch, max_inflight);
    co_store_moves_batching(max_batch, max_inflight);
}

co_store_rc co_store_checkout_begin(void *db, const co_checkout_args *a, co_checkout_begun *out)
{
    begin_req b = {.a = a, .out = out, .rc = CO_STORE_RETRY};
    json_t *line;
    const char *item;

    /* Batched: one-line carts (their batch locks its items in id order) not
     * under the unpaid-units cap (which takes a per-shopper lock). */
    if (begins.max_batch <= 1 || (a->mobile && a->max_unpaid_units > 0))
        return begin_alone(db, a, out);
    b.items = json_loads(a->items_json, 0, NULL);
    line = json_array_size(b.items) == 1 ? json_array_get(b.items, 0) : NULL;
    item = json_string_value(json_object_get(line, "item_id"));
    if (item == NULL || strlen(item) != 36) {
        json_decref(b.items);
        return begin_alone(db, a, out);
    }
    for (int i = 0; i < 36; i++)
        b.item[i] = (char)tolower((unsigned char)item[i]);
    memset(out, 0, sizeof *out);
    b.req.group = db;
    b.req.key = b.item;
    co_batch_submit(&begins, &b.req);
    json_decref(b.items);
    if (b.alone) {
        co_answer_clear(&out->answer);
        return begin_alone(db, a, out);
    }
    return b.rc;
}

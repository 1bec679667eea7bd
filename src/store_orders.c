/* Orders: loading one, the transition, checkout answers, recovery claims, and
 * an order's JSON (sql/0003_saga.sql); the checkout's first commit is in
 * store_checkout.c. */
#include "co_batch.h"
#include "co_metrics.h"
#include "render.h"
#include "store_internal.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void co_store_read_order(const co_dbr *r, co_order *o)
{
    memset(o, 0, sizeof *o);
    co_store_copy(o->id, sizeof o->id, co_dbr_str(r, 0, "id"));
    co_store_copy(o->user_id, sizeof o->user_id, co_dbr_str(r, 0, "user_id"));
    o->status = co_state_parse(co_dbr_str(r, 0, "status"));
    o->mobile = co_dbr_is(r, 0, "mobile");
    co_store_copy(o->payment_method, sizeof o->payment_method,
                  co_dbr_str(r, 0, "payment_method"));
    o->amount = co_dbr_int(r, 0, "amount");
    co_store_copy(o->currency, sizeof o->currency, co_dbr_str(r, 0, "currency"));
    co_store_copy(o->payment_intent, sizeof o->payment_intent,
                  co_dbr_str(r, 0, "payment_intent"));
    co_store_copy(o->client_secret, sizeof o->client_secret,
                  co_dbr_str(r, 0, "client_secret"));
    co_store_copy(o->failure_code, sizeof o->failure_code, co_dbr_str(r, 0, "failure_code"));
    co_store_copy(o->decline_code, sizeof o->decline_code, co_dbr_str(r, 0, "decline_code"));
    o->compensate_to = co_state_parse(co_dbr_str(r, 0, "compensate_to"));
    co_store_copy(o->failure_detail, sizeof o->failure_detail,
                  co_dbr_str(r, 0, "failure_detail"));
    co_store_copy(o->expires_at, sizeof o->expires_at, co_dbr_str(r, 0, "expires_at"));
    o->expired = co_dbr_is(r, 0, "expired");
    o->stock_held = co_dbr_is(r, 0, "stock_held");
    o->answer_pending = co_dbr_is(r, 0, "answer_pending");
}

co_store_rc co_store_load_order(void *db, const char *order_id, co_order *o)
{
    static const char sql[] =
        "/* load_order */"
        "SELECT o.id, o.user_id, o.status, o.flow = 'mobile' AS mobile, o.payment_method,"
        "       o.amount, o.currency, o.payment_intent, o.client_secret, o.failure_code,"
        "       o.decline_code, o.compensate_to, o.failure_detail,"
        "       co_iso(o.reservation_expires_at) AS expires_at,"
        "       coalesce(o.reservation_expires_at < now(), false) AS expired, o.stock_held,"
        "       (r.order_id IS NOT NULL AND r.response_status IS NULL) AS answer_pending"
        "  FROM orders o LEFT JOIN checkout_requests r ON r.order_id = o.id"
        " WHERE o.id = $1";
    const char *params[1] = {order_id};
    co_dbr r;
    co_db_status st = co_db_call(db, &r, sql, 1, params);

    if (st == CO_DB_ROWS)
        co_store_read_order(&r, o);
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_checkout_respond(void *db, const co_order *o, co_answer *answer)
{
    char code[8];
    const char *params[3] = {o->id, code, NULL};
    co_dbr r;
    co_db_status st;

    co_answer_clear(answer);
    if (!co_render_checkout_answer(o, &answer->code, &answer->body))
        return CO_STORE_FAILED;
    snprintf(code, sizeof code, "%u", answer->code);
    params[2] = answer->body;
    st = co_db_call(db, &r,
                    "SELECT co_checkout_respond(p_order_id => $1, p_status => $2, p_body => $3)",
                    3, params);
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_checkout_answer(void *db, const char *order_id, co_answer *answer)
{
    const char *params[1] = {order_id};
    co_dbr r;
    co_db_status st = co_db_call(db, &r,
                                 "/* checkout_answer */ SELECT response_status, response_body"
                                 "  FROM checkout_requests"
                                 " WHERE order_id = $1 AND response_status IS NOT NULL",
                                 1, params);

    co_answer_clear(answer);
    if (st == CO_DB_ROWS) {
        answer->code = (unsigned)co_dbr_int(&r, 0, "response_status");
        answer->body = strdup(co_dbr_str(&r, 0, "response_body"));
    }
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

/* Postgres text[] literal of the states entered: {"captured","confirmed"}. */
static void path_literal(const co_state *path, int hops, char *out, size_t n)
{
    size_t len = 0;

    len += (size_t)snprintf(out, n, "{");
    for (int i = 0; i < hops && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s\"%s\"", i ? "," : "",
                                co_state_name(path[i]));
    if (len < n)
        snprintf(out + len, n - len, "}");
}

/* Postgres text[] literal of the hops' reasons, each quoted (a NULL one is
 * NULL); malloc'd, NULL when out of memory. */
static char *reasons_literal(const char *const *reasons, int hops)
{
    size_t n = 3;
    char *out, *p;

    for (int i = 0; i < hops; i++)
        n += (reasons[i] ? 2 * strlen(reasons[i]) + 3 : 4) + 1;
    out = malloc(n);
    if (out == NULL)
        return NULL;
    p = out;
    *p++ = '{';
    for (int i = 0; i < hops; i++) {
        if (i > 0)
            *p++ = ',';
        if (reasons[i] == NULL) {
            memcpy(p, "NULL", 4);
            p += 4;
            continue;
        }
        *p++ = '"';
        for (const char *c = reasons[i]; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

static const struct {
    const char *text;
    co_move_outcome outcome;
} move_outcomes[] = {
    {"ok", CO_MOVE_MADE}, {"moved", CO_MOVE_STALE}, {"short", CO_MOVE_SHORT},
};

static co_move_outcome move_outcome_of(const char *result)
{
    for (size_t i = 0; result && i < sizeof move_outcomes / sizeof move_outcomes[0]; i++)
        if (strcmp(result, move_outcomes[i].text) == 0)
            return move_outcomes[i].outcome;
    return CO_MOVE_STALE;
}

/* The move alone: one co_transition. answer: the checkout's answer to store
 * with it (body NULL: none). */
static co_store_rc transition_alone(co_db *db, const co_move *m, const co_answer *answer,
                                    co_move_outcome *outcome)
{
    static const char sql[] =
        "SELECT co_transition(p_order_id => $1, p_from => $2, p_path => $3, p_reason => $4,"
        "       p_release => $5, p_take => $6, p_payment_intent => $7, p_client_secret => $8,"
        "       p_failure_code => $9, p_decline_code => $10, p_compensate_to => $11,"
        "       p_lease_seconds => $12, p_owner => $13, p_response_status => $14,"
        "       p_response_body => $15, p_event_id => $16, p_event_type => $17,"
        "       p_reasons => $18) AS result";
    const co_change *ch = m->change;
    char path_text[128], lease[16], code[8];
    const char *params[18] = {
        m->order->id, co_state_name(m->order->status), path_text, ch->reason,
        ch->release ? "t" : "f", ch->take ? "t" : "f",
        ch->payment_intent, ch->client_secret, ch->failure_code, ch->decline_code,
        ch->compensate_to == CO_ST_NONE ? NULL : co_state_name(ch->compensate_to),
        m->lease_seconds > 0 ? lease : NULL, m->owner,
        NULL, NULL, m->event_id, m->event_type, NULL};
    co_dbr r;
    co_db_status st;
    char *reasons = NULL;

    *outcome = CO_MOVE_STALE;
    if (answer->body != NULL) {
        snprintf(code, sizeof code, "%u", answer->code);
        params[13] = code;
        params[14] = answer->body;
    }
    path_literal(m->path, m->hops, path_text, sizeof path_text);
    snprintf(lease, sizeof lease, "%d", m->lease_seconds);
    if (m->reasons != NULL) {
        reasons = reasons_literal(m->reasons, m->hops);
        if (reasons == NULL)
            return CO_STORE_RETRY;
        params[17] = reasons;
    }
    st = co_db_call(db, &r, sql, 18, params);
    free(reasons);
    *outcome = move_outcome_of(co_dbr_str(&r, 0, "result"));
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

/* ------------------------------------------------- the common move, batched */

typedef struct {
    co_batch_req req;           /* group: the pool */
    const co_move *m;
    const co_answer *answer;
    co_move_outcome outcome;
    co_store_rc rc;
} move_req;

/* One move as co_transition_many reads it (sql/0018; a new reference). */
static json_t *move_json(const move_req *b)
{
    const co_move *m = b->m;
    const co_change *ch = m->change;
    json_t *path = json_array(), *reasons = m->reasons != NULL ? json_array() : json_null();

    for (int i = 0; i < m->hops; i++) {
        json_array_append_new(path, json_string(co_state_name(m->path[i])));
        if (m->reasons != NULL)
            json_array_append_new(reasons, m->reasons[i] != NULL ? json_string(m->reasons[i])
                                                                 : json_null());
    }
    return json_pack("{s:s, s:s, s:o, s:s?, s:o, s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:s?, s:o,"
                     " s:s?}",
                     "order_id", m->order->id, "from", co_state_name(m->order->status), "path",
                     path, "reason", ch->reason, "reasons", reasons, "payment_intent",
                     ch->payment_intent, "client_secret", ch->client_secret, "failure_code",
                     ch->failure_code, "decline_code", ch->decline_code, "compensate_to",
                     ch->compensate_to == CO_ST_NONE ? NULL : co_state_name(ch->compensate_to),
                     "lease_seconds",
                     m->lease_seconds > 0 ? json_integer(m->lease_seconds) : json_null(),
                     "owner", m->owner, "response_status",
                     b->answer->body != NULL ? json_integer(b->answer->code) : json_null(),
                     "response_body", b->answer->body);
}

static void run_moves(void *ctx, co_batch_req **reqs, int n)
{
    move_req *b[CO_BATCH_MAX];
    co_db *db = (co_db *)reqs[0]->group;
    json_t *all = json_array();
    bool answered[CO_BATCH_MAX] = {false};
    char *text = NULL;
    const char *params[1];
    co_dbr r;
    co_db_status st = CO_DB_HARD;

    (void)ctx;
    for (int i = 0; i < n; i++) {
        b[i] = (move_req *)reqs[i];
        b[i]->rc = CO_STORE_RETRY;
        b[i]->outcome = CO_MOVE_STALE;
        if (n > 1 && all != NULL && json_array_append_new(all, move_json(b[i])) != 0) {
            json_decref(all);
            all = NULL;
        }
    }
    if (n > 1 && all != NULL)
        text = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    if (text != NULL) {
        params[0] = text;
        st = co_db_call(db, &r, "SELECT n, result FROM co_transition_many($1)", 1, params);
        free(text);
        for (int row = 0; st == CO_DB_ROWS && row < co_dbr_rows(&r); row++) {
            long long k = co_dbr_int(&r, row, "n") - 1;

            if (k < 0 || k >= n || answered[k])
                continue;
            answered[k] = true;
            b[k]->outcome = move_outcome_of(co_dbr_str(&r, row, "result"));
            b[k]->rc = CO_STORE_OK;
        }
        co_dbr_clear(&r);
        if (st == CO_DB_SOFT)
            return; /* each answers what it would alone after the retries */
        if (st == CO_DB_ROWS)
            co_metric_add("transition_batch", 1);
    }
    /* Alone, or what the batch did not answer (its commit happened or not at all). */
    for (int i = 0; i < n; i++)
        if (!answered[i])
            b[i]->rc = transition_alone(db, b[i]->m, b[i]->answer, &b[i]->outcome);
}

static co_batch moves = CO_BATCH_INIT(run_moves, NULL);

void co_store_moves_batching(int max_batch, int max_inflight)
{
    co_batch_configure(&moves, max_batch, max_inflight);
}

co_store_rc co_store_transition(void *db, const co_move *m, co_move_outcome *outcome,
                                co_answer *answer)
{
    co_store_rc rc;

    co_answer_clear(answer);
    *outcome = CO_MOVE_STALE;
    if (m->answer_for != NULL &&
        !co_render_checkout_answer(m->answer_for, &answer->code, &answer->body))
        co_answer_clear(answer);
    if (moves.max_batch > 1 && m->event_id == NULL && !m->change->take &&
        !m->change->release) {
        move_req b = {.req = {.group = db}, .m = m, .answer = answer};

        co_batch_submit(&moves, &b.req);
        rc = b.rc;
        *outcome = b.outcome;
    } else {
        rc = transition_alone(db, m, answer, outcome);
    }
    if (rc != CO_STORE_OK || *outcome != CO_MOVE_MADE)
        co_answer_clear(answer);
    return rc;
}

co_store_rc co_store_claim_stalled(void *db, const char *owner, int lease_seconds, int max,
                                   char (*ids)[37], int *n)
{
    char lease[16], lim[16];
    const char *params[3] = {owner, lease, lim};
    co_dbr r;
    co_db_status st;

    snprintf(lease, sizeof lease, "%d", lease_seconds);
    snprintf(lim, sizeof lim, "%d", max);
    *n = 0;
    st = co_db_call(db, &r,
                    "SELECT co_claim_stalled(p_owner => $1, p_lease_seconds => $2,"
                    " p_limit => $3) AS order_id",
                    3, params);
    for (int i = 0; st == CO_DB_ROWS && i < co_dbr_rows(&r) && i < max; i++)
        co_store_copy(ids[(*n)++], 37, co_dbr_str(&r, i, "order_id"));
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

static const struct {
    const char *text;
    co_claim claim;
} claims[] = {
    {"claimed", CO_CLAIM_TAKEN}, {"held", CO_CLAIM_HELD}, {"idle", CO_CLAIM_IDLE},
    {"none", CO_CLAIM_NONE},
};

co_store_rc co_store_claim_order(void *db, const char *order_id, const char *owner,
                                 int lease_seconds, co_claim *claim)
{
    char lease[16];
    const char *params[3] = {order_id, owner, lease};
    const char *text;
    co_dbr r;
    co_db_status st;

    snprintf(lease, sizeof lease, "%d", lease_seconds);
    *claim = CO_CLAIM_NONE;
    st = co_db_call(db, &r,
                    "SELECT co_claim_order(p_order_id => $1, p_owner => $2,"
                    " p_lease_seconds => $3) AS claim",
                    3, params);
    text = st == CO_DB_ROWS ? co_dbr_str(&r, 0, "claim") : NULL;
    for (size_t i = 0; text && i < sizeof claims / sizeof claims[0]; i++)
        if (strcmp(text, claims[i].text) == 0)
            *claim = claims[i].claim;
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_order_json(co_db *db, const char *order_id, const char *user_id,
                                char **json)
{
    const char *params[2] = {order_id, user_id};

    return co_store_text(db,
                         "SELECT co_order_json(id)::text AS order_json FROM orders"
                         " WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2::uuid)",
                         2, params, "order_json", json, NULL);
}

co_store_rc co_store_user_orders_page(co_db *db, const char *user_id, int limit,
                                      const char *starting_after, char **json,
                                      co_store_refusal *refusal)
{
    char lim[16];
    const char *params[3] = {user_id, lim, starting_after};

    snprintf(lim, sizeof lim, "%d", limit);
    return co_store_text(db,
                         "SELECT co_user_orders_page(p_user_id => $1, p_limit => $2,"
                         " p_starting_after => $3)::text AS page",
                         3, params, "page", json, refusal);
}

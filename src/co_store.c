#include "co_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

co_db_status co_store_load_order(co_db *db, const char *order_id, co_order *o)
{
    static const char sql[] =
        "SELECT o.id, o.user_id, o.status, o.flow = 'mobile', o.payment_method, o.amount,"
        "       o.currency, o.payment_intent, o.client_secret, o.failure_code, o.decline_code,"
        "       o.compensate_to, o.failure_detail,"
        "       to_char(o.reservation_expires_at AT TIME ZONE 'UTC',"
        " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "       coalesce(o.reservation_expires_at < now(), false), o.stock_held,"
        "       (r.order_id IS NOT NULL AND r.response_status IS NULL)"
        "  FROM orders o LEFT JOIN checkout_requests r ON r.order_id = o.id"
        " WHERE o.id = $1";
    const char *params[1] = {order_id};
    co_dbr r;
    co_db_status st = co_db_call(db, &r, sql, 1, params);

    if (st == CO_DB_ROWS) {
        memset(o, 0, sizeof *o);
        copy(o->id, sizeof o->id, co_dbr_get(&r, 0, 0));
        copy(o->user_id, sizeof o->user_id, co_dbr_get(&r, 0, 1));
        o->status = co_state_parse(co_dbr_get(&r, 0, 2));
        o->mobile = co_dbr_bool(&r, 0, 3);
        copy(o->payment_method, sizeof o->payment_method, co_dbr_get(&r, 0, 4));
        o->amount = co_dbr_ll(&r, 0, 5);
        copy(o->currency, sizeof o->currency, co_dbr_get(&r, 0, 6));
        copy(o->payment_intent, sizeof o->payment_intent, co_dbr_get(&r, 0, 7));
        copy(o->client_secret, sizeof o->client_secret, co_dbr_get(&r, 0, 8));
        copy(o->failure_code, sizeof o->failure_code, co_dbr_get(&r, 0, 9));
        copy(o->decline_code, sizeof o->decline_code, co_dbr_get(&r, 0, 10));
        o->compensate_to = co_dbr_get(&r, 0, 11) ? co_state_parse(co_dbr_get(&r, 0, 11))
                                                 : CO_ST_NONE;
        copy(o->failure_detail, sizeof o->failure_detail, co_dbr_get(&r, 0, 12));
        copy(o->expires_at, sizeof o->expires_at, co_dbr_get(&r, 0, 13));
        o->expired = co_dbr_bool(&r, 0, 14);
        o->stock_held = co_dbr_bool(&r, 0, 15);
        o->answer_pending = co_dbr_bool(&r, 0, 16);
    }
    co_dbr_clear(&r);
    return st;
}

co_db_status co_store_checkout_begin(co_db *db, const co_checkout_args *a, co_checkout_begun *out)
{
    static const char sql[] =
        "SELECT outcome, order_id, response_status, response_body, short_item, amount, currency,"
        "       expires_at"
        "  FROM co_checkout_begin($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    char ttl[16], lease[16];
    const char *params[10] = {a->user_id, a->idempotency_key, a->request_hash, a->order_id,
                              a->items_json, a->mobile ? "mobile" : "server", a->payment_method,
                              ttl, lease, a->owner};
    co_dbr r;
    co_db_status st;

    memset(out, 0, sizeof *out);
    snprintf(ttl, sizeof ttl, "%d", a->ttl_seconds);
    snprintf(lease, sizeof lease, "%d", a->lease_seconds);
    st = co_db_call(db, &r, sql, 10, params);
    if (st == CO_DB_ROWS) {
        copy(out->outcome, sizeof out->outcome, co_dbr_get(&r, 0, 0));
        copy(out->order_id, sizeof out->order_id, co_dbr_get(&r, 0, 1));
        out->response_status = (unsigned)co_dbr_ll(&r, 0, 2);
        if (co_dbr_get(&r, 0, 3) != NULL)
            out->response_body = strdup(co_dbr_get(&r, 0, 3));
        copy(out->short_item, sizeof out->short_item, co_dbr_get(&r, 0, 4));
        out->amount = co_dbr_ll(&r, 0, 5);
        copy(out->currency, sizeof out->currency, co_dbr_get(&r, 0, 6));
        copy(out->expires_at, sizeof out->expires_at, co_dbr_get(&r, 0, 7));
    } else if (st == CO_DB_HARD) {
        copy(out->sqlstate, sizeof out->sqlstate, r.sqlstate);
        copy(out->detail, sizeof out->detail, r.detail);
    }
    co_dbr_clear(&r);
    return st;
}

co_db_status co_store_checkout_respond(co_db *db, const char *order_id, unsigned status,
                                       const char *body)
{
    char st_text[8];
    const char *params[3] = {order_id, st_text, body};
    co_dbr r;
    co_db_status st;

    snprintf(st_text, sizeof st_text, "%u", status);
    st = co_db_call(db, &r, "SELECT co_checkout_respond($1, $2, $3)", 3, params);
    co_dbr_clear(&r);
    return st;
}

co_db_status co_store_checkout_answer(co_db *db, const char *order_id, unsigned *status,
                                      char **body)
{
    const char *params[1] = {order_id};
    co_dbr r;
    co_db_status st = co_db_call(db, &r,
                                 "SELECT response_status, response_body FROM checkout_requests"
                                 " WHERE order_id = $1 AND response_status IS NOT NULL",
                                 1, params);

    *body = NULL;
    if (st == CO_DB_ROWS) {
        *status = (unsigned)co_dbr_ll(&r, 0, 0);
        *body = strdup(co_dbr_get(&r, 0, 1));
    }
    co_dbr_clear(&r);
    return st;
}

/* Postgres text[] literal of the hops: {"captured","confirmed"}. */
static void path_literal(const char *const *path, int hops, char *out, size_t n)
{
    size_t len = 0;

    len += (size_t)snprintf(out, n, "{");
    for (int i = 0; i < hops && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s\"%s\"", i ? "," : "", path[i]);
    if (len < n)
        snprintf(out + len, n - len, "}");
}

co_db_status co_store_transition(co_db *db, const co_order *o, const char *const *path, int hops,
                                 const co_change *ch, int lease_seconds, const char *owner,
                                 unsigned answer_status, const char *answer_body,
                                 const char *event_id, const char *event_type, char result[12])
{
    static const char sql[] =
        "SELECT co_transition($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
        "                     $16, $17)";
    char path_text[128], lease[16], answer[8];
    const char *params[17] = {
        o->id, co_state_name(o->status), path_text, ch->reason,
        ch->release ? "t" : "f", ch->take ? "t" : "f",
        ch->payment_intent, ch->client_secret, ch->failure_code, ch->decline_code,
        ch->compensate_to == CO_ST_NONE ? NULL : co_state_name(ch->compensate_to),
        lease_seconds > 0 ? lease : NULL, owner,
        answer_body ? answer : NULL, answer_body, event_id, event_type};
    co_dbr r;
    co_db_status st;

    path_literal(path, hops, path_text, sizeof path_text);
    snprintf(lease, sizeof lease, "%d", lease_seconds);
    snprintf(answer, sizeof answer, "%u", answer_status);
    st = co_db_call(db, &r, sql, 17, params);
    if (st == CO_DB_ROWS)
        copy(result, 12, co_dbr_get(&r, 0, 0));
    co_dbr_clear(&r);
    return st;
}

co_db_status co_store_claim_stalled(co_db *db, const char *owner, int lease_seconds, int max,
                                    char (*ids)[37], int *n)
{
    char lease[16], lim[16];
    const char *params[3] = {owner, lease, lim};
    co_dbr r;
    co_db_status st;

    snprintf(lease, sizeof lease, "%d", lease_seconds);
    snprintf(lim, sizeof lim, "%d", max);
    *n = 0;
    st = co_db_call(db, &r, "SELECT co_claim_stalled($1, $2, $3)", 3, params);
    for (int i = 0; st == CO_DB_ROWS && i < co_dbr_rows(&r) && i < max; i++)
        copy(ids[(*n)++], 37, co_dbr_get(&r, i, 0));
    co_dbr_clear(&r);
    return st;
}

co_db_status co_store_record_event(co_db *db, const char *event_id, const char *type,
                                   const char *payment_intent, const char *order_id,
                                   const char *outcome, bool *fresh)
{
    const char *params[5] = {event_id, type, payment_intent, order_id, outcome};
    co_dbr r;
    co_db_status st = co_db_call(db, &r, "SELECT co_record_event($1, $2, $3, $4, $5)", 5, params);

    *fresh = st == CO_DB_ROWS && co_dbr_bool(&r, 0, 0);
    co_dbr_clear(&r);
    return st;
}

co_db_status co_store_event_lookup(co_db *db, const char *event_id, const char *order_hint,
                                   const char *payment_intent, bool *seen, char order_id[37])
{
    const char *params[3] = {event_id, order_hint, payment_intent};
    co_dbr r;
    co_db_status st = co_db_call(db, &r, "SELECT seen, order_id FROM co_event_lookup($1, $2, $3)",
                                 3, params);

    *seen = st == CO_DB_ROWS && co_dbr_bool(&r, 0, 0);
    copy(order_id, 37, st == CO_DB_ROWS ? co_dbr_get(&r, 0, 1) : NULL);
    co_dbr_clear(&r);
    return st;
}

/* The notification outbox (sql/0004_webhooks.sql): claims with a lease, and
 * the outcome of each attempt. */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

co_store_rc co_store_notify_claim(co_db *db, int lease_seconds, int max, co_notification *rows,
                                  int *n)
{
    char lease[16], limit[16];
    const char *params[2] = {lease, limit};
    co_dbr r;
    co_db_status st;

    snprintf(lease, sizeof lease, "%d", lease_seconds);
    snprintf(limit, sizeof limit, "%d", max);
    *n = 0;
    st = co_db_call(db, &r,
                    "SELECT id, item_id, user_id, restock_event_id, created_at, attempts"
                    "  FROM co_notify_claim(p_lease_seconds => $1, p_limit => $2)",
                    2, params);
    for (int i = 0; st == CO_DB_ROWS && i < co_dbr_rows(&r) && i < max; i++) {
        co_notification *x = &rows[(*n)++];

        co_store_copy(x->id, sizeof x->id, co_dbr_str(&r, i, "id"));
        co_store_copy(x->item_id, sizeof x->item_id, co_dbr_str(&r, i, "item_id"));
        co_store_copy(x->user_id, sizeof x->user_id, co_dbr_str(&r, i, "user_id"));
        co_store_copy(x->restock_event_id, sizeof x->restock_event_id,
                      co_dbr_str(&r, i, "restock_event_id"));
        co_store_copy(x->created_at, sizeof x->created_at, co_dbr_str(&r, i, "created_at"));
        x->attempts = (int)co_dbr_int(&r, i, "attempts");
    }
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_notify_result(co_db *db, const co_notification *row,
                                   const co_notify_outcome *oc, bool *dead)
{
    char attempts[16], max[16], backoff[16];
    const char *params[6] = {row->id, attempts, oc->error, max, backoff, oc->unclaim ? "t" : "f"};
    co_dbr r;
    co_db_status st;
    const char *after;

    snprintf(attempts, sizeof attempts, "%d", row->attempts);
    snprintf(max, sizeof max, "%d", oc->max_attempts);
    snprintf(backoff, sizeof backoff, "%d", oc->backoff_ms);
    st = co_db_call(db, &r,
                    "SELECT co_notify_result(p_id => $1, p_attempts => $2, p_error => $3,"
                    " p_max_attempts => $4, p_backoff_ms => $5, p_unclaim => $6) AS status",
                    6, params);
    after = co_dbr_str(&r, 0, "status");
    *dead = st == CO_DB_ROWS && after != NULL && strcmp(after, "dead") == 0;
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

/* Reconciliation: the watermark and its lease, the orders a pass looks at,
 * claims and the findings log (sql/0015_reconcile.sql). */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

co_store_rc co_store_recon_begin(void *db, const char *owner, int lease_seconds,
                                 co_recon_begun *out)
{
    char lease[16];
    const char *params[2] = {owner, lease};
    co_dbr r;
    co_db_status st;

    memset(out, 0, sizeof *out);
    snprintf(lease, sizeof lease, "%d", lease_seconds);
    st = co_db_call(db, &r,
                    "SELECT acquired, run_id, watermark, started, holder"
                    "  FROM co_reconcile_begin(p_owner => $1, p_lease_seconds => $2)",
                    2, params);
    if (st == CO_DB_ROWS) {
        out->acquired = co_dbr_is(&r, 0, "acquired");
        co_store_copy(out->run_id, sizeof out->run_id, co_dbr_str(&r, 0, "run_id"));
        out->watermark = co_dbr_int(&r, 0, "watermark");
        out->started = co_dbr_int(&r, 0, "started");
        co_store_copy(out->holder, sizeof out->holder, co_dbr_str(&r, 0, "holder"));
    }
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_recon_end(void *db, const char *owner, long long watermark)
{
    char mark[24];
    const char *params[2] = {owner, watermark >= 0 ? mark : NULL};
    co_dbr r;
    co_db_status st;

    snprintf(mark, sizeof mark, "%lld", watermark);
    st = co_db_call(db, &r, "SELECT co_reconcile_end(p_owner => $1, p_watermark => $2) AS ok", 2,
                    params);
    if (st == CO_DB_ROWS && !co_dbr_is(&r, 0, "ok"))
        st = CO_DB_NONE; /* the lease had lapsed to another pass */
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_recon_order(void *db, const char *order_hint, const char *intent,
                                 co_recon_order *out)
{
    const char *params[2] = {order_hint, intent};
    co_dbr r;
    co_db_status st;

    memset(out, 0, sizeof *out);
    st = co_db_call(db, &r, "SELECT * FROM co_reconcile_order(p_hint => $1, p_intent => $2)", 2,
                    params);
    if (st == CO_DB_ROWS) {
        co_store_read_order(&r, &out->order);
        out->is_intents = co_dbr_is(&r, 0, "is_intents");
        out->idle_seconds = co_dbr_int(&r, 0, "idle_seconds");
        out->leased = co_dbr_is(&r, 0, "leased");
    }
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_recon_waiting(void *db, int min_idle_seconds, const char *after, int max,
                                   char (*ids)[37], int *n)
{
    char idle[16], lim[16];
    const char *params[3] = {idle, after, lim};
    co_dbr r;
    co_db_status st;

    snprintf(idle, sizeof idle, "%d", min_idle_seconds);
    snprintf(lim, sizeof lim, "%d", max);
    *n = 0;
    st = co_db_call(db, &r,
                    "SELECT co_reconcile_waiting(p_min_idle => $1, p_after => $2,"
                    " p_limit => $3) AS order_id",
                    3, params);
    for (int i = 0; st == CO_DB_ROWS && i < co_dbr_rows(&r) && i < max; i++)
        co_store_copy(ids[(*n)++], 37, co_dbr_str(&r, i, "order_id"));
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_recon_claim(void *db, const char *order_id, co_state status,
                                 const char *owner, int lease_seconds)
{
    char lease[16];
    const char *params[4] = {order_id, co_state_name(status), owner, lease};
    co_dbr r;
    co_db_status st;

    snprintf(lease, sizeof lease, "%d", lease_seconds);
    st = co_db_call(db, &r,
                    "SELECT co_reconcile_claim(p_order_id => $1, p_status => $2, p_owner => $3,"
                    " p_lease_seconds => $4) AS claimed",
                    4, params);
    if (st == CO_DB_ROWS && !co_dbr_is(&r, 0, "claimed"))
        st = CO_DB_NONE;
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_recon_record(void *db, const co_recon_record *rec)
{
    const char *params[7] = {rec->run_id, rec->intent,  rec->order_id, rec->finding,
                             rec->action, rec->result, rec->failed ? "t" : "f"};
    co_dbr r;
    co_db_status st = co_db_call(db, &r,
                                 "SELECT co_reconcile_record(p_run_id => $1, p_intent => $2,"
                                 " p_order_id => $3, p_finding => $4, p_action => $5,"
                                 " p_result => $6, p_failed => $7)",
                                 7, params);

    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

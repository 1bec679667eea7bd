/* Provider events: what was seen, and the order an event is about
 * (sql/0003_saga.sql, sql/0004_webhooks.sql). */
#include "store_internal.h"

co_store_rc co_store_record_event(void *db, const co_event_record *e, bool *fresh)
{
    const char *params[5] = {e->event_id, e->type, e->payment_intent, e->order_id, e->outcome};
    co_dbr r;
    co_db_status st = co_db_call(db, &r,
                                 "SELECT co_record_event(p_event_id => $1, p_type => $2,"
                                 " p_payment_intent => $3, p_order_id => $4, p_outcome => $5)"
                                 " AS fresh",
                                 5, params);

    *fresh = st == CO_DB_ROWS && co_dbr_is(&r, 0, "fresh");
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_event_order(void *db, const char *event_id, const char *order_hint,
                                 const char *intent, bool *seen, co_order *o)
{
    const char *params[3] = {event_id, order_hint, intent};
    co_dbr r;
    co_db_status st = co_db_call(db, &r,
                                 "SELECT * FROM co_event_order(p_event_id => $1,"
                                 " p_order_id => $2, p_payment_intent => $3)",
                                 3, params);

    *seen = st == CO_DB_ROWS && co_dbr_is(&r, 0, "seen");
    if (st == CO_DB_ROWS && co_dbr_str(&r, 0, "id") == NULL)
        st = CO_DB_NONE;
    if (st == CO_DB_ROWS)
        co_store_read_order(&r, o);
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

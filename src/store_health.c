/* What the probes read: the gauges of GET /metrics and the readiness of
 * GET /readyz, each one statement with a short deadline (co_db_exec_within),
 * so a probe answers fast while Postgres is slow or gone. */
#include "store_internal.h"

#include "co_migrate.h"

#include <stdlib.h>
#include <string.h>

const char *const co_store_live_states[CO_STORE_LIVE_STATES] = {
    "pending", "reserved", "awaiting_payment", "authorized", "captured", "voiding", "refunding",
};

co_store_rc co_store_read_gauges(co_db *db, int timeout_ms, co_store_gauges *out)
{
    /* Live orders only: the partial index orders_live_idx covers them, so the
     * cost follows what is in flight, not the whole history. */
#define LIVE "('pending', 'reserved', 'awaiting_payment', 'authorized', 'captured'," \
             " 'voiding', 'refunding')"
    static const char sql[] =
        "/* gauges */ SELECT"
        "  count(*) FILTER (WHERE status = 'pending') AS pending,"
        "  count(*) FILTER (WHERE status = 'reserved') AS reserved,"
        "  count(*) FILTER (WHERE status = 'awaiting_payment') AS awaiting_payment,"
        "  count(*) FILTER (WHERE status = 'authorized') AS authorized,"
        "  count(*) FILTER (WHERE status = 'captured') AS captured,"
        "  count(*) FILTER (WHERE status = 'voiding') AS voiding,"
        "  count(*) FILTER (WHERE status = 'refunding') AS refunding,"
        /* what recovery would claim now (co_claim_stalled), expired unpaid
         * reservations aside */
        "  count(*) FILTER (WHERE status NOT IN ('pending', 'awaiting_payment')"
        "                     AND (lease_until IS NULL OR lease_until < now())) AS lease_lapsed,"
        "  (SELECT coalesce(sum(l.quantity), 0) FROM orders h"
        "     JOIN order_lines l ON l.order_id = h.id"
        "    WHERE h.stock_held AND h.status IN " LIVE ") AS units_held,"
        "  (SELECT count(*) FROM notification_outbox WHERE status = 'pending') AS outbox_pending,"
        "  (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)"
        "     FROM notification_outbox WHERE status = 'pending') AS outbox_oldest_seconds"
        "  FROM orders WHERE status IN " LIVE;
#undef LIVE
    co_dbr r;
    co_db_status st = co_db_exec_within(db, &r, sql, 0, NULL, timeout_ms);

    memset(out, 0, sizeof *out);
    if (st == CO_DB_ROWS) {
        const char *age = co_dbr_str(&r, 0, "outbox_oldest_seconds");

        for (int i = 0; i < CO_STORE_LIVE_STATES; i++)
            out->orders[i] = co_dbr_int(&r, 0, co_store_live_states[i]);
        out->lease_lapsed = co_dbr_int(&r, 0, "lease_lapsed");
        out->units_held = co_dbr_int(&r, 0, "units_held");
        out->outbox_pending = co_dbr_int(&r, 0, "outbox_pending");
        out->outbox_oldest_seconds = age != NULL ? strtod(age, NULL) : 0;
    }
    co_dbr_clear(&r);
    return st == CO_DB_ROWS ? CO_STORE_OK : co_store_rc_of(st == CO_DB_NONE ? CO_DB_HARD : st);
}

co_store_rc co_store_migrations_pending(co_db *db, int timeout_ms, int *pending)
{
    co_dbr r;
    co_db_status st = co_db_exec_within(db, &r, "/* readyz */ SELECT name FROM schema_migrations",
                                        0, NULL, timeout_ms);

    *pending = 0;
    if (st == CO_DB_HARD && strcmp(r.sqlstate, "42P01") == 0)
        st = CO_DB_NONE; /* no schema_migrations at all: every migration is pending */
    if (st >= 0) {
        for (const co_migration *m = co_migrations; m->name != NULL; m++) {
            bool found = false;

            for (int i = 0; i < co_dbr_rows(&r) && !found; i++)
                found = strcmp(co_dbr_get(&r, i, 0), m->name) == 0;
            *pending += !found;
        }
    }
    co_dbr_clear(&r);
    return st >= 0 ? CO_STORE_OK : co_store_rc_of(st);
}

/* The operators' overview (sql/0016_admin_overview.sql co_admin_overview). */
#include "store_internal.h"

#include <stdio.h>

co_store_rc co_store_admin_overview(co_db *db, int orders, int items, int events, char **json)
{
    char o[16], i[16], e[16];
    const char *params[3] = {o, i, e};

    snprintf(o, sizeof o, "%d", orders);
    snprintf(i, sizeof i, "%d", items);
    snprintf(e, sizeof e, "%d", events);
    return co_store_text(db,
                         "SELECT co_admin_overview(p_orders => $1, p_items => $2,"
                         " p_events => $3)::text AS overview",
                         3, params, "overview", json, NULL);
}

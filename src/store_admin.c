/* Operator reads: pages of orders (sql/0003_saga.sql co_orders_page). */
#include "store_internal.h"

#include <stdio.h>

co_store_rc co_store_orders_page(co_db *db, const char *status, int limit,
                                 const char *starting_after, char **json,
                                 co_store_refusal *refusal)
{
    char lim[16];
    const char *params[3] = {status, lim, starting_after};

    snprintf(lim, sizeof lim, "%d", limit);
    return co_store_text(db,
                         "SELECT co_orders_page(p_status => $1, p_limit => $2,"
                         " p_starting_after => $3)::text AS page",
                         3, params, "page", json, refusal);
}

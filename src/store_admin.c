/* Operator reads: pages of orders (sql/0003_saga.sql co_orders_page). */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

co_store_rc co_store_orders_page(co_db *db, const char *status, int limit,
                                 const char *starting_after, char **json,
                                 co_store_refusal *refusal)
{
    char lim[16];
    const char *params[3] = {status, lim, starting_after};
    co_dbr r;
    co_db_status st;

    snprintf(lim, sizeof lim, "%d", limit);
    st = co_db_call(db, &r,
                    "SELECT co_orders_page(p_status => $1, p_limit => $2,"
                    " p_starting_after => $3)::text AS page",
                    3, params);
    *json = st == CO_DB_ROWS ? strdup(co_dbr_str(&r, 0, "page")) : NULL;
    co_store_refusal_of(&r, refusal);
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

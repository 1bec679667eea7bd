/* Operator reads: pages of every order with their leases, one admin order
 * (sql/0012_operator_reads.sql co_admin_orders_page, co_admin_order_json). */
#include "store_internal.h"

#include <stdio.h>

co_store_rc co_store_orders_page(co_db *db, const co_orders_filter *f, char **json,
                                 co_store_refusal *refusal)
{
    char lim[16];
    const char *params[5] = {f->statuses, f->created_before, f->lease, lim, f->starting_after};

    snprintf(lim, sizeof lim, "%d", f->limit);
    return co_store_text(db,
                         "SELECT co_admin_orders_page(p_statuses => $1, p_created_before => $2,"
                         " p_lease => $3, p_limit => $4, p_starting_after => $5)::text AS page",
                         5, params, "page", json, refusal);
}

co_store_rc co_store_admin_order_json(co_db *db, const char *order_id, char **json)
{
    const char *params[1] = {order_id};

    return co_store_text(db, "SELECT co_admin_order_json($1)::text AS order_json"
                             "  FROM orders WHERE id = $1",
                         1, params, "order_json", json, NULL);
}

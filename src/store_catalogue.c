/* The catalogue: items, restocks and back-in-stock subscriptions
 * (sql/0002_stock_functions.sql), hot-item mode (sql/0007_hot_items.sql).
 * Stock changes only inside the SQL functions. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

co_store_rc co_store_item_json(co_db *db, const char *item_id, char **json)
{
    const char *params[1] = {item_id};

    return co_store_text(db, "SELECT co_item_json(id)::text AS item_json FROM items WHERE id = $1",
                         1, params, "item_json", json, NULL);
}

co_store_rc co_store_items_page(co_db *db, int limit, const char *starting_after, char **json,
                                co_store_refusal *refusal)
{
    char lim[16];
    const char *params[2] = {lim, starting_after};

    snprintf(lim, sizeof lim, "%d", limit);
    return co_store_text(db,
                         "SELECT co_items_page(p_limit => $1,"
                         " p_starting_after => $2)::text AS page",
                         2, params, "page", json, refusal);
}

co_store_rc co_store_item_create(co_db *db, const co_item_new *item, char **json,
                                 co_store_refusal *refusal)
{
    char price[24], stock[24], id[37];
    const char *params[6] = {item->sku, item->name, price, item->currency, stock, id};

    snprintf(price, sizeof price, "%lld", item->price);
    snprintf(stock, sizeof stock, "%lld", item->stock);
    co_store_new_id(id); /* one id for every run of the statement (sql/0013) */
    return co_store_text(db,
                         "SELECT co_item_json(co_create_item(p_sku => $1, p_name => $2,"
                         " p_price => $3, p_currency => $4, p_stock => $5,"
                         " p_id => $6))::text AS item_json",
                         6, params, "item_json", json, refusal);
}

co_store_rc co_store_subscribe(co_db *db, const char *item_id, const char *user_id,
                               co_subscribed *out)
{
    const char *params[2] = {item_id, user_id};
    co_dbr r;
    co_db_status st;

    /* Idempotent: a second subscription of the same shopper is the same one.
     * Only while the item has no free units: a restock from zero is what
     * notifies, so a subscription to an item in stock would wait for a sell-out
     * and a restock the shopper never asked about. */
    st = co_db_call(db, &r,
                    "/* subscribe */ WITH item AS (SELECT id, co_item_available(id) AS free"
                    "                FROM items WHERE id = $1),"
                    " ins AS (INSERT INTO stock_subscriptions (item_id, user_id)"
                    "         SELECT id, $2 FROM item WHERE free = 0"
                    "         ON CONFLICT DO NOTHING RETURNING 1)"
                    " SELECT (SELECT count(*) FROM item) AS items,"
                    "        (SELECT count(*) FROM item WHERE free > 0) AS in_stock,"
                    "        (SELECT count(*) FROM ins) AS inserted",
                    2, params);
    if (st == CO_DB_ROWS)
        *out = co_dbr_int(&r, 0, "items") == 0      ? CO_SUBSCRIBED_NO_ITEM
               : co_dbr_int(&r, 0, "in_stock") != 0 ? CO_SUBSCRIBED_IN_STOCK
               : co_dbr_int(&r, 0, "inserted") != 0 ? CO_SUBSCRIBED_NEW
                                                    : CO_SUBSCRIBED_ALREADY;
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_restock(co_db *db, const char *event_id, const char *item_id,
                             long long quantity, co_restocked *out, co_store_refusal *refusal)
{
    char q[24], attempt[37];
    const char *params[4] = {event_id, item_id, q, attempt};
    co_dbr r;
    co_db_status st;

    snprintf(q, sizeof q, "%lld", quantity);
    co_store_new_id(attempt); /* this delivery, in every run of the statement (sql/0013) */
    memset(out, 0, sizeof *out);
    st = co_db_call(db, &r,
                    "SELECT applied, became_available, stock, notified"
                    "  FROM co_restock(p_event_id => $1, p_item_id => $2, p_quantity => $3,"
                    "                  p_attempt => $4)",
                    4, params);
    if (st == CO_DB_ROWS) {
        out->applied = co_dbr_is(&r, 0, "applied");
        out->became_available = co_dbr_is(&r, 0, "became_available");
        out->stock = co_dbr_int(&r, 0, "stock");
        out->notified = co_dbr_int(&r, 0, "notified");
    }
    co_store_refusal_of(&r, refusal);
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_restock_event(co_db *db, const char *event_id, char item_id[37],
                                   long long *quantity)
{
    const char *params[1] = {event_id};
    co_dbr r;
    co_db_status st = co_db_call(db, &r,
                                 "SELECT item_id, quantity FROM co_restock_event(p_event_id => $1)",
                                 1, params);

    if (st == CO_DB_ROWS) {
        co_store_copy(item_id, 37, co_dbr_str(&r, 0, "item_id"));
        *quantity = co_dbr_int(&r, 0, "quantity");
    }
    co_dbr_clear(&r);
    return co_store_rc_of(st);
}

co_store_rc co_store_item_hot_set(co_db *db, const char *item_id, int buckets, char **json,
                                  co_store_refusal *refusal)
{
    char n[16];
    const char *params[2] = {item_id, n};

    snprintf(n, sizeof n, "%d", buckets);
    return co_store_text(db, "SELECT co_hot_set(p_item_id => $1, p_buckets => $2)::text AS hot",
                         2, params, "hot", json, refusal);
}

co_store_rc co_store_item_hot_get(co_db *db, const char *item_id, char **json)
{
    const char *params[1] = {item_id};

    /* No row (CO_STORE_NONE) for an unknown item: co_hot_json is NULL then. */
    return co_store_text(db,
                         "SELECT co_hot_json(id)::text AS hot FROM items WHERE id = $1",
                         1, params, "hot", json, NULL);
}

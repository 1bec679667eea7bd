/* GET /v1/items/{id} (public catalogue read) and
 * POST /v1/items/{id}/back-in-stock (subscribe the shopper, idempotent). */
#include "co_app.h"

#include <string.h>

void co_api_item_get(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37];
    const char *params[1] = {id};
    co_dbr r;
    co_db_status st;

    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
        return;
    }
    st = co_db_call(w->db, &r,
                    "SELECT co_item_json(id)::text FROM items WHERE id = $1",
                    1, params);
    if (st == CO_DB_ROWS)
        co_resp_raw(resp, 200, co_dbr_get(&r, 0, 0), strlen(co_dbr_get(&r, 0, 0)));
    else if (st == CO_DB_NONE)
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
    else
        co_api_db_error(resp, st);
    co_dbr_clear(&r);
}

void co_api_item_subscribe(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], id[37];
    const char *params[2] = {id, user};
    co_dbr r;
    co_db_status st;

    if (!co_api_user(w, req, resp, user))
        return;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
        return;
    }
    /* Idempotent: a second subscription of the same shopper is the same one. */
    st = co_db_call(w->db, &r,
                    "WITH item AS (SELECT id FROM items WHERE id = $1),"
                    " ins AS (INSERT INTO stock_subscriptions (item_id, user_id)"
                    "         SELECT id, $2 FROM item ON CONFLICT DO NOTHING RETURNING 1)"
                    " SELECT (SELECT count(*) FROM item), (SELECT count(*) FROM ins)",
                    2, params);
    if (st != CO_DB_ROWS)
        co_api_db_error(resp, st);
    else if (co_dbr_ll(&r, 0, 0) == 0)
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
    else
        co_resp_json(resp, co_dbr_ll(&r, 0, 1) ? 201 : 200,
                     json_pack("{s:s, s:s, s:b}", "item_id", id, "user_id", user, "subscribed", 1));
    co_dbr_clear(&r);
}

/* GET /v1/items (the catalogue by sku, in pages), GET /v1/items/{id}
 * (public catalogue reads) and
 * POST /v1/items/{id}/back-in-stock (subscribe the shopper, idempotent; 409
 * item_in_stock while the item has free units). */
#include "co_app.h"

#include <stdlib.h>
#include <string.h>

void co_api_item_get(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37];
    char *json = NULL;
    co_store_rc rc;

    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
        return;
    }
    rc = co_store_item_json(w->db, id, &json);
    if (rc == CO_STORE_OK && json != NULL)
        co_resp_raw(resp, 200, json, strlen(json));
    else if (rc == CO_STORE_NONE)
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
    else
        co_api_store_error(resp, rc);
    free(json);
}

void co_api_items_list(co_worker *w, const co_req *req, co_resp *resp)
{
    char after[37];
    const char *starting_after;
    int limit;
    char *json = NULL;
    co_store_refusal refusal = {0};
    co_store_rc rc;

    if (!co_api_page_params(req, resp, "an item id", &limit, after, &starting_after))
        return;
    rc = co_store_items_page(w->db, limit, starting_after, &json, &refusal);
    co_api_page(resp, rc, json, &refusal, "item");
    free(json);
}

void co_api_item_subscribe(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], id[37];
    co_subscribed sub = CO_SUBSCRIBED_NO_ITEM;
    co_store_rc rc;

    if (!co_api_user(w, req, resp, user))
        return;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
        return;
    }
    rc = co_store_subscribe(w->db, id, user, &sub);
    if (rc != CO_STORE_OK)
        co_api_store_error(resp, rc);
    else if (sub == CO_SUBSCRIBED_NO_ITEM)
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
    else if (sub == CO_SUBSCRIBED_IN_STOCK)
        co_resp_error(resp, CO_ERR_item_in_stock, NULL, json_pack("{s:s}", "item_id", id));
    else
        co_resp_json(resp, sub == CO_SUBSCRIBED_NEW ? 201 : 200,
                     json_pack("{s:s, s:s, s:b}", "item_id", id, "user_id", user, "subscribed", 1));
}

/* Hot-item mode of one item (bearer ADMIN_API_KEY), sql/0007_hot_items.sql:
 *
 *   POST /v1/admin/items/{id}/hot  {"buckets": N}   N from 0 to 64
 *   GET  /v1/admin/items/{id}/hot
 *
 * POST spreads the item's free units over N bucket rows so that N
 * reservations can hold a lock at once (0 turns the mode off and merges them
 * back into the item row; the same N again rebalances them evenly). Both
 * answer 200 {"object":"item_hot_mode","item_id","buckets","stock_available",
 * "bucket_stock":[...],"contended_waits"} (POST adds "previous_buckets").
 * Errors, nothing changed: 401 unauthenticated, 404 item_not_found (also for
 * an id that is no uuid), 400 invalid_json, 400 invalid_request naming the
 * field (buckets out of range or not an integer, unknown fields). */
#include "co_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOT_BUCKETS_MAX 64 /* the CHECK of items.hot_buckets */

/* Answers the mode's JSON text, or the store's failure. */
static void answer(co_resp *resp, co_store_rc rc, char *json, const co_store_refusal *refusal,
                   const char *item)
{
    if (rc == CO_STORE_OK && json != NULL)
        co_resp_raw(resp, 200, json, strlen(json));
    else if (rc == CO_STORE_NONE || (refusal && refusal->kind == CO_REFUSAL_NOT_FOUND))
        co_resp_error(resp, CO_ERR_item_not_found, NULL, json_pack("{s:s}", "item_id", item));
    else if (rc == CO_STORE_FAILED && refusal && refusal->kind == CO_REFUSAL_INVALID)
        co_api_bad_field(resp, "buckets", "buckets must be an integer from 0 to 64.");
    else
        co_api_store_error(resp, rc);
}

/* {"buckets": N} and nothing else; on failure answers 400 naming the field. */
static bool parse(json_t *body, co_resp *resp, int *buckets)
{
    const char *key;
    json_t *v;
    json_t *b = json_object_get(body, "buckets");
    char msg[96];

    json_object_foreach(body, key, v) {
        if (strcmp(key, "buckets") != 0) {
            snprintf(msg, sizeof msg, "Unknown field %.60s.", key);
            co_api_bad_field(resp, key, msg);
            return false;
        }
    }
    if (!json_is_integer(b) || json_integer_value(b) < 0 ||
        json_integer_value(b) > HOT_BUCKETS_MAX) {
        co_api_bad_field(resp, "buckets", "buckets must be an integer from 0 to 64.");
        return false;
    }
    *buckets = (int)json_integer_value(b);
    return true;
}

void co_api_admin_item_hot(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37];
    json_t *body;
    int buckets = 0;
    char *json = NULL;
    co_store_refusal refusal;
    co_store_rc rc;

    if (!co_api_admin(w, req, resp))
        return;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
        return;
    }
    body = co_api_body(req, resp);
    if (body == NULL)
        return;
    if (!parse(body, resp, &buckets))
        goto done;
    rc = co_store_item_hot_set(w->db, id, buckets, &json, &refusal);
    answer(resp, rc, json, &refusal, id);
    free(json);
done:
    json_decref(body);
}

void co_api_admin_item_hot_get(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37];
    char *json = NULL;
    co_store_rc rc;

    if (!co_api_admin(w, req, resp))
        return;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, NULL);
        return;
    }
    rc = co_store_item_hot_get(w->db, id, &json);
    answer(resp, rc, json, NULL, id);
    free(json);
}

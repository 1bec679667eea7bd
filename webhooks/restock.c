/* POST /webhooks/restock: a supplier (or warehouse system) adds units.
 *
 * verify Restock-Signature over the raw body (RESTOCK_WEBHOOK_SECRET) ->
 * validate {"event_id","item_id","quantity"} against the table below -> one
 * round trip to co_restock (sql/0002), which adds the units once per event id
 * and, when the item comes back from 0, queues the waiting shoppers'
 * notifications in the same transaction -> answer
 *   200 {"event_id","applied","became_available","stock","notified"}
 * A replayed event id answers 200 with applied:false and changes nothing; the
 * same id with another item or quantity is 422 event_id_reused.
 * Errors (nothing applied): 400 signature_* / invalid_json / invalid_request
 * (naming the field), 404 item_not_found, 503 when Postgres is unreachable. */
#include "co_app.h"
#include "co_log.h"
#include "signature.h"

#include <stdio.h>
#include <string.h>

#define EVENT_ID_MAX 255
#define QUANTITY_MAX 1000000

static const char *const fields[] = {"event_id", "item_id", "quantity"};

/* Checks the body; on failure answers 400 naming the field. */
static bool parse(json_t *body, co_resp *resp, const char **event_id, char item[37],
                  long long *quantity)
{
    const char *key;
    json_t *v;
    json_t *q = json_object_get(body, "quantity");
    const char *id = json_string_value(json_object_get(body, "item_id"));

    json_object_foreach(body, key, v) {
        bool known = false;

        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            known = known || strcmp(key, fields[i]) == 0;
        if (!known) {
            co_api_unknown_field(resp, key);
            return false;
        }
    }
    *event_id = json_string_value(json_object_get(body, "event_id"));
    if (*event_id == NULL || (*event_id)[0] == '\0' || strlen(*event_id) > EVENT_ID_MAX) {
        co_api_bad_field(resp, "event_id", "event_id must be a string of 1 to 255 characters.");
        return false;
    }
    if (id == NULL || !co_api_uuid(id, item)) {
        co_api_bad_field(resp, "item_id", "item_id must be a uuid.");
        return false;
    }
    if (!json_is_integer(q) || json_integer_value(q) < 1 ||
        json_integer_value(q) > QUANTITY_MAX) {
        co_api_bad_field(resp, "quantity", "quantity must be an integer from 1 to 1000000.");
        return false;
    }
    *quantity = json_integer_value(q);
    return true;
}

/* A replayed event id: true when the first restock had this item and quantity
 * (a true replay), false when the id came with another body. A replay whose
 * first cannot be read now counts as the same (it changed nothing either way). */
static bool same_as_first(co_worker *w, const char *event_id, const char *item, long long qty)
{
    char first_item[37] = "";
    long long first_qty = 0;

    if (co_store_restock_event(w->db, event_id, first_item, &first_qty) != CO_STORE_OK)
        return true;
    return strcmp(first_item, item) == 0 && first_qty == qty;
}

void co_webhook_restock(co_worker *w, const co_req *req, co_resp *resp)
{
    json_t *body = NULL;
    const char *event_id = NULL;
    char item[37];
    long long quantity = 0;
    co_restocked done = {0};
    co_store_refusal refusal;
    co_store_rc rc;

    if (!co_webhook_signed(req, "Restock-Signature", req->restock_signature,
                           w->app->cfg.restock_webhook_secret, resp))
        goto done;
    body = co_api_body(req, resp);
    if (body == NULL || !parse(body, resp, &event_id, item, &quantity))
        goto done;
    rc = co_store_restock(w->db, event_id, item, quantity, &done, &refusal);
    {
        co_log_field f[] = {
            CO_LOG_STR("event_id", event_id), CO_LOG_STR("event_type", "restock"),
            CO_LOG_STR("item_id", item), CO_LOG_INT("quantity", quantity),
            CO_LOG_STR("result", rc != CO_STORE_OK ? "refused" : done.applied ? "applied"
                                                                               : "replayed"),
            CO_LOG_INT("notified", rc == CO_STORE_OK ? done.notified : 0),
        };

        CO_LOGF(CO_LOG_DEBUG, "webhook", f, "restock %s of %lld x %s: %s", event_id, quantity,
                item, rc != CO_STORE_OK ? "refused" : done.applied ? "applied" : "replayed");
    }
    if (rc == CO_STORE_OK && !done.applied && !same_as_first(w, event_id, item, quantity)) {
        co_resp_error(resp, CO_ERR_event_id_reused, NULL, json_pack("{s:s}", "event_id", event_id));
    } else if (rc == CO_STORE_OK) {
        co_metric_add(done.applied ? "restock_applied" : "restock_replayed", 1);
        co_resp_json(resp, 200,
                     json_pack("{s:s, s:b, s:b, s:I, s:I}", "event_id", event_id, "applied",
                               done.applied, "became_available", done.became_available,
                               "stock", (json_int_t)done.stock, "notified",
                               (json_int_t)done.notified));
    } else if (refusal.kind == CO_REFUSAL_NOT_FOUND) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, json_pack("{s:s}", "item_id", item));
    } else if (refusal.kind == CO_REFUSAL_INVALID) {
        co_api_bad_field(resp, refusal.detail, "The restock is not valid.");
    } else if (refusal.kind == CO_REFUSAL_RANGE) {
        co_api_bad_field(resp, "quantity", "The item's stock would pass 2147483647 units.");
    } else {
        co_api_store_error(resp, rc);
    }
done:
    co_metric_webhook("restock", resp->status == 200 ? (done.applied ? "applied" : "duplicate")
                                 : resp->status >= 500 ? "retry"
                                                       : "rejected");
    json_decref(body);
}

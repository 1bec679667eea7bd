/* POST /v1/checkout: authenticate -> parse and validate the cart -> the saga
 * decides (states/checkout.c) -> send what it decided. */
#include "co_app.h"
#include "co_sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#define MAX_LINES 100
#define MAX_QUANTITY 1000

/* Validates the body and writes the normalised cart into *items (a new
 * reference). On failure answers 400 naming the field and returns false. */
static bool parse_body(json_t *body, co_resp *resp, json_t **items, const char **pm)
{
    const char *key;
    json_t *v;
    json_t *lines = json_object_get(body, "items");
    json_t *method = json_object_get(body, "payment_method");
    char param[48];

    json_object_foreach(body, key, v) {
        if (strcmp(key, "items") != 0 && strcmp(key, "payment_method") != 0) {
            co_api_unknown_field(resp, key);
            return false;
        }
    }
    if (!json_is_array(lines) || json_array_size(lines) == 0 ||
        json_array_size(lines) > MAX_LINES) {
        co_api_bad_field(resp, "items", "items must be an array of 1 to 100 lines.");
        return false;
    }
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *line = json_array_get(lines, i);
        json_t *id = json_object_get(line, "item_id");
        json_t *q = json_object_get(line, "quantity");
        char uuid[37];

        if (!json_is_object(line) || json_object_size(line) != 2) {
            snprintf(param, sizeof param, "items[%zu]", i);
            co_api_bad_field(resp, param, "Each line is {\"item_id\": uuid, \"quantity\": n}.");
            return false;
        }
        if (!json_is_string(id) || !co_api_uuid(json_string_value(id), uuid)) {
            snprintf(param, sizeof param, "items[%zu].item_id", i);
            co_api_bad_field(resp, param, "item_id must be a uuid.");
            return false;
        }
        if (!json_is_integer(q) || json_integer_value(q) < 1 ||
            json_integer_value(q) > MAX_QUANTITY) {
            snprintf(param, sizeof param, "items[%zu].quantity", i);
            co_api_bad_field(resp, param, "quantity must be an integer from 1 to 1000.");
            return false;
        }
    }
    *pm = NULL;
    if (method != NULL && !json_is_null(method)) {
        const char *s = json_string_value(method);
        if (s == NULL || strncmp(s, "pm_", 3) != 0 || strlen(s) > 255 ||
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
                strlen(s)) {
            co_api_bad_field(resp, "payment_method", "payment_method must be a pm_... id.");
            return false;
        }
        *pm = s;
    }
    *items = json_incref(lines);
    return true;
}

static bool key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;

    if (n == 0 || n > 255)
        return false;
    /* Printable ASCII only: Stripe's rule, and nothing the database or a log
     * line could choke on. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

/* Sends what the saga decided. */
static void render(const co_checkout_result *r, co_resp *resp)
{
    switch (r->kind) {
    case CO_CHECKOUT_ANSWERED:
        co_resp_raw(resp, r->answer.code, r->answer.body, strlen(r->answer.body));
        resp->replayed = r->replayed;
        break;
    case CO_CHECKOUT_REUSED:
        co_resp_error(resp, CO_ERR_idempotency_key_reused, NULL, NULL);
        break;
    case CO_CHECKOUT_IN_PROGRESS:
        co_resp_error(resp, CO_ERR_request_in_progress, NULL,
                      json_pack("{s:s}", "order_id", r->order_id));
        break;
    case CO_CHECKOUT_UNDECIDED:
        co_resp_error(resp, CO_ERR_service_unavailable,
                      "The checkout is still being processed; retry with the same "
                      "Idempotency-Key.", json_pack("{s:s}", "order_id", r->order_id));
        break;
    case CO_CHECKOUT_LIMITED:
        co_resp_error(resp, CO_ERR_reservation_limit,
                      "You hold too many units in unpaid reservations; pay or cancel one, or "
                      "wait for one to lapse.", NULL);
        resp->retry_after = (unsigned)r->retry_after;
        break;
    case CO_CHECKOUT_REFUSED:
        if (r->refusal.kind == CO_REFUSAL_NOT_FOUND)
            co_resp_error(resp, CO_ERR_item_not_found, NULL,
                          json_pack("{s:s}", "item_id", r->refusal.detail));
        else if (r->refusal.kind == CO_REFUSAL_INVALID)
            co_api_bad_field(resp, r->refusal.detail, "The cart is not valid.");
        else
            co_api_store_error(resp, CO_STORE_FAILED);
        break;
    default:
        co_api_store_error(resp, r->rc);
        break;
    }
}

/* The result /metrics counts an answer under: confirmed, awaiting_payment,
 * or its error code. */
static void count_answer(const co_req *req, const co_resp *resp)
{
    json_t *body = resp->status >= 400 ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(body, "error"), "code"));

    co_metric_checkout(resp->status == 201   ? "confirmed"
                       : resp->status == 202 ? "awaiting_payment"
                                             : code,
                       resp->status, resp->replayed, req->received_us);
    json_decref(body);
}

void co_api_checkout(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], order_id[37], hash[65];
    json_t *body = NULL;
    json_t *items = NULL;
    char *items_text = NULL;
    const char *pm = NULL;
    uuid_t u;
    co_checkout_result result;

    unsigned wait = 0;

    if (!co_api_user(w, req, resp, user))
        goto done;
    if (!co_ratelimit_take(w->app->checkout_rate, user, &wait)) {
        co_metric_add("checkout_rate_limited", 1);
        co_resp_error(resp, CO_ERR_rate_limited, NULL, NULL);
        resp->retry_after = wait;
        goto done;
    }
    if (!key_ok(req->idempotency_key)) {
        co_api_bad_field(resp, "Idempotency-Key",
                         "Send an Idempotency-Key header of 1 to 255 printable characters.");
        goto done;
    }
    body = co_api_body(req, resp);
    if (body == NULL || !parse_body(body, resp, &items, &pm))
        goto done;
    items_text = json_dumps(items, JSON_COMPACT);
    co_sha256_hex(req->body, req->body_len, hash);
    uuid_generate_random(u);
    uuid_unparse_lower(u, order_id);
    {
        co_checkout_args a = {
            .user_id = user, .idempotency_key = req->idempotency_key, .request_hash = hash,
            .order_id = order_id, .items_json = items_text, .mobile = pm == NULL,
            .payment_method = pm, .ttl_seconds = w->app->cfg.reservation_ttl_seconds,
            .lease_seconds = w->app->cfg.lease_seconds, .owner = w->app->owner,
            .max_unpaid_units = w->app->cfg.max_unpaid_units,
        };
        co_saga_checkout(&w->saga, &a, &result);
    }
    render(&result, resp);
    co_checkout_result_clear(&result);
done:
    count_answer(req, resp);
    free(items_text);
    json_decref(items);
    json_decref(body);
}

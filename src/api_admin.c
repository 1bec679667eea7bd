/* Admin endpoints (bearer ADMIN_API_KEY): create items, read any order, list
 * orders in Stripe-style pages. */
#include "co_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool str_field(json_t *body, const char *name, size_t max, const char **out,
                      co_resp *resp)
{
    json_t *v = json_object_get(body, name);
    char msg[96];

    *out = json_string_value(v);
    if (*out == NULL || (*out)[0] == '\0' || strlen(*out) > max) {
        snprintf(msg, sizeof msg, "%s must be a string of 1 to %zu characters.", name, max);
        co_api_bad_field(resp, name, msg);
        return false;
    }
    return true;
}

static bool int_field(json_t *body, const char *name, long long min, long long max,
                      long long *out, co_resp *resp)
{
    json_t *v = json_object_get(body, name);
    char msg[96];

    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(msg, sizeof msg, "%s must be an integer from %lld to %lld.", name, min, max);
        co_api_bad_field(resp, name, msg);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

void co_api_admin_item_create(co_worker *w, const co_req *req, co_resp *resp)
{
    json_t *body;
    const char *sku, *name, *currency;
    long long price, stock;

    if (!co_api_admin(w, req, resp))
        return;
    body = co_api_body(req, resp);
    if (body == NULL)
        return;
    if (!str_field(body, "sku", 64, &sku, resp) || !str_field(body, "name", 200, &name, resp) ||
        !int_field(body, "price", 1, 100000000000LL, &price, resp) ||
        !str_field(body, "currency", 3, &currency, resp) ||
        !int_field(body, "stock", 0, 1000000, &stock, resp))
        goto done;
    if (strlen(currency) != 3 || strspn(currency, "abcdefghijklmnopqrstuvwxyz") != 3) {
        co_api_bad_field(resp, "currency", "currency must be a lower-case ISO code, e.g. usd.");
        goto done;
    }
    {
        co_item_new item = {.sku = sku, .name = name, .currency = currency, .price = price,
                            .stock = stock};
        co_store_refusal refusal;
        char *json = NULL;
        co_store_rc rc = co_store_item_create(w->db, &item, &json, &refusal);

        if (rc == CO_STORE_OK && json != NULL)
            co_resp_raw(resp, 201, json, strlen(json));
        else if (rc == CO_STORE_FAILED && refusal.kind == CO_REFUSAL_DUPLICATE)
            co_resp_error(resp, co_store_refusal_err(refusal.kind), NULL,
                          json_pack("{s:s}", "sku", sku));
        else
            co_api_store_error(resp, rc);
        free(json);
    }
done:
    json_decref(body);
}

void co_api_admin_order_get(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37];

    if (!co_api_admin(w, req, resp))
        return;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return;
    }
    co_api_order(w, resp, id, NULL, 200);
}

void co_api_admin_orders(co_worker *w, const co_req *req, co_resp *resp)
{
    char after[37];
    long limit = 10;
    const char *starting_after = NULL;
    char *json = NULL;
    co_store_refusal refusal;
    co_store_rc rc;

    if (!co_api_admin(w, req, resp))
        return;
    if (req->q_limit != NULL) {
        char *end = NULL;
        limit = strtol(req->q_limit, &end, 10);
        if (*req->q_limit == '\0' || *end != '\0' || limit < 1 || limit > 100) {
            co_api_bad_field(resp, "limit", "limit must be an integer from 1 to 100.");
            return;
        }
    }
    if (req->q_status != NULL && co_state_parse(req->q_status) == CO_ST_NONE) {
        co_api_bad_field(resp, "status", "status must be one of the order statuses.");
        return;
    }
    if (req->q_starting_after != NULL) {
        if (!co_api_uuid(req->q_starting_after, after)) {
            co_api_bad_field(resp, "starting_after", "starting_after must be an order id.");
            return;
        }
        starting_after = after;
    }
    rc = co_store_orders_page(w->db, req->q_status, (int)limit, starting_after, &json, &refusal);
    if (rc == CO_STORE_OK && json != NULL)
        co_resp_raw(resp, 200, json, strlen(json));
    else if (rc == CO_STORE_FAILED && refusal.kind == CO_REFUSAL_INVALID)
        co_api_bad_field(resp, "starting_after", "No order has this id.");
    else
        co_api_store_error(resp, rc);
    free(json);
}

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
    char p[24], s[24];
    co_dbr r;
    co_db_status st;

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
    snprintf(p, sizeof p, "%lld", price);
    snprintf(s, sizeof s, "%lld", stock);
    {
        const char *params[5] = {sku, name, p, currency, s};
        st = co_db_call(w->db, &r,
                        "SELECT co_item_json(co_create_item($1, $2, $3, $4, $5))::text",
                        5, params);
    }
    if (st == CO_DB_ROWS)
        co_resp_raw(resp, 201, co_dbr_get(&r, 0, 0), strlen(co_dbr_get(&r, 0, 0)));
    else if (st == CO_DB_HARD && strcmp(r.sqlstate, "23505") == 0)
        co_resp_error(resp, CO_ERR_sku_exists, NULL, json_pack("{s:s}", "sku", sku));
    else
        co_api_db_error(resp, st);
    co_dbr_clear(&r);
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
    char lim[8] = "10";
    const char *params[3] = {req->q_status, lim, NULL};
    co_dbr r;
    co_db_status st;

    if (!co_api_admin(w, req, resp))
        return;
    if (req->q_limit != NULL) {
        char *end = NULL;
        long n = strtol(req->q_limit, &end, 10);
        if (*req->q_limit == '\0' || *end != '\0' || n < 1 || n > 100) {
            co_api_bad_field(resp, "limit", "limit must be an integer from 1 to 100.");
            return;
        }
        snprintf(lim, sizeof lim, "%ld", n);
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
        params[2] = after;
    }
    st = co_db_call(w->db, &r, "SELECT co_orders_page($1, $2, $3)::text", 3, params);
    if (st == CO_DB_ROWS)
        co_resp_raw(resp, 200, co_dbr_get(&r, 0, 0), strlen(co_dbr_get(&r, 0, 0)));
    else if (st == CO_DB_HARD && strcmp(r.sqlstate, "CK400") == 0)
        co_api_bad_field(resp, "starting_after", "No order has this id.");
    else
        co_api_db_error(resp, st);
    co_dbr_clear(&r);
}

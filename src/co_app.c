/* Worker contexts, the route table, and what every handler shares. */
#include "co_app.h"

#include "co_jwt.h"
#include "co_log.h"
#include "co_sig.h"
#include "pay_stripe.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

const co_route co_routes[] = {
    {"GET", "/healthz", co_api_healthz, true},
    {"GET", "/readyz", co_api_readyz, false},
    {"GET", "/metrics", co_api_metrics, false},
    {"POST", "/v1/checkout", co_api_checkout, false},
    {"GET", "/v1/orders", co_api_orders_list, false},
    {"GET", "/v1/orders/*", co_api_order_get, false},
    {"POST", "/v1/orders/*/cancel", co_api_order_cancel, false},
    {"POST", "/v1/orders/*/confirm", co_api_order_confirm, false},
    {"GET", "/v1/items", co_api_items_list, false},
    {"GET", "/v1/items/*", co_api_item_get, false},
    {"POST", "/v1/items/*/back-in-stock", co_api_item_subscribe, false},
    {"POST", "/v1/admin/items", co_api_admin_item_create, false},
    {"GET", "/v1/admin/items/*/hot", co_api_admin_item_hot_get, false},
    {"POST", "/v1/admin/items/*/hot", co_api_admin_item_hot, false},
    {"GET", "/v1/admin/orders", co_api_admin_orders, false},
    {"GET", "/v1/admin/orders/*", co_api_admin_order_get, false},
    {"POST", "/v1/admin/orders/*/drive", co_api_admin_order_drive, false},
    {"POST", "/v1/admin/orders/*/resolve", co_api_admin_order_resolve, false},
    {"GET", "/v1/admin/overview", co_api_admin_overview, false},
    {"GET", "/admin", co_api_admin_page, false},
    {"GET", "/admin/*", co_api_admin_asset, false},
    {"POST", "/webhooks/stripe", co_webhook_stripe, false},
    {"POST", "/webhooks/restock", co_webhook_restock, false},
    {NULL, NULL, NULL, false},
};

co_worker *co_worker_new(void *p)
{
    co_app *app = p;
    co_worker *w = calloc(1, sizeof *w);
    co_stripe_config sc = {
        .api_base = app->cfg.stripe_api_base,
        .secret_key = app->cfg.stripe_secret_key,
        .timeout_ms = app->cfg.stripe_timeout_ms,
        .max_retries = app->cfg.stripe_max_retries,
    };

    if (w == NULL)
        return NULL;
    w->app = app;
    w->db = app->db;
    w->stripe = co_stripe_new(&sc);
    if (w->db == NULL || w->stripe == NULL) {
        co_worker_free(w);
        return NULL;
    }
    w->saga.store = co_store_port_pg(w->db);
    w->saga.pay = co_pay_port_stripe(w->stripe);
    w->saga.owner = app->owner;
    w->saga.lease_seconds = app->cfg.lease_seconds;
    w->saga.crash_at = app->cfg.crash_at;
    w->saga.memo = &app->memo;
    return w;
}

void co_worker_free(co_worker *w)
{
    if (w == NULL)
        return;
    co_stripe_free(w->stripe);
    free(w);
}

bool co_api_user(co_worker *w, const co_req *req, co_resp *resp, char user[37])
{
    co_jwt_claims claims;
    co_jwt_result r;
    char msg[96];

    if (req->authorization == NULL || strncasecmp(req->authorization, "Bearer ", 7) != 0) {
        co_resp_error(resp, CO_ERR_unauthenticated, "Send Authorization: Bearer <token>.", NULL);
        return false;
    }
    r = co_jwt_verify(req->authorization + 7, w->app->cfg.auth_jwt_secret, time(NULL), &claims);
    if (r != CO_JWT_OK) {
        snprintf(msg, sizeof msg, "The bearer token is not valid (%s).", co_jwt_result_name(r));
        co_resp_error(resp, CO_ERR_unauthenticated, msg, NULL);
        return false;
    }
    memcpy(user, claims.sub, 37);
    return true;
}

bool co_api_is_admin(co_worker *w, const co_req *req)
{
    const char *key = w->app->cfg.admin_api_key;

    return req->authorization != NULL && strncasecmp(req->authorization, "Bearer ", 7) == 0 &&
           co_const_eq(req->authorization + 7, strlen(req->authorization + 7), key, strlen(key));
}

bool co_api_admin(co_worker *w, const co_req *req, co_resp *resp)
{
    if (!co_api_is_admin(w, req)) {
        co_resp_error(resp, CO_ERR_unauthenticated, "Send Authorization: Bearer <ADMIN_API_KEY>.",
                      NULL);
        return false;
    }
    return true;
}

json_t *co_api_body(const co_req *req, co_resp *resp)
{
    json_error_t e;
    json_t *j;
    char msg[256];

    if (req->body == NULL || req->body_len == 0) {
        co_resp_error(resp, CO_ERR_invalid_json, "The body is empty; send a JSON object.", NULL);
        return NULL;
    }
    j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        snprintf(msg, sizeof msg, "The body is not valid JSON: %s (at character %d).", e.text,
                 e.position);
        co_resp_error(resp, CO_ERR_invalid_json, msg, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        co_api_bad_field(resp, "body", "The body must be a JSON object.");
        return NULL;
    }
    return j;
}

bool co_api_uuid(const char *s, char out[37])
{
    uuid_t u;

    if (s == NULL || strlen(s) != 36 || uuid_parse(s, u) != 0)
        return false;
    uuid_unparse_lower(u, out);
    return true;
}

void co_api_bad_field(co_resp *resp, const char *param, const char *message)
{
    char *p = co_utf8_clean(param, 128);

    co_resp_error(resp, CO_ERR_invalid_request, message,
                  p ? json_pack("{s:s}", "param", p) : NULL);
    free(p);
}

void co_api_unknown_field(co_resp *resp, const char *key)
{
    char *name = co_utf8_clean(key, 60);
    char msg[128];

    snprintf(msg, sizeof msg, "Unknown field %s.", name ? name : "");
    co_api_bad_field(resp, key, msg);
    free(name);
}

void co_api_store_error(co_resp *resp, co_store_rc rc)
{
    co_resp_error(resp, rc == CO_STORE_RETRY ? CO_ERR_service_unavailable : CO_ERR_internal_error,
                  NULL, NULL);
}

void co_api_order(co_worker *w, co_resp *resp, const char *order_id, const char *user_or_null,
                  unsigned status)
{
    char *json = NULL;
    co_store_rc rc = co_store_order_json(w->db, order_id, user_or_null, &json);

    if (rc == CO_STORE_OK && json != NULL)
        co_resp_raw(resp, status, json, strlen(json));
    else if (rc == CO_STORE_NONE)
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
    else
        co_api_store_error(resp, rc);
    free(json);
}

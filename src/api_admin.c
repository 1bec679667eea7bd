/* Admin endpoints (bearer ADMIN_API_KEY): create items, read any order, list
 * orders in Stripe-style pages with the operator's filters, and the operator's
 * moves on a stuck order (drive, resolve: what they may do is the saga's,
 * states/orders.c). */
#include "co_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Answers with the admin order (the order and its lease), or 404. */
static void admin_order(co_worker *w, co_resp *resp, const char *id)
{
    char *json = NULL;
    co_store_rc rc = co_store_admin_order_json(w->db, id, &json);

    if (rc == CO_STORE_OK && json != NULL)
        co_resp_raw(resp, 200, json, strlen(json));
    else if (rc == CO_STORE_NONE)
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
    else
        co_api_store_error(resp, rc);
    free(json);
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
    admin_order(w, resp, id);
}

/* status=a,b,...: every name a status, each once, into a text[] literal. */
static bool statuses_param(const char *q, char *out, size_t n, co_resp *resp)
{
    bool seen[CO_ST_REFUNDED + 1] = {false};
    const char *p = q;
    size_t len = 0;

    while (true) {
        const char *comma = strchr(p, ',');
        size_t seg = comma ? (size_t)(comma - p) : strlen(p);
        char name[24];
        co_state st = CO_ST_NONE;

        if (seg > 0 && seg < sizeof name) {
            memcpy(name, p, seg);
            name[seg] = '\0';
            st = co_state_parse(name);
        }
        if (st == CO_ST_NONE) {
            co_api_bad_field(resp, "status",
                             "status must be one or more order statuses, comma-separated.");
            return false;
        }
        seen[st] = true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    len += (size_t)snprintf(out, n, "{");
    for (int st = 0; st <= CO_ST_REFUNDED && len < n; st++)
        if (seen[st])
            len += (size_t)snprintf(out + len, n - len, "%s\"%s\"", len > 1 ? "," : "",
                                    co_state_name((co_state)st));
    if (len < n)
        snprintf(out + len, n - len, "}");
    return true;
}

/* created_before: an RFC 3339 UTC timestamp (2026-12-01T12:00:00Z, optionally
 * with a fraction of a second) naming a real instant. */
static bool timestamp_param(const char *q)
{
    struct tm tm = {0}, back;
    int y, mo, d, h, mi, sec, used = 0;
    const char *rest;
    time_t t;

    if (strlen(q) < 20 || strspn(q, "0123456789") != 4 || q[4] != '-' || q[7] != '-' ||
        (q[10] != 'T' && q[10] != 't') || q[13] != ':' || q[16] != ':')
        return false;
    if (sscanf(q, "%4d-%2d-%2d%*c%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
        used != 19 || y < 1) /* Postgres has no year 0 */
        return false;
    rest = q + 19;
    if (*rest == '.') {
        size_t digits = strspn(rest + 1, "0123456789");
        if (digits == 0 || digits > 6)
            return false;
        rest += 1 + digits;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "z") != 0)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    return gmtime_r(&t, &back) != NULL && back.tm_year == y - 1900 && back.tm_mon == mo - 1 &&
           back.tm_mday == d && back.tm_hour == h && back.tm_min == mi && back.tm_sec == sec;
}

void co_api_admin_orders(co_worker *w, const co_req *req, co_resp *resp)
{
    char after[37], statuses[256];
    co_orders_filter f = {0};
    char *json = NULL;
    co_store_refusal refusal = {0};
    co_store_rc rc;

    if (!co_api_admin(w, req, resp))
        return;
    if (!co_api_page_params(req, resp, "an order id", &f.limit, after, &f.starting_after))
        return;
    if (req->q_status != NULL) {
        if (!statuses_param(req->q_status, statuses, sizeof statuses, resp))
            return;
        f.statuses = statuses;
    }
    if (req->q_created_before != NULL) {
        if (!timestamp_param(req->q_created_before)) {
            co_api_bad_field(resp, "created_before",
                             "created_before must be an RFC 3339 UTC timestamp, "
                             "e.g. 2026-12-01T12:00:00Z.");
            return;
        }
        f.created_before = req->q_created_before;
    }
    if (req->q_lease != NULL) {
        if (strcmp(req->q_lease, "held") != 0 && strcmp(req->q_lease, "lapsed") != 0 &&
            strcmp(req->q_lease, "none") != 0) {
            co_api_bad_field(resp, "lease", "lease must be held, lapsed or none.");
            return;
        }
        f.lease = req->q_lease;
    }
    rc = co_store_orders_page(w->db, &f, &json, &refusal);
    co_api_page(resp, rc, json, &refusal, "order");
    free(json);
}

/* The order of the path for an operator's move, or an answer already given. */
static bool admin_which(co_worker *w, const co_req *req, co_resp *resp, char id[37])
{
    if (!co_api_admin(w, req, resp))
        return false;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return false;
    }
    return true;
}

/* Answers an operator's move that was not made. */
static void admin_refused(co_resp *resp, co_order_result res, const co_order *o,
                          const char *why)
{
    switch (res) {
    case CO_ORDER_NOT_FOUND:
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return;
    case CO_ORDER_LEASED:
        co_resp_error(resp, CO_ERR_order_in_progress,
                      "Another process holds the order's lease; it is being driven, or "
                      "recovery retries it once the lease lapses (lease_expires_at).",
                      json_pack("{s:s, s:s}", "order_id", o->id, "status",
                                co_state_name(o->status)));
        return;
    case CO_ORDER_ENDED:
        co_resp_error(resp, CO_ERR_order_terminal, NULL,
                      json_pack("{s:s, s:s}", "order_id", o->id, "status",
                                co_state_name(o->status)));
        return;
    case CO_ORDER_UNRESOLVED:
        co_resp_error(resp, CO_ERR_cannot_resolve, why,
                      json_pack("{s:s, s:s}", "order_id", o->id, "status",
                                co_state_name(o->status)));
        return;
    default:
        co_api_store_error(resp, CO_STORE_RETRY);
        return;
    }
}

void co_api_admin_order_drive(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37];
    co_order o;
    co_order_result res;

    if (!admin_which(w, req, resp, id))
        return;
    if (req->body_len > 0) {
        json_t *body = co_api_body(req, resp);
        const char *key;
        json_t *v;

        if (body == NULL)
            return;
        json_object_foreach(body, key, v) {
            (void)v;
            co_api_unknown_field(resp, key);
            json_decref(body);
            return;
        }
        json_decref(body);
    }
    res = co_saga_drive_now(&w->saga, id, &o);
    if (res != CO_ORDER_DONE) {
        admin_refused(resp, res, &o, NULL);
        return;
    }
    admin_order(w, resp, id);
}

/* Characters (not bytes) of a valid UTF-8 string. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

void co_api_admin_order_resolve(co_worker *w, const co_req *req, co_resp *resp)
{
    char id[37], why[512];
    json_t *body, *v;
    const char *key, *reason;
    co_order o;
    co_order_result res;

    if (!admin_which(w, req, resp, id))
        return;
    body = co_api_body(req, resp);
    if (body == NULL)
        return;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "reason") != 0) {
            co_api_unknown_field(resp, key);
            goto done;
        }
    }
    reason = json_string_value(json_object_get(body, "reason"));
    if (reason == NULL || reason[0] == '\0' || utf8_chars(reason) > 500) {
        co_api_bad_field(resp, "reason", "reason must be a string of 1 to 500 characters.");
        goto done;
    }
    res = co_saga_resolve(&w->saga, id, reason, &o, why, sizeof why);
    if (res != CO_ORDER_DONE)
        admin_refused(resp, res, &o, why);
    else
        admin_order(w, resp, id);
done:
    json_decref(body);
}

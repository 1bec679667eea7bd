/* POST /v1/checkout: parse -> validate -> idempotency + order + reservation
 * (one round trip) -> drive the saga -> answer what the saga stored. */
#include "co_app.h"
#include "co_log.h"
#include "co_store.h"

#include <openssl/evp.h>
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
            char msg[128];
            snprintf(msg, sizeof msg, "Unknown field %.60s.", key);
            co_api_bad_field(resp, key, msg);
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

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";

    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
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

/* Maps a refused cart (raised by the stock functions) to the API. */
static void cart_refused(co_resp *resp, const co_checkout_begun *b, co_db_status st)
{
    if (strcmp(b->sqlstate, "CK404") == 0) {
        co_resp_error(resp, CO_ERR_item_not_found, NULL, json_pack("{s:s}", "item_id", b->detail));
    } else if (strcmp(b->sqlstate, "CK400") == 0) {
        co_api_bad_field(resp, b->detail, "The cart is not valid.");
    } else {
        co_api_db_error(resp, st);
    }
}

/* The key's first request has no stored answer. Usually it is still running:
 * 409. But an order that has ended (e.g. out of stock, and the server died
 * before storing that answer) will not be moved again, so its answer is
 * rendered from its state and stored now, once. */
static void answer_decided(co_worker *w, co_resp *resp, const char *order_id)
{
    co_order o;
    unsigned status;
    char *answer = NULL;

    if (co_store_load_order(w->db, order_id, &o) == CO_DB_ROWS && co_state_terminal(o.status) &&
        o.answer_pending && co_saga_answer(&o, &status, &answer) &&
        co_store_checkout_respond(w->db, o.id, status, answer) == CO_DB_ROWS) {
        co_resp_raw(resp, status, answer, strlen(answer));
        resp->replayed = true;
        free(answer);
        return;
    }
    free(answer);
    co_resp_error(resp, CO_ERR_request_in_progress, NULL, json_pack("{s:s}", "order_id", order_id));
}

void co_api_checkout(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], order_id[37], hash[65];
    json_t *body = NULL;
    json_t *items = NULL;
    char *items_text = NULL;
    const char *pm = NULL;
    uuid_t u;
    co_checkout_begun b;
    co_db_status st;
    co_order o;
    co_saga *saga = &w->saga;

    memset(&b, 0, sizeof b);
    if (!co_api_user(w, req, resp, user))
        return;
    if (!key_ok(req->idempotency_key)) {
        co_api_bad_field(resp, "Idempotency-Key",
                         "Send an Idempotency-Key header of 1 to 255 printable characters.");
        return;
    }
    body = co_api_body(req, resp);
    if (body == NULL || !parse_body(body, resp, &items, &pm))
        goto done;
    items_text = json_dumps(items, JSON_COMPACT);
    sha256_hex(req->body, req->body_len, hash);
    uuid_generate_random(u);
    uuid_unparse_lower(u, order_id);

    {
        co_checkout_args a = {
            .user_id = user, .idempotency_key = req->idempotency_key, .request_hash = hash,
            .order_id = order_id, .items_json = items_text, .mobile = pm == NULL,
            .payment_method = pm, .ttl_seconds = w->app->cfg.reservation_ttl_seconds,
            .lease_seconds = w->app->cfg.lease_seconds, .owner = w->app->owner,
        };
        st = co_store_checkout_begin(w->db, &a, &b);
    }
    if (st != CO_DB_ROWS) {
        cart_refused(resp, &b, st);
        goto done;
    }
    if (strcmp(b.outcome, "replay") == 0) {
        co_resp_raw(resp, b.response_status, b.response_body, strlen(b.response_body));
        resp->replayed = true;
        goto done;
    }
    if (strcmp(b.outcome, "reused") == 0) {
        co_resp_error(resp, CO_ERR_idempotency_key_reused, NULL, NULL);
        goto done;
    }
    co_saga_reset(saga);
    if (strcmp(b.outcome, "in_progress") == 0) {
        /* The key's order is the one this request made: its first run of
         * co_checkout_begin committed and the reply was lost with the
         * connection (co_db_call ran it again). Carry on with that order. */
        if (strcmp(b.order_id, order_id) == 0 &&
            co_store_load_order(w->db, order_id, &o) == CO_DB_ROWS &&
            o.status == CO_ST_RESERVED)
            goto drive;
        answer_decided(w, resp, b.order_id);
        goto done;
    }

    /* The order exists: its first answer is stored before it is sent. */
    memset(&o, 0, sizeof o);
    memcpy(o.id, order_id, sizeof o.id);
    memcpy(o.user_id, user, sizeof o.user_id);
    o.mobile = pm == NULL;
    snprintf(o.payment_method, sizeof o.payment_method, "%s", pm ? pm : "");
    o.amount = b.amount;
    snprintf(o.currency, sizeof o.currency, "%s", b.currency);
    snprintf(o.expires_at, sizeof o.expires_at, "%s", b.expires_at);
    o.compensate_to = CO_ST_NONE;
    o.answer_pending = true;
    if (strcmp(b.outcome, "out_of_stock") == 0) {
        unsigned status;
        char *answer = NULL;

        o.status = CO_ST_FAILED;
        snprintf(o.failure_code, sizeof o.failure_code, "out_of_stock");
        snprintf(o.failure_detail, sizeof o.failure_detail, "%s", b.short_item);
        co_metric_add("checkout_out_of_stock", 1);
        co_saga_crash_point(saga, "before_out_of_stock_answer");
        if (co_saga_answer(&o, &status, &answer)) {
            (void)co_store_checkout_respond(w->db, o.id, status, answer);
            co_resp_raw(resp, status, answer, strlen(answer));
        }
        free(answer);
        goto done;
    }
    o.status = CO_ST_RESERVED;
    o.stock_held = true;
drive:
    co_saga_crash_point(saga, "after_reserve");
    (void)co_saga_drive(saga, &o, CO_DRIVE_FORWARD);
    co_saga_crash_point(saga, "before_answer");
    if (saga->answer_body == NULL) {
        /* Decided by another driver of this order (recovery elsewhere) or by
         * a statement whose reply was lost: the stored answer is the answer. */
        char *stored = NULL;
        unsigned status = 0;
        if (co_store_checkout_answer(w->db, o.id, &status, &stored) == CO_DB_ROWS) {
            saga->answer_body = stored;
            saga->answer_status = status;
        }
    }
    if (saga->answer_body != NULL) {
        co_resp_raw(resp, saga->answer_status, saga->answer_body, strlen(saga->answer_body));
        co_metric_add(o.status == CO_ST_CONFIRMED ? "checkout_confirmed" : "checkout_other", 1);
    } else {
        /* Not decided now (the store or provider is unreachable): recovery
         * finishes the order; the same Idempotency-Key then gets the answer. */
        co_resp_error(resp, CO_ERR_service_unavailable,
                      "The checkout is still being processed; retry with the same "
                      "Idempotency-Key.", json_pack("{s:s}", "order_id", o.id));
    }

done:
    free(b.response_body);
    free(items_text);
    json_decref(items);
    json_decref(body);
}

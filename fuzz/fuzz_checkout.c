/* The checkout body: POST /v1/checkout's bytes -> co_api_body (src/co_app.c:
 * JSON, an object) -> parse_body (src/api_checkout.c: the cart).
 *
 * Input: the raw request body (the HTTP layer refuses more than 64 KiB, so
 * larger inputs are skipped).
 * Properties:
 *   - the body is refused exactly when an independent reading of the contract
 *     refuses it (README "HTTP API": only items and payment_method; 1 to 100
 *     lines of exactly {item_id: uuid, quantity: 1..1000}; payment_method
 *     absent, null or pm_ followed by [A-Za-z0-9_], at most 255 bytes);
 *   - a refusal is a 400 invalid_json or invalid_request (naming a param)
 *     whose body is one valid JSON object, however odd the field names;
 *   - an accepted cart is the body's own items array, and its compact JSON
 *     (what co_checkout_begin receives) reads back as the same value. */
#include "../src/api_checkout.c"

#include "fuzz.h"

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];

        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static bool line_ok(json_t *line)
{
    json_t *id = json_object_get(line, "item_id");
    json_t *q = json_object_get(line, "quantity");

    return json_is_object(line) && json_object_size(line) == 2 && json_is_string(id) &&
           is_uuid(json_string_value(id)) && json_is_integer(q) &&
           json_integer_value(q) >= 1 && json_integer_value(q) <= 1000;
}

static bool method_ok(json_t *m)
{
    const char *s = json_string_value(m);
    size_t n;

    if (m == NULL || json_is_null(m))
        return true;
    if (s == NULL)
        return false;
    n = strlen(s);
    if (n < 3 || n > 255 || memcmp(s, "pm_", 3) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* The contract, read independently of parse_body. */
static bool cart_ok(json_t *body)
{
    json_t *items = json_object_get(body, "items");
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        if (strcmp(key, "items") != 0 && strcmp(key, "payment_method") != 0)
            return false;
    }
    if (!json_is_array(items) || json_array_size(items) < 1 || json_array_size(items) > 100)
        return false;
    for (size_t i = 0; i < json_array_size(items); i++)
        if (!line_ok(json_array_get(items, i)))
            return false;
    return method_ok(json_object_get(body, "payment_method"));
}

static void check_accepted(json_t *body, json_t *items, const char *pm)
{
    json_t *m = json_object_get(body, "payment_method");
    char *text;
    json_t *back;

    FZ_CHECK(items == json_object_get(body, "items"), "items is not the body's array");
    FZ_CHECK(json_is_array(items) && json_array_size(items) >= 1 &&
                 json_array_size(items) <= MAX_LINES,
             "%zu lines", json_array_size(items));
    for (size_t i = 0; i < json_array_size(items); i++)
        FZ_CHECK(line_ok(json_array_get(items, i)), "line %zu", i);
    if (m == NULL || json_is_null(m))
        FZ_CHECK(pm == NULL, "pm %s without a payment_method", pm);
    else
        FZ_CHECK(pm != NULL && strcmp(pm, json_string_value(m)) == 0, "pm differs");
    text = json_dumps(items, JSON_COMPACT);
    FZ_CHECK(text != NULL, "items cannot be dumped");
    back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FZ_CHECK(back != NULL && json_equal(back, items), "items do not read back: %s", text);
    json_decref(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const codes[] = {"invalid_json", "invalid_request", NULL};
    co_req req;
    co_resp resp;
    json_t *body, *items = NULL;
    const char *pm = NULL;
    bool ok;

    if (size > CO_HTTP_BODY_MAX)
        return 0;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.method = "POST";
    req.path = "/v1/checkout";
    req.body = fz_strndup(data, size);
    req.body_len = size;

    body = co_api_body(&req, &resp);
    if (body == NULL) {
        fz_check_error(&resp, codes);
        goto done;
    }
    FZ_CHECK(json_is_object(body) && resp.body == NULL, "co_api_body: object and no answer");
    ok = parse_body(body, &resp, &items, &pm);
    FZ_CHECK(ok == cart_ok(body), "parse_body says %d, the contract %d", ok, !ok);
    if (ok) {
        FZ_CHECK(resp.body == NULL, "an accepted cart has an answer: %s", resp.body);
        check_accepted(body, items, pm);
    } else {
        FZ_CHECK(strcmp(fz_check_error(&resp, codes), "invalid_request") == 0, "not 400");
        FZ_CHECK(items == NULL, "a refused cart has items");
    }
    json_decref(items);
    json_decref(body);
done:
    fz_resp_free(&resp);
    free(req.body);
    return 0;
}

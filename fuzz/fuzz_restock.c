/* The restock body: POST /webhooks/restock's bytes (after the signature) ->
 * co_api_body (src/co_app.c) -> parse (webhooks/restock.c).
 *
 * Input: the raw request body (at most 64 KiB, as the HTTP layer allows).
 * Properties:
 *   - the body is refused exactly when an independent reading of the contract
 *     refuses it (README "POST /webhooks/restock": exactly event_id, a string
 *     of 1 to 255 bytes; item_id, a uuid; quantity, an integer 1..1000000;
 *     no other field);
 *   - an accepted body yields its own event_id, the item id lower-cased and
 *     its quantity;
 *   - a refusal is a 400 invalid_json or invalid_request naming a param, in a
 *     body that is one valid JSON object. */
#include "../webhooks/restock.c"

#include "fuzz.h"

#include <ctype.h>

static bool is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
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

/* The contract, read independently of parse. */
static bool restock_ok(json_t *body)
{
    json_t *ev = json_object_get(body, "event_id");
    json_t *q = json_object_get(body, "quantity");
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        if (strcmp(key, "event_id") != 0 && strcmp(key, "item_id") != 0 &&
            strcmp(key, "quantity") != 0)
            return false;
    }
    return json_is_string(ev) && json_string_length(ev) >= 1 && json_string_length(ev) <= 255 &&
           is_uuid(json_string_value(json_object_get(body, "item_id"))) && json_is_integer(q) &&
           json_integer_value(q) >= 1 && json_integer_value(q) <= 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const codes[] = {"invalid_json", "invalid_request", NULL};
    co_req req;
    co_resp resp;
    json_t *body;
    const char *event_id = NULL;
    char item[37];
    long long quantity = 0;
    bool ok;

    if (size > CO_HTTP_BODY_MAX)
        return 0;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.method = "POST";
    req.path = "/webhooks/restock";
    req.body = fz_strndup(data, size);
    req.body_len = size;

    body = co_api_body(&req, &resp);
    if (body == NULL) {
        fz_check_error(&resp, codes);
        goto done;
    }
    ok = parse(body, &resp, &event_id, item, &quantity);
    FZ_CHECK(ok == restock_ok(body), "parse says %d, the contract %d", ok, !ok);
    if (ok) {
        const char *id = json_string_value(json_object_get(body, "item_id"));

        FZ_CHECK(resp.body == NULL, "an accepted restock has an answer: %s", resp.body);
        FZ_CHECK(event_id == json_string_value(json_object_get(body, "event_id")), "event_id");
        FZ_CHECK(strlen(item) == 36, "item %s", item);
        for (size_t i = 0; i < 36; i++)
            FZ_CHECK(item[i] == tolower((unsigned char)id[i]), "item %s for %s", item, id);
        FZ_CHECK(quantity == json_integer_value(json_object_get(body, "quantity")), "quantity");
    } else {
        FZ_CHECK(strcmp(fz_check_error(&resp, codes), "invalid_request") == 0, "not 400");
    }
    json_decref(body);
done:
    fz_resp_free(&resp);
    free(req.body);
    return 0;
}

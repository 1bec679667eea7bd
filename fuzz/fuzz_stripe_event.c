/* The payment webhook's event: POST /webhooks/stripe's bytes (after the
 * signature) -> co_api_body (src/co_app.c) -> parse_event (webhooks/stripe.c)
 * -> the co_pay_event the saga is given.
 *
 * Input: the raw request body (at most 64 KiB).
 * Properties:
 *   - refused (400 invalid_request naming id, type or data.object, in a body
 *     that is one valid JSON object) exactly when id is not an evt_ id of 1
 *     to 255 printable ASCII characters, type is not such a string, or
 *     data.object is not an object;
 *   - accepted: id and type are the body's own; payment_intent is NULL or a
 *     printable id, the object's own id when it is a payment_intent, else its
 *     payment_intent field; order_id is NULL or the lower-cased uuid of
 *     metadata.order_id (NULL exactly when that is no uuid); decline_code is
 *     NULL or a printable string under 64 bytes taken from
 *     last_payment_error.decline_code, else .code. */
#include "../webhooks/stripe.c"

#include "fuzz.h"

#include <ctype.h>

static bool printable_id(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static void check_event(json_t *body, const co_pay_event *ev)
{
    json_t *obj = json_object_get(json_object_get(body, "data"), "object");
    json_t *lpe = json_object_get(obj, "last_payment_error");
    const char *kind = str(obj, "object");
    const char *oid = str(json_object_get(obj, "metadata"), "order_id");
    const char *dc = str(lpe, "decline_code") != NULL ? str(lpe, "decline_code")
                                                      : str(lpe, "code");
    const char *pi;

    FZ_CHECK(ev->id == str(body, "id") && ev->type == str(body, "type"), "id/type not borrowed");
    /* The intent: the object itself when it is one, else what it names. */
    if ((kind != NULL && strcmp(kind, "payment_intent") == 0) ||
        (kind == NULL && str(obj, "id") != NULL && strncmp(str(obj, "id"), "pi_", 3) == 0))
        pi = str(obj, "id");
    else
        pi = str(obj, "payment_intent");
    if (printable_id(pi, 255))
        FZ_CHECK(ev->payment_intent == pi, "payment_intent %s, want %s", ev->payment_intent, pi);
    else
        FZ_CHECK(ev->payment_intent == NULL, "payment_intent %s from a bad id", ev->payment_intent);

    if (is_uuid(oid)) {
        FZ_CHECK(ev->order_id != NULL && strlen(ev->order_id) == 36, "order_id of %s", oid);
        for (size_t i = 0; i < 36; i++)
            FZ_CHECK(ev->order_id[i] == tolower((unsigned char)oid[i]), "order_id %s for %s",
                     ev->order_id, oid);
    } else {
        FZ_CHECK(ev->order_id == NULL, "order_id %s from %s", ev->order_id, oid ? oid : "-");
    }

    if (printable_id(dc, 63))
        FZ_CHECK(ev->decline_code == dc, "decline_code %s, want %s", ev->decline_code, dc);
    else
        FZ_CHECK(ev->decline_code == NULL, "decline_code %s from a bad one", ev->decline_code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const codes[] = {"invalid_json", "invalid_request", NULL};
    co_req req;
    co_resp resp;
    co_pay_event ev;
    json_t *body;
    char order[37];
    bool ok, want;

    if (size > CO_HTTP_BODY_MAX)
        return 0;
    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.method = "POST";
    req.path = "/webhooks/stripe";
    req.body = fz_strndup(data, size);
    req.body_len = size;

    body = co_api_body(&req, &resp);
    if (body == NULL) {
        fz_check_error(&resp, codes);
        goto done;
    }
    ok = parse_event(body, &resp, &ev, order);
    want = printable_id(str(body, "id"), 255) && strncmp(str(body, "id"), "evt_", 4) == 0 &&
           printable_id(str(body, "type"), 255) &&
           json_is_object(json_object_get(json_object_get(body, "data"), "object"));
    FZ_CHECK(ok == want, "parse_event says %d, the contract %d", ok, want);
    if (ok) {
        FZ_CHECK(resp.body == NULL, "an accepted event has an answer: %s", resp.body);
        check_event(body, &ev);
    } else {
        json_t *root = NULL;
        const char *param;

        FZ_CHECK(strcmp(fz_check_error(&resp, codes), "invalid_request") == 0, "not 400");
        root = json_loads(resp.body, 0, NULL);
        param = str(json_object_get(root, "error"), "param");
        FZ_CHECK(param != NULL && (strcmp(param, "id") == 0 || strcmp(param, "type") == 0 ||
                                   strcmp(param, "data.object") == 0),
                 "param %s", param ? param : "-");
        json_decref(root);
    }
    json_decref(body);
done:
    fz_resp_free(&resp);
    free(req.body);
    return 0;
}

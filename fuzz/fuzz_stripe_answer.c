/* The payment client's reading of the provider's answers (src/co_stripe.c):
 * the response headers it looks at (on_header), then read_answer on the
 * final status and body: parse_pi / parse_refund / parse_charge on a 2xx,
 * classify_error (and the PaymentIntent an error embeds) otherwise.
 *
 * Input, as lines:
 *   STATUS KIND     e.g. "200 pi", "402 pi", "200 refund", "200 charge"
 *                   (unreadable: 200 pi, and the line is a header)
 *   header lines    each given to on_header as libcurl would, up to an empty line
 *   BODY            the rest
 * Properties:
 *   - every string of the result is NUL-terminated in its array, valid UTF-8,
 *     and the answer's own value cut at a character boundary ("" when absent);
 *     amounts are the answer's integers (0 otherwise);
 *   - a 2xx is OK exactly when the body is a JSON object with a string id,
 *     else UNAVAILABLE ("unreadable answer"); 409, 429 and 5xx are
 *     UNAVAILABLE, any other 402 DECLINED, and a non-2xx is never OK;
 *   - Retry-After is -1 or whole seconds up to a day, Stripe-Should-Retry
 *     -1, 0 or 1;
 *   - the API's error for the outcome, carrying the provider's message and
 *     decline_code as render.c does, is always a valid JSON body. */
#include "../src/co_stripe.c"
/* Logging off: the code under test logs rejected answers on every run. */
#include "../src/log/co_log.c"

#include "fuzz.h"

#define FIELD(out, name, obj, key) check_field(#name, out, sizeof out, obj, key)

static void check_field(const char *what, const char *field, size_t size, json_t *obj,
                        const char *key)
{
    json_t *v = json_object_get(obj, key);
    const char *src;
    size_t n = strnlen(field, size), sn;

    FZ_CHECK(n < size, "%s is not NUL-terminated", what);
    FZ_CHECK(fz_utf8(field, n), "%s is not UTF-8", what);
    if (json_is_object(v) && strcmp(key, "latest_charge") != 0 &&
        strcmp(key, "payment_method") != 0 && strcmp(key, "payment_intent") != 0)
        v = NULL;
    if (json_is_object(v))
        v = json_object_get(v, "id"); /* an expanded object: its id */
    src = json_is_string(v) ? json_string_value(v) : "";
    sn = strlen(src);
    FZ_CHECK(strncmp(field, src, n) == 0, "%s is not a prefix of the answer's", what);
    if (sn < size)
        FZ_CHECK(n == sn, "%s cut though it fits", what);
    else
        FZ_CHECK(n + 4 > size - 1 && ((unsigned char)src[n] & 0xc0) != 0x80,
                 "%s cut %zu bytes short or inside a character", what, size - 1 - n);
}

static long long int_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void check_pi(const co_payment_intent *pi, json_t *o)
{
    FIELD(pi->id, id, o, "id");
    FIELD(pi->status, status, o, "status");
    FIELD(pi->currency, currency, o, "currency");
    FIELD(pi->client_secret, client_secret, o, "client_secret");
    FIELD(pi->latest_charge, latest_charge, o, "latest_charge");
    FIELD(pi->payment_method, payment_method, o, "payment_method");
    FIELD(pi->order_id, order_id, json_object_get(o, "metadata"), "order_id");
    FIELD(pi->next_action_type, next_action, json_object_get(o, "next_action"), "type");
    FZ_CHECK(pi->amount == int_at(o, "amount") &&
                 pi->amount_capturable == int_at(o, "amount_capturable") &&
                 pi->amount_received == int_at(o, "amount_received"),
             "amounts");
}

static void feed_header(co_stripe *s, const char *line)
{
    size_t n = strlen(line);
    char *h = malloc(n + 3);

    if (h == NULL)
        abort();
    memcpy(h, line, n);
    memcpy(h + n, "\r\n", 3);
    FZ_CHECK(on_header(h, 1, n + 2, s) == n + 2, "on_header refused a line");
    free(h);
}

/* The error the API would answer for this outcome (render.c's shape). */
static void check_error_body(const co_pay_result *out)
{
    co_err err = co_pay_status_err(out->status);
    json_t *extra = json_object();
    char *text;
    json_t *back;

    if (out->decline_code[0] != '\0')
        json_object_set_new(extra, "decline_code", json_string(out->decline_code));
    text = co_error_body(err, out->message[0] ? out->message : NULL, extra);
    FZ_CHECK(text != NULL, "no error body for the provider's message");
    back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    FZ_CHECK(json_is_object(back), "error body is not JSON: %s", text);
    if (out->decline_code[0] != '\0')
        FZ_CHECK(json_is_string(json_object_get(json_object_get(back, "error"), "decline_code")),
                 "decline_code lost: %s", text);
    json_decref(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    char *first = fz_line(&p, &left);
    char kind_name[16] = "pi";
    long http = 200;
    answer_kind kind;
    co_stripe s;
    co_pay_result out;
    json_t *root, *obj;
    bool first_is_header = false;

    min_level = (co_log_level)(CO_LOG_ERROR + 1);
    memset(&s, 0, sizeof s);
    reset_answer(&s);
    if (sscanf(first, "%ld %15s", &http, kind_name) < 1 || http < 100 || http > 599) {
        http = 200;
        first_is_header = true;
    }
    kind = strcmp(kind_name, "refund") == 0   ? ANSWER_REFUND
           : strcmp(kind_name, "charge") == 0 ? ANSWER_CHARGE
                                              : ANSWER_PI;
    /* Headers, each with the CRLF libcurl passes on, up to an empty line. */
    if (first_is_header)
        feed_header(&s, first);
    while (left > 0 && !(first_is_header && first[0] == '\0')) {
        char *line = fz_line(&p, &left);
        bool end = line[0] == '\0';

        if (!end)
            feed_header(&s, line);
        free(line);
        if (end)
            break;
    }
    FZ_CHECK(s.retry_after_ms == -1 ||
                 (s.retry_after_ms >= 0 && s.retry_after_ms <= 86400000L &&
                  s.retry_after_ms % 1000 == 0),
             "retry_after_ms %ld", s.retry_after_ms);
    FZ_CHECK(s.should_retry >= -1 && s.should_retry <= 1, "should_retry %d", s.should_retry);
    FZ_CHECK(strnlen(s.request_id, sizeof s.request_id) < sizeof s.request_id, "request_id");
    if (left > 0 && !co_buf_append(&s.answer, p, left, RESP_MAX - 1))
        abort();

    memset(&out, 0, sizeof out);
    read_answer(&s, "POST", "/v1/fuzz", CURLE_OK, http, kind, &out);
    root = s.answer.len > 0 ? json_loadb(s.answer.body, s.answer.len, 0, NULL) : NULL;
    FZ_CHECK(out.http_status == http && out.replayed == s.replayed, "status copied");
    FZ_CHECK(strcmp(co_pay_status_name(out.status), "unknown") != 0, "status %d", out.status);
    FZ_CHECK(strnlen(out.message, sizeof out.message) < sizeof out.message &&
                 fz_utf8(out.message, strlen(out.message)),
             "message");
    if (http >= 200 && http < 300) {
        bool readable = json_is_object(root) && json_is_string(json_object_get(root, "id"));

        FZ_CHECK((out.status == CO_PAY_OK) == readable, "OK %d for a readable %d", out.status,
                 readable);
        FZ_CHECK(readable || (out.status == CO_PAY_UNAVAILABLE &&
                              strcmp(out.message, "unreadable answer") == 0),
                 "an unreadable 2xx is status %d", out.status);
        if (readable && kind == ANSWER_PI) {
            check_pi(&out.pi, root);
        } else if (readable && kind == ANSWER_REFUND) {
            FIELD(out.refund_id, refund_id, root, "id");
            FIELD(out.refund_status, refund_status, root, "status");
            FIELD(out.pi.id, pi.id, root, "payment_intent");
            FZ_CHECK(out.refund_amount == int_at(root, "amount"), "refund amount");
        } else if (readable) {
            FIELD(out.charge_id, charge_id, root, "id");
            FIELD(out.pi.id, pi.id, root, "payment_intent");
            FZ_CHECK(out.charge_amount == int_at(root, "amount") &&
                         out.charge_amount_refunded == int_at(root, "amount_refunded"),
                     "charge amounts");
        }
    } else {
        obj = json_object_get(root, "error");
        FZ_CHECK(out.status != CO_PAY_OK, "OK on HTTP %ld", http);
        if (http == 409 || http == 429 || http >= 500)
            FZ_CHECK(out.status == CO_PAY_UNAVAILABLE, "HTTP %ld is status %d", http, out.status);
        else if (http == 402)
            FZ_CHECK(out.status == CO_PAY_DECLINED, "402 is status %d", out.status);
        if (json_is_object(obj)) {
            json_t *epi = json_object_get(obj, "payment_intent");

            FIELD(out.type, type, obj, "type");
            FIELD(out.code, code, obj, "code");
            FIELD(out.decline_code, decline_code, obj, "decline_code");
            FIELD(out.message, message, obj, "message");
            if (json_is_object(epi) && json_is_string(json_object_get(epi, "id")))
                check_pi(&out.pi, epi);
        }
        check_error_body(&out);
    }
    json_decref(root);
    co_buf_free(&s.answer);
    free(first);
    return 0;
}

/* mock-stripe's API keys and CORS, as Stripe's API answers them.
 *
 * A secret key (sk_test_...) may call every /v1 endpoint. A publishable key
 * (pk_test_..., the one a shopper's app or a web page holds) may make only the
 * two calls Stripe.js and stripe-react-native make with a PaymentIntent's
 * client_secret: retrieve it (GET /v1/payment_intents/:id?client_secret=...) and
 * confirm it (POST /v1/payment_intents/:id/confirm with client_secret). Anything
 * else with a publishable key is Stripe's 401 "cannot be made with a publishable
 * API key"; a client_secret that is not the intent's is Stripe's 400
 * payment_intent_invalid_parameter (param client_secret).
 *
 * The key comes as a bearer (the SDKs), as Basic's user name (curl -u), or, with
 * no Authorization header, as the form parameter "key" (what Stripe.js sends, so
 * that a browser's request needs no preflight). Every /v1 answer carries Stripe's
 * CORS headers, and OPTIONS answers the browser's preflight. */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char no_key_msg[] =
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/.";

static const char publishable_msg[] =
    "This API call cannot be made with a publishable API key. Please use a secret API key. You "
    "can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.";

static char *b64_decode(const char *in, size_t *outlen)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    char *out = mh_xmalloc(n / 4 * 3 + 4);
    unsigned acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *pos = strchr(tbl, in[i]);

        if (pos == NULL) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)(pos - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* "sk_test_*****************1234": Stripe never echoes a whole key. */
static void mask_key(const char *key, char *out, size_t cap)
{
    size_t n = strlen(key), keep = n > 12 ? 4 : 0, o = 0;
    size_t head = strncmp(key, "sk_test_", 8) == 0 || strncmp(key, "pk_test_", 8) == 0 ? 8 : 0;

    for (size_t i = 0; i < n && o + 1 < cap && o < 40; i++)
        out[o++] = (i < head || i >= n - keep) ? key[i] : '*';
    out[o] = '\0';
}

/* The form parameter "key" of the request (query or form body), copied into out;
 * false when there is none. */
static bool key_param(const ms_req *rq, char *out, size_t cap)
{
    const char *v = NULL;
    ms_form f = {NULL, 0, 0};
    bool found;

    if (strcmp(rq->method, "POST") != 0) {
        v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "key");
        found = v != NULL;
        if (found)
            snprintf(out, cap, "%s", v);
        return found;
    }
    if (rq->body != NULL && ms_form_parse(&f, rq->body, rq->body_len))
        v = ms_form_get(&f, "key");
    found = v != NULL;
    if (found)
        snprintf(out, cap, "%s", v);
    ms_form_free(&f);
    return found;
}

static bool key_is(const char *key, const char *prefix, const char *configured)
{
    if (configured != NULL)
        return strcmp(key, configured) == 0;
    return strncmp(key, prefix, 8) == 0 && key[8] != '\0' && strlen(key) < MS_KEY_MAX &&
           ms_utf8_ok(key, strlen(key));
}

bool ms_auth_check(ms_req *rq, ms_resp *r)
{
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    char masked[48];

    rq->publishable = false;
    rq->key_in_form = false;
    if (h == NULL || *h == '\0') {
        rq->key_in_form = key_param(rq, rq->api_key, sizeof rq->api_key);
        if (!rq->key_in_form || rq->api_key[0] == '\0') {
            ms_fail(r, 401, "invalid_request_error", NULL, NULL, "%s", no_key_msg);
            return false;
        }
    } else if (strncasecmp(h, "Bearer ", 7) == 0 && strlen(h) < MS_KEY_MAX + 8) {
        snprintf(rq->api_key, sizeof rq->api_key, "%s", h + 7);
    } else if (strncasecmp(h, "Basic ", 6) == 0) {
        size_t len;
        char *dec = b64_decode(h + 6, &len);

        snprintf(rq->api_key, sizeof rq->api_key, "%.*s",
                 dec != NULL ? (int)strcspn(dec, ":") : 0, dec != NULL ? dec : "");
        free(dec);
    } else {
        rq->api_key[0] = '\0';
    }
    if (key_is(rq->api_key, "sk_test_", g_cfg.api_key))
        return true;
    if (key_is(rq->api_key, "pk_test_", g_cfg.publishable_key)) {
        rq->publishable = true;
        return true;
    }
    mask_key(rq->api_key, masked, sizeof masked);
    ms_fail(r, 401, "invalid_request_error", NULL, NULL, "Invalid API Key provided: %s", masked);
    return false;
}

bool ms_auth_route(const ms_req *rq, bool client_secret_call, ms_resp *r)
{
    if (!rq->publishable || client_secret_call)
        return true;
    ms_fail(r, 401, "invalid_request_error", NULL, NULL, "%s", publishable_msg);
    return false;
}

/* Drops the parameter "key" that carried the API key: it is no parameter of the call. */
static void drop_key_param(ms_form *f)
{
    size_t o = 0;

    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->kv[i].k, "key") == 0) {
            free(f->kv[i].k);
            free(f->kv[i].v);
        } else {
            f->kv[o++] = f->kv[i];
        }
    }
    f->n = o;
}

bool ms_auth_client_secret(ms_req *rq, const char *pi_id, ms_resp *r)
{
    const char *cs;
    ms_pi *pi;
    bool ok = true;

    if (rq->key_in_form)
        drop_key_param(&rq->form);
    cs = ms_form_get(&rq->form, "client_secret");
    if (cs == NULL) {
        if (!rq->publishable)
            return true;
        /* A publishable key without the intent's secret is a secret-key call. */
        ms_fail(r, 401, "invalid_request_error", NULL, NULL, "%s", publishable_msg);
        return false;
    }
    pthread_rwlock_rdlock(&g_state);
    pi = pi_id != NULL ? ms_pi_find(pi_id) : NULL;
    /* pi->secret never changes once the intent is published: no lock needed. An unknown
     * intent is left to the handler's 404. */
    if (pi != NULL && strcmp(pi->secret, cs) != 0)
        ok = false;
    pthread_rwlock_unlock(&g_state);
    if (!ok)
        ms_fail(r, 400, "invalid_request_error", "payment_intent_invalid_parameter",
                "client_secret", "The client_secret provided does not match the client_secret "
                "associated with the PaymentIntent.");
    return ok;
}

/* ================================================================ CORS */

/* What Stripe's API sends on every answer: any origin may call it (a key, not a
 * cookie, is the credential), and a page may read these headers of the answer. */
void ms_cors_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                            "GET, HEAD, PUT, PATCH, POST, DELETE");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "Request-Id, Stripe-Manage-Version, Stripe-Should-Retry, "
                            "Idempotency-Key, Idempotent-Replayed, Original-Request");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "300");
}

/* OPTIONS on /v1: the browser's preflight before a request with Authorization or a
 * JSON content type. Nothing is applied. */
enum MHD_Result ms_cors_preflight(struct MHD_Connection *conn)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    ms_cors_headers(resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Idempotency-Key, Stripe-Account, "
                            "Stripe-Version, User-Agent, X-Stripe-Client-User-Agent");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* mock-stripe's request handling: the /v1 routes, the pipeline every /v1
 * request runs (latency, faults, parameters, idempotency, handler, webhooks), and the
 * glue to libmicrohttpd. */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ================================================================ routing */

typedef void (*ms_handler)(ms_req *rq, const char *id, ms_resp *r);

typedef struct {
    ms_handler fn;
    const char *id;             /* points into the caller's path copy */
} ms_route;

#define MS_MAX_SEGS 6

/* Splits path (modified in place) into at most MS_MAX_SEGS segments. */
static size_t split_path(char *path, char **seg)
{
    size_t n = 0;
    char *p = path;

    while (*p == '/')
        p++;
    while (*p != '\0') {
        char *slash = strchr(p, '/');

        if (n == MS_MAX_SEGS)
            return MS_MAX_SEGS + 1;
        seg[n++] = p;
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

static bool route_api(const char *method, char *path, ms_route *rt)
{
    char *s[MS_MAX_SEGS];
    size_t n = split_path(path, s);
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    rt->id = NULL;
    if (n < 2 || n > 4 || strcmp(s[0], "v1") != 0)
        return false;
    if (n >= 3)
        rt->id = s[2];
    if (strcmp(s[1], "payment_intents") == 0) {
        if (n == 2) {
            rt->fn = post ? ms_h_pi_create : get ? ms_h_pi_list : NULL;
        } else if (n == 3) {
            rt->fn = post ? ms_h_pi_update : get ? ms_h_pi_retrieve : NULL;
        } else if (post && strcmp(s[3], "confirm") == 0) {
            rt->fn = ms_h_pi_confirm;
        } else if (post && strcmp(s[3], "capture") == 0) {
            rt->fn = ms_h_pi_capture;
        } else if (post && strcmp(s[3], "cancel") == 0) {
            rt->fn = ms_h_pi_cancel;
        } else {
            rt->fn = NULL;
        }
    } else if (strcmp(s[1], "refunds") == 0 && n <= 3) {
        rt->fn = n == 2 ? (post ? ms_h_refund_create : get ? ms_h_refund_list : NULL)
                        : (get ? ms_h_refund_retrieve : NULL);
    } else if (strcmp(s[1], "charges") == 0 && n == 3) {
        rt->fn = get ? ms_h_charge_retrieve : NULL;
    } else {
        rt->fn = NULL;
    }
    return rt->fn != NULL;
}

/* ================================================================ HTTP glue */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    ms_form *f = cls;

    (void)kind;
    if (key != NULL && *key != '\0')
        ms_form_add(f, ms_xstrdup(key), ms_xstrdup(value != NULL ? value : ""));
    return MHD_YES;
}

/* Query parameters as decoded by libmicrohttpd; false when one is not UTF-8. */
static bool query_form(ms_req *rq)
{
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &rq->form);
    for (size_t i = 0; i < rq->form.n; i++) {
        if (!ms_utf8_ok(rq->form.kv[i].k, strlen(rq->form.kv[i].k)) ||
            !ms_utf8_ok(rq->form.kv[i].v, strlen(rq->form.kv[i].v)))
            return false;
    }
    return true;
}

static enum MHD_Result send_resp(const ms_req *rq, ms_resp *r, const char *orig_req)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int retry = r->retry;

    if (r->body == NULL)
        ms_resp_json(r, r->status != 0 ? r->status : 500, json_object());
    resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL)
        return MHD_NO;          /* r->body is still ours; the caller frees it */
    r->body = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, "Request-Id", rq->req_id);
    MHD_add_response_header(resp, "Stripe-Version", MS_API_VERSION);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
    ms_cors_headers(resp);
    if (rq->idem != NULL && ms_utf8_ok(rq->idem, strlen(rq->idem)))
        MHD_add_response_header(resp, "Idempotency-Key", rq->idem);
    if (orig_req != NULL) {
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        MHD_add_response_header(resp, "Original-Request", orig_req);
    }
    if (retry < 0 && r->status >= 400)
        retry = r->status == 409 || r->status == 429 || r->status >= 500;
    if (retry >= 0 && r->status >= 400)
        MHD_add_response_header(resp, "Stripe-Should-Retry", retry ? "true" : "false");
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"Stripe\"");
    if (r->retry_after_s > 0) {
        char ra[16];

        snprintf(ra, sizeof ra, "%d", r->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    ret = MHD_queue_response(rq->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The pipeline for /v1: auth -> latency -> faults -> parse -> idempotency -> handler.
 * Runs on the connection's own thread, so sleeping here blocks nobody else. */
static enum MHD_Result handle_api(ms_req *rq, const mh_conn *cx, ms_resp *r, char *orig)
{
    char key[2 * MS_KEY_MAX + 2];
    char *path = ms_xstrdup(rq->path);
    bool post = strcmp(rq->method, "POST") == 0;
    bool routed, faulted, own_key = false;
    ms_fault fault;
    ms_route rt = {NULL, NULL};
    enum MHD_Result ret = MHD_YES;

    memset(&fault, 0, sizeof fault);
    atomic_fetch_add(&st_requests, 1);
    if (cx->in.too_big) {
        ms_fail(r, 413, "invalid_request_error", NULL, NULL,
                "Request body too large (the limit is %d bytes).", MS_BODY_MAX);
        goto out;
    }
    ms_sleep_ms(g_cfg.latency_ms);     /* every /v1 answer, errors too, as over a real WAN */
    if (!ms_auth_check(rq, r) || !ms_version_check(rq, r))
        goto out;
    routed = route_api(rq->method, path, &rt);
    faulted = ms_fault_take(rq->method, rq->path, &fault);
    if (faulted && fault.action == F_HANG) {
        /* Holds the connection, then closes it unanswered; nothing was applied. */
        ms_sleep_ms(fault.delay_ms);
        ret = MHD_NO;
        goto out;
    }
    if (faulted && fault.action == F_STATUS_500) {
        ms_fail(r, 500, "api_error", NULL, NULL,
                "An unknown error occurred (injected by /_mock/faults); nothing was applied.");
        r->retry = 1;
        goto out;
    }
    if (faulted && fault.action == F_STATUS_429) {
        /* Stripe's rate limit error; delay_ms (rounded up to seconds) is the Retry-After. */
        ms_fail(r, 429, "invalid_request_error", "rate_limit", NULL,
                "Too many requests hit the API too quickly (injected by /_mock/faults); "
                "nothing was applied.");
        r->retry = 1;
        r->retry_after_s = (int)((fault.delay_ms + 999) / 1000);
        goto out;
    }
    if (!routed) {
        ms_fail(r, 404, "invalid_request_error", NULL, NULL,
                "Unrecognized request URL (%s: %.300s). Please see https://stripe.com/docs or we "
                "can help at https://support.stripe.com/.", rq->method, rq->path);
        goto out;
    }
    if (!ms_auth_route(rq, rt.fn == ms_h_pi_retrieve || rt.fn == ms_h_pi_confirm, r))
        goto out;
    if (post ? !ms_form_parse(&rq->form, rq->body != NULL ? rq->body : "", rq->body_len)
             : !query_form(rq)) {
        ms_fail_param(r, NULL, NULL, "Invalid request: parameters must be UTF-8 text "
                      "without NUL bytes.");
        goto out;
    }
    if (!ms_auth_client_secret(rq, rt.id, r))
        goto out;
    if (post && rq->idem != NULL) {
        if (strlen(rq->idem) > MS_KEY_MAX || *rq->idem == '\0') {
            ms_fail_param(r, NULL, NULL, "Invalid Idempotency-Key: it must be 1 to %d "
                          "characters.", MS_KEY_MAX);
            goto out;
        }
        snprintf(key, sizeof key, "%s\n%s", rq->api_key, rq->idem);
        pthread_rwlock_rdlock(&g_state);
        switch (ms_idem_begin(key, rq, r, orig)) {
        case IDEM_NEW:
            own_key = true;
            break;
        case IDEM_REPLAY:
            atomic_fetch_add(&st_replays, 1);
            break;
        case IDEM_IN_FLIGHT:
            ms_fail(r, 409, "idempotency_error", "idempotency_key_in_use", NULL,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    "going through): %.255s. Please try again later.", rq->idem);
            r->retry = 1;
            break;
        case IDEM_OTHER_ENDPOINT:
            ms_fail(r, 400, "idempotency_error", NULL, NULL,
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    "were first used for ('%.255s' was used for another endpoint).", rq->idem);
            break;
        case IDEM_OTHER_PARAMS:
            ms_fail(r, 400, "idempotency_error", NULL, NULL,
                    "Keys for idempotent requests can only be used with the same parameters they "
                    "were first used with. Try using a key other than '%.255s' if you meant to "
                    "execute a different request.", rq->idem);
            break;
        }
        pthread_rwlock_unlock(&g_state);
        if (!own_key)
            goto out;
    }
    if (faulted && fault.action == F_DELAY)
        ms_sleep_ms(fault.delay_ms);    /* inside the in-flight window: a retry gets 409 */
    pthread_rwlock_rdlock(&g_state);
    rt.fn(rq, rt.id, r);
    if (own_key)
        ms_idem_finish(key, rq, r, !r->no_store);
    pthread_rwlock_unlock(&g_state);
    ms_wh_enqueue(&rq->ev);
    if (faulted && fault.action == F_DROP_RESPONSE)
        ret = MHD_NO;           /* applied (and saved for replay), but never answered */
out:
    free(path);
    return ret;
}

static enum MHD_Result handle(struct MHD_Connection *conn, const char *url, const char *method,
                              const mh_conn *cx)
{
    ms_req rq;
    ms_resp r = {.retry = -1};
    char orig[MS_ID_MAX] = "";    /* the first request's id when this is a replay */
    long long t0 = ms_mono_ms();
    enum MHD_Result ret;

    memset(&rq, 0, sizeof rq);
    rq.conn = conn;
    rq.method = method;
    rq.path = url;
    rq.body = cx->in.body;
    rq.body_len = cx->in.len;
    rq.idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    ms_new_id(rq.req_id, sizeof rq.req_id, "req_", 14);
    if (strncmp(url, "/_mock/", 7) == 0) {
        if (strcmp(method, "GET") == 0) {
            query_form(&rq);
        } else if (rq.body_len > 0 && rq.body[0] != '{') {
            ms_form_parse(&rq.form, rq.body, rq.body_len);
        }
        ms_mock_route(&rq, &r);
        ms_wh_enqueue(&rq.ev);
        ret = MHD_YES;
    } else if (strcmp(method, "OPTIONS") == 0) {
        return ms_cors_preflight(conn);     /* a browser's CORS preflight */
    } else {
        ret = handle_api(&rq, cx, &r, orig);
    }
    if (ret == MHD_YES)
        ret = send_resp(&rq, &r, orig[0] != '\0' ? orig : NULL);
    {
        co_log_field f[] = {
            CO_LOG_STR("method", method), CO_LOG_STR("path", url),
            CO_LOG_INT("status", ret == MHD_YES ? r.status : 0),
            CO_LOG_INT("duration_ms", ms_mono_ms() - t0), CO_LOG_STR("request_id", rq.req_id),
            CO_LOG_BOOL("replayed", orig[0] != '\0'),
        };

        CO_LOGF(g_cfg.verbose ? CO_LOG_INFO : CO_LOG_DEBUG, "mock-stripe", f, "%s %s %d%s",
                method, url, ret == MHD_YES ? r.status : 0, orig[0] != '\0' ? " (replayed)" : "");
    }
    ms_evlist_free(&rq.ev);
    ms_form_free(&rq.form);
    free(r.body);
    return ret;
}

/* The first call (headers only): a Content-Length over the cap is refused before the
 * body is read; libmicrohttpd then closes the connection. */
static enum MHD_Result on_headers(struct MHD_Connection *conn, const char *url,
                                  const char *method, mh_conn *cx)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    ms_req rq = {.conn = conn, .method = method, .path = url};
    ms_resp r = {.retry = 0};
    enum MHD_Result ret;

    if (cl == NULL || strtoull(cl, NULL, 10) <= MS_BODY_MAX)
        return MHD_YES;
    ms_new_id(rq.req_id, sizeof rq.req_id, "req_", 14);
    ms_fail(&r, 413, "invalid_request_error", NULL, NULL,
            "Request body too large (the limit is %d bytes).", MS_BODY_MAX);
    cx->answered = true;
    ret = send_resp(&rq, &r, NULL);
    free(r.body);
    return ret;
}

/* Chunked bodies have no Content-Length: past the cap keep nothing, answer 413 at the end. */
const mh_handler ms_http = {
    .body_max = MS_BODY_MAX,
    .drop_too_big = true,
    .headers = on_headers,
    .complete = handle,
};

/* The payment client (see co_stripe.h for the contract).
 *
 * Shape of one call: build the form body once -> request() sends it, retrying
 * transient failures with the SAME body and Idempotency-Key -> the final answer
 * is classified into a co_pay_status and parsed into co_pay_result.
 *
 * Why the retry rules are what they are (they follow Stripe's own SDKs):
 * - no answer at all (connect refused, timeout, connection dropped): the request
 *   may or may not have taken effect; resending it with the same key is safe
 *   because the provider replays the first answer instead of acting twice;
 * - 5xx, 409 (a request with this key is still in flight), 429 (rate limited):
 *   transient on the provider's side;
 * - the provider may override us with Stripe-Should-Retry: true/false;
 * - every other 4xx is a definite answer: resending cannot change it.
 * Note: when a REUSED keep-alive connection dies before any byte of the answer,
 * libcurl itself resends the request once on a fresh connection (POSTs too) before
 * curl_easy_perform returns; `attempts` does not count that resend. It is safe for
 * the same reason our retries are: the same Idempotency-Key goes with it. */
#include "co_stripe.h"

#include "co_backoff.h"
#include "co_buf.h"
#include "co_version.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "co_log.h"
#include "co_metrics.h"

#define LOG_COMP "stripe"
/* A PaymentIntent or an error is a few KB; anything near this is not Stripe. */
#define RESP_MAX ((size_t)1 << 20)
/* Stripe's own limit on Idempotency-Key length. */
#define IDEM_KEY_MAX 255

struct co_stripe {
    CURL *curl;
    char *api_base;       /* without trailing '/' */
    char *auth_header;    /* "Authorization: Bearer <key>": secret, wiped in co_stripe_free */
    char *version_header; /* "Stripe-Version: ...", on every request */
    long backoff_initial_ms;
    long backoff_max_ms;
    int max_retries;
    unsigned int seed; /* rand_r state for the jitter: per handle, so no shared state */

    /* The current attempt's answer; reset before each attempt. The buffer is kept
     * (and grown) across calls and freed by co_stripe_free. */
    co_buf answer;          /* the response body, up to RESP_MAX - 1 bytes */
    bool replayed;
    int should_retry;    /* Stripe-Should-Retry: -1 absent, 0 false, 1 true */
    long retry_after_ms; /* Retry-After in ms, -1 absent or not in seconds */
    char request_id[64];
    char errbuf[CURL_ERROR_SIZE];
};

/* ------------------------------------------------------------------------ */
/* small string helpers                                                      */

/* Copies src into dst[n] truncating safely: never splits a UTF-8 sequence, so
 * the result stays valid for json_string() when src was valid. */
static void copy_bounded(char *dst, size_t n, const char *src)
{
    size_t len;

    if (n == 0)
        return;
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    len = strnlen(src, n - 1);
    if (src[len] != '\0')
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            len--;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* malloc'ed concatenation of the NULL-terminated list of strings; NULL on OOM.
 * The caller frees. */
static char *str_join(const char *first, ...)
{
    va_list ap;
    size_t total = 0, off = 0;
    const char *p;
    char *out;

    va_start(ap, first);
    for (p = first; p != NULL; p = va_arg(ap, const char *))
        total += strlen(p);
    va_end(ap);
    out = malloc(total + 1);
    if (out == NULL)
        return NULL;
    va_start(ap, first);
    for (p = first; p != NULL; p = va_arg(ap, const char *)) {
        size_t l = strlen(p);

        memcpy(out + off, p, l);
        off += l;
    }
    va_end(ap);
    out[off] = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* form bodies: key=value&... with bracket keys left as they are (as Stripe's  */
/* SDKs send them) and values percent-encoded                                 */

typedef struct {
    co_buf text;    /* owned; freed by form_free */
    bool oom;
} form;

static void form_append(form *f, const char *data, size_t n)
{
    if (!f->oom && !co_buf_append(&f->text, data, n, SIZE_MAX - 1))
        f->oom = true;
}

/* key is a literal of ours (brackets stay readable); value comes from outside
 * and is escaped with curl_easy_escape (everything but [A-Za-z0-9-._~]). */
static void form_add(form *f, CURL *curl, const char *key, const char *value)
{
    char *esc;

    if (f->oom)
        return;
    esc = curl_easy_escape(curl, value, 0);
    if (esc == NULL) {
        f->oom = true;
        return;
    }
    if (f->text.len > 0)
        form_append(f, "&", 1);
    form_append(f, key, strlen(key));
    form_append(f, "=", 1);
    form_append(f, esc, strlen(esc));
    curl_free(esc);
}

static void form_add_ll(form *f, CURL *curl, const char *key, long long v)
{
    char num[32];

    snprintf(num, sizeof num, "%lld", v);
    form_add(f, curl, key, num);
}

static void form_free(form *f)
{
    co_buf_free(&f->text);
}

/* ------------------------------------------------------------------------ */
/* libcurl callbacks                                                         */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    co_stripe *s = ud;
    size_t n = size * nmemb;

    if (!co_buf_append(&s->answer, data, n, RESP_MAX - 1) || s->answer.too_big)
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    return n;
}

static void reset_answer(co_stripe *s)
{
    s->answer.len = 0;
    if (s->answer.body != NULL)
        s->answer.body[0] = '\0';
    s->answer.too_big = false;
    s->replayed = false;
    s->should_retry = -1;
    s->retry_after_ms = -1;
    s->request_id[0] = '\0';
    s->errbuf[0] = '\0';
}

/* If line (not NUL-terminated) is "name: value", copies the trimmed value into
 * out[n] and returns true. */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    size_t start, end;

    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    start = nl + 1;
    end = len;
    while (start < end && (line[start] == ' ' || line[start] == '\t'))
        start++;
    while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' ||
                           line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    if (end - start >= n)
        end = start + n - 1;
    memcpy(out, line + start, end - start);
    out[end - start] = '\0';
    return true;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    co_stripe *s = ud;
    size_t n = size * nitems;
    char v[64];

    /* A new status line starts a new response (e.g. after "100 Continue"): only
     * the final response's headers count. */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        s->replayed = false;
        s->should_retry = -1;
        s->retry_after_ms = -1;
        s->request_id[0] = '\0';
        return n;
    }
    if (header_value(data, n, "Idempotent-Replayed", v, sizeof v)) {
        s->replayed = strcasecmp(v, "true") == 0;
    } else if (header_value(data, n, "Stripe-Should-Retry", v, sizeof v)) {
        if (strcasecmp(v, "true") == 0)
            s->should_retry = 1;
        else if (strcasecmp(v, "false") == 0)
            s->should_retry = 0;
    } else if (header_value(data, n, "Retry-After", v, sizeof v)) {
        char *end = NULL;
        long secs;

        errno = 0;
        secs = strtol(v, &end, 10);
        /* The HTTP-date form is ignored: the backoff applies instead. */
        if (errno == 0 && end != v && *end == '\0' && secs >= 0)
            s->retry_after_ms = secs > 86400 ? 86400000L : secs * 1000L;
    } else if (header_value(data, n, "Request-Id", v, sizeof v)) {
        copy_bounded(s->request_id, sizeof s->request_id, v);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* handle                                                                    */

static long positive_or(long v, long dflt)
{
    return v > 0 ? v : dflt;
}

co_stripe *co_stripe_new(const co_stripe_config *cfg)
{
    co_stripe *s;
    size_t blen;
    struct timespec now;

    if (cfg == NULL || cfg->api_base == NULL || cfg->api_base[0] == '\0' ||
        cfg->secret_key == NULL || cfg->secret_key[0] == '\0')
        return NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->api_base = strdup(cfg->api_base);
    s->auth_header = str_join("Authorization: Bearer ", cfg->secret_key, (char *)NULL);
    if (s->api_base == NULL || s->auth_header == NULL)
        goto fail;
    blen = strlen(s->api_base);
    while (blen > 0 && s->api_base[blen - 1] == '/')
        s->api_base[--blen] = '\0';
    /* Every call names its version: an account's default may be older or newer. */
    s->version_header = str_join("Stripe-Version: ",
                                 cfg->stripe_version != NULL && cfg->stripe_version[0] != '\0'
                                     ? cfg->stripe_version
                                     : CO_STRIPE_API_VERSION,
                                 (char *)NULL);
    if (s->version_header == NULL)
        goto fail;
    s->backoff_initial_ms = positive_or(cfg->backoff_initial_ms, 250);
    s->backoff_max_ms = positive_or(cfg->backoff_max_ms, 2000);
    s->max_retries = cfg->max_retries < 0 ? 3 : cfg->max_retries;
    clock_gettime(CLOCK_REALTIME, &now);
    s->seed = (unsigned int)now.tv_nsec ^ (unsigned int)now.tv_sec ^
              (unsigned int)(uintptr_t)s ^ ((unsigned int)getpid() << 16);

    s->curl = curl_easy_init();
    if (s->curl == NULL)
        goto fail;
    /* Options that are the same for every request are set once; request() sets
     * the per-request ones (URL, method, body, headers) every time. */
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM timeouts */
    curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     positive_or(cfg->connect_timeout_ms, 2000));
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, positive_or(cfg->timeout_ms, 10000));
    curl_easy_setopt(s->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->curl, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(s->curl, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(s->curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "checkoutd/" CO_VERSION);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->errbuf);
    return s;

fail:
    co_stripe_free(s);
    return NULL;
}

void co_stripe_free(co_stripe *s)
{
    if (s == NULL)
        return;
    if (s->curl != NULL)
        curl_easy_cleanup(s->curl);
    if (s->auth_header != NULL) {
        explicit_bzero(s->auth_header, strlen(s->auth_header));
        free(s->auth_header);
    }
    free(s->version_header);
    free(s->api_base);
    co_buf_free(&s->answer);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* retries                                                                   */

/* Transport failures after which the request may be resent with the same key.
 * Not listed (and so final): our own mistakes (bad URL, bad option, OOM, a body
 * over RESP_MAX), which a resend would only repeat. */
static bool transport_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN:
        return true;
    default:
        return false;
    }
}

static bool status_retryable(long http)
{
    return http == 409 || http == 429 || http >= 500;
}

/* How long to wait before retry number `retry` (0-based): the shared backoff
 * (co_backoff.h). A Retry-After from the provider is a floor, itself capped by
 * backoff_max_ms so one header cannot stall a worker. */
static long backoff_ms(co_stripe *s, int retry, long retry_after_ms)
{
    long d = co_backoff_ms(s->backoff_initial_ms, s->backoff_max_ms, retry, &s->seed);

    if (retry_after_ms >= 0) {
        long ra = retry_after_ms < s->backoff_max_ms ? retry_after_ms : s->backoff_max_ms;

        if (ra > d)
            d = ra;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* parsing answers                                                           */

static void get_str(char *dst, size_t n, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    copy_bounded(dst, n, json_is_string(v) ? json_string_value(v) : NULL);
}

/* A field that is an id, or the expanded object carrying that id. */
static void get_id(char *dst, size_t n, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (json_is_object(v))
        v = json_object_get(v, "id");
    copy_bounded(dst, n, json_is_string(v) ? json_string_value(v) : NULL);
}

static long long get_ll(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* Fills pi from a PaymentIntent object; false when it does not look like one. */
static bool parse_pi(json_t *o, co_payment_intent *pi)
{
    json_t *meta, *na;

    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id")))
        return false;
    get_str(pi->id, sizeof pi->id, o, "id");
    get_str(pi->status, sizeof pi->status, o, "status");
    pi->amount = get_ll(o, "amount");
    pi->amount_capturable = get_ll(o, "amount_capturable");
    pi->amount_received = get_ll(o, "amount_received");
    get_str(pi->currency, sizeof pi->currency, o, "currency");
    get_str(pi->client_secret, sizeof pi->client_secret, o, "client_secret");
    get_id(pi->latest_charge, sizeof pi->latest_charge, o, "latest_charge");
    get_id(pi->payment_method, sizeof pi->payment_method, o, "payment_method");
    meta = json_object_get(o, "metadata");
    get_str(pi->order_id, sizeof pi->order_id, meta, "order_id");
    na = json_object_get(o, "next_action");
    get_str(pi->next_action_type, sizeof pi->next_action_type, na, "type");
    pi->created = get_ll(o, "created");
    return true;
}

static bool parse_refund(json_t *o, co_pay_result *out)
{
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id")))
        return false;
    get_str(out->refund_id, sizeof out->refund_id, o, "id");
    get_str(out->refund_status, sizeof out->refund_status, o, "status");
    out->refund_amount = get_ll(o, "amount");
    get_id(out->pi.id, sizeof out->pi.id, o, "payment_intent");
    return true;
}

static bool parse_charge(json_t *o, co_pay_result *out)
{
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id")))
        return false;
    get_str(out->charge_id, sizeof out->charge_id, o, "id");
    out->charge_amount = get_ll(o, "amount");
    out->charge_amount_refunded = get_ll(o, "amount_refunded");
    get_id(out->pi.id, sizeof out->pi.id, o, "payment_intent");
    return true;
}

/* A list object ({"object":"list","data":[...]}); its items are read by the caller. */
static bool is_list(json_t *o)
{
    return json_is_object(o) && json_is_string(json_object_get(o, "object")) &&
           strcmp(json_string_value(json_object_get(o, "object")), "list") == 0 &&
           json_is_array(json_object_get(o, "data"));
}

typedef enum { ANSWER_PI, ANSWER_REFUND, ANSWER_CHARGE, ANSWER_LIST } answer_kind;

/* Classifies a final non-2xx answer and copies Stripe's error fields. */
static co_pay_status classify_error(co_stripe *s, long http, co_pay_result *out)
{
    json_t *root = NULL, *err;
    co_pay_status st;

    if (s->answer.len > 0)
        root = json_loadb(s->answer.body, s->answer.len, 0, NULL);
    err = json_object_get(root, "error");
    if (json_is_object(err)) {
        get_str(out->type, sizeof out->type, err, "type");
        get_str(out->code, sizeof out->code, err, "code");
        get_str(out->decline_code, sizeof out->decline_code, err, "decline_code");
        get_str(out->message, sizeof out->message, err, "message");
        parse_pi(json_object_get(err, "payment_intent"), &out->pi);
    }
    if (status_retryable(http))
        st = CO_PAY_UNAVAILABLE;
    else if (http == 402 || strcmp(out->type, "card_error") == 0)
        st = CO_PAY_DECLINED;
    else if (strcmp(out->code, "payment_intent_unexpected_state") == 0)
        st = CO_PAY_UNEXPECTED_STATE;
    else if (http == 404)
        st = CO_PAY_NOT_FOUND;
    else if (strcmp(out->code, "charge_already_refunded") == 0)
        st = CO_PAY_ALREADY_REFUNDED;
    else
        st = CO_PAY_REJECTED;
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------------------ */
/* one call, with retries                                                    */

static bool key_ok(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    /* A CR/LF would let the key inject headers; no real key has controls. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
            return false;
    return true;
}

static co_pay_status local_reject(co_pay_result *out, const char *why)
{
    out->status = CO_PAY_REJECTED;
    copy_bounded(out->message, sizeof out->message, why);
    return out->status;
}

/* Sends method `post ? POST : GET` to api_base + path (already escaped), with
 * body f (POST only) and idem_key, retrying as described at the top. Fills out. */
/* Appends line to *list; false (and *list left as it was) when out of memory. */
static bool add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *h = curl_slist_append(*list, line);

    if (h == NULL)
        return false;
    *list = h;
    return true;
}

/* The request's headers into *hdrs (*idem_header owns the key's line). */
static bool build_headers(const co_stripe *s, bool post, const char *idem_key,
                          struct curl_slist **hdrs, char **idem_header)
{
    /* Small bodies: never wait for a "100 Continue" (the empty Expect:). */
    if (!add_header(hdrs, s->auth_header) || !add_header(hdrs, "Accept: application/json") ||
        !add_header(hdrs, "Expect:"))
        return false;
    if (!add_header(hdrs, s->version_header))
        return false;
    if (!post)
        return true;
    if (!add_header(hdrs, "Content-Type: application/x-www-form-urlencoded"))
        return false;
    *idem_header = str_join("Idempotency-Key: ", idem_key, (char *)NULL);
    return *idem_header != NULL && add_header(hdrs, *idem_header);
}

/* The debug line of one attempt: endpoint, status, duration, attempt. */
static void log_attempt(const co_stripe *s, const char *method, const char *path, CURLcode rc,
                        long http, int attempt, double ms)
{
    co_log_field f[] = {
        CO_LOG_STR("endpoint", path), CO_LOG_STR("method", method),
        CO_LOG_INT("http_status", http), CO_LOG_INT("attempt", attempt),
        CO_LOG_MS("duration_ms", ms),
        CO_LOG_STR("error", rc == CURLE_OK ? NULL : s->errbuf[0] ? s->errbuf
                                                                 : curl_easy_strerror(rc)),
        CO_LOG_STR("provider_request_id", s->request_id[0] ? s->request_id : NULL),
    };

    CO_LOGF(CO_LOG_DEBUG, LOG_COMP, f, "%s %s -> %ld (attempt %d)", method, path, http, attempt);
}

/* Performs the prepared request, retrying what may be retried with backoff.
 * Returns the last attempt's transfer code; *http its status (0: none). */
static CURLcode perform(co_stripe *s, const char *method, const char *path, const char *endpoint,
                        co_pay_result *out, long *http)
{
    CURLcode rc;

    for (;;) {
        bool retry;
        char reason[160];
        long delay;

        double t0 = co_log_now_ms();

        reset_answer(s);
        rc = curl_easy_perform(s->curl);
        out->attempts++;
        *http = 0;
        /* 0 when no status line arrived; set even on a transfer error after one. */
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, http);
        log_attempt(s, method, path, rc, *http, out->attempts, co_log_now_ms() - t0);
        if (rc == CURLE_OK && *http >= 200 && *http < 300) {
            retry = false; /* whatever the headers say: a success is final */
            reason[0] = '\0';
        } else if (rc == CURLE_OK) {
            retry = s->should_retry >= 0 ? s->should_retry == 1 : status_retryable(*http);
            snprintf(reason, sizeof reason, "HTTP %ld%s%s", *http,
                     s->request_id[0] ? " request " : "", s->request_id);
        } else {
            retry = transport_retryable(rc);
            copy_bounded(reason, sizeof reason,
                         s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
        }
        if (!retry || out->attempts > s->max_retries)
            return rc;
        delay = backoff_ms(s, out->attempts - 1, rc == CURLE_OK ? s->retry_after_ms : -1);
        CO_WARN(LOG_COMP, "%s %s attempt %d/%d failed (%s); retrying in %ld ms", method, path,
                out->attempts, s->max_retries + 1, reason, delay);
        co_metric_provider_retry(endpoint);
        co_sleep_ms(delay);
    }
}

/* Reads the final answer (transfer code rc, status http) into out. */
static void read_answer(co_stripe *s, const char *method, const char *path, CURLcode rc,
                        long http, answer_kind kind, co_pay_result *out)
{
    json_t *root;
    bool ok;

    out->http_status = http;
    out->replayed = s->replayed;
    copy_bounded(out->request_id, sizeof out->request_id, s->request_id);
    if (rc != CURLE_OK) {
        out->status = CO_PAY_UNAVAILABLE;
        copy_bounded(out->message, sizeof out->message,
                     s->answer.too_big ? "answer too large" : curl_easy_strerror(rc));
        CO_WARN(LOG_COMP, "%s %s: no answer after %d attempt(s): %s", method, path,
                out->attempts, s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
        return;
    }
    if (http < 200 || http >= 300) {
        out->status = classify_error(s, http, out);
        if (out->status == CO_PAY_UNAVAILABLE)
            CO_WARN(LOG_COMP, "%s %s: HTTP %ld after %d attempt(s)%s%s", method, path, http,
                    out->attempts, out->code[0] ? " " : "", out->code);
        else if (out->status == CO_PAY_REJECTED)
            CO_WARN(LOG_COMP, "%s %s: HTTP %ld %s %s", method, path, http, out->type,
                    out->code);
        return;
    }
    root = json_loadb(s->answer.body, s->answer.len, 0, NULL);
    ok = kind == ANSWER_PI       ? parse_pi(root, &out->pi)
         : kind == ANSWER_REFUND ? parse_refund(root, out)
         : kind == ANSWER_LIST   ? is_list(root)
                                 : parse_charge(root, out);
    json_decref(root);
    if (ok) {
        out->status = CO_PAY_OK;
        return;
    }
    /* The provider said yes but we cannot tell to what: the outcome is
     * unknown to us, so the caller must treat it as such. */
    out->status = CO_PAY_UNAVAILABLE;
    copy_bounded(out->message, sizeof out->message, "unreadable answer");
    CO_ERROR(LOG_COMP, "%s %s: HTTP %ld with an unreadable body", method, path, http);
}

/* endpoint names the call in /metrics ("capture", ...). */
static co_pay_status request(co_stripe *s, const char *endpoint, bool post, const char *path,
                             const form *f, const char *idem_key, answer_kind kind,
                             co_pay_result *out)
{
    long long t0 = co_metric_now_us();
    const char *method = post ? "POST" : "GET";
    struct curl_slist *hdrs = NULL;
    char *idem_header = NULL;
    char *url = str_join(s->api_base, path, (char *)NULL);
    long http = 0;
    CURLcode rc;

    if (url == NULL || !build_headers(s, post, idem_key, &hdrs, &idem_header)) {
        out->status = CO_PAY_UNAVAILABLE;
        copy_bounded(out->message, sizeof out->message, "out of memory");
        goto done;
    }
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, hdrs);
    if (post) {
        /* COPYPOSTFIELDS: curl keeps its own copy, so nothing dangles after we
         * free f; the size must be set first. It also switches to POST. */
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->text.len);
        curl_easy_setopt(s->curl, CURLOPT_COPYPOSTFIELDS, f->text.len > 0 ? f->text.body : "");
    } else {
        curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
    }
    rc = perform(s, method, path, endpoint, out, &http);
    /* Nothing of this request may outlive it in the handle. */
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    read_answer(s, method, path, rc, http, kind, out);
done:
    curl_slist_free_all(hdrs);
    free(idem_header);
    free(url);
    co_metric_provider(endpoint, co_pay_status_name(out->status), t0);
    return out->status;
}

/* "/v1/payment_intents/<escaped id><suffix>", malloc'ed; NULL on OOM. */
static char *pi_path(co_stripe *s, const char *pi_id, const char *suffix)
{
    char *esc = curl_easy_escape(s->curl, pi_id, 0);
    char *path;

    if (esc == NULL)
        return NULL;
    path = str_join("/v1/payment_intents/", esc, suffix, (char *)NULL);
    curl_free(esc);
    return path;
}

/* Common start of the calls: reset out, check the arguments. Returns false (and
 * fills out) when the call must not go out. */
static bool begin(co_pay_result *out, const char *pi_id, bool needs_pi, const char *key,
                  bool needs_key)
{
    memset(out, 0, sizeof *out);
    if (needs_key) {
        assert(key != NULL && "every POST needs an Idempotency-Key");
        if (key == NULL || !key_ok(key)) {
            local_reject(out, "invalid idempotency key");
            return false;
        }
    }
    if (needs_pi && (pi_id == NULL || pi_id[0] == '\0')) {
        local_reject(out, "missing payment intent id");
        return false;
    }
    return true;
}

/* Sends a POST on a PaymentIntent path and frees f. */
static co_pay_status pi_post(co_stripe *s, const char *endpoint, const char *pi_id,
                             const char *suffix, form *f, const char *key, co_pay_result *out)
{
    char *path = NULL;

    if (f->oom)
        goto oom;
    path = pi_id != NULL ? pi_path(s, pi_id, suffix) : strdup("/v1/payment_intents");
    if (path == NULL)
        goto oom;
    request(s, endpoint, true, path, f, key, ANSWER_PI, out);
    free(path);
    form_free(f);
    return out->status;

oom:
    form_free(f);
    out->status = CO_PAY_UNAVAILABLE;
    copy_bounded(out->message, sizeof out->message, "out of memory");
    return out->status;
}

/* ------------------------------------------------------------------------ */
/* the calls                                                                 */

co_pay_status co_stripe_create_intent(co_stripe *s, const co_pi_create_params *p,
                                      const char *idempotency_key, co_pay_result *out)
{
    form f = {0};

    assert(p != NULL);
    if (!begin(out, NULL, false, idempotency_key, true))
        return out->status;
    if (p->amount <= 0 || p->currency == NULL || p->currency[0] == '\0' ||
        p->order_id == NULL)
        return local_reject(out, "amount, currency and order_id are required");
    form_add_ll(&f, s->curl, "amount", p->amount);
    form_add(&f, s->curl, "currency", p->currency);
    /* Always card, even in the mobile flow: with Stripe's default (automatic
     * payment methods, redirects allowed) a later server-side confirm would be
     * refused without a return_url, and cards are all we sell with. */
    form_add(&f, s->curl, "payment_method_types[0]", "card");
    if (p->manual_capture)
        form_add(&f, s->curl, "capture_method", "manual");
    if (p->payment_method != NULL)
        form_add(&f, s->curl, "payment_method", p->payment_method);
    if (p->confirm)
        form_add(&f, s->curl, "confirm", "true");
    if (p->description != NULL)
        form_add(&f, s->curl, "description", p->description);
    form_add(&f, s->curl, "metadata[order_id]", p->order_id);
    return pi_post(s, "create_intent", NULL, NULL, &f, idempotency_key, out);
}

co_pay_status co_stripe_retrieve_intent(co_stripe *s, const char *pi_id, co_pay_result *out)
{
    char *path;

    if (!begin(out, pi_id, true, NULL, false))
        return out->status;
    path = pi_path(s, pi_id, "");
    if (path == NULL) {
        out->status = CO_PAY_UNAVAILABLE;
        copy_bounded(out->message, sizeof out->message, "out of memory");
        return out->status;
    }
    request(s, "retrieve_intent", false, path, NULL, NULL, ANSWER_PI, out);
    free(path);
    return out->status;
}

co_pay_status co_stripe_retrieve_charge(co_stripe *s, const char *charge_id,
                                        co_pay_result *out)
{
    char *esc, *path;

    if (!begin(out, charge_id, true, NULL, false))
        return out->status;
    esc = curl_easy_escape(s->curl, charge_id, 0);
    path = esc != NULL ? str_join("/v1/charges/", esc, (char *)NULL) : NULL;
    curl_free(esc);
    if (path == NULL) {
        out->status = CO_PAY_UNAVAILABLE;
        copy_bounded(out->message, sizeof out->message, "out of memory");
        return out->status;
    }
    request(s, "retrieve_charge", false, path, NULL, NULL, ANSWER_CHARGE, out);
    free(path);
    return out->status;
}

co_pay_status co_stripe_confirm_intent(co_stripe *s, const char *pi_id,
                                       const char *payment_method,
                                       const char *idempotency_key, co_pay_result *out)
{
    form f = {0};

    if (!begin(out, pi_id, true, idempotency_key, true))
        return out->status;
    if (payment_method != NULL)
        form_add(&f, s->curl, "payment_method", payment_method);
    return pi_post(s, "confirm_intent", pi_id, "/confirm", &f, idempotency_key, out);
}

co_pay_status co_stripe_capture(co_stripe *s, const char *pi_id, long long amount_to_capture,
                                const char *idempotency_key, co_pay_result *out)
{
    form f = {0};

    if (!begin(out, pi_id, true, idempotency_key, true))
        return out->status;
    if (amount_to_capture >= 0)
        form_add_ll(&f, s->curl, "amount_to_capture", amount_to_capture);
    return pi_post(s, "capture", pi_id, "/capture", &f, idempotency_key, out);
}

co_pay_status co_stripe_cancel(co_stripe *s, const char *pi_id, const char *idempotency_key,
                               co_pay_result *out)
{
    form f = {0};

    if (!begin(out, pi_id, true, idempotency_key, true))
        return out->status;
    return pi_post(s, "cancel", pi_id, "/cancel", &f, idempotency_key, out);
}

co_pay_status co_stripe_refund(co_stripe *s, const char *pi_id, long long amount,
                               const char *idempotency_key, co_pay_result *out)
{
    form f = {0};

    if (!begin(out, pi_id, true, idempotency_key, true))
        return out->status;
    form_add(&f, s->curl, "payment_intent", pi_id);
    if (amount >= 0)
        form_add_ll(&f, s->curl, "amount", amount);
    if (f.oom) {
        form_free(&f);
        out->status = CO_PAY_UNAVAILABLE;
        copy_bounded(out->message, sizeof out->message, "out of memory");
        return out->status;
    }
    request(s, "refund", true, "/v1/refunds", &f, idempotency_key, ANSWER_REFUND, out);
    form_free(&f);
    return out->status;
}

co_pay_status co_stripe_list_intents(co_stripe *s, long long created_gte,
                                     const char *starting_after, int limit,
                                     co_payment_intent *rows, int max, int *n, bool *has_more,
                                     co_pay_result *out)
{
    char query[96];
    char *esc = NULL, *path;
    json_t *root, *data, *item;
    size_t i;

    *n = 0;
    *has_more = false;
    if (!begin(out, NULL, false, NULL, false))
        return out->status;
    if (limit < 1 || limit > 100)
        return local_reject(out, "limit must be 1 to 100");
    if (created_gte >= 0)
        snprintf(query, sizeof query, "?created%%5Bgte%%5D=%lld&limit=%d", created_gte, limit);
    else
        snprintf(query, sizeof query, "?limit=%d", limit);
    if (starting_after != NULL && starting_after[0] != '\0')
        esc = curl_easy_escape(s->curl, starting_after, 0);
    path = str_join("/v1/payment_intents", query, esc != NULL ? "&starting_after=" : "",
                    esc != NULL ? esc : "", (char *)NULL);
    curl_free(esc);
    if (path == NULL || (starting_after != NULL && starting_after[0] != '\0' && esc == NULL)) {
        free(path);
        out->status = CO_PAY_UNAVAILABLE;
        copy_bounded(out->message, sizeof out->message, "out of memory");
        return out->status;
    }
    request(s, "list_intents", false, path, NULL, NULL, ANSWER_LIST, out);
    free(path);
    if (out->status != CO_PAY_OK)
        return out->status;
    /* request() checked the shape; the answer is still in the handle's buffer. */
    root = json_loadb(s->answer.body, s->answer.len, 0, NULL);
    data = json_object_get(root, "data");
    json_array_foreach(data, i, item) {
        if (*n >= max)
            break;
        memset(&rows[*n], 0, sizeof rows[*n]);
        if (parse_pi(item, &rows[*n]))
            (*n)++;
    }
    *has_more = json_is_true(json_object_get(root, "has_more"));
    json_decref(root);
    return out->status;
}

co_err co_pay_status_err(co_pay_status st)
{
    switch (st) {
    case CO_PAY_OK:
        return CO_OK;
    case CO_PAY_DECLINED:
        return CO_ERR_payment_declined;
    case CO_PAY_UNAVAILABLE:
        return CO_ERR_payment_provider_unavailable;
    case CO_PAY_UNEXPECTED_STATE:
    case CO_PAY_NOT_FOUND:
    case CO_PAY_ALREADY_REFUNDED:
    case CO_PAY_REJECTED:
        return CO_ERR_payment_provider_error;
    }
    return CO_ERR_payment_provider_error;
}

const char *co_pay_status_name(co_pay_status st)
{
    switch (st) {
    case CO_PAY_OK:
        return "ok";
    case CO_PAY_DECLINED:
        return "declined";
    case CO_PAY_UNEXPECTED_STATE:
        return "unexpected_state";
    case CO_PAY_NOT_FOUND:
        return "not_found";
    case CO_PAY_ALREADY_REFUNDED:
        return "already_refunded";
    case CO_PAY_REJECTED:
        return "rejected";
    case CO_PAY_UNAVAILABLE:
        return "unavailable";
    }
    return "unknown";
}

/* mock-notify: the back-in-stock notification sink (SPEC sections 1 and 8.5).
 *
 * A real HTTP server that accepts a signed JSON POST on any path (NOTIFY_URL points at
 * it), checks the "Notify-Signature: t=...,v1=..." header with co_sig_verify, and keeps
 * every delivery in memory so tests can assert "each waiting shopper got one
 * notification, delivered at least once":
 *
 *   POST <any path>          a delivery: 200, 401 when the signature does not verify,
 *                            400 when the body is not JSON, 500 while failures are armed
 *   GET  /_mock/deliveries   {"data":[{"id","path","received_at","verified","status",
 *                            "signature_error","idempotency_key","body"}...],"count":N},
 *                            oldest first
 *   DELETE /_mock/deliveries forgets them
 *   POST /_mock/fail         {"count":N}: answer 500 to the next N signed deliveries
 *   GET  /_mock/health
 *
 * Every request is recorded, the refused ones too (with their status), so a test can
 * see forged or retried deliveries. Armed failures apply only to correctly signed JSON
 * deliveries, so that a forged request cannot use them up. */
#include "co_sig.h"
#include "../common/mockhttp.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MN_BODY_MAX (64 * 1024)
#define MN_PATH_MAX 256

typedef struct {
    long long id;
    char path[MN_PATH_MAX];
    long long received_ms;      /* unix time in milliseconds */
    bool verified;
    int status;                 /* what we answered */
    const char *sig_error;      /* static string, NULL when verified */
    char idem_key[128];         /* the Idempotency-Key header, "" when none */
    char *raw;                  /* the body as received */
    size_t raw_len;
} mn_delivery;

static struct {
    pthread_mutex_t mu;
    mn_delivery *v;
    size_t n, cap;
    long long next_id;
    long fail_left;             /* deliveries still to be failed with 500 */
} g_sink = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *g_secret;
static bool g_verbose;

/* ================================================================ helpers */

static long long unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Strict decimal in [min, max]. */
static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static const char *sig_error_name(co_sig_result r)
{
    switch (r) {
    case CO_SIG_OK:
        return NULL;
    case CO_SIG_MISSING:
        return "missing";
    case CO_SIG_MALFORMED:
        return "malformed";
    case CO_SIG_STALE:
        return "stale";
    case CO_SIG_MISMATCH:
        return "mismatch";
    }
    return "unknown";
}

/* ================================================================ the store */

/* Records a delivery (copying body) and decides the answer. */
static int record(const char *path, const char *body, size_t len, co_sig_result sig,
                  bool is_json, const char *idem_key)
{
    mn_delivery *d;
    int status;

    pthread_mutex_lock(&g_sink.mu);
    if (sig != CO_SIG_OK) {
        status = MHD_HTTP_UNAUTHORIZED;
    } else if (!is_json) {
        status = MHD_HTTP_BAD_REQUEST;
    } else if (g_sink.fail_left > 0) {
        g_sink.fail_left--;
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        status = MHD_HTTP_OK;
    }
    if (g_sink.n == g_sink.cap) {
        g_sink.cap = g_sink.cap > 0 ? 2 * g_sink.cap : 64;
        g_sink.v = mh_xrealloc(g_sink.v, g_sink.cap * sizeof *g_sink.v);
    }
    d = &g_sink.v[g_sink.n++];
    memset(d, 0, sizeof *d);
    d->id = ++g_sink.next_id;
    snprintf(d->path, sizeof d->path, "%s", path);
    d->received_ms = unix_ms();
    d->verified = sig == CO_SIG_OK;
    d->status = status;
    d->sig_error = sig_error_name(sig);
    snprintf(d->idem_key, sizeof d->idem_key, "%s", idem_key ? idem_key : "");
    d->raw = mh_xrealloc(NULL, len + 1);
    if (len > 0)
        memcpy(d->raw, body, len);
    d->raw[len] = '\0';
    d->raw_len = len;
    pthread_mutex_unlock(&g_sink.mu);
    return status;
}

static void clear_deliveries_locked(void)
{
    for (size_t i = 0; i < g_sink.n; i++)
        free(g_sink.v[i].raw);
    free(g_sink.v);
    g_sink.v = NULL;
    g_sink.n = g_sink.cap = 0;
}

/* Bodies are kept raw and parsed here, so no jansson object is shared between threads. */
static json_t *deliveries_json(void)
{
    json_t *data = json_array();
    json_t *root;

    pthread_mutex_lock(&g_sink.mu);
    for (size_t i = 0; i < g_sink.n; i++) {
        const mn_delivery *d = &g_sink.v[i];
        json_t *body = json_loadb(d->raw, d->raw_len, 0, NULL);
        json_t *o = json_pack("{s:I, s:s, s:I, s:b, s:i, s:s?, s:s}", "id", (json_int_t)d->id,
                              "path", d->path, "received_at", (json_int_t)d->received_ms,
                              "verified", d->verified, "status", d->status,
                              "signature_error", d->sig_error, "idempotency_key", d->idem_key);

        if (o == NULL) {
            json_decref(body);
            continue;
        }
        json_object_set_new(o, "body", body != NULL ? body : json_null());
        if (body == NULL)
            json_object_set_new(o, "raw", json_stringn(d->raw, d->raw_len));
        json_array_append_new(data, o);
    }
    root = json_pack("{s:o, s:I, s:I}", "data", data, "count", (json_int_t)g_sink.n,
                     "fail_remaining", (json_int_t)g_sink.fail_left);
    pthread_mutex_unlock(&g_sink.mu);
    return root;
}

/* ================================================================ HTTP */

/* Takes body (malloc'd, may be NULL for an empty answer). */
static enum MHD_Result reply(struct MHD_Connection *c, int status, char *body)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (body == NULL)
        body = strdup("{}");
    if (body == NULL)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Takes root. */
static enum MHD_Result reply_json(struct MHD_Connection *c, int status, json_t *root)
{
    char *s = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;

    json_decref(root);
    return reply(c, status, s);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, int status, const char *code,
                                   const char *msg)
{
    return reply_json(c, status, json_pack("{s:{s:s, s:s}}", "error", "code", code,
                                           "message", msg));
}

static enum MHD_Result handle_mock(struct MHD_Connection *c, const char *method,
                                   const char *url, const mh_conn *cx)
{
    bool get = strcmp(method, "GET") == 0;

    if (get && strcmp(url, "/_mock/health") == 0)
        return reply_json(c, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    if (get && strcmp(url, "/_mock/deliveries") == 0)
        return reply_json(c, MHD_HTTP_OK, deliveries_json());
    if (strcmp(method, "DELETE") == 0 && strcmp(url, "/_mock/deliveries") == 0) {
        pthread_mutex_lock(&g_sink.mu);
        clear_deliveries_locked();
        pthread_mutex_unlock(&g_sink.mu);
        return reply_json(c, MHD_HTTP_OK, json_pack("{s:b}", "cleared", 1));
    }
    if (strcmp(method, "POST") == 0 && strcmp(url, "/_mock/fail") == 0) {
        json_t *j = json_loadb(cx->in.body != NULL ? cx->in.body : "", cx->in.len, 0, NULL);
        json_t *n = json_object_get(j, "count");
        json_int_t count = json_is_integer(n) ? json_integer_value(n) : -1;

        json_decref(j);
        if (count < 0 || count > 1000000)
            return reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid_request",
                               "body must be {\"count\": N} with 0 <= N <= 1000000");
        pthread_mutex_lock(&g_sink.mu);
        g_sink.fail_left = (long)count;
        pthread_mutex_unlock(&g_sink.mu);
        return reply_json(c, MHD_HTTP_OK, json_pack("{s:I}", "fail_remaining",
                                                     (json_int_t)count));
    }
    return reply_error(c, MHD_HTTP_NOT_FOUND, "not_found",
                       "unknown mock endpoint: try /_mock/deliveries or /_mock/fail");
}

static enum MHD_Result handle(struct MHD_Connection *c, const char *url, const char *method,
                              const mh_conn *cx)
{
    const char *sig;
    co_sig_result res;
    json_t *probe;
    bool is_json;
    int status;

    if (strncmp(url, "/_mock/", 7) == 0)
        return handle_mock(c, method, url, cx);
    if (strcmp(method, "POST") != 0)
        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                           "deliveries are POSTed");
    if (cx->in.too_big)
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "body over 64 KiB");
    sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Notify-Signature");
    res = co_sig_verify(sig, g_secret, time(NULL), CO_SIG_TOLERANCE_SECONDS,
                        cx->in.body != NULL ? cx->in.body : "", cx->in.len);
    probe = json_loadb(cx->in.body != NULL ? cx->in.body : "", cx->in.len, 0, NULL);
    is_json = probe != NULL;
    json_decref(probe);
    status = record(url, cx->in.body, cx->in.len, res, is_json,
                    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key"));
    {
        const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
        co_log_field f[] = {CO_LOG_STR("method", method), CO_LOG_STR("path", url),
                            CO_LOG_INT("status", status),
                            CO_LOG_STR("signature", res == CO_SIG_OK ? "ok" : sig_error_name(res)),
                            CO_LOG_STR("idempotency_key", idem)};

        CO_LOGF(g_verbose ? CO_LOG_INFO : CO_LOG_DEBUG, "mock-notify", f, "POST %s %d", url,
                status);
    }
    switch (status) {
    case MHD_HTTP_OK:
        return reply_json(c, status, json_pack("{s:b}", "received", 1));
    case MHD_HTTP_UNAUTHORIZED:
        return reply_error(c, status, "invalid_signature", sig_error_name(res));
    case MHD_HTTP_BAD_REQUEST:
        return reply_error(c, status, "invalid_json", "the body is not JSON");
    default:
        return reply_error(c, status, "injected_failure", "failing on purpose (/_mock/fail)");
    }
}

/* What is past 64 KiB of a body is read and dropped (too_big): 413 at the end. */
static const mh_handler http = {
    .body_max = MN_BODY_MAX,
    .drop_too_big = false,
    .headers = NULL,
    .complete = handle,
};

/* ================================================================ start-up */

static void usage(FILE *out)
{
    fputs("usage: MOCK_NOTIFY_SECRET=S mock-notify [--listen HOST:PORT] [--fail-first N]\n"
          "                                        [--verbose] [--secret S]\n"
          "\n"
          "A sink for signed back-in-stock notifications. Flags override the environment\n"
          "variables MOCK_NOTIFY_LISTEN (default 127.0.0.1:12112; port 0 picks a free one),\n"
          "MOCK_NOTIFY_SECRET and MOCK_NOTIFY_FAIL_FIRST. Pass the secret in the\n"
          "environment: --secret is readable by every local user (ps). See the comment at\n"
          "the top of mocks/notify/notify.c for the endpoints.\n", out);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"secret", required_argument, NULL, 's'},
        {"fail-first", required_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = mh_env_or("MOCK_NOTIFY_LISTEN", "127.0.0.1:12112");
    const char *fail_first = mh_env_or("MOCK_NOTIFY_FAIL_FIRST", NULL);
    mh_listen l;
    sigset_t sigs;
    struct MHD_Daemon *d;

    mh_init("mock-notify");
    g_secret = mh_env_or("MOCK_NOTIFY_SECRET", NULL);
    for (;;) {
        int c = getopt_long(argc, argv, "h", opts, NULL);

        if (c == -1)
            break;
        switch (c) {
        case 'l': listen = optarg; break;
        case 's':
            g_secret = optarg;
            mh_warn_secret_flag("--secret", "MOCK_NOTIFY_SECRET");
            break;
        case 'f': fail_first = optarg; break;
        case 'v': g_verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || g_secret == NULL || *g_secret == '\0') {
        fputs("mock-notify: MOCK_NOTIFY_SECRET (or --secret) is required\n", stderr);
        usage(stderr);
        return 2;
    }
    co_log_secret(g_secret);
    if (fail_first != NULL && !parse_long(fail_first, 0, 1000000, &g_sink.fail_left)) {
        fputs("mock-notify: --fail-first must be an integer from 0 to 1000000\n", stderr);
        return 2;
    }
    if (!mh_parse_listen(listen, &l))
        return 2;
    json_object_seed(0);
    mh_block_signals(&sigs);
    /* Handlers never block, so a small pool of polling threads is enough. */
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                         (l.v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, mh_on_request, (void *)&http,
                         MHD_OPTION_EXTERNAL_LOGGER, mh_log, NULL,      /* must be first */
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&l.addr,
                         MHD_OPTION_THREAD_POOL_SIZE, (unsigned)4,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                         MHD_OPTION_NOTIFY_COMPLETED, mh_completed, NULL,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mock-notify: cannot listen on %s\n", listen);
        return 1;
    }
    mh_announce(d, &l);
    mh_wait_signal(&sigs);
    MHD_stop_daemon(d);
    pthread_mutex_lock(&g_sink.mu);
    clear_deliveries_locked();
    pthread_mutex_unlock(&g_sink.mu);
    return 0;
}

#include "co_http.h"

#include "co_buf.h"
#include "co_edge.h"

#include "co_log.h"
#include "co_metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* ------------------------------------------------------------ the types */

typedef enum { REQ_READING, REQ_QUEUED, REQ_DONE } req_state;

typedef struct conn_ctx {
    struct MHD_Connection *conn;
    co_edge_conn *edge;     /* the edge's record of the connection (NULL if none) */
    req_state state;
    bool close;             /* the answer ends the connection (Connection: close) */
    char allow[48];         /* a 405's Allow header */
    char request_id[72];    /* X-Request-Id: the client's, or one made here */
    char remote[INET6_ADDRSTRLEN]; /* the client's address, for the access line */
    double started_ms;      /* when the head was whole (co_log_now_ms) */
    const co_route *route;
    co_buf in;              /* the body as it arrives; req.body points into it once whole */
    co_req req;
    co_resp resp;
    struct conn_ctx *next;  /* job queue link */
} conn_ctx;

struct co_http {
    struct MHD_Daemon *daemon;
    co_edge *edge;          /* owns the listening socket */
    co_http_config cfg;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;
    conn_ctx *head, *tail;  /* jobs waiting for a worker */
    int in_flight;          /* queued or running (their connections are suspended) */
    bool stopping;
};

/* ------------------------------------------------------------- helpers */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const char *query(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* Matches path against pattern; on a '*' match copies the segment to *param. */
static bool match(const char *pattern, const char *path, char **param)
{
    const char *p = pattern;
    const char *s = path;

    *param = NULL;
    while (*p != '\0') {
        if (*p == '*') {
            size_t n = strcspn(s, "/");
            if (n == 0)
                goto no;
            free(*param);
            *param = strndup(s, n);
            s += n;
            p++;
            continue;
        }
        if (*p != *s)
            goto no;
        p++;
        s++;
    }
    if (*s == '\0')
        return true;
no:
    free(*param);
    *param = NULL;
    return false;
}

static void ctx_free(conn_ctx *x)
{
    co_req *r = &x->req;

    free((char *)r->method);
    free((char *)r->path);
    free(r->param);
    co_buf_free(&x->in);
    free(r->authorization);
    free(r->idempotency_key);
    free(r->content_type);
    free(r->stripe_signature);
    free(r->restock_signature);
    free(r->q_status);
    free(r->q_limit);
    free(r->q_starting_after);
    free(r->q_created_before);
    free(r->q_lease);
    free(x->resp.body);
    free(x);
}

/* -------------------------------------------------------- responses */

void co_resp_raw(co_resp *resp, unsigned status, const char *body, size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->body = malloc(len + 1);
    if (resp->body == NULL) {
        resp->status = 500;
        resp->body_len = 0;
        return;
    }
    memcpy(resp->body, body, len);
    resp->body[len] = '\0';
    resp->body_len = len;
}

void co_resp_json(co_resp *resp, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    if (text == NULL) {
        co_resp_error(resp, CO_ERR_internal_error, NULL, NULL);
        return;
    }
    free(resp->body);
    resp->status = status;
    resp->body = text;
    resp->body_len = strlen(text);
}

void co_resp_error(co_resp *resp, co_err err, const char *message, json_t *extra)
{
    char *text = co_error_body(err, message, extra);

    free(resp->body);
    resp->status = co_err_get(err)->status;
    resp->body = text;
    resp->body_len = text ? strlen(text) : 0;
    co_metric_add(co_err_get(err)->code, 1);
}

static enum MHD_Result send_resp(struct MHD_Connection *c, conn_ctx *x)
{
    co_resp *resp = &x->resp;
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (resp->body == NULL)
        co_resp_error(resp, CO_ERR_internal_error, NULL, NULL);
    r = MHD_create_response_from_buffer(resp->body_len, resp->body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type
                                               : "application/json; charset=utf-8");
    if (resp->replayed)
        MHD_add_response_header(r, "Idempotent-Replayed", "true");
    if (resp->retry_after > 0) {
        char secs[16];

        snprintf(secs, sizeof secs, "%u", resp->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    for (const char *const *h = resp->headers; h != NULL && h[0] != NULL; h += 2)
        MHD_add_response_header(r, h[0], h[1]);
    if (resp->status == 405 && x->allow[0] != '\0')
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, x->allow);
    if (x->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (x->request_id[0] != '\0')
        MHD_add_response_header(r, "X-Request-Id", x->request_id);
    ret = MHD_queue_response(c, resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ------------------------------------------------------------ workers */

#if defined(__SANITIZE_ADDRESS__)
#define WORKER_STACK (2u << 20)
#else
#define WORKER_STACK (256u << 10)
#endif


static void *worker_main(void *p)
{
    co_http *h = p;
    co_worker *w = h->cfg.worker_new(h->cfg.app);

    for (;;) {
        conn_ctx *job;

        pthread_mutex_lock(&h->lock);
        while (h->head == NULL && !h->stopping)
            pthread_cond_wait(&h->wake, &h->lock);
        if (h->head == NULL) {
            pthread_mutex_unlock(&h->lock);
            break;
        }
        job = h->head;
        h->head = job->next;
        if (h->head == NULL)
            h->tail = NULL;
        pthread_mutex_unlock(&h->lock);

        co_gauge_add(CO_GAUGE_WORKER_QUEUE, -1);
        co_gauge_add(CO_GAUGE_WORKERS_BUSY, 1);
        co_log_ctx_request(job->request_id);
        if (w == NULL)
            co_resp_error(&job->resp, CO_ERR_service_unavailable, NULL, NULL);
        else
            job->route->fn(w, &job->req, &job->resp);
        co_gauge_add(CO_GAUGE_WORKERS_BUSY, -1);
        co_log_ctx_clear();
        job->state = REQ_DONE;
        MHD_resume_connection(job->conn);

        pthread_mutex_lock(&h->lock);
        if (--h->in_flight == 0)
            pthread_cond_broadcast(&h->idle);
        pthread_mutex_unlock(&h->lock);
    }
    if (w != NULL)
        h->cfg.worker_free(w);
    return NULL;
}

/* ------------------------------------------------------ access handler */

/* The request's id: the client's X-Request-Id when it is 1 to 64 characters
 * of [A-Za-z0-9._:-] (anything else could break a log line or a header), else
 * "req_" and 32 random hex digits. */
static void request_id(conn_ctx *x, struct MHD_Connection *c)
{
    const char *v = header(c, "X-Request-Id");
    size_t n = v != NULL ? strlen(v) : 0;
    uuid_t u;
    char hex[37];

    if (n >= 1 && n <= 64 &&
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n) {
        snprintf(x->request_id, sizeof x->request_id, "%s", v);
        return;
    }
    uuid_generate_random(u);
    uuid_unparse_lower(u, hex);
    snprintf(x->request_id, sizeof x->request_id, "req_%.8s%.4s%.4s%.4s%.12s", hex, hex + 9,
             hex + 14, hex + 19, hex + 24);
}

static void remote_of(conn_ctx *x, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    x->remote[0] = '\0';
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, x->remote,
                  sizeof x->remote);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  x->remote, sizeof x->remote);
}

static void capture_request(conn_ctx *x, struct MHD_Connection *c, const char *url,
                            const char *method)
{
    co_req *r = &x->req;

    request_id(x, c);
    r->request_id = x->request_id;
    x->started_ms = co_log_now_ms();
    remote_of(x, c);
    r->method = strdup(method);
    r->path = strdup(url);
    r->authorization = dup_or_null(header(c, MHD_HTTP_HEADER_AUTHORIZATION));
    r->idempotency_key = dup_or_null(header(c, "Idempotency-Key"));
    r->content_type = dup_or_null(header(c, MHD_HTTP_HEADER_CONTENT_TYPE));
    r->stripe_signature = dup_or_null(header(c, "Stripe-Signature"));
    r->restock_signature = dup_or_null(header(c, "Restock-Signature"));
    r->q_status = dup_or_null(query(c, "status"));
    r->q_limit = dup_or_null(query(c, "limit"));
    r->q_starting_after = dup_or_null(query(c, "starting_after"));
    r->q_created_before = dup_or_null(query(c, "created_before"));
    r->q_lease = dup_or_null(query(c, "lease"));
}

/* The route of the request; NULL when none, then *method_mismatch says
 * whether the path exists with other methods (named in x->allow). */
static const co_route *route_for(co_http *h, conn_ctx *x, bool *method_mismatch)
{
    *method_mismatch = false;
    x->allow[0] = '\0';
    for (const co_route *rt = h->cfg.routes; rt->pattern != NULL; rt++) {
        char *param = NULL;
        if (!match(rt->pattern, x->req.path, &param))
            continue;
        if (strcmp(rt->method, x->req.method) != 0) {
            size_t used = strlen(x->allow);
            free(param);
            *method_mismatch = true;
            if (strstr(x->allow, rt->method) == NULL)
                snprintf(x->allow + used, sizeof x->allow - used, "%s%s", used ? ", " : "",
                         rt->method);
            continue;
        }
        x->req.param = param;
        return rt;
    }
    return NULL;
}

/* Feeds one parsed header field to the framing checks (MHD_KeyValueIteratorN). */
static enum MHD_Result fact_of(void *cls, enum MHD_ValueKind kind, const char *key,
                               size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    co_head_fact(cls, key, key_size, value ? value : "", value ? value_size : 0);
    return MHD_YES;
}

/* A media type of application/json, parameters (charset=utf-8) allowed. */
static bool is_json(const char *ct)
{
    size_t n = strlen("application/json");

    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* Everything decided from the head alone, on the access handler's first call:
 * framing (for the first request of a connection the edge checked the raw
 * bytes already; MHD parses the later ones itself, and this sees what MHD
 * kept), sizes, the route, the media type. Fills x->resp and returns false
 * when the request is refused. *body_coming: a body follows the head. */
static bool first_look(co_http *h, conn_ctx *x, struct MHD_Connection *c, const char *version,
                       bool *body_coming)
{
    co_head_facts f;
    char msg[160];
    const char *field;
    const union MHD_ConnectionInfo *hs;
    co_err err;
    bool mismatch;

    memset(&f, 0, sizeof f);
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, fact_of, &f);
    *body_coming = f.transfer_encoding_n > 0 || f.content_length > 0;
    err = co_head_verdict(&f, strcmp(version, MHD_HTTP_VERSION_1_0) == 0 ? 0 : 1, msg,
                          sizeof msg, &field);
    if (err != CO_OK) {
        co_resp_error(&x->resp, err, msg, field ? json_pack("{s:s}", "header", field) : NULL);
        return false;
    }
    hs = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (strlen(x->req.path) > CO_EDGE_URI_MAX) {
        co_resp_error(&x->resp, CO_ERR_uri_too_long, NULL, NULL);
        return false;
    }
    if (f.fields > CO_EDGE_HEADERS_MAX || (hs != NULL && hs->header_size > CO_EDGE_HEAD_MAX)) {
        co_resp_error(&x->resp, CO_ERR_header_too_large, NULL, NULL);
        return false;
    }
    if (f.content_length > CO_HTTP_BODY_MAX) {
        /* Refused before reading; the edge drains what the client still sends. */
        co_resp_error(&x->resp, CO_ERR_payload_too_large, NULL, NULL);
        return false;
    }
    x->route = route_for(h, x, &mismatch);
    if (x->route == NULL) {
        co_resp_error(&x->resp, mismatch ? CO_ERR_method_not_allowed : CO_ERR_not_found, NULL,
                      NULL);
        return false;
    }
    if (*body_coming && strcmp(x->req.method, MHD_HTTP_METHOD_POST) == 0 &&
        !is_json(x->req.content_type)) {
        co_resp_error(&x->resp, CO_ERR_unsupported_media_type, NULL, NULL);
        return false;
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    co_http *h = cls;
    conn_ctx *x = *con_cls;

    if (x == NULL) {
        const union MHD_ConnectionInfo *sc =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        bool body_coming;

        x = calloc(1, sizeof *x);
        if (x == NULL)
            return MHD_NO;
        x->conn = c;
        x->edge = sc != NULL ? sc->socket_context : NULL;
        *con_cls = x;
        capture_request(x, c, url, method);
        if (first_look(h, x, c, version, &body_coming)) {
            co_edge_set_phase(h->edge, x->edge, body_coming ? CO_EDGE_BODY : CO_EDGE_BUSY);
            return MHD_YES;
        }
        co_metric_add("http_requests", 1);
        x->state = REQ_DONE;
        /* After bad framing or sizes the connection is not reused: what
         * follows the head may be a body MHD would take for a request. */
        x->close = x->resp.status != 404 && x->resp.status != 405;
        if (!body_coming) {
            co_edge_set_phase(h->edge, x->edge, CO_EDGE_BUSY);
            return MHD_YES; /* answered on the next call, as usual */
        }
        /* Answer before the body: MHD closes after it, the edge lingers. */
        co_edge_set_phase(h->edge, x->edge, CO_EDGE_EARLY);
        return send_resp(c, x);
    }
    if (x->state == REQ_READING && *upload_data_size > 0) {
        if (!co_buf_append(&x->in, upload_data, *upload_data_size, CO_HTTP_BODY_MAX))
            return MHD_NO;
        if (x->in.too_big) {
            /* Only a chunked body gets here (a declared length past the cap is
             * refused before reading): stop reading now. MHD cannot queue an
             * answer mid-body, so the edge writes it; MHD_NO makes MHD close
             * without writing anything more, and the edge drains the rest. */
            co_metric_add("http_requests", 1);
            x->resp.status = co_err_get(CO_ERR_payload_too_large)->status; /* the access line */
            co_edge_answer_now(h->edge, x->edge, CO_ERR_payload_too_large, NULL);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (x->state == REQ_DONE)
        return *upload_data_size > 0 ? ((*upload_data_size = 0), MHD_YES) : send_resp(c, x);
    if (x->state == REQ_QUEUED)
        return MHD_YES; /* spurious call while suspended */

    /* The whole request is here. */
    co_metric_add("http_requests", 1);
    x->req.received_us = co_metric_now_us();
    co_edge_set_phase(h->edge, x->edge, CO_EDGE_BUSY);
    x->req.body = x->in.body;
    x->req.body_len = x->in.len;
    if (x->route->inline_ok) {
        co_log_ctx_request(x->request_id);
        x->route->fn(NULL, &x->req, &x->resp);
        co_log_ctx_clear();
        x->state = REQ_DONE;
        return send_resp(c, x);
    }
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        pthread_mutex_unlock(&h->lock);
        co_resp_error(&x->resp, CO_ERR_service_unavailable, "The server is shutting down.", NULL);
        x->state = REQ_DONE;
        return send_resp(c, x);
    }
    x->state = REQ_QUEUED;
    /* Suspend before a worker can see the job, so its resume always follows. */
    MHD_suspend_connection(c);
    if (h->tail)
        h->tail->next = x;
    else
        h->head = x;
    h->tail = x;
    h->in_flight++;
    co_gauge_add(CO_GAUGE_WORKER_QUEUE, 1);
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    return MHD_YES;
}

/* The request's access line: one per answered request. */
static void access_line(const conn_ctx *x, bool delivered)
{
    const co_req *r = &x->req;
    co_log_field f[] = {
        CO_LOG_STR("method", r->method), CO_LOG_STR("path", r->path),
        CO_LOG_INT("status", x->resp.status),
        CO_LOG_MS("duration_ms", co_log_now_ms() - x->started_ms),
        CO_LOG_INT("bytes_out", x->resp.body_len), CO_LOG_STR("request_id", x->request_id),
        CO_LOG_STR("remote_addr", x->remote), CO_LOG_BOOL("delivered", delivered),
    };

    CO_LOGF(CO_LOG_INFO, "http", f, "%s %s %u", r->method, r->path, x->resp.status);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    co_http *h = cls;
    conn_ctx *x = *con_cls;
    (void)c;

    if (x != NULL) {
        if (x->resp.status != 0)
            access_line(x, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
        /* A normal exchange: the connection waits for its next head. */
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            co_edge_request_done(h->edge, x->edge);
        else
            CO_DEBUG("http", "%s %s ended without an answer (%d)", x->req.method,
                     x->req.path, (int)toe);
        ctx_free(x);
    }
    *con_cls = NULL;
}

/* MHD_OPTION_NOTIFY_CONNECTION: ties MHD's connections to the edge's records. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    co_http *h = cls;
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = co_edge_adopt(h->edge, fd ? fd->connect_fd : -1);
        return;
    }
    co_edge_release(h->edge, *socket_context, fd ? fd->connect_fd : -1);
    *socket_context = NULL;
}

/* The edge's hand-over (co_edge_config.hand_over). */
static bool hand_over(void *cls, int fd, const struct sockaddr *addr, socklen_t len)
{
    co_http *h = cls;

    return MHD_add_connection(h->daemon, fd, addr, len) == MHD_YES;
}

/* ------------------------------------------------------------ MHD's log */

/* What MHD says about one connection (a client that went away, a request it
 * refused): debug, or a probe of 4,000 connections writes 4,000 warnings. */
static const char *const per_connection[] = {
    "Connection was closed by remote side",
    "Socket has been disconnected",
    "Connection socket is closed",
    "Server reached connection limit",
    "Error processing request",
    "Application reported internal error",
    "Failed to parse `Content-Length'",
    "Too large value of 'Content-Length'",
    "Received HTTP/1.1 request without",
    "Closing connection",
    "Failed to send data",
    "Too late to send an error response",
    NULL,
};

/* Anything else is a warning, at most LOG_BURST per LOG_WINDOW_S seconds; the
 * next one after a quiet window says how many were dropped. */
#define LOG_BURST 10
#define LOG_WINDOW_S 10

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t window;
    static unsigned in_window, dropped;
    char buf[512];
    time_t now = time(NULL);
    unsigned lost = 0;
    bool say;
    (void)cls;

    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    for (int i = 0; per_connection[i] != NULL; i++) {
        if (strncmp(buf, per_connection[i], strlen(per_connection[i])) == 0) {
            CO_DEBUG("http", "%s", buf);
            return;
        }
    }
    pthread_mutex_lock(&mu);
    if (now - window >= LOG_WINDOW_S) {
        window = now;
        in_window = 0;
        lost = dropped;
        dropped = 0;
    }
    say = in_window < LOG_BURST;
    if (say)
        in_window++;
    else
        dropped++;
    pthread_mutex_unlock(&mu);
    if (lost > 0)
        CO_WARN("http", "%u libmicrohttpd messages were not logged", lost);
    if (say)
        CO_WARN("http", "%s", buf);
}

/* ------------------------------------------------------------ lifecycle */

co_http *co_http_start(const co_http_config *cfg)
{
    co_http *h = calloc(1, sizeof *h);
    co_edge_config ec;
    pthread_attr_t attr;

    if (h == NULL)
        return NULL;
    h->cfg = *cfg;
    if (h->cfg.max_connections == 0)
        h->cfg.max_connections = 4000;
    if (h->cfg.per_ip == 0)
        h->cfg.per_ip = 512;
    if (h->cfg.header_timeout_ms == 0)
        h->cfg.header_timeout_ms = 10000;
    if (h->cfg.body_timeout_ms == 0)
        h->cfg.body_timeout_ms = 10000;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    pthread_cond_init(&h->idle, NULL);
    h->threads = calloc((size_t)cfg->workers, sizeof *h->threads);
    if (h->threads == NULL)
        goto fail;
    /* Light threads: a worker's deepest stack is a provider call through
     * libcurl, far below the default 8 MiB; the sanitizers' frames are fatter. */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&h->threads[i], &attr, worker_main, h) != 0)
            break;
        h->nthreads++;
    }
    pthread_attr_destroy(&attr);
    co_gauge_add(CO_GAUGE_WORKERS, h->nthreads);
    /* No listening socket: the edge accepts and hands connections over
     * (MHD_add_connection). MHD's own limits stay as a second line; they can
     * only be lower than the edge's counts, which include heads it holds.
     * MHD_OPTION_STRICT_FOR_CLIENT stays 0: in 0.9.75 its 1 rejects a
     * missing Host with the status line and headers written twice and
     * closes on a space in the target without an answer, and only -1
     * rejects whitespace before a colon; the edge and first_look check all
     * of that with our JSON answers. */
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
        0, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, h->cfg.max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->cfg.per_ip,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        CO_ERROR("http", "cannot start libmicrohttpd");
        goto fail;
    }
    ec = (co_edge_config){
        .host = cfg->host, .port = cfg->port, .max_connections = h->cfg.max_connections,
        .per_ip = h->cfg.per_ip, .header_timeout_ms = h->cfg.header_timeout_ms,
        .body_timeout_ms = h->cfg.body_timeout_ms, .body_max = CO_HTTP_BODY_MAX,
        .hand_over = hand_over, .cls = h,
    };
    h->edge = co_edge_start(&ec);
    if (h->edge == NULL)
        goto fail;
    return h;

fail:
    co_http_stop(h);
    return NULL;
}

unsigned co_http_port(const co_http *h)
{
    return co_edge_port(h->edge);
}

void co_http_stop(co_http *h)
{
    if (h == NULL)
        return;
    co_edge_quiesce(h->edge);
    pthread_mutex_lock(&h->lock);
    /* Queued and running handlers finish and resume their connections; new
     * requests on open connections are refused with 503. */
    h->stopping = true;
    pthread_cond_broadcast(&h->wake);
    while (h->in_flight > 0)
        pthread_cond_wait(&h->idle, &h->lock);
    pthread_mutex_unlock(&h->lock);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    co_gauge_add(CO_GAUGE_WORKERS, -h->nthreads);
    /* The edge thread stops before MHD (nothing more is handed over); the
     * records of MHD's connections live until MHD releases them. */
    co_edge_halt(h->edge);
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon);
    co_edge_free(h->edge);
    free(h->threads);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->idle);
    free(h);
}

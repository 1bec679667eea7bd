#include "co_http.h"

#include "co_buf.h"

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
#include <unistd.h>

/* ------------------------------------------------------------ the types */

typedef enum { REQ_READING, REQ_QUEUED, REQ_DONE } req_state;

typedef struct conn_ctx {
    struct MHD_Connection *conn;
    req_state state;
    const co_route *route;
    co_buf in;              /* the body as it arrives; req.body points into it once whole */
    co_req req;
    co_resp resp;
    struct conn_ctx *next;  /* job queue link */
} conn_ctx;

struct co_http {
    struct MHD_Daemon *daemon;
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

static enum MHD_Result send_resp(struct MHD_Connection *c, co_resp *resp)
{
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

        if (w == NULL)
            co_resp_error(&job->resp, CO_ERR_service_unavailable, NULL, NULL);
        else
            job->route->fn(w, &job->req, &job->resp);
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

static void capture_request(conn_ctx *x, struct MHD_Connection *c, const char *url,
                            const char *method)
{
    co_req *r = &x->req;

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
}

static const co_route *route_for(co_http *h, conn_ctx *x, bool *method_mismatch)
{
    *method_mismatch = false;
    for (const co_route *rt = h->cfg.routes; rt->pattern != NULL; rt++) {
        char *param = NULL;
        if (!match(rt->pattern, x->req.path, &param))
            continue;
        if (strcmp(rt->method, x->req.method) != 0) {
            free(param);
            *method_mismatch = true;
            continue;
        }
        x->req.param = param;
        return rt;
    }
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    co_http *h = cls;
    conn_ctx *x = *con_cls;
    bool mismatch;
    (void)version;

    if (x == NULL) {
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        x = calloc(1, sizeof *x);
        if (x == NULL)
            return MHD_NO;
        x->conn = c;
        *con_cls = x;
        capture_request(x, c, url, method);
        if (cl != NULL && strtoull(cl, NULL, 10) > CO_HTTP_BODY_MAX) {
            /* Refuse before reading: MHD closes the connection after this answer. */
            co_resp_error(&x->resp, CO_ERR_payload_too_large, NULL, NULL);
            x->state = REQ_DONE;
            return send_resp(c, &x->resp);
        }
        return MHD_YES;
    }
    if (x->state == REQ_READING && *upload_data_size > 0) {
        if (!co_buf_append(&x->in, upload_data, *upload_data_size, CO_HTTP_BODY_MAX))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (x->state == REQ_DONE)
        return *upload_data_size > 0 ? ((*upload_data_size = 0), MHD_YES) : send_resp(c, &x->resp);
    if (x->state == REQ_QUEUED)
        return MHD_YES; /* spurious call while suspended */

    /* The whole request is here. */
    co_metric_add("http_requests", 1);
    x->req.body = x->in.body;
    x->req.body_len = x->in.len;
    if (x->in.too_big) {
        co_resp_error(&x->resp, CO_ERR_payload_too_large, NULL, NULL);
        x->state = REQ_DONE;
        return send_resp(c, &x->resp);
    }
    x->route = route_for(h, x, &mismatch);
    if (x->route == NULL) {
        co_resp_error(&x->resp, mismatch ? CO_ERR_method_not_allowed : CO_ERR_not_found, NULL,
                      NULL);
        x->state = REQ_DONE;
        return send_resp(c, &x->resp);
    }
    if (x->route->inline_ok) {
        x->route->fn(NULL, &x->req, &x->resp);
        x->state = REQ_DONE;
        return send_resp(c, &x->resp);
    }
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        pthread_mutex_unlock(&h->lock);
        co_resp_error(&x->resp, CO_ERR_service_unavailable, "The server is shutting down.", NULL);
        x->state = REQ_DONE;
        return send_resp(c, &x->resp);
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
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_ctx *x = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;

    if (x != NULL)
        ctx_free(x);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    (void)cls;

    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    CO_WARN("http", "%s", buf);
}

/* ------------------------------------------------------------ lifecycle */

co_http *co_http_start(const co_http_config *cfg)
{
    co_http *h = calloc(1, sizeof *h);
    struct sockaddr_in addr;
    pthread_attr_t attr;

    if (h == NULL)
        return NULL;
    h->cfg = *cfg;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    pthread_cond_init(&h->idle, NULL);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        CO_ERROR("http", "LISTEN_ADDR host must be an IPv4 address, got %s", cfg->host);
        goto fail;
    }
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
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        (uint16_t)cfg->port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        CO_ERROR("http", "cannot listen on %s:%u", cfg->host, cfg->port);
        goto fail;
    }
    return h;

fail:
    co_http_stop(h);
    return NULL;
}

unsigned co_http_port(const co_http *h)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);

    return info ? info->port : 0;
}

void co_http_stop(co_http *h)
{
    if (h == NULL)
        return;
    if (h->daemon != NULL)
        MHD_quiesce_daemon(h->daemon);
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
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon);
    free(h->threads);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->idle);
    free(h);
}

/* The HTTP layer on libmicrohttpd: body accumulation with a cap, routing, and
 * a worker pool, behind the edge (co_edge.h: connection limits, deadlines,
 * strict framing, lingering close). Handlers that touch Postgres or the payment provider run on a
 * worker thread while their connection is suspended (MHD_suspend_connection),
 * so a request waiting on the provider never pins the thread that accepts and
 * answers everyone else. Handlers only parse, authenticate, call the saga or
 * the store, and render; no business rule lives here. */
#ifndef CO_HTTP_H
#define CO_HTTP_H

#include "co_errors.h"
#include "co_metrics.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CO_HTTP_BODY_MAX (64 * 1024)

typedef struct co_worker co_worker; /* the app's per-thread context (co_app.h) */

/* What a handler sees: copies, valid for the handler's whole run. */
typedef struct {
    const char *method;
    const char *path;
    char *param;            /* the path segment matched by '*', or NULL */
    char *body;             /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    char *authorization;
    char *idempotency_key;
    const char *request_id; /* X-Request-Id of the answer (the client's if sane, else made) */
    char *content_type;
    char *stripe_signature;
    char *restock_signature;
    char *q_status, *q_limit, *q_starting_after, *q_created_before, *q_lease;
    long long received_us;  /* when the whole request was read (co_metric_now_us) */
} co_req;

typedef struct {
    unsigned status;
    char *body;             /* malloc'd, owned here */
    size_t body_len;
    const char *content_type;
    bool replayed;          /* adds Idempotent-Replayed: true */
    unsigned retry_after;   /* > 0: adds Retry-After: <seconds> (429, 503) */
    const char *const *headers; /* more headers: name, value, ..., NULL (static strings) */
} co_resp;

typedef void (*co_handler)(co_worker *w, const co_req *req, co_resp *resp);

typedef struct {
    const char *method;
    const char *pattern;    /* '*' matches one non-empty path segment */
    co_handler fn;
    bool inline_ok;         /* cheap and non-blocking: answer on the MHD thread */
} co_route;

typedef struct {
    const char *host;
    unsigned port;          /* 0: pick a free one */
    const co_route *routes; /* ends with a {NULL} entry */
    int workers;
    /* The edge (co_edge.h); 0 takes the default in brackets. */
    unsigned max_connections;   /* open connections, every client [4000] */
    unsigned per_ip;            /* open connections of one client address [512] */
    unsigned header_timeout_ms; /* a whole request head, from accept or the last answer [10 s] */
    unsigned body_timeout_ms;   /* a whole body, from the end of its head [10 s] */
    /* Per-thread context: created on the worker thread, freed there. */
    co_worker *(*worker_new)(void *app);
    void (*worker_free)(co_worker *w);
    void *app;
} co_http_config;

typedef struct co_http co_http;

co_http *co_http_start(const co_http_config *cfg);
unsigned co_http_port(const co_http *h);
/* Stops accepting, lets running handlers finish and resumes every suspended
 * connection, then stops the daemon and the workers. */
void co_http_stop(co_http *h);

/* Response helpers. co_resp_json steals the reference to body. */
void co_resp_json(co_resp *resp, unsigned status, json_t *body);
void co_resp_raw(co_resp *resp, unsigned status, const char *body, size_t len);
/* {"error":{"code":..., "message":..., ...extra}}; message NULL = the registry's
 * hint; extra (may be NULL) is merged in and its reference stolen. */
void co_resp_error(co_resp *resp, co_err err, const char *message, json_t *extra);


#endif

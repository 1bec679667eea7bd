/* The server process: configuration, the per-thread worker context that
 * handlers get, and the helpers every handler shares (auth, JSON bodies). */
#ifndef CO_APP_H
#define CO_APP_H

#include "co_config.h"
#include "co_db.h"
#include "co_http.h"
#include "co_ratelimit.h"
#include "co_stripe.h"
#include "saga.h"
#include "memo.h"
#include "store.h"

#include <jansson.h>
#include <stdatomic.h>

typedef struct {
    co_config cfg;
    char owner[96];        /* lease owner id: host:pid */
    co_memo memo;          /* orders the workers confirmed (states/memo.h), shared */
    co_db *db;             /* the connection pool every thread shares */
    co_ratelimit *checkout_rate; /* per-shopper checkout attempts; NULL: no limit */
    atomic_bool stopping;
} co_app;

struct co_worker {
    co_app *app;
    co_db *db;             /* app->db */
    co_stripe *stripe;
    co_saga saga;
};

/* One per thread: its own libcurl handle (one keep-alive connection to the
 * provider); Postgres through the shared pool. */
co_worker *co_worker_new(void *app);
void co_worker_free(co_worker *w);

/* The routes of SPEC section 5. */
extern const co_route co_routes[];

/* The shopper from "Authorization: Bearer <jwt>" into user (a uuid); on
 * failure answers 401 and returns false. */
bool co_api_user(co_worker *w, const co_req *req, co_resp *resp, char user[37]);
/* True when the request carries the admin bearer key (constant-time compare). */
bool co_api_is_admin(co_worker *w, const co_req *req);
/* The admin bearer key; on failure answers 401. */
bool co_api_admin(co_worker *w, const co_req *req, co_resp *resp);
/* The body as a JSON object; on failure answers 400 invalid_json (or
 * invalid_request when it is not an object) and returns NULL. Caller decrefs. */
json_t *co_api_body(const co_req *req, co_resp *resp);
/* True when s is a canonical uuid (36 characters); lower-cases it into out. */
bool co_api_uuid(const char *s, char out[37]);
/* 400 invalid_request naming the field (param and message are made valid
 * UTF-8: either may quote the client). */
void co_api_bad_field(co_resp *resp, const char *param, const char *message);
/* 400 invalid_request for a field the endpoint does not take (its name cut
 * at 60 bytes, never inside a character). */
void co_api_unknown_field(co_resp *resp, const char *key);
/* Answers a failed store call: RETRY -> 503 service_unavailable, else 500. */
void co_api_store_error(co_resp *resp, co_store_rc rc);
/* Answers with the JSON text of an order (co_order_json), or 404. */
void co_api_order(co_worker *w, co_resp *resp, const char *order_id, const char *user_or_null,
                  unsigned status);

/* The paging parameters of a list: limit (1 to 100, default 10) and
 * starting_after (a uuid: what names the kind of id, e.g. "an item id"),
 * lower-cased into after with *starting_after pointing at it (NULL when
 * absent). On a bad one answers 400 invalid_request naming it, returns false. */
bool co_api_page_params(const co_req *req, co_resp *resp, const char *what, int *limit,
                        char after[37], const char **starting_after);
/* Answers a page the store made (refusal INVALID: starting_after named nothing). */
void co_api_page(co_resp *resp, co_store_rc rc, char *json, const co_store_refusal *refusal,
                 const char *what);

/* Handlers, one file per endpoint family. */
void co_api_checkout(co_worker *w, const co_req *req, co_resp *resp);
void co_api_order_get(co_worker *w, const co_req *req, co_resp *resp);
void co_api_order_cancel(co_worker *w, const co_req *req, co_resp *resp);
void co_api_order_confirm(co_worker *w, const co_req *req, co_resp *resp);
void co_api_item_get(co_worker *w, const co_req *req, co_resp *resp);
void co_api_item_subscribe(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_item_create(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_order_get(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_orders(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_order_drive(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_order_resolve(co_worker *w, const co_req *req, co_resp *resp);
void co_api_items_list(co_worker *w, const co_req *req, co_resp *resp);
void co_api_orders_list(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_item_hot(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_item_hot_get(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_page(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_asset(co_worker *w, const co_req *req, co_resp *resp);
void co_api_admin_overview(co_worker *w, const co_req *req, co_resp *resp);
/* api_health.c */
void co_api_healthz(co_worker *w, const co_req *req, co_resp *resp);
void co_api_readyz(co_worker *w, const co_req *req, co_resp *resp);
void co_api_metrics(co_worker *w, const co_req *req, co_resp *resp);
void co_webhook_stripe(co_worker *w, const co_req *req, co_resp *resp);
void co_webhook_restock(co_worker *w, const co_req *req, co_resp *resp);

#endif

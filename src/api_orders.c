/* GET /v1/orders (the shopper's own, newest first), GET /v1/orders/{id},
 * POST /v1/orders/{id}/cancel, POST /v1/orders/{id}/confirm, and the paging
 * parameters every list shares.
 * A shopper sees only their own orders: others' answer 404, as unknown ids do.
 * What a cancel or a confirm may do is the saga's (states/orders.c). */
#include "co_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool co_api_page_params(const co_req *req, co_resp *resp, const char *what, int *limit,
                        char after[37], const char **starting_after)
{
    char msg[96];

    *limit = 10;
    *starting_after = NULL;
    if (req->q_limit != NULL) {
        char *end = NULL;
        long n = strtol(req->q_limit, &end, 10);

        if (*req->q_limit == '\0' || *end != '\0' || n < 1 || n > 100) {
            co_api_bad_field(resp, "limit", "limit must be an integer from 1 to 100.");
            return false;
        }
        *limit = (int)n;
    }
    if (req->q_starting_after != NULL) {
        if (!co_api_uuid(req->q_starting_after, after)) {
            snprintf(msg, sizeof msg, "starting_after must be %s.", what);
            co_api_bad_field(resp, "starting_after", msg);
            return false;
        }
        *starting_after = after;
    }
    return true;
}

void co_api_page(co_resp *resp, co_store_rc rc, char *json, const co_store_refusal *refusal,
                 const char *what)
{
    char msg[96];

    if (rc == CO_STORE_OK && json != NULL) {
        co_resp_raw(resp, 200, json, strlen(json));
    } else if (rc == CO_STORE_FAILED && refusal->kind == CO_REFUSAL_INVALID) {
        snprintf(msg, sizeof msg, "starting_after names no %s.", what);
        co_api_bad_field(resp, "starting_after", msg);
    } else {
        co_api_store_error(resp, rc);
    }
}

/* The shopper and the order id of the path, or an answer already given. */
static bool who_and_which(co_worker *w, const co_req *req, co_resp *resp, char user[37],
                          char id[37])
{
    if (!co_api_user(w, req, resp, user))
        return false;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return false;
    }
    return true;
}

/* Answers an order move that did not get done. */
static void refused(co_resp *resp, co_order_result res, const co_order *o)
{
    const char *msg = NULL;

    switch (res) {
    case CO_ORDER_NOT_FOUND:
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return;
    case CO_ORDER_UNAVAILABLE:
        co_api_store_error(resp, CO_STORE_RETRY);
        return;
    case CO_ORDER_RUNNING:
        msg = "The checkout is still running; cancel once it has answered.";
        break;
    case CO_ORDER_ENDED:
        msg = "The order has ended and cannot be cancelled.";
        break;
    default:
        msg = "The payment is not authorized yet; confirm it with the provider first.";
        break;
    }
    co_resp_error(resp, CO_ERR_order_state_conflict, msg,
                  json_pack("{s:s, s:s}", "order_id", o->id, "status", co_state_name(o->status)));
}

void co_api_order_get(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], id[37];

    if (co_api_is_admin(w, req)) {
        co_api_admin_order_get(w, req, resp);
        return;
    }
    if (!who_and_which(w, req, resp, user, id))
        return;
    co_api_order(w, resp, id, user, 200);
}

typedef co_order_result (*order_move)(const co_saga *s, const char *order_id,
                                      const char *user_id, co_order *o);

/* Runs a shopper's move on their order and answers with the order: 202 while
 * a cancel finishes in the background (accepted_if_running), else 200. */
static void shopper_move(co_worker *w, const co_req *req, co_resp *resp, order_move fn,
                         bool accepted_if_running)
{
    char user[37], id[37];
    co_order o;
    co_order_result res;

    if (!who_and_which(w, req, resp, user, id))
        return;
    res = fn(&w->saga, id, user, &o);
    if (res != CO_ORDER_DONE) {
        refused(resp, res, &o);
        return;
    }
    co_api_order(w, resp, o.id, NULL,
                 accepted_if_running && !co_state_terminal(o.status) ? 202 : 200);
}

void co_api_order_cancel(co_worker *w, const co_req *req, co_resp *resp)
{
    shopper_move(w, req, resp, co_saga_cancel, true);
}

void co_api_order_confirm(co_worker *w, const co_req *req, co_resp *resp)
{
    shopper_move(w, req, resp, co_saga_confirm, false);
}

void co_api_orders_list(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], after[37];
    const char *starting_after;
    int limit;
    char *json = NULL;
    co_store_refusal refusal = {0};
    co_store_rc rc;

    if (!co_api_user(w, req, resp, user))
        return;
    if (!co_api_page_params(req, resp, "an order id", &limit, after, &starting_after))
        return;
    rc = co_store_user_orders_page(w->db, user, limit, starting_after, &json, &refusal);
    co_api_page(resp, rc, json, &refusal, "order of yours");
    free(json);
}

/* GET /v1/orders/{id}, POST /v1/orders/{id}/cancel, POST /v1/orders/{id}/confirm.
 * A shopper sees only their own orders: others' answer 404, as unknown ids do. */
#include "co_app.h"
#include "co_store.h"

#include <string.h>

/* The caller's order, or an answer already given (401/404/503). */
static bool own_order(co_worker *w, const co_req *req, co_resp *resp, co_order *o)
{
    char user[37], id[37];
    co_db_status st;

    if (!co_api_user(w, req, resp, user))
        return false;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return false;
    }
    st = co_store_load_order(w->db, id, o);
    if (st == CO_DB_NONE || (st == CO_DB_ROWS && strcmp(o->user_id, user) != 0)) {
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return false;
    }
    if (st != CO_DB_ROWS) {
        co_api_db_error(resp, st);
        return false;
    }
    return true;
}

void co_api_order_get(co_worker *w, const co_req *req, co_resp *resp)
{
    char user[37], id[37];

    if (co_api_is_admin(w, req)) {
        co_api_admin_order_get(w, req, resp);
        return;
    }
    if (!co_api_user(w, req, resp, user))
        return;
    if (!co_api_uuid(req->param, id)) {
        co_resp_error(resp, CO_ERR_order_not_found, NULL, NULL);
        return;
    }
    co_api_order(w, resp, id, user, 200);
}

void co_api_order_cancel(co_worker *w, const co_req *req, co_resp *resp)
{
    co_order o;

    if (!own_order(w, req, resp, &o))
        return;
    switch (o.status) {
    case CO_ST_AWAITING_PAYMENT:
    case CO_ST_CONFIRMED:
        co_saga_reset(&w->saga);
        (void)co_saga_drive(&w->saga, &o, CO_DRIVE_CANCEL);
        break;
    case CO_ST_CANCELLED:
    case CO_ST_REFUNDED:
    case CO_ST_VOIDING:
    case CO_ST_REFUNDING:
        break; /* already cancelled, or being compensated: answer where it is */
    default:
        co_resp_error(resp, CO_ERR_order_state_conflict,
                      o.status == CO_ST_RESERVED || o.status == CO_ST_AUTHORIZED
                          ? "The checkout is still running; cancel once it has answered."
                          : "The order has ended and cannot be cancelled.",
                      json_pack("{s:s, s:s}", "order_id", o.id, "status",
                                co_state_name(o.status)));
        return;
    }
    /* 200 when the cancel is complete, 202 while it finishes in the background. */
    co_api_order(w, resp, o.id, NULL, co_state_terminal(o.status) ? 200 : 202);
}

void co_api_order_confirm(co_worker *w, const co_req *req, co_resp *resp)
{
    co_order o;

    if (!own_order(w, req, resp, &o))
        return;
    if (o.status == CO_ST_AWAITING_PAYMENT) {
        co_saga_reset(&w->saga);
        (void)co_saga_drive(&w->saga, &o, CO_DRIVE_CONFIRM);
    }
    if (o.status == CO_ST_AWAITING_PAYMENT) {
        co_resp_error(resp, CO_ERR_order_state_conflict,
                      "The payment is not authorized yet; confirm it with the provider first.",
                      json_pack("{s:s, s:s}", "order_id", o.id, "status", "awaiting_payment"));
        return;
    }
    co_api_order(w, resp, o.id, NULL, 200);
}

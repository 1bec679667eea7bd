/* The shopper's moves on an order once its checkout has answered: cancel
 * (POST /v1/orders/{id}/cancel) and confirm (POST /v1/orders/{id}/confirm).
 * A shopper sees only their own orders: others' are "not found". */
#include "steps.h"

#include <string.h>

/* The user's order (user_id NULL: anyone's) into *o. */
static co_order_result own_order(const co_saga *s, const char *order_id, const char *user_id,
                                 co_order *o)
{
    co_store_rc rc = s->store.load_order(s->store.impl, order_id, o);

    if (rc == CO_STORE_NONE || (rc == CO_STORE_OK && user_id != NULL &&
                                strcmp(o->user_id, user_id) != 0))
        return CO_ORDER_NOT_FOUND;
    return rc == CO_STORE_OK ? CO_ORDER_DONE : CO_ORDER_UNAVAILABLE;
}

static void drive(const co_saga *s, co_order *o, co_drive_mode mode)
{
    co_run run = co_run_begin(s);

    (void)co_saga_drive(&run, o, mode);
    co_run_end(&run);
}

co_order_result co_saga_cancel(const co_saga *s, const char *order_id, const char *user_id,
                               co_order *o)
{
    co_order_result res = own_order(s, order_id, user_id, o);

    if (res != CO_ORDER_DONE)
        return res;
    switch (o->status) {
    case CO_ST_AWAITING_PAYMENT:
    case CO_ST_CONFIRMED:
        drive(s, o, CO_DRIVE_CANCEL);
        return CO_ORDER_DONE;
    case CO_ST_CANCELLED:
    case CO_ST_REFUNDED:
    case CO_ST_VOIDING:
    case CO_ST_REFUNDING:
        return CO_ORDER_DONE; /* already cancelled, or being compensated */
    case CO_ST_RESERVED:
    case CO_ST_AUTHORIZED:
        return CO_ORDER_RUNNING;
    default:
        return CO_ORDER_ENDED;
    }
}

co_order_result co_saga_confirm(const co_saga *s, const char *order_id, const char *user_id,
                                co_order *o)
{
    co_order_result res = own_order(s, order_id, user_id, o);

    if (res != CO_ORDER_DONE)
        return res;
    if (o->status == CO_ST_AWAITING_PAYMENT)
        drive(s, o, CO_DRIVE_CONFIRM);
    return o->status == CO_ST_AWAITING_PAYMENT ? CO_ORDER_UNPAID : CO_ORDER_DONE;
}

/* awaiting_payment (mobile flow): the app confirms the PaymentIntent with the
 * provider's SDK. We look at it when told it is done (webhook or
 * POST /v1/orders/{id}/confirm) and when the reservation expires. */
#include "steps.h"

#include <string.h>

co_step co_step_awaiting_payment(co_run *r, co_order *o, co_drive_mode mode)
{
    co_payment res;
    co_change ch = CO_CHANGE_INIT;

    if (mode == CO_DRIVE_FORWARD && !o->expired)
        return CO_STEP_WAIT;
    if (mode == CO_DRIVE_CANCEL) {
        ch.reason = "cancelled_by_shopper";
        ch.compensate_to = CO_ST_CANCELLED;
        return co_saga_transition(r, o, CO_ST_VOIDING, &ch);
    }
    switch (r->saga->pay.retrieve(r->saga->pay.impl, o->payment_intent, &res)) {
    case CO_PAYMENT_OK:
        break;
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        return CO_STEP_RETRY;
    default:
        ch.reason = "payment_intent_unreadable";
        ch.failure_code = CO_FAIL_PROVIDER;
        ch.compensate_to = CO_ST_FAILED;
        return co_saga_transition(r, o, CO_ST_VOIDING, &ch);
    }
    if (res.status == CO_INTENT_REQUIRES_CAPTURE) {
        /* Paid before we voided, even if the clock ran out: honour it, the
         * stock is still held. */
        ch.reason = "authorized";
        return co_saga_transition(r, o, CO_ST_AUTHORIZED, &ch);
    }
    if (res.status == CO_INTENT_SUCCEEDED) {
        ch.reason = "captured_by_provider";
        return co_saga_transition(r, o, CO_ST_CONFIRMED, &ch);
    }
    if (res.status == CO_INTENT_CANCELED) {
        ch.reason = "payment_intent_canceled";
        ch.failure_code = CO_FAIL_DECLINED;
        ch.compensate_to = CO_ST_FAILED;
        return co_saga_transition(r, o, CO_ST_VOIDING, &ch);
    }
    if (o->expired) {
        ch.reason = "reservation_expired";
        ch.compensate_to = CO_ST_EXPIRED;
        return co_saga_transition(r, o, CO_ST_VOIDING, &ch);
    }
    return CO_STEP_WAIT; /* not authorized yet (requires_payment_method, processing, ...) */
}

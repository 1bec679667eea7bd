/* awaiting_payment (mobile flow): the app confirms the PaymentIntent with the
 * provider's SDK. We look at it when told it is done (webhook or
 * POST /v1/orders/{id}/confirm) and when the reservation expires. */
#include "saga.h"

#include <string.h>

co_step co_step_awaiting_payment(co_saga *s, co_order *o, co_drive_mode mode)
{
    co_pay_result res;
    co_change ch = CO_CHANGE_INIT;

    if (mode == CO_DRIVE_FORWARD && !o->expired)
        return CO_STEP_WAIT;
    if (mode == CO_DRIVE_CANCEL) {
        ch.reason = "cancelled_by_shopper";
        ch.compensate_to = CO_ST_CANCELLED;
        return co_saga_transition(s, o, CO_ST_VOIDING, &ch);
    }
    switch (s->pay.retrieve(s->pay.impl, o->payment_intent, &res)) {
    case CO_PAY_OK:
        break;
    case CO_PAY_UNAVAILABLE:
        return CO_STEP_RETRY;
    default:
        ch.reason = "payment_intent_unreadable";
        ch.failure_code = "payment_provider_error";
        ch.compensate_to = CO_ST_FAILED;
        return co_saga_transition(s, o, CO_ST_VOIDING, &ch);
    }
    if (strcmp(res.pi.status, "requires_capture") == 0) {
        /* Paid before we voided, even if the clock ran out: honour it, the
         * stock is still held. */
        ch.reason = "authorized";
        return co_saga_transition(s, o, CO_ST_AUTHORIZED, &ch);
    }
    if (strcmp(res.pi.status, "succeeded") == 0) {
        ch.reason = "captured_by_provider";
        return co_saga_transition(s, o, CO_ST_CONFIRMED, &ch);
    }
    if (strcmp(res.pi.status, "canceled") == 0) {
        ch.reason = "payment_intent_canceled";
        ch.failure_code = "payment_declined";
        ch.compensate_to = CO_ST_FAILED;
        return co_saga_transition(s, o, CO_ST_VOIDING, &ch);
    }
    if (o->expired) {
        ch.reason = "reservation_expired";
        ch.compensate_to = CO_ST_EXPIRED;
        return co_saga_transition(s, o, CO_ST_VOIDING, &ch);
    }
    return CO_STEP_WAIT; /* not authorized yet (requires_payment_method, processing, ...) */
}

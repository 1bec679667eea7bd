/* authorized: the PaymentIntent holds the amount. Capture it. */
#include "saga.h"

#include <string.h>

co_step co_saga_capture(co_saga *s, co_order *o, co_state via)
{
    char key[80];
    co_pay_result res;
    co_pay_status st;
    co_change ch = CO_CHANGE_INIT;

    co_saga_key(o, "capture", key);
    st = s->pay.capture(s->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(s, "after_capture_call");
    if (co_saga_contended(st, &res))
        return CO_STEP_RETRY;
    ch.via = via;
    ch.payment_intent = o->payment_intent;
    switch (st) {
    case CO_PAY_OK:
        ch.reason = "captured";
        return co_saga_transition(s, o, CO_ST_CONFIRMED, &ch);
    case CO_PAY_UNEXPECTED_STATE:
        if (strcmp(res.pi.status, "succeeded") == 0) {
            ch.reason = "captured";
            return co_saga_transition(s, o, CO_ST_CONFIRMED, &ch);
        }
        return co_saga_void(s, o, "payment_provider_error", &res, via);
    case CO_PAY_DECLINED:
        return co_saga_void(s, o, "payment_declined", &res, via);
    case CO_PAY_UNAVAILABLE:
        /* Failed for good after the client's retries: void, release. If the
         * capture did happen, voiding finds out and refunds. */
        return co_saga_void(s, o, "payment_provider_unavailable", &res, via);
    default:
        return co_saga_void(s, o, "payment_provider_error", &res, via);
    }
}

co_step co_step_authorized(co_saga *s, co_order *o)
{
    return co_saga_capture(s, o, CO_ST_NONE);
}

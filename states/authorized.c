/* authorized: the PaymentIntent holds the amount. Capture it. */
#include "steps.h"

#include <string.h>

co_step co_saga_capture(co_run *r, co_order *o, co_state via)
{
    char key[80];
    co_payment res;
    co_payment_result st;
    co_change ch = CO_CHANGE_INIT;

    co_saga_key(o, "capture", key);
    st = r->saga->pay.capture(r->saga->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(r, "after_capture_call");
    if (st == CO_PAYMENT_IN_USE)
        return CO_STEP_RETRY;
    ch.via = via;
    ch.payment_intent = o->payment_intent;
    switch (st) {
    case CO_PAYMENT_OK:
        ch.reason = "captured";
        return co_saga_transition(r, o, CO_ST_CONFIRMED, &ch);
    case CO_PAYMENT_WRONG_STATE:
        if (res.status == CO_INTENT_SUCCEEDED) {
            ch.reason = "captured";
            return co_saga_transition(r, o, CO_ST_CONFIRMED, &ch);
        }
        return co_saga_void(r, o, CO_FAIL_PROVIDER, &res, via);
    case CO_PAYMENT_DECLINED:
        return co_saga_void(r, o, CO_FAIL_DECLINED, &res, via);
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        /* Failed for good after the client's retries: void, release. If the
         * capture did happen, voiding finds out and refunds. */
        return co_saga_void(r, o, CO_FAIL_UNAVAILABLE, &res, via);
    default:
        return co_saga_void(r, o, CO_FAIL_PROVIDER, &res, via);
    }
}

co_step co_step_authorized(co_run *r, co_order *o)
{
    return co_saga_capture(r, o, CO_ST_NONE);
}

/* voiding: compensation before capture. Cancel the PaymentIntent (learning it
 * first by repeating the create call if its answer was lost), then release the
 * stock and end in compensate_to. */
#include "co_log.h"
#include "steps.h"

#include <stdio.h>
#include <string.h>

static co_step finish(co_run *r, co_order *o, const char *reason)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = reason;
    ch.release = true;
    return co_saga_transition(r, o, o->compensate_to, &ch);
}

static co_step to_refunding(co_run *r, co_order *o)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = "captured_before_void";
    ch.compensate_to = CO_ST_REFUNDED;
    return co_saga_transition(r, o, CO_ST_REFUNDING, &ch);
}

co_step co_step_voiding(co_run *r, co_order *o)
{
    char key[80];
    co_payment res;
    co_payment_result st = CO_PAYMENT_OK;

    if (o->payment_intent[0] == '\0') {
        /* Same key as the lost call: the provider replays its answer. */
        st = co_saga_create_intent(r, o, &res);
        if (co_payment_unknown(st))
            return CO_STEP_RETRY;
        if (st != CO_PAYMENT_OK || res.intent[0] == '\0')
            return finish(r, o, "nothing_to_void");
        snprintf(o->payment_intent, sizeof o->payment_intent, "%s", res.intent);
    }
    if (o->compensate_to == CO_ST_EXPIRED) {
        st = r->saga->pay.retrieve(r->saga->pay.impl, o->payment_intent, &res);
        if (co_payment_unknown(st))
            return CO_STEP_RETRY; /* it may have been paid: do not void blind */
    }
    if (o->compensate_to == CO_ST_EXPIRED && st == CO_PAYMENT_OK &&
        res.status == CO_INTENT_REQUIRES_CAPTURE) {
        co_change ch = CO_CHANGE_INIT;
        /* The shopper paid just as the reservation lapsed; the stock is still ours. */
        ch.reason = "late_authorization";
        ch.payment_intent = o->payment_intent;
        return co_saga_transition(r, o, CO_ST_AUTHORIZED, &ch);
    }
    co_saga_key(o, "cancel", key);
    st = r->saga->pay.cancel(r->saga->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(r, "after_cancel_call");
    switch (st) {
    case CO_PAYMENT_OK:
        return finish(r, o, "authorization_voided");
    case CO_PAYMENT_WRONG_STATE:
        if (res.status == CO_INTENT_CANCELED)
            return finish(r, o, "authorization_voided");
        if (res.status == CO_INTENT_SUCCEEDED)
            return to_refunding(r, o);
        CO_WARN("saga", "order %s: cancel refused in state %s", o->id,
                co_intent_status_name(res.status));
        return CO_STEP_RETRY;
    case CO_PAYMENT_NOT_FOUND:
        return finish(r, o, "nothing_to_void");
    default:
        return CO_STEP_RETRY;
    }
}

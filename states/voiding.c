/* voiding: compensation before capture. Cancel the PaymentIntent (learning it
 * first by repeating the create call if its answer was lost), then release the
 * stock and end in compensate_to. */
#include "co_log.h"
#include "saga.h"

#include <string.h>

static co_step finish(co_saga *s, co_order *o, const char *reason)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = reason;
    ch.release = true;
    return co_saga_transition(s, o, o->compensate_to, &ch);
}

static co_step to_refunding(co_saga *s, co_order *o)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = "captured_before_void";
    ch.compensate_to = CO_ST_REFUNDED;
    return co_saga_transition(s, o, CO_ST_REFUNDING, &ch);
}

co_step co_step_voiding(co_saga *s, co_order *o)
{
    char key[80];
    co_pay_result res;
    co_pay_status st = CO_PAY_OK;

    if (o->payment_intent[0] == '\0') {
        /* Same key as the lost call: the provider replays its answer. */
        st = co_saga_create_intent(s, o, &res);
        if (st == CO_PAY_UNAVAILABLE)
            return CO_STEP_RETRY;
        if (st != CO_PAY_OK || res.pi.id[0] == '\0')
            return finish(s, o, "nothing_to_void");
        snprintf(o->payment_intent, sizeof o->payment_intent, "%s", res.pi.id);
    }
    if (o->compensate_to == CO_ST_EXPIRED) {
        st = s->pay.retrieve(s->pay.impl, o->payment_intent, &res);
        if (st == CO_PAY_UNAVAILABLE)
            return CO_STEP_RETRY; /* it may have been paid: do not void blind */
    }
    if (o->compensate_to == CO_ST_EXPIRED && st == CO_PAY_OK &&
        strcmp(res.pi.status, "requires_capture") == 0) {
        co_change ch = CO_CHANGE_INIT;
        /* The shopper paid just as the reservation lapsed; the stock is still ours. */
        ch.reason = "late_authorization";
        ch.payment_intent = o->payment_intent;
        return co_saga_transition(s, o, CO_ST_AUTHORIZED, &ch);
    }
    co_saga_key(o, "cancel", key);
    st = s->pay.cancel(s->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(s, "after_cancel_call");
    switch (st) {
    case CO_PAY_OK:
        return finish(s, o, "authorization_voided");
    case CO_PAY_UNEXPECTED_STATE:
        if (strcmp(res.pi.status, "canceled") == 0)
            return finish(s, o, "authorization_voided");
        if (strcmp(res.pi.status, "succeeded") == 0)
            return to_refunding(s, o);
        CO_WARN("saga", "order %s: cancel refused in state %s", o->id, res.pi.status);
        return CO_STEP_RETRY;
    case CO_PAY_NOT_FOUND:
        return finish(s, o, "nothing_to_void");
    default:
        return CO_STEP_RETRY;
    }
}

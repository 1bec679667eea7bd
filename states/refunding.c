/* refunding: compensation after capture. Refund in full, release, refunded. */
#include "co_log.h"
#include "saga.h"

co_step co_step_refunding(co_saga *s, co_order *o)
{
    char key[80];
    co_pay_result res;
    co_pay_status st;
    co_change ch = CO_CHANGE_INIT;

    co_saga_key(o, "refund", key);
    st = s->pay.refund(s->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(s, "after_refund_call");
    if (st != CO_PAY_OK && st != CO_PAY_ALREADY_REFUNDED) {
        CO_WARN("saga", "order %s: refund %s, will retry", o->id, co_pay_status_name(st));
        return CO_STEP_RETRY;
    }
    ch.reason = st == CO_PAY_OK ? "refunded" : "already_refunded";
    ch.release = true;
    return co_saga_transition(s, o, CO_ST_REFUNDED, &ch);
}

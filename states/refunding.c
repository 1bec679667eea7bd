/* refunding: compensation after capture. Refund in full, release, refunded. */
#include "co_log.h"
#include "co_metrics.h"
#include "saga.h"

#include <string.h>

co_step co_step_refunding(co_saga *s, co_order *o)
{
    char key[80];
    co_pay_result res;
    co_pay_status st;
    co_change ch = CO_CHANGE_INIT;

    co_saga_key(o, "refund", key);
    st = s->pay.refund(s->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(s, "after_refund_call");
    if (st == CO_PAY_NOT_FOUND || st == CO_PAY_REJECTED || st == CO_PAY_UNEXPECTED_STATE) {
        /* Refused for good: if nothing was ever captured there is nothing to
         * give back, and the order can end; if money is held, keep trying
         * (and say so loudly) rather than end with it kept. */
        co_pay_result pi;
        if (s->pay.retrieve(s->pay.impl, o->payment_intent, &pi) == CO_PAY_OK &&
            strcmp(pi.pi.status, "succeeded") != 0) {
            st = CO_PAY_ALREADY_REFUNDED;
            ch.reason = "nothing_captured";
        } else {
            CO_ERROR("saga", "order %s: refund refused (%s); needs an operator if it persists",
                     o->id, res.message);
            co_metric_add("refund_refused", 1);
            return CO_STEP_RETRY;
        }
    } else if (st != CO_PAY_OK && st != CO_PAY_ALREADY_REFUNDED) {
        CO_WARN("saga", "order %s: refund %s, will retry", o->id, co_pay_status_name(st));
        return CO_STEP_RETRY;
    }
    if (ch.reason == NULL)
        ch.reason = st == CO_PAY_OK ? "refunded" : "already_refunded";
    ch.release = true;
    return co_saga_transition(s, o, CO_ST_REFUNDED, &ch);
}

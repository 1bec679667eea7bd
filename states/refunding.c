/* refunding: compensation after capture. Refund in full, release, refunded. */
#include "co_log.h"
#include "co_metrics.h"
#include "steps.h"

#include <string.h>

co_step co_step_refunding(co_run *r, co_order *o)
{
    char key[80];
    co_payment res;
    co_payment_result st;
    co_change ch = CO_CHANGE_INIT;

    co_saga_key(o, "refund", key);
    st = r->saga->pay.refund(r->saga->pay.impl, o->payment_intent, key, &res);
    co_saga_crash_point(r, "after_refund_call");
    if (st == CO_PAYMENT_NOT_FOUND || st == CO_PAYMENT_REFUSED || st == CO_PAYMENT_WRONG_STATE) {
        /* Refused for good: if nothing was ever captured there is nothing to
         * give back, and the order can end; if money is held, keep trying
         * (and say so loudly) rather than end with it kept. */
        co_payment pi;
        if (r->saga->pay.retrieve(r->saga->pay.impl, o->payment_intent, &pi) == CO_PAYMENT_OK &&
            pi.status != CO_INTENT_SUCCEEDED) {
            st = CO_PAYMENT_ALREADY_REFUNDED;
            ch.reason = "nothing_captured";
        } else {
            CO_ERROR("saga", "order %s: refund refused (%s); needs an operator if it persists",
                     o->id, res.message);
            co_metric_add("refund_refused", 1);
            return CO_STEP_RETRY;
        }
    } else if (st != CO_PAYMENT_OK && st != CO_PAYMENT_ALREADY_REFUNDED) {
        CO_WARN("saga", "order %s: refund %s, will retry", o->id, co_payment_result_name(st));
        return CO_STEP_RETRY;
    }
    if (ch.reason == NULL)
        ch.reason = st == CO_PAYMENT_OK ? "refunded" : "already_refunded";
    ch.release = true;
    return co_saga_transition(r, o, CO_ST_REFUNDED, &ch);
}

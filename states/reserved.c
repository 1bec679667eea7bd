/* reserved: stock is held. Server flow: authorize (confirm with manual
 * capture). Mobile flow: create the PaymentIntent the app will confirm. */
#include "steps.h"

#include <stdio.h>
#include <string.h>

co_payment_result co_saga_create_intent(co_run *r, const co_order *o, co_payment *res)
{
    char key[80];
    co_intent_params p = {
        .amount = o->amount,
        .currency = o->currency,
        .payment_method = o->mobile ? NULL : o->payment_method,
        .confirm = !o->mobile,
        .order_id = o->id,
    };

    co_saga_key(o, o->mobile ? "create" : "authorize", key);
    return r->saga->pay.create(r->saga->pay.impl, &p, key, res);
}

static co_step fail(co_run *r, co_order *o, const char *code, const co_payment *res)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = code;
    ch.failure_code = code;
    ch.release = true;
    if (res->decline_code[0] != '\0')
        ch.decline_code = res->decline_code;
    else if (strcmp(code, CO_FAIL_DECLINED) == 0 && res->code[0] != '\0')
        ch.decline_code = res->code;
    if (res->intent[0] != '\0')
        ch.payment_intent = res->intent;
    return co_saga_transition(r, o, CO_ST_FAILED, &ch);
}

co_step co_step_reserved(co_run *r, co_order *o)
{
    co_payment res;
    co_payment_result st = co_saga_create_intent(r, o, &res);
    co_change ch = CO_CHANGE_INIT;

    co_saga_crash_point(r, o->mobile ? "after_create_call" : "after_authorize_call");
    if (st == CO_PAYMENT_IN_USE)
        return CO_STEP_RETRY;
    switch (st) {
    case CO_PAYMENT_OK:
        ch.payment_intent = res.intent;
        if (o->mobile) {
            ch.client_secret = res.client_secret;
            ch.reason = "payment_intent_created";
            return co_saga_transition(r, o, CO_ST_AWAITING_PAYMENT, &ch);
        }
        if (res.status == CO_INTENT_REQUIRES_CAPTURE ||
            res.status == CO_INTENT_SUCCEEDED) {
            /* Capture at once; the authorization is committed with the
             * outcome. Safe because both calls are keyed by order and step:
             * after a crash, recovery repeats them and the provider replays. */
            snprintf(o->payment_intent, sizeof o->payment_intent, "%s", res.intent);
            return co_saga_capture(r, o, CO_ST_AUTHORIZED);
        }
        if (res.status == CO_INTENT_REQUIRES_ACTION)
            return co_saga_void(r, o, CO_FAIL_AUTH_REQUIRED, &res, CO_ST_NONE);
        return co_saga_void(r, o, CO_FAIL_PROVIDER, &res, CO_ST_NONE);
    case CO_PAYMENT_DECLINED:
        return fail(r, o, CO_FAIL_DECLINED, &res);
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        /* The authorization may exist without our knowing: void it to be sure. */
        return co_saga_void(r, o, CO_FAIL_UNAVAILABLE, &res, CO_ST_NONE);
    default:
        return fail(r, o, CO_FAIL_PROVIDER, &res);
    }
}

/* reserved: stock is held. Server flow: authorize (confirm with manual
 * capture). Mobile flow: create the PaymentIntent the app will confirm. */
#include "saga.h"

#include <stdio.h>
#include <string.h>

co_pay_status co_saga_create_intent(co_saga *s, const co_order *o, co_pay_result *res)
{
    char key[80];
    co_pi_create_params p = {
        .amount = o->amount,
        .currency = o->currency,
        .payment_method = o->mobile ? NULL : o->payment_method,
        .confirm = !o->mobile,
        .manual_capture = true,
        .order_id = o->id,
    };

    co_saga_key(o, o->mobile ? "create" : "authorize", key);
    return s->pay.create(s->pay.impl, &p, key, res);
}

static co_step fail(co_saga *s, co_order *o, const char *code, const co_pay_result *res)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = code;
    ch.failure_code = code;
    ch.release = true;
    if (res->decline_code[0] != '\0')
        ch.decline_code = res->decline_code;
    else if (strcmp(code, "payment_declined") == 0 && res->code[0] != '\0')
        ch.decline_code = res->code;
    if (res->pi.id[0] != '\0')
        ch.payment_intent = res->pi.id;
    return co_saga_transition(s, o, CO_ST_FAILED, &ch);
}

co_step co_step_reserved(co_saga *s, co_order *o)
{
    co_pay_result res;
    co_pay_status st = co_saga_create_intent(s, o, &res);
    co_change ch = CO_CHANGE_INIT;

    co_saga_crash_point(s, o->mobile ? "after_create_call" : "after_authorize_call");
    if (co_saga_contended(st, &res))
        return CO_STEP_RETRY;
    switch (st) {
    case CO_PAY_OK:
        ch.payment_intent = res.pi.id;
        if (o->mobile) {
            ch.client_secret = res.pi.client_secret;
            ch.reason = "payment_intent_created";
            return co_saga_transition(s, o, CO_ST_AWAITING_PAYMENT, &ch);
        }
        if (strcmp(res.pi.status, "requires_capture") == 0 ||
            strcmp(res.pi.status, "succeeded") == 0) {
            /* Capture at once; the authorization is committed with the
             * outcome. Safe because both calls are keyed by order and step:
             * after a crash, recovery repeats them and the provider replays. */
            snprintf(o->payment_intent, sizeof o->payment_intent, "%s", res.pi.id);
            return co_saga_capture(s, o, CO_ST_AUTHORIZED);
        }
        if (strcmp(res.pi.status, "requires_action") == 0)
            return co_saga_void(s, o, "authentication_required", &res, CO_ST_NONE);
        return co_saga_void(s, o, "payment_provider_error", &res, CO_ST_NONE);
    case CO_PAY_DECLINED:
        return fail(s, o, "payment_declined", &res);
    case CO_PAY_UNAVAILABLE:
        /* The authorization may exist without our knowing: void it to be sure. */
        return co_saga_void(s, o, "payment_provider_unavailable", &res, CO_ST_NONE);
    default:
        return fail(s, o, "payment_provider_error", &res);
    }
}

/* Driving an order: run the step of its state until it waits, ends, or cannot
 * go on now (then recovery picks it up once its lease lapses). */
#include "co_log.h"
#include "saga.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void co_saga_reset(co_saga *s)
{
    free(s->answer_body);
    s->answer_body = NULL;
    s->answer_status = 0;
    s->event_id = NULL;
    s->event_type = NULL;
}

void co_saga_key(const co_order *o, const char *step, char out[80])
{
    snprintf(out, 80, "%s:%s", o->id, step);
}

void co_saga_crash_point(const co_saga *s, const char *name)
{
    if (s->crash_at == NULL || strcmp(s->crash_at, name) != 0)
        return;
    CO_WARN("saga", "crash point %s: SIGKILL", name);
    kill(getpid(), SIGKILL);
}

co_step co_saga_drive(co_saga *s, co_order *o, co_drive_mode mode)
{
    /* A bound, not a limit we expect to reach: the longest path has 5 moves. */
    for (int moves = 0; moves < 12; moves++) {
        co_step r;

        switch (o->status) {
        case CO_ST_RESERVED:
            r = co_step_reserved(s, o);
            break;
        case CO_ST_AWAITING_PAYMENT:
            r = co_step_awaiting_payment(s, o, mode);
            break;
        case CO_ST_AUTHORIZED:
            r = co_step_authorized(s, o);
            break;
        case CO_ST_CAPTURED:
            r = co_step_captured(s, o);
            break;
        case CO_ST_VOIDING:
            r = co_step_voiding(s, o);
            break;
        case CO_ST_REFUNDING:
            r = co_step_refunding(s, o);
            break;
        case CO_ST_CONFIRMED:
            r = co_step_confirmed(s, o, mode);
            break;
        case CO_ST_PENDING:
        case CO_ST_FAILED:
        case CO_ST_EXPIRED:
        case CO_ST_CANCELLED:
        case CO_ST_REFUNDED:
            return CO_STEP_WAIT;
        default:
            abort();
        }
        if (r != CO_STEP_MOVED)
            return r;
        /* A cancel is carried out once; what follows is ordinary driving. */
        if (mode == CO_DRIVE_CANCEL)
            mode = CO_DRIVE_FORWARD;
    }
    return CO_STEP_RETRY;
}

bool co_saga_contended(co_pay_status st, const co_pay_result *res)
{
    return st == CO_PAY_UNAVAILABLE && res->http_status == 409;
}

co_step co_saga_void(co_saga *s, co_order *o, const char *code, const co_pay_result *res,
                     co_state via)
{
    co_change ch = CO_CHANGE_INIT;

    ch.via = via;
    if (via != CO_ST_NONE)
        ch.payment_intent = o->payment_intent;
    ch.reason = code;
    ch.failure_code = code;
    ch.compensate_to = CO_ST_FAILED;
    if (res->decline_code[0] != '\0')
        ch.decline_code = res->decline_code;
    if (res->pi.id[0] != '\0' && o->payment_intent[0] == '\0')
        ch.payment_intent = res->pi.id;
    return co_saga_transition(s, o, CO_ST_VOIDING, &ch);
}

/* ------------------------------------------------ the libcurl-backed port */

static co_pay_status port_create(void *impl, const co_pi_create_params *p, const char *key,
                                 co_pay_result *out)
{
    return co_stripe_create_intent(impl, p, key, out);
}

static co_pay_status port_retrieve(void *impl, const char *pi, co_pay_result *out)
{
    return co_stripe_retrieve_intent(impl, pi, out);
}

static co_pay_status port_capture(void *impl, const char *pi, const char *key, co_pay_result *out)
{
    return co_stripe_capture(impl, pi, -1, key, out);
}

static co_pay_status port_cancel(void *impl, const char *pi, const char *key, co_pay_result *out)
{
    return co_stripe_cancel(impl, pi, key, out);
}

static co_pay_status port_refund(void *impl, const char *pi, const char *key, co_pay_result *out)
{
    return co_stripe_refund(impl, pi, -1, key, out);
}

co_pay_port co_pay_port_stripe(co_stripe *client)
{
    return (co_pay_port){.impl = client, .create = port_create, .retrieve = port_retrieve,
                         .capture = port_capture, .cancel = port_cancel, .refund = port_refund};
}

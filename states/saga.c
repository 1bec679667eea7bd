/* Driving an order: run the step of its state until it waits, ends, or cannot
 * go on now (then recovery picks it up once its lease lapses). */
#include "co_log.h"
#include "co_metrics.h"
#include "steps.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

co_run co_run_begin(const co_saga *s)
{
    return (co_run){.saga = s};
}

void co_run_end(co_run *r)
{
    co_answer_clear(&r->answer);
    r->event_id = NULL;
    r->event_type = NULL;
}

void co_answer_clear(co_answer *a)
{
    free(a->body);
    a->body = NULL;
    a->code = 0;
}

const char *co_payment_result_name(co_payment_result r)
{
    static const char *const names[] = {
        [CO_PAYMENT_OK] = "ok",
        [CO_PAYMENT_DECLINED] = "declined",
        [CO_PAYMENT_WRONG_STATE] = "wrong_state",
        [CO_PAYMENT_NOT_FOUND] = "not_found",
        [CO_PAYMENT_ALREADY_REFUNDED] = "already_refunded",
        [CO_PAYMENT_REFUSED] = "refused",
        [CO_PAYMENT_UNKNOWN] = "unknown",
        [CO_PAYMENT_IN_USE] = "in_use",
    };

    if ((unsigned)r >= sizeof names / sizeof names[0])
        return "unknown";
    return names[r];
}

const char *co_intent_status_name(co_intent_status st)
{
    static const char *const names[] = {
        [CO_INTENT_OTHER] = "other",
        [CO_INTENT_REQUIRES_PAYMENT_METHOD] = "requires_payment_method",
        [CO_INTENT_REQUIRES_CONFIRMATION] = "requires_confirmation",
        [CO_INTENT_REQUIRES_ACTION] = "requires_action",
        [CO_INTENT_PROCESSING] = "processing",
        [CO_INTENT_REQUIRES_CAPTURE] = "requires_capture",
        [CO_INTENT_SUCCEEDED] = "succeeded",
        [CO_INTENT_CANCELED] = "canceled",
    };

    if ((unsigned)st >= sizeof names / sizeof names[0])
        return "other";
    return names[st];
}

void co_saga_key(const co_order *o, const char *step, char out[80])
{
    snprintf(out, 80, "%s:%s", o->id, step);
}

void co_saga_crash_point(const co_run *r, const char *name)
{
    if (r->saga->crash_at == NULL || strcmp(r->saga->crash_at, name) != 0)
        return;
    CO_WARN("saga", "crash point %s: SIGKILL", name);
    kill(getpid(), SIGKILL);
}

/* What a step did, as /metrics and the logs name it. */
static const char *step_name(co_step st)
{
    static const char *const names[] = {
        [CO_STEP_MOVED] = "moved", [CO_STEP_WAIT] = "wait", [CO_STEP_RETRY] = "retry",
        [CO_STEP_LOST] = "lost", [CO_STEP_SHORT] = "short",
    };

    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "other";
}

/* A step runs with the order and the step in the thread's log context, so
 * every line it writes names them. Ended and pending orders have no step. */
static void step_entered(const co_order *o)
{
    if (o->status == CO_ST_PENDING || co_state_terminal(o->status))
        return;
    co_log_ctx_order(o->id);
    co_log_ctx_step(co_state_name(o->status));
    CO_DEBUG("saga", "step %s entered", co_state_name(o->status));
}

static void step_left(const co_order *o, const char *step, co_step st, double t0)
{
    co_log_field f[] = {CO_LOG_STR("result", step_name(st)),
                        CO_LOG_STR("state", co_state_name(o->status)),
                        CO_LOG_MS("duration_ms", co_log_now_ms() - t0)};

    CO_LOGF(CO_LOG_DEBUG, "saga", f, "step %s left: %s, now %s", step, step_name(st),
            co_state_name(o->status));
    co_log_ctx_step(NULL);
}

co_step co_saga_drive(co_run *r, co_order *o, co_drive_mode mode)
{
    /* A bound, not a limit we expect to reach: the longest path has 5 moves. */
    for (int moves = 0; moves < 12; moves++) {
        const char *step = co_state_name(o->status);
        long long t0 = co_metric_now_us();
        double t0_ms = co_log_now_ms();
        co_step st;

        step_entered(o);
        switch (o->status) {
        case CO_ST_RESERVED:
            st = co_step_reserved(r, o);
            break;
        case CO_ST_AWAITING_PAYMENT:
            st = co_step_awaiting_payment(r, o, mode);
            break;
        case CO_ST_AUTHORIZED:
            st = co_step_authorized(r, o);
            break;
        case CO_ST_CAPTURED:
            st = co_step_captured(r, o);
            break;
        case CO_ST_VOIDING:
            st = co_step_voiding(r, o);
            break;
        case CO_ST_REFUNDING:
            st = co_step_refunding(r, o);
            break;
        case CO_ST_CONFIRMED:
            st = co_step_confirmed(r, o, mode);
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
        co_metric_step(step, step_name(st), t0);
        step_left(o, step, st, t0_ms);
        if (st != CO_STEP_MOVED)
            return st;
        /* A cancel is carried out once; what follows is ordinary driving. */
        if (mode == CO_DRIVE_CANCEL)
            mode = CO_DRIVE_FORWARD;
    }
    return CO_STEP_RETRY;
}

co_step co_saga_void(co_run *r, co_order *o, const char *code, const co_payment *res,
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
    if (res->intent[0] != '\0' && o->payment_intent[0] == '\0')
        ch.payment_intent = res->intent;
    return co_saga_transition(r, o, CO_ST_VOIDING, &ch);
}

/* ---------------------------------------------------------- recovery */

int co_saga_recover(const co_saga *s, int max, const atomic_bool *stop)
{
    char ids[16][37];
    int n = 0;
    int driven = 0;

    if (max > 16)
        max = 16;
    if (s->store.claim_stalled(s->store.impl, s->owner, s->lease_seconds, max, ids, &n) < 0)
        return 0;
    if (n > 0)
        CO_DEBUG("recovery", "sweep picked %d stalled order(s)", n);
    for (int i = 0; i < n && !atomic_load(stop); i++) {
        co_run run = co_run_begin(s);
        co_order o;
        co_step step;

        co_log_ctx_order(ids[i]);
        if (s->store.load_order(s->store.impl, ids[i], &o) != CO_STORE_OK) {
            CO_DEBUG("recovery", "order %s: picked but cannot be read now", ids[i]);
            co_log_ctx_clear();
            continue;
        }
        CO_INFO("recovery", "order %s: resuming from %s", o.id, co_state_name(o.status));
        step = co_saga_drive(&run, &o, CO_DRIVE_FORWARD);
        co_run_end(&run);
        co_metric_add("recovery_driven", 1);
        driven++;
        if (step == CO_STEP_RETRY)
            CO_WARN("recovery", "order %s: still %s, will retry", o.id, co_state_name(o.status));
        co_log_ctx_clear();
    }
    return driven;
}

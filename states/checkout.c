/* The checkout decision (POST /v1/checkout once parsed): idempotency, order
 * and reservation in one round trip (co_checkout_begin), then the saga driven
 * until its state decides the answer, which is stored with the move that
 * decided it, before it is sent. */
#include "co_log.h"
#include "memo.h"
#include "steps.h"

#include <stdio.h>
#include <string.h>

void co_checkout_result_clear(co_checkout_result *r)
{
    co_answer_clear(&r->answer);
}

static void answered(co_checkout_result *out, co_answer *a, co_state status, bool replayed)
{
    out->kind = CO_CHECKOUT_ANSWERED;
    out->answer = *a;
    *a = (co_answer){0};
    out->status = status;
    out->replayed = replayed;
}

/* The key's first request has no stored answer. Usually it is still running:
 * in progress. But an order that has ended (e.g. out of stock, and the server
 * died before storing that answer) will not be moved again, so its answer is
 * made from its state and stored now, once. */
static void answer_decided(const co_saga *s, const char *order_id, co_checkout_result *out)
{
    const co_store_port *st = &s->store;
    co_order o;
    co_answer a = {0};

    if (st->load_order(st->impl, order_id, &o) == CO_STORE_OK && co_state_terminal(o.status) &&
        o.answer_pending && co_order_answer_decided(&o) &&
        st->checkout_respond(st->impl, &o, &a) == CO_STORE_OK && a.body != NULL) {
        answered(out, &a, o.status, true);
        return;
    }
    co_answer_clear(&a);
    out->kind = CO_CHECKOUT_IN_PROGRESS;
}

/* The order begun: as co_checkout_begin wrote it. */
static void begun_order(const co_checkout_args *a, const co_checkout_begun *b, co_order *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", a->order_id);
    snprintf(o->user_id, sizeof o->user_id, "%s", a->user_id);
    o->mobile = a->mobile;
    snprintf(o->payment_method, sizeof o->payment_method, "%s",
             a->payment_method ? a->payment_method : "");
    o->amount = b->amount;
    snprintf(o->currency, sizeof o->currency, "%s", b->currency);
    snprintf(o->expires_at, sizeof o->expires_at, "%s", b->expires_at);
    o->compensate_to = CO_ST_NONE;
    o->answer_pending = true;
}

static void drive(co_run *r, co_order *o, co_checkout_result *out)
{
    const co_store_port *st = &r->saga->store;

    co_saga_crash_point(r, "after_reserve");
    (void)co_saga_drive(r, o, CO_DRIVE_FORWARD);
    co_saga_crash_point(r, "before_answer");
    if (r->answer.body == NULL) {
        /* Decided by another driver of this order (recovery elsewhere) or by
         * a statement whose reply was lost: the stored answer is the answer. */
        co_answer_clear(&r->answer);
        (void)st->checkout_answer(st->impl, o->id, &r->answer);
    }
    if (r->answer.body != NULL) {
        answered(out, &r->answer, o->status, false);
        return;
    }
    /* Not decided now (the store or provider is unreachable): recovery
     * finishes the order; the same Idempotency-Key then gets the answer. */
    out->kind = CO_CHECKOUT_UNDECIDED;
}

/* drive, with the order in the memo as driven by this request meanwhile (an
 * event about it is then left to us without a read: memo.h). */
static void drive_memo(co_run *r, co_order *o, co_checkout_result *out)
{
    co_memo_driving(r->saga->memo, o->id);
    drive(r, o, out);
    co_memo_done(r->saga->memo, o->id);
}

void co_saga_checkout(const co_saga *s, const co_checkout_args *a, co_checkout_result *out)
{
    const co_store_port *st = &s->store;
    co_run run = co_run_begin(s);
    co_checkout_begun b;
    co_order o;

    memset(out, 0, sizeof *out);
    out->status = CO_ST_NONE;
    memset(&b, 0, sizeof b);
    out->rc = st->checkout_begin(st->impl, a, &b);
    if (out->rc != CO_STORE_OK) {
        out->refusal = b.refusal;
        out->kind = out->rc == CO_STORE_FAILED && b.refusal.kind != CO_REFUSAL_OTHER &&
                            b.refusal.kind != CO_REFUSAL_NONE
                        ? CO_CHECKOUT_REFUSED
                        : CO_CHECKOUT_UNAVAILABLE;
        goto done;
    }
    snprintf(out->order_id, sizeof out->order_id, "%s", b.order_id);
    co_log_ctx_order(b.order_id);
    switch (b.outcome) {
    case CO_BEGUN_REPLAY:
        answered(out, &b.answer, CO_ST_NONE, true);
        goto done;
    case CO_BEGUN_REUSED:
        out->kind = CO_CHECKOUT_REUSED;
        goto done;
    case CO_BEGUN_LIMITED:
        out->kind = CO_CHECKOUT_LIMITED;
        out->retry_after = b.retry_after;
        goto done;
    case CO_BEGUN_IN_PROGRESS:
        /* The key's order is the one this request made: its first run of
         * co_checkout_begin committed and the reply was lost with the
         * connection (the store ran it again). Carry on with that order. */
        if (strcmp(b.order_id, a->order_id) == 0 &&
            st->load_order(st->impl, a->order_id, &o) == CO_STORE_OK &&
            o.status == CO_ST_RESERVED) {
            drive_memo(&run, &o, out);
            goto done;
        }
        answer_decided(s, b.order_id, out);
        goto done;
    case CO_BEGUN_OUT_OF_STOCK:
        begun_order(a, &b, &o);
        o.status = CO_ST_FAILED;
        snprintf(o.failure_code, sizeof o.failure_code, "%s", CO_FAIL_OUT_OF_STOCK);
        snprintf(o.failure_detail, sizeof o.failure_detail, "%s", b.short_item);
        co_saga_crash_point(&run, "before_out_of_stock_answer");
        /* Answered even if storing fails: a retry then stores it (answer_decided). */
        (void)st->checkout_respond(st->impl, &o, &run.answer);
        out->out_of_stock = true;
        if (run.answer.body != NULL)
            answered(out, &run.answer, o.status, false);
        else
            out->kind = CO_CHECKOUT_UNDECIDED;
        goto done;
    case CO_BEGUN_RESERVED:
        begun_order(a, &b, &o);
        o.status = CO_ST_RESERVED;
        o.stock_held = true;
        drive_memo(&run, &o, out);
        goto done;
    }
done:
    co_answer_clear(&b.answer);
    co_run_end(&run);
}

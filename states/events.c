/* Provider events (POST /webhooks/stripe): what each one does to an order.
 * The webhook handler verifies and parses; this decides, and moves an order
 * only through co_saga_transition / co_saga_drive (STYLE: one way to move an
 * order), with the run's event set so the first move records the event in its
 * own transaction. An event that moves nothing because of where its order is
 * (past it, or being settled by its own request: most events of the server
 * flow) costs one read and no commit; any other event that moves nothing is
 * recorded on its own (record_event). Either way the payment_events primary
 * key makes each event id take effect at most once.
 *
 *   event                          order state        action: what happens
 *   ------------------------------ ------------------ ------------------------------------
 *   amount_capturable_updated      awaiting_payment   DRIVE_CONFIRM: retrieve, authorized,
 *                                                     capture, confirmed
 *                                  expired            LATE_AUTHORIZATION: if the intent is
 *                                                     still requires_capture, take the stock
 *                                                     again (-> authorized, then capture);
 *                                                     no stock: cancel the intent, record
 *   payment_intent.succeeded       awaiting_payment   DRIVE_CONFIRM (as above)
 *                                  authorized,        CONFIRM_IF_CAPTURED: the intent is
 *                                  captured           succeeded: -> confirmed (no capture
 *                                                     call of our own)
 *   payment_intent.payment_failed  awaiting_payment   VOID_UNLESS_PAID: -> voiding (failed,
 *                                                     payment_declined, the decline code),
 *                                                     unless the intent has been authorized
 *                                                     since: then DRIVE_CONFIRM
 *   payment_intent.canceled        awaiting_payment,  CANCEL: -> voiding (cancelled), release
 *                                  authorized
 *   charge.refunded                confirmed          REFUND_IF_FULL: refunded in full, as
 *                                                     the provider says (never the event):
 *                                                     -> refunding (refunded, release);
 *                                                     partial or none: ignored
 *   anything else, any other state                    IGNORE: answered, not recorded
 *
 * An order whose synchronous checkout has not been answered yet (server flow,
 * a request is driving it right now) is left to that request (IN_PROGRESS), so
 * a webhook never takes the checkout's answer from it: the request, or
 * recovery if it died, finishes the order. Moves check their from-state
 * atomically (co_transition), so an event racing another move loses harmlessly
 * and is recorded as ignored. */
#include "co_log.h"
#include "co_metrics.h"
#include "events.h"
#include "memo.h"

#include <stdio.h>
#include <string.h>

#define EV_CAPTURABLE "payment_intent.amount_capturable_updated"
#define EV_SUCCEEDED "payment_intent.succeeded"
#define EV_FAILED "payment_intent.payment_failed"
#define EV_CANCELED "payment_intent.canceled"
#define EV_REFUNDED "charge.refunded"

static const struct {
    const char *type;
    co_state state;
    co_event_action action;
} table[] = {
    {EV_CAPTURABLE, CO_ST_AWAITING_PAYMENT, CO_EV_DRIVE_CONFIRM},
    {EV_CAPTURABLE, CO_ST_EXPIRED, CO_EV_LATE_AUTHORIZATION},
    {EV_SUCCEEDED, CO_ST_AWAITING_PAYMENT, CO_EV_DRIVE_CONFIRM},
    {EV_SUCCEEDED, CO_ST_AUTHORIZED, CO_EV_CONFIRM_IF_CAPTURED},
    {EV_SUCCEEDED, CO_ST_CAPTURED, CO_EV_CONFIRM_IF_CAPTURED},
    {EV_FAILED, CO_ST_AWAITING_PAYMENT, CO_EV_VOID_UNLESS_PAID},
    {EV_CANCELED, CO_ST_AWAITING_PAYMENT, CO_EV_CANCEL},
    {EV_CANCELED, CO_ST_AUTHORIZED, CO_EV_CANCEL},
    {EV_REFUNDED, CO_ST_CONFIRMED, CO_EV_REFUND_IF_FULL},
};

co_event_action co_event_decide(const char *type, co_state st, bool answer_pending)
{
    bool known = false;

    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(table[i].type, type) != 0)
            continue;
        known = true;
        if (table[i].state == st)
            return answer_pending ? CO_EV_IN_PROGRESS : table[i].action;
    }
    return known ? CO_EV_IGNORE : CO_EV_UNHANDLED_TYPE;
}

bool co_event_settles_confirmed(const char *type)
{
    static const co_state after[] = {CO_ST_CONFIRMED, CO_ST_REFUNDING, CO_ST_REFUNDED};

    for (size_t i = 0; i < sizeof after / sizeof after[0]; i++)
        if (co_event_decide(type, after[i], false) != CO_EV_IGNORE)
            return false;
    return true;
}

/* ------------------------------------------------------------ recording */

static void arm(co_run *r, const co_pay_event *ev)
{
    r->event_id = ev->id;
    r->cause_id = ev->id;
    r->event_type = ev->type;
}

static void disarm(co_run *r)
{
    r->event_id = NULL;
    r->event_type = NULL;
}

/* Records an event that changed nothing. */
static co_event_result record(co_run *r, const co_pay_event *ev, const co_order *o,
                              const char *outcome, co_event_outcome *out)
{
    const co_store_port *st = &r->saga->store;
    co_event_record rec = {.event_id = ev->id, .type = ev->type,
                           .payment_intent = ev->payment_intent,
                           .order_id = o ? o->id : NULL, .outcome = outcome};
    bool fresh = false;

    if (st->record_event(st->impl, &rec, &fresh) != CO_STORE_OK)
        return CO_EVENT_RETRY;
    if (!fresh) {
        snprintf(out->outcome, sizeof out->outcome, "duplicate");
        return CO_EVENT_DUPLICATE;
    }
    snprintf(out->outcome, sizeof out->outcome, "%s", outcome);
    return CO_EVENT_IGNORED;
}

/* why NULL: "the order is <state>". */
static co_event_result ignore(co_run *r, const co_pay_event *ev, const co_order *o,
                              const char *why, co_event_outcome *out)
{
    char outcome[128];

    if (why != NULL)
        snprintf(outcome, sizeof outcome, "ignored: %s", why);
    else
        snprintf(outcome, sizeof outcome, "ignored: order %s", co_state_name(o->status));
    return record(r, ev, o, outcome, out);
}

/* After a move or drive that ev started: applied when a transition recorded
 * ev (co_saga_transition clears r->event_id then); otherwise nothing moved,
 * and ev is recorded as ignored -- unless the reason was an outage, when it is
 * left unrecorded for the provider to deliver again. */
static co_event_result settle(co_run *r, const co_pay_event *ev, const co_order *o, co_step step,
                              co_event_outcome *out)
{
    out->status = o->status;
    if (r->event_id == NULL) {
        snprintf(out->outcome, sizeof out->outcome, "applied: %s", co_state_name(o->status));
        return CO_EVENT_APPLIED;
    }
    disarm(r);
    switch (step) {
    case CO_STEP_RETRY:
        return CO_EVENT_RETRY;
    case CO_STEP_LOST:
        /* Someone else moved the order first (or this very event, delivered
         * twice at once: then record() answers duplicate). */
        return ignore(r, ev, o, "order moved concurrently", out);
    default:
        return ignore(r, ev, o, NULL, out);
    }
}

static co_event_result drive(co_run *r, const co_pay_event *ev, co_order *o, co_drive_mode mode,
                             co_event_outcome *out)
{
    arm(r, ev);
    return settle(r, ev, o, co_saga_drive(r, o, mode), out);
}

/* One move caused by ev, then ordinary driving. */
static co_event_result move(co_run *r, const co_pay_event *ev, co_order *o, co_state to,
                            const co_change *ch, co_event_outcome *out)
{
    co_step step;

    arm(r, ev);
    step = co_saga_transition(r, o, to, ch);
    if (step == CO_STEP_MOVED)
        step = co_saga_drive(r, o, CO_DRIVE_FORWARD);
    return settle(r, ev, o, step, out);
}

/* The intent's status, for an event whose effect depends on it. False when
 * the caller must return *result instead: RETRY when the provider cannot be
 * reached (not knowing is not "not paid"), or the event recorded as ignored
 * when the intent cannot be read at all. */
static bool read_intent(co_run *r, const co_pay_event *ev, co_order *o, co_intent_status *status,
                        co_event_outcome *out, co_event_result *result)
{
    co_payment res;

    switch (r->saga->pay.retrieve(r->saga->pay.impl, o->payment_intent, &res)) {
    case CO_PAYMENT_OK:
        *status = res.status;
        return true;
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        *result = CO_EVENT_RETRY;
        return false;
    default:
        *result = ignore(r, ev, o, "payment intent unreadable", out);
        return false;
    }
}

/* ------------------------------------------------------------ the actions */

/* An expired order whose shopper paid after all: take the stock again if it
 * is still there, else give the money back. */
static co_event_result late_authorization(co_run *r, const co_pay_event *ev, co_order *o,
                                          co_event_outcome *out)
{
    char key[80];
    co_intent_status status;
    co_payment res;
    co_change ch = CO_CHANGE_INIT;
    co_step step;
    co_event_result result;

    if (!read_intent(r, ev, o, &status, out, &result))
        return result;
    if (status != CO_INTENT_REQUIRES_CAPTURE)
        return ignore(r, ev, o, "order expired, authorization no longer open", out);
    ch.reason = "late_authorization";
    ch.take = true;
    arm(r, ev);
    step = co_saga_transition(r, o, CO_ST_AUTHORIZED, &ch);
    if (step != CO_STEP_SHORT) {
        if (step == CO_STEP_MOVED)
            step = co_saga_drive(r, o, CO_DRIVE_FORWARD);
        return settle(r, ev, o, step, out);
    }
    /* The units went to someone else meanwhile: void the authorization. */
    disarm(r);
    co_saga_key(o, "late_cancel", key);
    switch (r->saga->pay.cancel(r->saga->pay.impl, o->payment_intent, key, &res)) {
    case CO_PAYMENT_OK:
        break;
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        return CO_EVENT_RETRY;
    case CO_PAYMENT_WRONG_STATE:
        if (res.status == CO_INTENT_CANCELED)
            break;
        /* fall through */
    default:
        /* Not recorded: the provider sends the event again and we try again. */
        CO_ERROR("saga", "order %s: late authorization %s cannot be voided (%s)", o->id,
                 o->payment_intent, co_intent_status_name(res.status));
        return CO_EVENT_RETRY;
    }
    CO_INFO("saga", "order %s: late authorization voided, out of stock", o->id);
    return record(r, ev, o, "voided: late authorization, out of stock", out);
}

static co_event_result confirm_if_captured(co_run *r, const co_pay_event *ev, co_order *o,
                                           co_event_outcome *out)
{
    co_intent_status status;
    co_change ch = CO_CHANGE_INIT;
    co_event_result result;

    if (!read_intent(r, ev, o, &status, out, &result))
        return result;
    if (status != CO_INTENT_SUCCEEDED)
        return ignore(r, ev, o, "payment intent not captured", out);
    ch.reason = "captured";
    return move(r, ev, o, CO_ST_CONFIRMED, &ch, out);
}

static co_event_result void_unless_paid(co_run *r, const co_pay_event *ev, co_order *o,
                                        co_event_outcome *out)
{
    co_payment res;
    co_change ch = CO_CHANGE_INIT;

    /* A late report of an earlier attempt, the shopper having paid since.
     * Not knowing is not "not paid": when the provider cannot say, retry. */
    switch (r->saga->pay.retrieve(r->saga->pay.impl, o->payment_intent, &res)) {
    case CO_PAYMENT_OK:
        if (res.status == CO_INTENT_REQUIRES_CAPTURE || res.status == CO_INTENT_SUCCEEDED)
            return drive(r, ev, o, CO_DRIVE_CONFIRM, out);
        break;
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        return CO_EVENT_RETRY;
    default:
        break;
    }
    ch.reason = "payment_failed";
    ch.failure_code = CO_FAIL_DECLINED;
    ch.decline_code = ev->decline_code;
    ch.compensate_to = CO_ST_FAILED;
    return move(r, ev, o, CO_ST_VOIDING, &ch, out);
}

static co_event_result cancel(co_run *r, const co_pay_event *ev, co_order *o,
                              co_event_outcome *out)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = "canceled_at_provider";
    ch.compensate_to = CO_ST_CANCELLED;
    return move(r, ev, o, CO_ST_VOIDING, &ch, out);
}

static co_event_result refund_if_full(co_run *r, const co_pay_event *ev, co_order *o,
                                      co_event_outcome *out)
{
    char why[96];
    co_change ch = CO_CHANGE_INIT;
    co_payment res;
    long long refunded;

    /* The event only says where to look: what was refunded is the provider's
     * to tell, for this order's own intent (a signed event claiming a refund
     * that never happened must neither move the order nor make us refund). */
    switch (r->saga->pay.refunded(r->saga->pay.impl, o->payment_intent, &res)) {
    case CO_PAYMENT_OK:
        break;
    case CO_PAYMENT_UNKNOWN:
    case CO_PAYMENT_IN_USE:
        return CO_EVENT_RETRY;
    default:
        return ignore(r, ev, o, "payment intent unreadable", out);
    }
    refunded = res.amount_refunded;
    if (ev->payment_intent != NULL && strcmp(ev->payment_intent, o->payment_intent) != 0)
        return ignore(r, ev, o, "event names another payment intent", out);
    if (refunded == 0)
        return ignore(r, ev, o, "not refunded at the provider", out);
    if (refunded < o->amount) {
        /* The order stays confirmed: goods are not split. An operator
         * refunding part of an order is adjusting the price, not cancelling. */
        snprintf(why, sizeof why, "partial refund (%lld of %lld)", refunded, o->amount);
        return ignore(r, ev, o, why, out);
    }
    ch.reason = "refunded_at_provider";
    ch.compensate_to = CO_ST_REFUNDED;
    return move(r, ev, o, CO_ST_REFUNDING, &ch, out);
}

/* ------------------------------------------------------------ entry */

/* An event that changes nothing because of where its order is: the order is
 * past it, or the request driving it will settle it. Answered from the one
 * read that found the order, recorded nowhere: a redelivery is decided the
 * same way again, so it still takes effect at most once (never). */
static co_event_result settled(const co_order *o, const char *why, co_event_outcome *out)
{
    if (why != NULL)
        snprintf(out->outcome, sizeof out->outcome, "ignored: %s", why);
    else
        snprintf(out->outcome, sizeof out->outcome, "ignored: order %s",
                 co_state_name(o->status));
    return CO_EVENT_IGNORED;
}

/* An event about an order of this process's memo (memo.h) that changes
 * nothing, answered as the store's read would have it answered, without the
 * read; CO_EVENT_RETRY when the memo cannot say (ask the store). */
static co_event_result settled_from_memo(co_run *r, const co_pay_event *ev,
                                         co_event_outcome *out)
{
    co_memo_entry e;
    co_event_action act;

    if (ev->payment_intent == NULL || ev->payment_intent[0] == '\0' ||
        co_event_decide(ev->type, CO_ST_NONE, false) == CO_EV_UNHANDLED_TYPE ||
        !co_memo_get(r->saga->memo, ev->order_id, &e))
        return CO_EVENT_RETRY;
    if (e.kind == CO_MEMO_CONFIRMED &&
        (!co_event_settles_confirmed(ev->type) || strcmp(e.intent, ev->payment_intent) != 0))
        return CO_EVENT_RETRY;
    if (e.kind == CO_MEMO_DRIVING && e.confirming && !co_event_settles_confirmed(ev->type))
        return CO_EVENT_RETRY; /* it may be confirmed already */
    if (e.kind == CO_MEMO_DRIVING && e.intent[0] != '\0' &&
        strcmp(e.intent, ev->payment_intent) != 0)
        return CO_EVENT_RETRY;
    co_metric_add("webhook_settled_from_memo", 1);
    if (e.kind == CO_MEMO_CONFIRMED && ev->id != NULL && strcmp(ev->id, e.event_id) == 0) {
        snprintf(out->outcome, sizeof out->outcome, "duplicate");
        return CO_EVENT_DUPLICATE; /* the event that confirmed it, again */
    }
    snprintf(out->order_id, sizeof out->order_id, "%s", e.order_id);
    out->status = e.status;
    if (e.kind == CO_MEMO_DRIVING && e.intent[0] == '\0') {
        snprintf(out->outcome, sizeof out->outcome, "ignored: order has no payment intent yet");
        return CO_EVENT_IGNORED;
    }
    act = e.kind == CO_MEMO_DRIVING ? co_event_decide(ev->type, e.status, true) : CO_EV_IGNORE;
    if (act == CO_EV_IN_PROGRESS)
        snprintf(out->outcome, sizeof out->outcome, "ignored: checkout in progress");
    else
        snprintf(out->outcome, sizeof out->outcome, "ignored: order %s",
                 co_state_name(e.status));
    return CO_EVENT_IGNORED;
}

static co_event_result apply(co_run *r, const co_pay_event *ev, co_order *o,
                             co_event_outcome *out)
{
    const co_store_port *st = &r->saga->store;
    bool seen = false;
    co_store_rc rc;
    bool found;

    co_event_result memo = settled_from_memo(r, ev, out);

    if (memo != CO_EVENT_RETRY)
        return memo; /* RETRY here: not in the memo, ask the store */
    rc = st->event_order(st->impl, ev->id, ev->order_id, ev->payment_intent, &seen, o);
    found = rc == CO_STORE_OK;
    if (rc < 0)
        return CO_EVENT_RETRY;
    if (seen) {
        snprintf(out->outcome, sizeof out->outcome, "duplicate");
        return CO_EVENT_DUPLICATE;
    }
    if (co_event_decide(ev->type, CO_ST_NONE, false) == CO_EV_UNHANDLED_TYPE)
        return record(r, ev, found ? o : NULL, "ignored: event type not handled", out);
    if (!found)
        return record(r, ev, NULL, "ignored: unknown payment intent", out);
    snprintf(out->order_id, sizeof out->order_id, "%s", o->id);
    out->status = o->status;
    if (o->payment_intent[0] == '\0')
        return settled(o, "order has no payment intent yet", out);
    switch (co_event_decide(ev->type, o->status, o->answer_pending)) {
    case CO_EV_DRIVE_CONFIRM:
        return drive(r, ev, o, CO_DRIVE_CONFIRM, out);
    case CO_EV_LATE_AUTHORIZATION:
        return late_authorization(r, ev, o, out);
    case CO_EV_CONFIRM_IF_CAPTURED:
        return confirm_if_captured(r, ev, o, out);
    case CO_EV_VOID_UNLESS_PAID:
        return void_unless_paid(r, ev, o, out);
    case CO_EV_CANCEL:
        return cancel(r, ev, o, out);
    case CO_EV_REFUND_IF_FULL:
        return refund_if_full(r, ev, o, out);
    case CO_EV_IN_PROGRESS:
        return settled(o, "checkout in progress", out);
    default:
        return settled(o, NULL, out);
    }
}

co_event_result co_saga_event(const co_saga *s, const co_pay_event *ev, co_event_outcome *out)
{
    co_run run = co_run_begin(s);
    co_order o;
    co_event_result result;

    memset(out, 0, sizeof *out);
    out->status = CO_ST_NONE;
    result = apply(&run, ev, &o, out);
    co_run_end(&run);
    return result;
}

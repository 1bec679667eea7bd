/* Provider events (POST /webhooks/stripe): what each one does to an order.
 * The webhook handler verifies and parses; this decides, and moves an order
 * only through co_saga_transition / co_saga_drive (STYLE: one way to move an
 * order), with s->event_id set so the first move records the event in its own
 * transaction. An event that moves nothing is recorded on its own
 * (co_store_record_event). Either way the payment_events primary key makes
 * each event id take effect at most once.
 *
 *   event                          order state        what happens
 *   ------------------------------ ------------------ ------------------------------------
 *   amount_capturable_updated      awaiting_payment   drive CONFIRM: retrieve, authorized,
 *                                                     capture, confirmed
 *                                  expired            late authorization: if the intent is
 *                                                     still requires_capture, take the stock
 *                                                     again (-> authorized, then capture);
 *                                                     no stock: cancel the intent, record
 *   payment_intent.succeeded       awaiting_payment   drive CONFIRM (as above)
 *                                  authorized,        the intent is succeeded: -> confirmed
 *                                  captured           (no capture call of our own)
 *   payment_intent.payment_failed  awaiting_payment   -> voiding (failed, payment_declined,
 *                                                     the decline code), unless the intent
 *                                                     has been authorized since: then CONFIRM
 *   payment_intent.canceled        awaiting_payment,  -> voiding (cancelled), release
 *                                  authorized
 *   charge.refunded                confirmed          refunded in full: -> refunding
 *                                                     (refunded, release); partial: ignored
 *   anything else, any other state                    recorded, ignored
 *
 * An order whose synchronous checkout has not been answered yet (server flow,
 * a request is driving it right now) is left to that request, so a webhook
 * never takes the checkout's answer from it: the request, or recovery if it
 * died, finishes the order. Moves check their from-state atomically
 * (co_transition), so an event racing another move loses harmlessly and is
 * recorded as ignored. */
#include "co_log.h"
#include "co_store.h"
#include "saga.h"

#include <stdio.h>
#include <string.h>

static void arm(co_saga *s, const co_pay_event *ev)
{
    s->event_id = ev->id;
    s->event_type = ev->type;
}

static void disarm(co_saga *s)
{
    s->event_id = NULL;
    s->event_type = NULL;
}

/* Records an event that changed nothing. */
static co_event_result record(co_saga *s, const co_pay_event *ev, const co_order *o,
                              const char *outcome, co_event_outcome *out)
{
    bool fresh = false;

    if (co_store_record_event(s->db, ev->id, ev->type, ev->payment_intent, o ? o->id : NULL,
                              outcome, &fresh) != CO_DB_ROWS)
        return CO_EVENT_RETRY;
    if (!fresh) {
        snprintf(out->outcome, sizeof out->outcome, "duplicate");
        return CO_EVENT_DUPLICATE;
    }
    snprintf(out->outcome, sizeof out->outcome, "%s", outcome);
    return CO_EVENT_IGNORED;
}

/* why NULL: "the order is <state>". */
static co_event_result ignore(co_saga *s, const co_pay_event *ev, const co_order *o,
                              const char *why, co_event_outcome *out)
{
    char outcome[128];

    if (why != NULL)
        snprintf(outcome, sizeof outcome, "ignored: %s", why);
    else
        snprintf(outcome, sizeof outcome, "ignored: order %s", co_state_name(o->status));
    return record(s, ev, o, outcome, out);
}

/* After a move or drive that ev started: applied when a transition recorded
 * ev (co_saga_transition clears s->event_id then); otherwise nothing moved,
 * and ev is recorded as ignored -- unless the reason was an outage, when it is
 * left unrecorded for the provider to deliver again. */
static co_event_result settle(co_saga *s, const co_pay_event *ev, const co_order *o, co_step step,
                              co_event_outcome *out)
{
    out->status = o->status;
    if (s->event_id == NULL) {
        snprintf(out->outcome, sizeof out->outcome, "applied: %s", co_state_name(o->status));
        return CO_EVENT_APPLIED;
    }
    disarm(s);
    switch (step) {
    case CO_STEP_RETRY:
        return CO_EVENT_RETRY;
    case CO_STEP_LOST:
        /* Someone else moved the order first (or this very event, delivered
         * twice at once: then record() answers duplicate). */
        return ignore(s, ev, o, "order moved concurrently", out);
    default:
        return ignore(s, ev, o, NULL, out);
    }
}

static co_event_result drive(co_saga *s, const co_pay_event *ev, co_order *o, co_drive_mode mode,
                             co_event_outcome *out)
{
    arm(s, ev);
    return settle(s, ev, o, co_saga_drive(s, o, mode), out);
}

/* One move caused by ev, then ordinary driving. */
static co_event_result move(co_saga *s, const co_pay_event *ev, co_order *o, co_state to,
                            const co_change *ch, co_event_outcome *out)
{
    co_step step;

    arm(s, ev);
    step = co_saga_transition(s, o, to, ch);
    if (step == CO_STEP_MOVED)
        step = co_saga_drive(s, o, CO_DRIVE_FORWARD);
    return settle(s, ev, o, step, out);
}

/* The intent's status at the provider into status (32 bytes). */
static co_pay_status intent_status(co_saga *s, const co_order *o, char status[32])
{
    co_pay_result res;
    co_pay_status st = s->pay.retrieve(s->pay.impl, o->payment_intent, &res);

    snprintf(status, 32, "%s", st == CO_PAY_OK ? res.pi.status : "");
    return st;
}

/* The intent's status, for an event whose effect depends on it. False when
 * the caller must return *result instead: RETRY when the provider cannot be
 * reached (not knowing is not "not paid"), or the event recorded as ignored
 * when the intent cannot be read at all. */
static bool read_intent(co_saga *s, const co_pay_event *ev, co_order *o, char status[32],
                        co_event_outcome *out, co_event_result *result)
{
    switch (intent_status(s, o, status)) {
    case CO_PAY_OK:
        return true;
    case CO_PAY_UNAVAILABLE:
        *result = CO_EVENT_RETRY;
        return false;
    default:
        *result = ignore(s, ev, o, "payment intent unreadable", out);
        return false;
    }
}

/* ------------------------------------------------------------ the events */

/* An expired order whose shopper paid after all: take the stock again if it
 * is still there, else give the money back. */
static co_event_result late_authorization(co_saga *s, const co_pay_event *ev, co_order *o,
                                          co_event_outcome *out)
{
    char status[32], key[80];
    co_pay_result res;
    co_change ch = CO_CHANGE_INIT;
    co_step step;
    co_event_result result;

    if (!read_intent(s, ev, o, status, out, &result))
        return result;
    if (strcmp(status, "requires_capture") != 0)
        return ignore(s, ev, o, "order expired, authorization no longer open", out);
    ch.reason = "late_authorization";
    ch.take = true;
    arm(s, ev);
    step = co_saga_transition(s, o, CO_ST_AUTHORIZED, &ch);
    if (step != CO_STEP_SHORT) {
        if (step == CO_STEP_MOVED)
            step = co_saga_drive(s, o, CO_DRIVE_FORWARD);
        return settle(s, ev, o, step, out);
    }
    /* The units went to someone else meanwhile: void the authorization. */
    disarm(s);
    co_saga_key(o, "late_cancel", key);
    switch (s->pay.cancel(s->pay.impl, o->payment_intent, key, &res)) {
    case CO_PAY_OK:
        break;
    case CO_PAY_UNAVAILABLE:
        return CO_EVENT_RETRY;
    case CO_PAY_UNEXPECTED_STATE:
        if (strcmp(res.pi.status, "canceled") == 0)
            break;
        /* fall through */
    default:
        /* Not recorded: the provider sends the event again and we try again. */
        CO_ERROR("saga", "order %s: late authorization %s cannot be voided (%s)", o->id,
                 o->payment_intent, res.pi.status);
        return CO_EVENT_RETRY;
    }
    CO_INFO("saga", "order %s: late authorization voided, out of stock", o->id);
    return record(s, ev, o, "voided: late authorization, out of stock", out);
}

static co_event_result on_capturable(co_saga *s, const co_pay_event *ev, co_order *o,
                                     co_event_outcome *out)
{
    switch (o->status) {
    case CO_ST_AWAITING_PAYMENT:
        return drive(s, ev, o, CO_DRIVE_CONFIRM, out);
    case CO_ST_EXPIRED:
        return late_authorization(s, ev, o, out);
    default:
        return ignore(s, ev, o, NULL, out);
    }
}

static co_event_result on_succeeded(co_saga *s, const co_pay_event *ev, co_order *o,
                                    co_event_outcome *out)
{
    char status[32];
    co_change ch = CO_CHANGE_INIT;
    co_event_result result;

    switch (o->status) {
    case CO_ST_AWAITING_PAYMENT:
        /* Possibly before amount_capturable_updated: the retrieve decides. */
        return drive(s, ev, o, CO_DRIVE_CONFIRM, out);
    case CO_ST_AUTHORIZED:
    case CO_ST_CAPTURED:
        if (o->answer_pending)
            return ignore(s, ev, o, "checkout in progress", out);
        if (!read_intent(s, ev, o, status, out, &result))
            return result;
        if (strcmp(status, "succeeded") != 0)
            return ignore(s, ev, o, "payment intent not captured", out);
        ch.reason = "captured";
        return move(s, ev, o, CO_ST_CONFIRMED, &ch, out);
    default:
        return ignore(s, ev, o, NULL, out);
    }
}

static co_event_result on_failed(co_saga *s, const co_pay_event *ev, co_order *o,
                                 co_event_outcome *out)
{
    char status[32];
    co_change ch = CO_CHANGE_INIT;

    if (o->status != CO_ST_AWAITING_PAYMENT)
        return ignore(s, ev, o, NULL, out);
    /* A late report of an earlier attempt, the shopper having paid since.
     * Not knowing is not "not paid": when the provider cannot say, retry. */
    switch (intent_status(s, o, status)) {
    case CO_PAY_OK:
        if (strcmp(status, "requires_capture") == 0 || strcmp(status, "succeeded") == 0)
            return drive(s, ev, o, CO_DRIVE_CONFIRM, out);
        break;
    case CO_PAY_UNAVAILABLE:
        return CO_EVENT_RETRY;
    default:
        break;
    }
    ch.reason = "payment_failed";
    ch.failure_code = "payment_declined";
    ch.decline_code = ev->decline_code;
    ch.compensate_to = CO_ST_FAILED;
    return move(s, ev, o, CO_ST_VOIDING, &ch, out);
}

static co_event_result on_canceled(co_saga *s, const co_pay_event *ev, co_order *o,
                                   co_event_outcome *out)
{
    co_change ch = CO_CHANGE_INIT;

    if (o->status == CO_ST_AUTHORIZED && o->answer_pending)
        return ignore(s, ev, o, "checkout in progress", out);
    if (o->status != CO_ST_AWAITING_PAYMENT && o->status != CO_ST_AUTHORIZED)
        return ignore(s, ev, o, NULL, out);
    ch.reason = "canceled_at_provider";
    ch.compensate_to = CO_ST_CANCELLED;
    return move(s, ev, o, CO_ST_VOIDING, &ch, out);
}

static co_event_result on_refunded(co_saga *s, const co_pay_event *ev, co_order *o,
                                   co_event_outcome *out)
{
    char why[96];
    co_change ch = CO_CHANGE_INIT;

    if (o->status != CO_ST_CONFIRMED)
        return ignore(s, ev, o, NULL, out);
    if (ev->amount_refunded < o->amount) {
        /* The order stays confirmed: goods are not split. An operator
         * refunding part of an order is adjusting the price, not cancelling. */
        snprintf(why, sizeof why, "partial refund (%lld of %lld)", ev->amount_refunded,
                 o->amount);
        return ignore(s, ev, o, why, out);
    }
    ch.reason = "refunded_at_provider";
    ch.compensate_to = CO_ST_REFUNDED;
    return move(s, ev, o, CO_ST_REFUNDING, &ch, out);
}

/* ------------------------------------------------------------ entry */

co_event_result co_saga_event(co_saga *s, const co_pay_event *ev, co_event_outcome *out)
{
    static const struct {
        const char *type;
        co_event_result (*fn)(co_saga *, const co_pay_event *, co_order *, co_event_outcome *);
    } handlers[] = {
        {"payment_intent.amount_capturable_updated", on_capturable},
        {"payment_intent.succeeded", on_succeeded},
        {"payment_intent.payment_failed", on_failed},
        {"payment_intent.canceled", on_canceled},
        {"charge.refunded", on_refunded},
    };
    co_event_result (*fn)(co_saga *, const co_pay_event *, co_order *, co_event_outcome *) = NULL;
    char order_id[37];
    bool seen = false;
    co_order o;
    co_db_status st;

    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
        if (strcmp(handlers[i].type, ev->type) == 0)
            fn = handlers[i].fn;
    memset(out, 0, sizeof *out);
    out->status = CO_ST_NONE;
    disarm(s);
    st = co_store_event_lookup(s->db, ev->id, ev->order_id, ev->payment_intent, &seen, order_id);
    if (st != CO_DB_ROWS)
        return CO_EVENT_RETRY;
    if (seen) {
        snprintf(out->outcome, sizeof out->outcome, "duplicate");
        return CO_EVENT_DUPLICATE;
    }
    if (order_id[0] != '\0') {
        st = co_store_load_order(s->db, order_id, &o);
        if (st < 0)
            return CO_EVENT_RETRY;
        if (st == CO_DB_NONE)
            order_id[0] = '\0';
    }
    if (fn == NULL)
        return record(s, ev, order_id[0] ? &o : NULL, "ignored: event type not handled", out);
    if (order_id[0] == '\0')
        return record(s, ev, NULL, "ignored: unknown payment intent", out);
    snprintf(out->order_id, sizeof out->order_id, "%s", o.id);
    out->status = o.status;
    if (o.payment_intent[0] == '\0')
        return ignore(s, ev, &o, "order has no payment intent yet", out);
    return fn(s, ev, &o, out);
}

/* The shopper's moves on an order once its checkout has answered: cancel
 * (POST /v1/orders/{id}/cancel) and confirm (POST /v1/orders/{id}/confirm).
 * A shopper sees only their own orders: others' are "not found". And the
 * operator's: drive (run the next step now) and resolve (end a stuck
 * compensation by rule, from what the provider says about the intent). */
#include "steps.h"

#include <stdio.h>
#include <string.h>

/* The user's order (user_id NULL: anyone's) into *o. */
static co_order_result own_order(const co_saga *s, const char *order_id, const char *user_id,
                                 co_order *o)
{
    co_store_rc rc = s->store.load_order(s->store.impl, order_id, o);

    if (rc == CO_STORE_NONE || (rc == CO_STORE_OK && user_id != NULL &&
                                strcmp(o->user_id, user_id) != 0))
        return CO_ORDER_NOT_FOUND;
    return rc == CO_STORE_OK ? CO_ORDER_DONE : CO_ORDER_UNAVAILABLE;
}

static void drive(const co_saga *s, co_order *o, co_drive_mode mode)
{
    co_run run = co_run_begin(s);

    (void)co_saga_drive(&run, o, mode);
    co_run_end(&run);
}

co_order_result co_saga_cancel(const co_saga *s, const char *order_id, const char *user_id,
                               co_order *o)
{
    co_order_result res = own_order(s, order_id, user_id, o);

    if (res != CO_ORDER_DONE)
        return res;
    switch (o->status) {
    case CO_ST_AWAITING_PAYMENT:
    case CO_ST_CONFIRMED:
        drive(s, o, CO_DRIVE_CANCEL);
        return CO_ORDER_DONE;
    case CO_ST_CANCELLED:
    case CO_ST_REFUNDED:
    case CO_ST_VOIDING:
    case CO_ST_REFUNDING:
        return CO_ORDER_DONE; /* already cancelled, or being compensated */
    case CO_ST_RESERVED:
    case CO_ST_AUTHORIZED:
        return CO_ORDER_RUNNING;
    default:
        return CO_ORDER_ENDED;
    }
}

co_order_result co_saga_confirm(const co_saga *s, const char *order_id, const char *user_id,
                                co_order *o)
{
    co_order_result res = own_order(s, order_id, user_id, o);

    if (res != CO_ORDER_DONE)
        return res;
    if (o->status == CO_ST_AWAITING_PAYMENT) {
        drive(s, o, CO_DRIVE_CONFIRM);
        /* A move lost to another run (the webhook's, capturing the same
         * payment) leaves *o where it was: answer where the order is now. */
        if (o->status == CO_ST_AWAITING_PAYMENT) {
            res = own_order(s, order_id, user_id, o);
            if (res != CO_ORDER_DONE)
                return res;
        }
    }
    return o->status == CO_ST_AWAITING_PAYMENT ? CO_ORDER_UNPAID : CO_ORDER_DONE;
}

/* ------------------------------------------------------------ operators */

co_order_result co_saga_drive_now(const co_saga *s, const char *order_id, co_order *o)
{
    co_claim claim = CO_CLAIM_NONE;
    co_order_result res;

    if (s->store.claim_order(s->store.impl, order_id, s->owner, s->lease_seconds, &claim) < 0)
        return CO_ORDER_UNAVAILABLE;
    if (claim == CO_CLAIM_NONE)
        return CO_ORDER_NOT_FOUND;
    res = own_order(s, order_id, NULL, o);
    if (res != CO_ORDER_DONE)
        return res;
    if (claim == CO_CLAIM_HELD)
        return CO_ORDER_LEASED;
    if (claim == CO_CLAIM_TAKEN)
        drive(s, o, CO_DRIVE_FORWARD);
    return CO_ORDER_DONE;
}

/* The resolve rules, by what the provider answered about the order's intent. */
typedef enum {
    RULE_NONE,       /* no rule applies */
    RULE_NO_INTENT,  /* the provider has no such intent: end compensated */
    RULE_DONE_THERE, /* the cancel or refund is done at the provider: match it */
    RULE_DRIVE,      /* money still held, a void or refund possible: drive */
} resolve_rule;

static const char *const rule_names[] = {
    [RULE_NONE] = "none", [RULE_NO_INTENT] = "no_intent_at_provider",
    [RULE_DONE_THERE] = "done_at_provider", [RULE_DRIVE] = "drive",
};

/* The move a rule makes (RULE_NO_INTENT, RULE_DONE_THERE): to, via (a state
 * passed through), the history reason. */
typedef struct {
    co_state to, via;
    const char *reason;
} resolve_move;

static resolve_rule decide(const co_order *o, co_payment_result pr, const co_payment *p,
                           resolve_move *mv)
{
    bool refunded = pr == CO_PAYMENT_OK && p->status == CO_INTENT_SUCCEEDED &&
                    p->amount_refunded >= o->amount;
    co_state end = o->status == CO_ST_REFUNDING ? CO_ST_REFUNDED : o->compensate_to;

    mv->to = end;
    mv->via = CO_ST_NONE;
    if (pr == CO_PAYMENT_NOT_FOUND) {
        mv->reason = "no_intent_at_provider";
        return RULE_NO_INTENT;
    }
    if (pr != CO_PAYMENT_OK)
        return RULE_NONE;
    if (p->status == CO_INTENT_CANCELED) {
        mv->reason = "voided_at_provider";
        return RULE_DONE_THERE;
    }
    if (refunded) {
        mv->reason = "refunded_at_provider";
        mv->to = CO_ST_REFUNDED;
        if (o->status == CO_ST_VOIDING)
            mv->via = CO_ST_REFUNDING; /* captured after all, and given back */
        return RULE_DONE_THERE;
    }
    if (o->status == CO_ST_REFUNDING)
        return p->status == CO_INTENT_SUCCEEDED ? RULE_DRIVE : RULE_NONE;
    switch (p->status) {
    case CO_INTENT_SUCCEEDED:         /* voiding finds it captured and refunds */
    case CO_INTENT_REQUIRES_CAPTURE:  /* an authorization to cancel */
    case CO_INTENT_REQUIRES_PAYMENT_METHOD:
    case CO_INTENT_REQUIRES_CONFIRMATION:
    case CO_INTENT_REQUIRES_ACTION:
        return RULE_DRIVE;
    default:
        return RULE_NONE;
    }
}

/* Makes a rule's move with the operator's note in the history. */
static co_order_result resolve_move_make(const co_saga *s, co_order *o, const resolve_move *mv,
                                         const char *note, char *why, size_t why_n)
{
    co_run run = co_run_begin(s);
    co_change ch = CO_CHANGE_INIT;
    co_step step;

    ch.reason = mv->reason;
    ch.release = true;
    ch.via = mv->via;
    if (mv->to == CO_ST_REFUNDED && o->status != CO_ST_REFUNDING)
        ch.compensate_to = CO_ST_REFUNDED;
    run.note = note;
    step = co_saga_transition(&run, o, mv->to, &ch);
    co_run_end(&run);
    if (step == CO_STEP_MOVED)
        return CO_ORDER_DONE;
    if (step == CO_STEP_RETRY)
        return CO_ORDER_UNAVAILABLE;
    snprintf(why, why_n, "The order moved while it was being resolved; look at it again.");
    return CO_ORDER_UNRESOLVED;
}

co_order_result co_saga_resolve(const co_saga *s, const char *order_id, const char *reason,
                                co_order *o, char *why, size_t why_n)
{
    co_order_result res = own_order(s, order_id, NULL, o);
    co_payment p;
    co_payment_result pr = CO_PAYMENT_OK;
    resolve_move mv;
    resolve_rule rule;
    char note[2100];
    co_state before;

    why[0] = '\0';
    if (res != CO_ORDER_DONE)
        return res;
    if (co_state_terminal(o->status))
        return CO_ORDER_ENDED;
    if (o->status != CO_ST_VOIDING && o->status != CO_ST_REFUNDING) {
        snprintf(why, why_n,
                 "The order is %s, not compensating (voiding or refunding); drive it instead.",
                 co_state_name(o->status));
        return CO_ORDER_UNRESOLVED;
    }
    memset(&p, 0, sizeof p);
    if (o->payment_intent[0] == '\0') {
        rule = RULE_DRIVE; /* voiding learns its intent by repeating the lost create */
    } else {
        pr = s->pay.refunded(s->pay.impl, o->payment_intent, &p);
        if (co_payment_unknown(pr))
            return CO_ORDER_UNAVAILABLE;
        rule = decide(o, pr, &p, &mv);
    }
    if (rule == RULE_NONE) {
        if (pr == CO_PAYMENT_OK)
            snprintf(why, why_n,
                     "The provider shows intent %s %s (%lld of %lld refunded); no rule resolves "
                     "a %s order from there.",
                     o->payment_intent, co_intent_status_name(p.status), p.amount_refunded,
                     o->amount, co_state_name(o->status));
        else
            snprintf(why, why_n, "The provider did not show intent %s (%s: %s).",
                     o->payment_intent, co_payment_result_name(pr), p.message);
        return CO_ORDER_UNRESOLVED;
    }
    snprintf(note, sizeof note, "resolved by rule %s: %s", rule_names[rule], reason);
    if (rule != RULE_DRIVE)
        return resolve_move_make(s, o, &mv, note, why, why_n);
    before = o->status;
    {
        co_run run = co_run_begin(s);

        run.note = note;
        (void)co_saga_drive(&run, o, CO_DRIVE_FORWARD);
        co_run_end(&run);
    }
    if (o->status == before) {
        snprintf(why, why_n,
                 "The provider shows intent %s %s, but driving the order moved nothing (the "
                 "provider refused or did not answer); recovery keeps trying.",
                 o->payment_intent[0] ? o->payment_intent : "(none)",
                 co_intent_status_name(p.status));
        return CO_ORDER_UNRESOLVED;
    }
    return CO_ORDER_DONE;
}

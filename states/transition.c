/* The one function that moves an order, and the state machine's edges. No
 * state is set anywhere else. */
#include "co_log.h"
#include "memo.h"
#include "steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {
    [CO_ST_PENDING] = "pending",       [CO_ST_RESERVED] = "reserved",
    [CO_ST_AWAITING_PAYMENT] = "awaiting_payment",
    [CO_ST_AUTHORIZED] = "authorized", [CO_ST_CAPTURED] = "captured",
    [CO_ST_CONFIRMED] = "confirmed",   [CO_ST_VOIDING] = "voiding",
    [CO_ST_REFUNDING] = "refunding",   [CO_ST_FAILED] = "failed",
    [CO_ST_EXPIRED] = "expired",       [CO_ST_CANCELLED] = "cancelled",
    [CO_ST_REFUNDED] = "refunded",
};

const char *co_state_name(co_state st)
{
    if (st < 0 || (size_t)st >= sizeof names / sizeof names[0])
        return "none";
    return names[st];
}

co_state co_state_parse(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i], name) == 0)
            return (co_state)i;
    return CO_ST_NONE;
}

bool co_state_terminal(co_state st)
{
    return st == CO_ST_CONFIRMED || st == CO_ST_FAILED || st == CO_ST_EXPIRED ||
           st == CO_ST_CANCELLED || st == CO_ST_REFUNDED;
}

/* States in which a worker is driving the order and must hold a lease. */
static bool active(co_state st)
{
    return st == CO_ST_PENDING || st == CO_ST_RESERVED || st == CO_ST_AUTHORIZED ||
           st == CO_ST_CAPTURED || st == CO_ST_VOIDING || st == CO_ST_REFUNDING;
}

/* The state machine's edges. A move not listed is a bug: abort. */
bool co_saga_legal(co_state from, co_state to)
{
    switch (from) {
    case CO_ST_PENDING:
        return to == CO_ST_RESERVED || to == CO_ST_FAILED;
    case CO_ST_RESERVED:
        return to == CO_ST_AUTHORIZED || to == CO_ST_AWAITING_PAYMENT || to == CO_ST_FAILED ||
               to == CO_ST_VOIDING;
    case CO_ST_AWAITING_PAYMENT:
        return to == CO_ST_AUTHORIZED || to == CO_ST_CONFIRMED || to == CO_ST_VOIDING;
    case CO_ST_AUTHORIZED:
        return to == CO_ST_CAPTURED || to == CO_ST_CONFIRMED || to == CO_ST_VOIDING ||
               to == CO_ST_REFUNDING;
    case CO_ST_CAPTURED:
        return to == CO_ST_CONFIRMED || to == CO_ST_REFUNDING;
    case CO_ST_CONFIRMED:
        return to == CO_ST_REFUNDING;
    case CO_ST_VOIDING:
        return to == CO_ST_FAILED || to == CO_ST_EXPIRED || to == CO_ST_CANCELLED ||
               to == CO_ST_AUTHORIZED || to == CO_ST_REFUNDING;
    case CO_ST_REFUNDING:
        return to == CO_ST_REFUNDED;
    case CO_ST_EXPIRED:
        return to == CO_ST_AUTHORIZED; /* a late authorization, stock taken again */
    case CO_ST_FAILED:
    case CO_ST_CANCELLED:
    case CO_ST_REFUNDED:
        return false;
    default:
        abort();
    }
}

bool co_order_answer_decided(const co_order *o)
{
    switch (o->status) {
    case CO_ST_CONFIRMED:
    case CO_ST_AWAITING_PAYMENT:
    case CO_ST_FAILED:
        return true;
    case CO_ST_VOIDING:
        return o->compensate_to == CO_ST_FAILED;
    default:
        return false;
    }
}

static void apply(co_order *o, co_state to, const co_change *ch)
{
    o->status = to;
    if (ch->payment_intent)
        snprintf(o->payment_intent, sizeof o->payment_intent, "%s", ch->payment_intent);
    if (ch->client_secret)
        snprintf(o->client_secret, sizeof o->client_secret, "%s", ch->client_secret);
    if (ch->failure_code)
        snprintf(o->failure_code, sizeof o->failure_code, "%s", ch->failure_code);
    if (ch->decline_code)
        snprintf(o->decline_code, sizeof o->decline_code, "%s", ch->decline_code);
    if (ch->compensate_to != CO_ST_NONE)
        o->compensate_to = ch->compensate_to;
    if (ch->release)
        o->stock_held = false;
    if (ch->take)
        o->stock_held = true;
}

co_step co_saga_transition(co_run *r, co_order *o, co_state to, const co_change *ch)
{
    const co_saga *s = r->saga;
    co_state path[3];
    const char *reasons[3];
    const char *last_reason = ch->reason;
    char noted[2400]; /* a reason and an operator's note (500 characters) */
    int hops = 0;
    co_order after = *o;
    co_move_outcome outcome = CO_MOVE_STALE;
    co_answer answer = {0};
    co_move m;
    co_state from = ch->via != CO_ST_NONE ? ch->via : o->status;

    co_log_ctx_order(o->id);
    if ((ch->via != CO_ST_NONE && !co_saga_legal(o->status, ch->via)) ||
        !co_saga_legal(from, to)) {
        CO_ERROR("saga", "order %s: illegal move %s -> %s%s%s", o->id, co_state_name(o->status),
                 ch->via != CO_ST_NONE ? co_state_name(ch->via) : "",
                 ch->via != CO_ST_NONE ? " -> " : "", co_state_name(to));
        abort();
    }
    /* Each hop its own history reason: a via state its name (the step that
     * got there succeeded: "authorized"); a capture passed through on the way
     * to confirmed the move's reason ("captured"), the confirmation then
     * "confirmed"; the last hop the move's reason, with an operator's note. */
    if (ch->via != CO_ST_NONE) {
        reasons[hops] = co_state_name(ch->via);
        path[hops++] = ch->via;
    }
    /* Capture then confirm is one commit: nothing happens between them. */
    if (to == CO_ST_CONFIRMED && from != CO_ST_CAPTURED) {
        reasons[hops] = ch->reason;
        path[hops++] = CO_ST_CAPTURED;
        last_reason = "confirmed";
    }
    if (r->note != NULL) {
        snprintf(noted, sizeof noted, "%s (%s)", last_reason ? last_reason : "", r->note);
        last_reason = noted;
    }
    reasons[hops] = last_reason;
    path[hops++] = to;
    apply(&after, to, ch);
    m = (co_move){
        .order = o, .path = path, .reasons = reasons, .hops = hops, .change = ch,
        .lease_seconds = active(to) ? s->lease_seconds : 0, .owner = s->owner,
        .answer_for = o->answer_pending && co_order_answer_decided(&after) ? &after : NULL,
        .event_id = r->event_id, .event_type = r->event_type,
    };
    if (m.answer_for != NULL && to == CO_ST_CONFIRMED)
        co_memo_confirming(s->memo, o->id);
    else if (m.answer_for != NULL)
        co_memo_done(s->memo, o->id); /* the answer is being stored: ask the store */
    if (s->store.transition(s->store.impl, &m, &outcome, &answer) != CO_STORE_OK)
        return CO_STEP_RETRY;
    if (outcome == CO_MOVE_SHORT) {
        co_answer_clear(&answer);
        return CO_STEP_SHORT;
    }
    if (outcome == CO_MOVE_STALE && r->event_id == NULL &&
        s->store.load_order(s->store.impl, o->id, &after) == CO_STORE_OK && after.status == to) {
        /* Already where we were taking it: our own statement, run again after
         * a lost connection, or another process making the same move. Go on
         * from there. (Not for a move caused by an event: only the event's own
         * record says it was applied.) */
        co_answer_clear(&answer);
        *o = after;
        return CO_STEP_MOVED;
    }
    if (outcome != CO_MOVE_MADE) {
        CO_INFO("saga", "order %s: %s -> %s not made (moved)", o->id, co_state_name(o->status),
                co_state_name(to));
        co_answer_clear(&answer);
        return CO_STEP_LOST;
    }
    /* The event, if any, is recorded now: later moves of this run are its consequences. */
    r->event_id = NULL;
    r->event_type = NULL;
    r->note = NULL;
    CO_INFO("saga", "order %s: %s -> %s%s%s", o->id, co_state_name(o->status), co_state_name(to),
            ch->reason ? " " : "", ch->reason ? ch->reason : "");
    *o = after;
    co_memo_moved(s->memo, o->id, to, o->payment_intent, r->cause_id);
    if (answer.body != NULL) {
        o->answer_pending = false;
        co_answer_clear(&r->answer);
        r->answer = answer;
    }
    return CO_STEP_MOVED;
}

/* The one function that moves an order, and what each state answers the
 * shopper's checkout. No state is set anywhere else. */
#include "co_errors.h"
#include "co_log.h"
#include "co_store.h"
#include "saga.h"

#include <jansson.h>
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
static bool legal(co_state from, co_state to)
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

static co_err failure_err(const char *code)
{
    static const co_err known[] = {CO_ERR_out_of_stock, CO_ERR_payment_declined,
                                   CO_ERR_authentication_required,
                                   CO_ERR_payment_provider_unavailable,
                                   CO_ERR_payment_provider_error};

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(co_err_get(known[i])->code, code) == 0)
            return known[i];
    return CO_ERR_internal_error;
}

bool co_saga_answer(const co_order *o, unsigned *status, char **body)
{
    json_t *j;
    co_err err;
    char msg[160];

    switch (o->status) {
    case CO_ST_CONFIRMED:
        j = json_pack("{s:s, s:s, s:I, s:s, s:s}", "order_id", o->id, "status", "confirmed",
                      "amount", (json_int_t)o->amount, "currency", o->currency,
                      "payment_intent", o->payment_intent);
        *status = 201;
        break;
    case CO_ST_AWAITING_PAYMENT:
        j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "order_id", o->id, "status",
                      "awaiting_payment", "client_secret", o->client_secret,
                      "reservation_expires_at", o->expires_at, "payment_intent",
                      o->payment_intent, "amount", (json_int_t)o->amount, "currency",
                      o->currency);
        *status = 202;
        break;
    case CO_ST_FAILED:
    case CO_ST_VOIDING:
        if (o->status == CO_ST_VOIDING && o->compensate_to != CO_ST_FAILED)
            return false;
        err = failure_err(o->failure_code);
        j = json_pack("{s:s}", "order_id", o->id);
        msg[0] = '\0';
        if (err == CO_ERR_out_of_stock && o->failure_detail[0] != '\0') {
            json_object_set_new(j, "item_id", json_string(o->failure_detail));
            snprintf(msg, sizeof msg, "Item %s does not have enough units left.",
                     o->failure_detail);
        }
        if (err == CO_ERR_payment_declined && o->decline_code[0] != '\0')
            json_object_set_new(j, "decline_code", json_string(o->decline_code));
        *body = co_error_body(err, msg[0] ? msg : NULL, j);
        *status = co_err_get(err)->status;
        return *body != NULL;
    default:
        return false;
    }
    *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *body != NULL;
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

co_step co_saga_transition(co_saga *s, co_order *o, co_state to, const co_change *ch)
{
    const char *path[3];
    int hops = 0;
    co_order after = *o;
    unsigned answer_status = 0;
    char *answer = NULL;
    char result[12] = "";
    co_db_status st;

    co_state from = ch->via != CO_ST_NONE ? ch->via : o->status;

    if ((ch->via != CO_ST_NONE && !legal(o->status, ch->via)) || !legal(from, to)) {
        CO_ERROR("saga", "order %s: illegal move %s -> %s%s%s", o->id, co_state_name(o->status),
                 ch->via != CO_ST_NONE ? co_state_name(ch->via) : "",
                 ch->via != CO_ST_NONE ? " -> " : "", co_state_name(to));
        abort();
    }
    if (ch->via != CO_ST_NONE)
        path[hops++] = co_state_name(ch->via);
    /* Capture then confirm is one commit: nothing happens between them. */
    if (to == CO_ST_CONFIRMED && from != CO_ST_CAPTURED)
        path[hops++] = co_state_name(CO_ST_CAPTURED);
    path[hops++] = co_state_name(to);
    apply(&after, to, ch);
    if (o->answer_pending && !co_saga_answer(&after, &answer_status, &answer))
        answer = NULL;
    st = co_store_transition(s->db, o, path, hops, ch, active(to) ? s->lease_seconds : 0,
                             s->owner, answer_status, answer, s->event_id, s->event_type,
                             result);
    if (st != CO_DB_ROWS) {
        free(answer);
        return CO_STEP_RETRY;
    }
    if (strcmp(result, "short") == 0) {
        free(answer);
        return CO_STEP_SHORT;
    }
    if (strcmp(result, "moved") == 0 && s->event_id == NULL &&
        co_store_load_order(s->db, o->id, &after) == CO_DB_ROWS && after.status == to) {
        /* Already where we were taking it: our own statement, run again after
         * a lost connection, or another process making the same move. Go on
         * from there. (Not for a move caused by an event: only the event's own
         * record says it was applied.) */
        free(answer);
        *o = after;
        s->event_id = NULL;
        s->event_type = NULL;
        return CO_STEP_MOVED;
    }
    if (strcmp(result, "ok") != 0) {
        CO_INFO("saga", "order %s: %s -> %s not made (%s)", o->id, co_state_name(o->status),
                co_state_name(to), result);
        free(answer);
        return CO_STEP_LOST;
    }
    /* The event, if any, is recorded now: later moves of this drive are its consequences. */
    s->event_id = NULL;
    s->event_type = NULL;
    CO_INFO("saga", "order %s: %s -> %s%s%s", o->id, co_state_name(o->status), co_state_name(to),
            ch->reason ? " " : "", ch->reason ? ch->reason : "");
    *o = after;
    if (answer != NULL) {
        o->answer_pending = false;
        free(s->answer_body);
        s->answer_body = answer;
        s->answer_status = answer_status;
    }
    return CO_STEP_MOVED;
}

/* Reconciliation with the payment provider. A pass takes the watermark's
 * lease (one pass at a time across every instance), lists the provider's
 * PaymentIntents created since the watermark minus an overlap, then looks at
 * the orders that have waited on the provider for a while, and settles each
 * intent against its order by the rules below. What a rule repairs goes
 * through the payment port with a key made from the intent (two passes, or two
 * instances, never act twice) or through the saga's own drive (one way to move
 * an order); what no rule decides is reported and nothing is changed. Every
 * finding is recorded in reconcile_log and in its order's history.
 *
 *   the intent                 its order                    action   finding
 *   -------------------------- ---------------------------- -------- -------------------------
 *   amount or currency differs the order's own, or holding  report   amount_mismatch,
 *                              money and naming the order            currency_mismatch
 *   requires_capture           none (metadata names no      cancel   authorization_without_order
 *                              order we have)
 *   succeeded, not all         none                         refund   capture_without_order
 *   refunded
 *   held money, no metadata    none                         report   intent_without_order_id
 *   requires_capture           failed, expired, cancelled,  cancel   authorization_for_ended_order
 *                              refunded
 *   succeeded, not all         failed, expired, cancelled,  refund   capture_for_ended_order
 *   refunded                   refunded
 *   requires_capture /         another intent is the        cancel / duplicate_authorization /
 *   succeeded                  order's                      refund   duplicate_capture
 *   anything but succeeded     confirmed                    report   confirmed_not_captured
 *   succeeded, all refunded    confirmed                    drive    refunded_at_provider
 *                                                                    (-> refunding -> refunded)
 *   past what the order waits  awaiting_payment, reserved,  drive    provider_ahead
 *   for (authorized, captured, authorized, captured,
 *   canceled, refunded)        voiding, refunding; idle
 *                              min_idle_seconds, no lease
 *   not at the provider        waiting on it                report   intent_missing
 *   anything else              -                            -        (no finding)
 *
 * "Waiting past what the order waits for", state by state: awaiting_payment
 * with the intent requires_capture, succeeded or canceled; reserved and
 * authorized with it succeeded or canceled; captured with it succeeded
 * (anything else is reported: captured_not_succeeded); voiding with it canceled
 * or succeeded; refunding with it refunded in full or canceled. The drive is
 * the saga's: each state's step already knows what to do with each status. */
#include "co_log.h"
#include "reconcile.h"
#include "steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_PAGE 100
#define ORDERS_PAGE 32

const char *co_recon_action_name(co_recon_action a)
{
    static const char *const names[] = {
        [CO_RECON_NOTHING] = "none", [CO_RECON_CANCEL] = "cancel",
        [CO_RECON_REFUND] = "refund", [CO_RECON_DRIVE] = "drive",
        [CO_RECON_REPORT] = "report",
    };

    if ((unsigned)a >= sizeof names / sizeof names[0])
        return "none";
    return names[a];
}

/* ---------------------------------------------------------------- the rules */

static co_recon_decision decision(co_recon_action a, const char *finding)
{
    return (co_recon_decision){.action = a, .finding = finding};
}

static bool ended_otherwise(co_state st)
{
    return st == CO_ST_FAILED || st == CO_ST_EXPIRED || st == CO_ST_CANCELLED ||
           st == CO_ST_REFUNDED;
}

/* The provider has moved past what an order in st waits for. */
static bool provider_ahead(co_state st, co_intent_status is, bool refunded_all)
{
    switch (st) {
    case CO_ST_AWAITING_PAYMENT:
        return is == CO_INTENT_REQUIRES_CAPTURE || is == CO_INTENT_SUCCEEDED ||
               is == CO_INTENT_CANCELED;
    case CO_ST_RESERVED:
    case CO_ST_AUTHORIZED:
    case CO_ST_VOIDING:
        return is == CO_INTENT_SUCCEEDED || is == CO_INTENT_CANCELED;
    case CO_ST_CAPTURED:
        return is == CO_INTENT_SUCCEEDED;
    case CO_ST_REFUNDING:
        return refunded_all || is == CO_INTENT_CANCELED;
    default:
        return false;
    }
}

co_recon_decision co_recon_decide(const co_recon_case *c)
{
    const co_payment *pi = c->intent;
    const co_order *o = c->order != NULL ? &c->order->order : NULL;
    bool authorized = pi->status == CO_INTENT_REQUIRES_CAPTURE;
    bool succeeded = pi->status == CO_INTENT_SUCCEEDED;
    bool kept = succeeded && c->refunded < pi->amount;
    bool refunded_all = succeeded && pi->amount > 0 && c->refunded >= pi->amount;

    if (o == NULL) {
        if (pi->order_id[0] == '\0')
            return (authorized || kept) ? decision(CO_RECON_REPORT, "intent_without_order_id")
                                        : decision(CO_RECON_NOTHING, NULL);
        if (authorized)
            return decision(CO_RECON_CANCEL, "authorization_without_order");
        if (kept)
            return decision(CO_RECON_REFUND, "capture_without_order");
        return decision(CO_RECON_NOTHING, NULL);
    }
    if ((c->order->is_intents || authorized || kept) &&
        (pi->amount != o->amount || strcmp(pi->currency, o->currency) != 0))
        return decision(CO_RECON_REPORT,
                        pi->amount != o->amount ? "amount_mismatch" : "currency_mismatch");
    if (!c->order->is_intents) {
        /* The intent names the order, which has another intent, or has not
         * recorded one: then it is still learning it unless it has ended. */
        bool ended = ended_otherwise(o->status);

        if (!ended && o->payment_intent[0] == '\0')
            return decision(CO_RECON_NOTHING, NULL);
        if (authorized)
            return decision(CO_RECON_CANCEL, ended ? "authorization_for_ended_order"
                                                   : "duplicate_authorization");
        if (kept)
            return decision(CO_RECON_REFUND, ended ? "capture_for_ended_order"
                                                   : "duplicate_capture");
        return decision(CO_RECON_NOTHING, NULL);
    }
    if (ended_otherwise(o->status)) {
        if (authorized)
            return decision(CO_RECON_CANCEL, "authorization_for_ended_order");
        if (kept)
            return decision(CO_RECON_REFUND, "capture_for_ended_order");
        return decision(CO_RECON_NOTHING, NULL);
    }
    if (o->status == CO_ST_CONFIRMED) {
        if (!succeeded)
            return decision(CO_RECON_REPORT, "confirmed_not_captured");
        /* Partly refunded stays confirmed: an operator adjusting the price. */
        return refunded_all ? decision(CO_RECON_DRIVE, "refunded_at_provider")
                            : decision(CO_RECON_NOTHING, NULL);
    }
    if (o->status == CO_ST_PENDING || c->order->idle_seconds < c->min_idle_seconds ||
        c->order->leased)
        return decision(CO_RECON_NOTHING, NULL); /* its saga is on it */
    if (provider_ahead(o->status, pi->status, refunded_all))
        return decision(CO_RECON_DRIVE, "provider_ahead");
    if (o->status == CO_ST_CAPTURED)
        return decision(CO_RECON_REPORT, "captured_not_succeeded");
    return decision(CO_RECON_NOTHING, NULL);
}

/* ---------------------------------------------------------------- a pass */

typedef struct {
    const co_saga *saga;
    const co_recon_params *params;
    void (*sink)(void *arg, const co_recon_row *row);
    void *arg;
    co_recon_summary *sum;
    char (*seen)[64];           /* intents settled this pass */
    size_t nseen, capseen;
    bool error;                 /* something could not be read: the pass is incomplete */
} pass;

static bool stopping(const pass *p)
{
    return p->params->stop != NULL && atomic_load(p->params->stop);
}

static void remember(pass *p, const char *intent)
{
    if (p->nseen == p->capseen) {
        size_t cap = p->capseen ? 2 * p->capseen : 256;
        char (*grown)[64] = realloc(p->seen, cap * sizeof *grown);

        if (grown == NULL)
            return; /* only costs a second look at the intent */
        p->seen = grown;
        p->capseen = cap;
    }
    snprintf(p->seen[p->nseen++], 64, "%s", intent);
}

static bool seen(const pass *p, const char *intent)
{
    for (size_t i = 0; i < p->nseen; i++)
        if (strcmp(p->seen[i], intent) == 0)
            return true;
    return false;
}

static bool is_uuid(const char *s)
{
    static const char hex[] = "0123456789abcdefABCDEF";

    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? s[i] != '-' : strchr(hex, s[i]) == NULL)
            return false;
    }
    return true;
}

static void record(pass *p, co_recon_row *row)
{
    const co_store_port *st = &p->saga->store;
    co_recon_record rec = {
        .run_id = p->sum->run_id, .intent = row->intent[0] ? row->intent : NULL,
        .order_id = row->order_id[0] ? row->order_id : NULL, .finding = row->finding,
        .action = co_recon_action_name(row->action), .result = row->result,
        .failed = row->failed,
    };

    if (row->action == CO_RECON_REPORT)
        p->sum->reported++;
    else if (row->failed)
        p->sum->failed++;
    else
        p->sum->acted++;
    if (st->recon_record(st->impl, &rec) != CO_STORE_OK) {
        CO_ERROR("reconcile", "%s %s: could not be recorded", row->finding, row->intent);
        p->error = true;
    }
    if (row->action == CO_RECON_REPORT)
        CO_WARN("reconcile", "%s: intent %s, order %s: %s", row->finding, row->intent,
                row->order_id[0] ? row->order_id : "-", row->result);
    else
        CO_INFO("reconcile", "%s: intent %s, order %s: %s %s", row->finding, row->intent,
                row->order_id[0] ? row->order_id : "-", co_recon_action_name(row->action),
                row->result);
    if (p->sink != NULL)
        p->sink(p->arg, row);
}

static void cancel(pass *p, const co_payment *pi, co_recon_row *row)
{
    const co_pay_port *pay = &p->saga->pay;
    char key[96];
    co_payment res;
    co_payment_result r;

    snprintf(key, sizeof key, "reconcile-cancel-%s", pi->intent);
    r = pay->cancel(pay->impl, pi->intent, key, &res);
    if (r == CO_PAYMENT_OK || (r == CO_PAYMENT_WRONG_STATE && res.status == CO_INTENT_CANCELED)) {
        snprintf(row->result, sizeof row->result, "canceled %lld %s", pi->amount, pi->currency);
        return;
    }
    row->failed = true;
    snprintf(row->result, sizeof row->result, "not canceled: %s (intent %s)",
             co_payment_result_name(r), co_intent_status_name(res.status));
}

static void refund(pass *p, const co_payment *pi, long long refunded, co_recon_row *row)
{
    const co_pay_port *pay = &p->saga->pay;
    char key[112];
    co_payment res;
    co_payment_result r;

    /* The amount already refunded is part of the key: the same pass run twice
     * sends the same refund; a later refund of a remainder is a new one. */
    snprintf(key, sizeof key, "reconcile-refund-%s-%lld", pi->intent, refunded);
    r = pay->refund(pay->impl, pi->intent, key, &res);
    if (r == CO_PAYMENT_OK || r == CO_PAYMENT_ALREADY_REFUNDED) {
        snprintf(row->result, sizeof row->result, "refunded %lld %s", pi->amount - refunded,
                 pi->currency);
        return;
    }
    row->failed = true;
    snprintf(row->result, sizeof row->result, "not refunded: %s (intent %s)",
             co_payment_result_name(r), co_intent_status_name(res.status));
}

/* Moves the order on through the saga, as its own steps would. */
static void drive(pass *p, const co_payment *pi, co_recon_order *ro, co_recon_row *row)
{
    const co_saga *s = p->saga;
    co_order *o = &ro->order;
    co_run run = co_run_begin(s);
    co_step step;

    (void)pi;
    if (o->status == CO_ST_CONFIRMED) {
        /* As charge.refunded would have done (states/events.c). */
        co_change ch = CO_CHANGE_INIT;

        ch.reason = "reconcile: refunded_at_provider";
        ch.compensate_to = CO_ST_REFUNDED;
        step = co_saga_transition(&run, o, CO_ST_REFUNDING, &ch);
        if (step == CO_STEP_MOVED)
            step = co_saga_drive(&run, o, CO_DRIVE_FORWARD);
    } else {
        co_store_rc rc = s->store.recon_claim(s->store.impl, o->id, o->status, s->owner,
                                              s->lease_seconds);

        if (rc != CO_STORE_OK) {
            co_run_end(&run);
            row->failed = rc < 0;
            if (rc < 0)
                p->error = true;
            snprintf(row->result, sizeof row->result, "%s",
                     rc < 0 ? "not driven: store unreachable"
                            : "not driven: the order moved, or is being driven");
            return;
        }
        step = co_saga_drive(&run, o, o->status == CO_ST_AWAITING_PAYMENT ? CO_DRIVE_CONFIRM
                                                                          : CO_DRIVE_FORWARD);
    }
    co_run_end(&run);
    row->after = o->status;
    if (o->status == row->before) {
        row->failed = true;
        snprintf(row->result, sizeof row->result, "order still %s (%s)",
                 co_state_name(o->status),
                 step == CO_STEP_RETRY ? "provider or store unreachable" : "not moved");
        return;
    }
    snprintf(row->result, sizeof row->result, "order %s -> %s", co_state_name(row->before),
             co_state_name(o->status));
}

static void describe(const co_payment *pi, long long refunded, const co_order *o, char *out,
                     size_t n)
{
    if (o == NULL) {
        snprintf(out, n, "intent %s %lld %s, metadata names no order",
                 co_intent_status_name(pi->status), pi->amount, pi->currency);
        return;
    }
    snprintf(out, n, "intent %s %lld %s (refunded %lld), order %s %lld %s",
             co_intent_status_name(pi->status), pi->amount, pi->currency, refunded,
             co_state_name(o->status), o->amount, o->currency);
}

static void settle(pass *p, const co_payment *pi, long long refunded, co_recon_order *ro,
                   co_recon_decision d)
{
    co_recon_row row = {.finding = d.finding, .action = d.action, .before = CO_ST_NONE,
                        .after = CO_ST_NONE};

    snprintf(row.intent, sizeof row.intent, "%s", pi->intent);
    if (ro != NULL) {
        snprintf(row.order_id, sizeof row.order_id, "%s", ro->order.id);
        row.before = row.after = ro->order.status;
    }
    switch (d.action) {
    case CO_RECON_CANCEL:
        cancel(p, pi, &row);
        break;
    case CO_RECON_REFUND:
        refund(p, pi, refunded, &row);
        break;
    case CO_RECON_DRIVE:
        drive(p, pi, ro, &row);
        if (!row.failed && row.after == row.before)
            return; /* someone else is on it: not a finding of ours */
        break;
    case CO_RECON_REPORT:
        describe(pi, refunded, ro != NULL ? &ro->order : NULL, row.result, sizeof row.result);
        break;
    default:
        return;
    }
    record(p, &row);
}

/* Refunded so far of a succeeded intent; false (and the pass marked
 * incomplete) when the provider cannot say. */
static bool refunded_of(pass *p, const co_payment *pi, long long *refunded)
{
    const co_pay_port *pay = &p->saga->pay;
    co_payment res;

    *refunded = 0;
    if (pi->status != CO_INTENT_SUCCEEDED)
        return true;
    if (pay->refunded(pay->impl, pi->intent, &res) != CO_PAYMENT_OK) {
        CO_WARN("reconcile", "intent %s: refunds unreadable (%s)", pi->intent, res.message);
        p->error = true;
        return false;
    }
    *refunded = res.amount_refunded;
    return true;
}

/* The intent's order and the decision on the two. */
static co_recon_decision judge(pass *p, const co_payment *pi, co_recon_order *ro, bool *found,
                               long long *refunded)
{
    const co_store_port *st = &p->saga->store;
    co_recon_case c = {.intent = pi, .min_idle_seconds = p->params->min_idle_seconds};
    co_store_rc rc = st->recon_order(st->impl, is_uuid(pi->order_id) ? pi->order_id : NULL,
                                     pi->intent, ro);

    *found = rc == CO_STORE_OK;
    if (rc < 0 || !refunded_of(p, pi, &c.refunded)) {
        p->error = p->error || rc < 0;
        return decision(CO_RECON_NOTHING, NULL);
    }
    c.order = *found ? ro : NULL;
    *refunded = c.refunded;
    return co_recon_decide(&c);
}

/* One intent from the provider's list. The list was read before the order:
 * an order that moved since (a capture that finished and was confirmed) would
 * look like drift. So a finding is judged again on the intent retrieved now,
 * after the order was read, and only the second judgement counts. */
static void examine_intent(pass *p, const co_payment *listed)
{
    const co_pay_port *pay = &p->saga->pay;
    co_recon_order ro;
    co_payment now;
    long long refunded = 0;
    bool found = false;
    co_recon_decision d;

    remember(p, listed->intent);
    d = judge(p, listed, &ro, &found, &refunded);
    if (d.action == CO_RECON_NOTHING)
        return;
    if (pay->retrieve(pay->impl, listed->intent, &now) != CO_PAYMENT_OK) {
        CO_WARN("reconcile", "intent %s: unreadable now (%s)", listed->intent, now.message);
        p->error = true;
        return;
    }
    d = judge(p, &now, &ro, &found, &refunded);
    if (d.action != CO_RECON_NOTHING)
        settle(p, &now, refunded, found ? &ro : NULL, d);
}

/* One order waiting on the provider: its own intent, retrieved. */
static void examine_order(pass *p, const char *order_id)
{
    const co_store_port *st = &p->saga->store;
    const co_pay_port *pay = &p->saga->pay;
    co_recon_order ro;
    co_payment pi;
    co_recon_case c = {.intent = &pi, .order = &ro,
                       .min_idle_seconds = p->params->min_idle_seconds};
    co_store_rc rc = st->recon_order(st->impl, order_id, NULL, &ro);
    co_payment_result r;

    if (rc < 0)
        p->error = true;
    if (rc != CO_STORE_OK || ro.order.payment_intent[0] == '\0' ||
        seen(p, ro.order.payment_intent))
        return;
    p->sum->orders++;
    ro.is_intents = true;
    r = pay->retrieve(pay->impl, ro.order.payment_intent, &pi);
    if (r == CO_PAYMENT_NOT_FOUND) {
        co_recon_row row = {.finding = "intent_missing", .action = CO_RECON_REPORT,
                            .before = ro.order.status, .after = ro.order.status};

        snprintf(row.intent, sizeof row.intent, "%s", ro.order.payment_intent);
        snprintf(row.order_id, sizeof row.order_id, "%s", ro.order.id);
        snprintf(row.result, sizeof row.result, "order %s, the provider has no such intent",
                 co_state_name(ro.order.status));
        record(p, &row);
        return;
    }
    if (r != CO_PAYMENT_OK) {
        CO_WARN("reconcile", "order %s: intent %s unreadable (%s)", ro.order.id,
                ro.order.payment_intent, co_payment_result_name(r));
        p->error = true;
        return;
    }
    remember(p, pi.intent);
    if (!refunded_of(p, &pi, &c.refunded))
        return;
    settle(p, &pi, c.refunded, &ro, co_recon_decide(&c));
}

/* True when the whole list was read. */
static bool list_intents(pass *p, long long since)
{
    const co_pay_port *pay = &p->saga->pay;
    co_payment *rows = calloc(LIST_PAGE, sizeof *rows);
    char after[64] = "";
    bool complete = false;

    if (rows == NULL)
        return false;
    for (;;) {
        int n = 0;
        bool more = false;
        co_payment_result r = pay->list(pay->impl, since, after[0] ? after : NULL, rows,
                                        LIST_PAGE, &n, &more);

        if (r != CO_PAYMENT_OK) {
            CO_WARN("reconcile", "listing the provider's intents failed (%s)",
                    co_payment_result_name(r));
            break;
        }
        for (int i = 0; i < n && !stopping(p); i++) {
            p->sum->intents++;
            examine_intent(p, &rows[i]);
        }
        if (stopping(p))
            break;
        if (!more || n == 0) {
            complete = true;
            break;
        }
        snprintf(after, sizeof after, "%s", rows[n - 1].intent);
    }
    free(rows);
    return complete;
}

static void waiting_orders(pass *p)
{
    const co_store_port *st = &p->saga->store;
    char ids[ORDERS_PAGE][37];
    char after[37] = "";

    for (;;) {
        int n = 0;

        if (st->recon_waiting(st->impl, p->params->min_idle_seconds, after[0] ? after : NULL,
                              ORDERS_PAGE, ids, &n) < 0) {
            p->error = true;
            return;
        }
        for (int i = 0; i < n && !stopping(p); i++)
            examine_order(p, ids[i]);
        if (n < ORDERS_PAGE || stopping(p))
            return;
        snprintf(after, sizeof after, "%s", ids[n - 1]);
    }
}

co_recon_status co_saga_reconcile(const co_saga *s, const co_recon_params *params,
                                  void (*sink)(void *arg, const co_recon_row *row), void *arg,
                                  co_recon_summary *sum)
{
    pass p = {.saga = s, .params = params, .sink = sink, .arg = arg, .sum = sum};
    co_recon_begun begun;
    bool complete;
    long long since;
    co_store_rc rc;

    memset(sum, 0, sizeof *sum);
    if (s->store.recon_begin(s->store.impl, s->owner, params->lease_seconds, &begun) !=
        CO_STORE_OK)
        return CO_RECON_ERROR;
    if (!begun.acquired) {
        snprintf(sum->holder, sizeof sum->holder, "%s", begun.holder);
        return CO_RECON_BUSY;
    }
    snprintf(sum->run_id, sizeof sum->run_id, "%s", begun.run_id);
    since = begun.watermark - params->overlap_seconds;
    sum->listed_since = since > 0 ? since : 0;
    complete = list_intents(&p, sum->listed_since);
    waiting_orders(&p);
    free(p.seen);
    /* An incomplete listing leaves the watermark: the next pass lists again. */
    sum->watermark = complete ? begun.started : begun.watermark;
    rc = s->store.recon_end(s->store.impl, s->owner, complete ? begun.started : -1);
    if (rc == CO_STORE_NONE)
        CO_WARN("reconcile", "run %s outlived its lease; the watermark was left", sum->run_id);
    if (rc < 0 || !complete || p.error)
        return CO_RECON_ERROR;
    return CO_RECON_DONE;
}

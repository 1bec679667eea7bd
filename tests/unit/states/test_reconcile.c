/* The reconciliation rules (co_recon_decide, states/reconcile.c): each row of
 * the table at the top of that file, and what is left alone. No server, no
 * database: the end-to-end suite is tests/test_reconcile.c. */
#include "harness.h"
#include "reconcile.h"

#include <stdio.h>
#include <string.h>

static co_payment intent(co_intent_status st, long long amount, const char *order_id)
{
    co_payment p;

    memset(&p, 0, sizeof p);
    p.status = st;
    p.amount = amount;
    snprintf(p.intent, sizeof p.intent, "pi_test");
    snprintf(p.currency, sizeof p.currency, "usd");
    snprintf(p.order_id, sizeof p.order_id, "%s", order_id ? order_id : "");
    return p;
}

static co_recon_order order(co_state st, bool own, long long idle)
{
    co_recon_order o;

    memset(&o, 0, sizeof o);
    o.order.status = st;
    o.order.amount = 4000;
    snprintf(o.order.currency, sizeof o.order.currency, "usd");
    snprintf(o.order.id, sizeof o.order.id, "00000000-0000-4000-8000-000000000001");
    snprintf(o.order.payment_intent, sizeof o.order.payment_intent, "%s",
             own ? "pi_test" : "pi_other");
    o.is_intents = own;
    o.idle_seconds = idle;
    return o;
}

/* The decision for intent pi (refunded so far) and order o (NULL: none). */
static co_recon_decision decide(const co_payment *pi, long long refunded,
                                const co_recon_order *o)
{
    co_recon_case c = {.intent = pi, .refunded = refunded, .order = o, .min_idle_seconds = 60};

    return co_recon_decide(&c);
}

static void expect(co_recon_decision d, co_recon_action a, const char *finding)
{
    ck_assert_int_eq(d.action, a);
    if (finding == NULL)
        ck_assert_ptr_null(d.finding);
    else
        ck_assert_str_eq(d.finding, finding);
}

#define ORDER_ID "00000000-0000-4000-8000-000000000001"

START_TEST(money_without_a_live_order_is_given_back)
{
    co_payment auth = intent(CO_INTENT_REQUIRES_CAPTURE, 4000, ORDER_ID);
    co_payment paid = intent(CO_INTENT_SUCCEEDED, 4000, ORDER_ID);
    static const co_state ended[] = {CO_ST_FAILED, CO_ST_EXPIRED, CO_ST_CANCELLED,
                                     CO_ST_REFUNDED};

    expect(decide(&auth, 0, NULL), CO_RECON_CANCEL, "authorization_without_order");
    expect(decide(&paid, 0, NULL), CO_RECON_REFUND, "capture_without_order");
    expect(decide(&paid, 1000, NULL), CO_RECON_REFUND, "capture_without_order");
    expect(decide(&paid, 4000, NULL), CO_RECON_NOTHING, NULL);
    for (size_t i = 0; i < sizeof ended / sizeof ended[0]; i++) {
        co_recon_order own = order(ended[i], true, 0), other = order(ended[i], false, 0);

        expect(decide(&auth, 0, &own), CO_RECON_CANCEL, "authorization_for_ended_order");
        expect(decide(&paid, 0, &own), CO_RECON_REFUND, "capture_for_ended_order");
        expect(decide(&paid, 4000, &own), CO_RECON_NOTHING, NULL);
        expect(decide(&auth, 0, &other), CO_RECON_CANCEL, "authorization_for_ended_order");
        expect(decide(&paid, 0, &other), CO_RECON_REFUND, "capture_for_ended_order");
    }
}
END_TEST

START_TEST(a_second_intent_of_a_live_order_is_given_back)
{
    co_payment auth = intent(CO_INTENT_REQUIRES_CAPTURE, 4000, ORDER_ID);
    co_payment paid = intent(CO_INTENT_SUCCEEDED, 4000, ORDER_ID);
    co_recon_order confirmed = order(CO_ST_CONFIRMED, false, 0);
    co_recon_order learning = order(CO_ST_RESERVED, false, 0);

    expect(decide(&auth, 0, &confirmed), CO_RECON_CANCEL, "duplicate_authorization");
    expect(decide(&paid, 0, &confirmed), CO_RECON_REFUND, "duplicate_capture");
    /* An order that has not recorded its intent yet is still learning it. */
    learning.order.payment_intent[0] = '\0';
    expect(decide(&auth, 0, &learning), CO_RECON_NOTHING, NULL);
}
END_TEST

START_TEST(an_order_behind_the_provider_is_driven_once_idle)
{
    static const struct {
        co_state st;
        co_intent_status is;
        long long refunded;
    } ahead[] = {
        {CO_ST_AWAITING_PAYMENT, CO_INTENT_REQUIRES_CAPTURE, 0},
        {CO_ST_AWAITING_PAYMENT, CO_INTENT_SUCCEEDED, 0},
        {CO_ST_AWAITING_PAYMENT, CO_INTENT_CANCELED, 0},
        {CO_ST_AUTHORIZED, CO_INTENT_SUCCEEDED, 0},
        {CO_ST_AUTHORIZED, CO_INTENT_CANCELED, 0},
        {CO_ST_CAPTURED, CO_INTENT_SUCCEEDED, 0},
        {CO_ST_VOIDING, CO_INTENT_CANCELED, 0},
        {CO_ST_VOIDING, CO_INTENT_SUCCEEDED, 0},
        {CO_ST_REFUNDING, CO_INTENT_SUCCEEDED, 4000},
        {CO_ST_REFUNDING, CO_INTENT_CANCELED, 0},
    };

    for (size_t i = 0; i < sizeof ahead / sizeof ahead[0]; i++) {
        co_payment pi = intent(ahead[i].is, 4000, ORDER_ID);
        co_recon_order idle = order(ahead[i].st, true, 61), busy = order(ahead[i].st, true, 5);
        co_recon_order leased = order(ahead[i].st, true, 600);

        leased.leased = true;
        expect(decide(&pi, ahead[i].refunded, &idle), CO_RECON_DRIVE, "provider_ahead");
        expect(decide(&pi, ahead[i].refunded, &busy), CO_RECON_NOTHING, NULL);
        expect(decide(&pi, ahead[i].refunded, &leased), CO_RECON_NOTHING, NULL);
    }
}
END_TEST

START_TEST(an_order_waiting_for_what_the_provider_has_not_done_is_left)
{
    co_payment pending = intent(CO_INTENT_REQUIRES_PAYMENT_METHOD, 4000, ORDER_ID);
    co_payment auth = intent(CO_INTENT_REQUIRES_CAPTURE, 4000, ORDER_ID);
    co_payment paid = intent(CO_INTENT_SUCCEEDED, 4000, ORDER_ID);
    co_recon_order awaiting = order(CO_ST_AWAITING_PAYMENT, true, 600);
    co_recon_order authorized = order(CO_ST_AUTHORIZED, true, 600);
    co_recon_order voiding = order(CO_ST_VOIDING, true, 600);
    co_recon_order refunding = order(CO_ST_REFUNDING, true, 600);
    co_recon_order confirmed = order(CO_ST_CONFIRMED, true, 600);

    expect(decide(&pending, 0, &awaiting), CO_RECON_NOTHING, NULL);
    expect(decide(&auth, 0, &authorized), CO_RECON_NOTHING, NULL);
    expect(decide(&auth, 0, &voiding), CO_RECON_NOTHING, NULL);
    expect(decide(&paid, 0, &refunding), CO_RECON_NOTHING, NULL);
    expect(decide(&paid, 0, &confirmed), CO_RECON_NOTHING, NULL);
    expect(decide(&paid, 1000, &confirmed), CO_RECON_NOTHING, NULL); /* a partial refund */
    expect(decide(&paid, 4000, &confirmed), CO_RECON_DRIVE, "refunded_at_provider");
}
END_TEST

START_TEST(what_no_rule_decides_is_reported)
{
    co_payment auth = intent(CO_INTENT_REQUIRES_CAPTURE, 4000, ORDER_ID);
    co_payment anon = intent(CO_INTENT_REQUIRES_CAPTURE, 4000, NULL);
    co_payment cheap = intent(CO_INTENT_SUCCEEDED, 3900, ORDER_ID);
    co_payment euro = intent(CO_INTENT_SUCCEEDED, 4000, ORDER_ID);
    co_payment gone = intent(CO_INTENT_CANCELED, 4000, ORDER_ID);
    co_payment stale = intent(CO_INTENT_CANCELED, 1, ORDER_ID);
    co_recon_order confirmed = order(CO_ST_CONFIRMED, true, 0);
    co_recon_order other = order(CO_ST_CONFIRMED, false, 0);
    co_recon_order captured = order(CO_ST_CAPTURED, true, 600);

    snprintf(euro.currency, sizeof euro.currency, "eur");
    expect(decide(&anon, 0, NULL), CO_RECON_REPORT, "intent_without_order_id");
    expect(decide(&cheap, 0, &confirmed), CO_RECON_REPORT, "amount_mismatch");
    expect(decide(&euro, 0, &confirmed), CO_RECON_REPORT, "currency_mismatch");
    expect(decide(&gone, 0, &confirmed), CO_RECON_REPORT, "confirmed_not_captured");
    expect(decide(&auth, 0, &captured), CO_RECON_REPORT, "captured_not_succeeded");
    /* Another amount naming the order, holding money: reported, not refunded. */
    cheap.status = CO_INTENT_REQUIRES_CAPTURE;
    expect(decide(&cheap, 0, &other), CO_RECON_REPORT, "amount_mismatch");
    /* ... but one that never held money is nothing to report. */
    expect(decide(&stale, 0, &other), CO_RECON_NOTHING, NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/states/reconcile");
    TCase *tc = tcase_create("rules");

    tcase_add_test(tc, money_without_a_live_order_is_given_back);
    tcase_add_test(tc, a_second_intent_of_a_live_order_is_given_back);
    tcase_add_test(tc, an_order_behind_the_provider_is_driven_once_idle);
    tcase_add_test(tc, an_order_waiting_for_what_the_provider_has_not_done_is_left);
    tcase_add_test(tc, what_no_rule_decides_is_reported);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

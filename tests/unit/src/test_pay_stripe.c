/* The payment port's Stripe adapter (src/pay_stripe.c, included to reach its
 * statics): the client's statuses become the port's results, a 409 that
 * outlived the retries becomes "in use elsewhere", and Stripe's intent
 * statuses become the port's enum. */
#include "harness.h"

#include "../../../src/pay_stripe.c"

static co_payment convert_one(co_pay_status st, long http, const char *intent_status)
{
    co_pay_result res;
    co_payment out;

    memset(&res, 0, sizeof res);
    res.status = st;
    res.http_status = http;
    snprintf(res.pi.status, sizeof res.pi.status, "%s", intent_status);
    snprintf(res.pi.id, sizeof res.pi.id, "pi_123");
    snprintf(res.decline_code, sizeof res.decline_code, "insufficient_funds");
    (void)convert(&res, &out);
    return out;
}

START_TEST(results_map_one_to_one)
{
    static const struct {
        co_pay_status st;
        long http;
        co_payment_result want;
    } rows[] = {
        {CO_PAY_OK, 200, CO_PAYMENT_OK},
        {CO_PAY_DECLINED, 402, CO_PAYMENT_DECLINED},
        {CO_PAY_UNEXPECTED_STATE, 400, CO_PAYMENT_WRONG_STATE},
        {CO_PAY_NOT_FOUND, 404, CO_PAYMENT_NOT_FOUND},
        {CO_PAY_ALREADY_REFUNDED, 400, CO_PAYMENT_ALREADY_REFUNDED},
        {CO_PAY_REJECTED, 401, CO_PAYMENT_REFUSED},
        {CO_PAY_UNAVAILABLE, 0, CO_PAYMENT_UNKNOWN},
        {CO_PAY_UNAVAILABLE, 503, CO_PAYMENT_UNKNOWN},
        {CO_PAY_UNAVAILABLE, 429, CO_PAYMENT_UNKNOWN},
        {CO_PAY_UNAVAILABLE, 409, CO_PAYMENT_IN_USE},
    };

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_int_eq(convert_one(rows[i].st, rows[i].http, "").result, rows[i].want);
    ck_assert(co_payment_unknown(CO_PAYMENT_IN_USE));
    ck_assert(co_payment_unknown(CO_PAYMENT_UNKNOWN));
    ck_assert(!co_payment_unknown(CO_PAYMENT_DECLINED));
}
END_TEST

START_TEST(intent_statuses_map_and_fields_carry_over)
{
    co_payment p = convert_one(CO_PAY_OK, 200, "requires_capture");

    ck_assert_int_eq(p.status, CO_INTENT_REQUIRES_CAPTURE);
    ck_assert_str_eq(p.intent, "pi_123");
    ck_assert_str_eq(p.decline_code, "insufficient_funds");
    ck_assert_int_eq(convert_one(CO_PAY_OK, 200, "succeeded").status, CO_INTENT_SUCCEEDED);
    ck_assert_int_eq(convert_one(CO_PAY_OK, 200, "canceled").status, CO_INTENT_CANCELED);
    ck_assert_int_eq(convert_one(CO_PAY_OK, 200, "requires_action").status,
                     CO_INTENT_REQUIRES_ACTION);
    ck_assert_int_eq(convert_one(CO_PAY_OK, 200, "something_new").status, CO_INTENT_OTHER);
    ck_assert_int_eq(convert_one(CO_PAY_UNAVAILABLE, 0, "").status, CO_INTENT_OTHER);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/src/pay_stripe");
    TCase *tc = tcase_create("pay_stripe");

    tcase_add_test(tc, results_map_one_to_one);
    tcase_add_test(tc, intent_statuses_map_and_fields_carry_over);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

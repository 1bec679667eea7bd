/* The event table (states/events.c): what each provider event does to an
 * order in each state. No server, no database. */
#include "events.h"
#include "harness.h"

#include <string.h>

#define N_STATES (CO_ST_REFUNDED + 1)

#define CAPTURABLE "payment_intent.amount_capturable_updated"
#define SUCCEEDED "payment_intent.succeeded"
#define FAILED "payment_intent.payment_failed"
#define CANCELED "payment_intent.canceled"
#define REFUNDED "charge.refunded"

/* The rows of the table in the comment at the top of states/events.c. */
static const struct {
    const char *type;
    co_state state;
    co_event_action action;
} acts[] = {
    {CAPTURABLE, CO_ST_AWAITING_PAYMENT, CO_EV_DRIVE_CONFIRM},
    {CAPTURABLE, CO_ST_EXPIRED, CO_EV_LATE_AUTHORIZATION},
    {SUCCEEDED, CO_ST_AWAITING_PAYMENT, CO_EV_DRIVE_CONFIRM},
    {SUCCEEDED, CO_ST_AUTHORIZED, CO_EV_CONFIRM_IF_CAPTURED},
    {SUCCEEDED, CO_ST_CAPTURED, CO_EV_CONFIRM_IF_CAPTURED},
    {FAILED, CO_ST_AWAITING_PAYMENT, CO_EV_VOID_UNLESS_PAID},
    {CANCELED, CO_ST_AWAITING_PAYMENT, CO_EV_CANCEL},
    {CANCELED, CO_ST_AUTHORIZED, CO_EV_CANCEL},
    {REFUNDED, CO_ST_CONFIRMED, CO_EV_REFUND_IF_FULL},
};

static const char *const types[] = {CAPTURABLE, SUCCEEDED, FAILED, CANCELED, REFUNDED};

static co_event_action expected(const char *type, co_state st)
{
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(acts[i].type, type) == 0 && acts[i].state == st)
            return acts[i].action;
    return CO_EV_IGNORE;
}

START_TEST(each_event_acts_only_in_its_states)
{
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (int st = 0; st < N_STATES; st++)
            ck_assert_msg(co_event_decide(types[t], (co_state)st, false) ==
                              expected(types[t], (co_state)st),
                          "%s in %s", types[t], co_state_name((co_state)st));
}
END_TEST

START_TEST(an_order_whose_checkout_is_running_is_left_to_it)
{
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        ck_assert_int_eq(co_event_decide(acts[i].type, acts[i].state, true), CO_EV_IN_PROGRESS);
    /* ...but an event that would be ignored anyway stays ignored */
    ck_assert_int_eq(co_event_decide(REFUNDED, CO_ST_AUTHORIZED, true), CO_EV_IGNORE);
}
END_TEST

START_TEST(other_event_types_are_not_handled)
{
    ck_assert_int_eq(co_event_decide("customer.created", CO_ST_AWAITING_PAYMENT, false),
                     CO_EV_UNHANDLED_TYPE);
    ck_assert_int_eq(co_event_decide("payment_intent.created", CO_ST_RESERVED, false),
                     CO_EV_UNHANDLED_TYPE);
    ck_assert_int_eq(co_event_decide("", CO_ST_NONE, false), CO_EV_UNHANDLED_TYPE);
}
END_TEST

/* The memo answers only what does nothing to a confirmed order and to where
 * it can go next; a refund report acts on a confirmed one, an unhandled type is
 * recorded by the store. */
START_TEST(what_the_memo_may_answer)
{
    ck_assert(co_event_settles_confirmed("payment_intent.succeeded"));
    ck_assert(co_event_settles_confirmed("payment_intent.amount_capturable_updated"));
    ck_assert(co_event_settles_confirmed("payment_intent.payment_failed"));
    ck_assert(co_event_settles_confirmed("payment_intent.canceled"));
    ck_assert(!co_event_settles_confirmed("charge.refunded"));
    ck_assert(!co_event_settles_confirmed("customer.created"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/states/events");
    TCase *tc = tcase_create("events");

    tcase_add_test(tc, each_event_acts_only_in_its_states);
    tcase_add_test(tc, an_order_whose_checkout_is_running_is_left_to_it);
    tcase_add_test(tc, other_event_types_are_not_handled);
    tcase_add_test(tc, what_the_memo_may_answer);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

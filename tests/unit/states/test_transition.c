/* The state machine (states/transition.c): every edge it has, every edge it
 * has not, the deciding states and the names. No server, no database. */
#include "harness.h"
#include "steps.h"

#include <signal.h>
#include <string.h>

#define N_STATES (CO_ST_REFUNDED + 1)

/* The edges, written out here independently of the code under test. */
static const struct {
    co_state from, to;
} edges[] = {
    {CO_ST_PENDING, CO_ST_RESERVED},          {CO_ST_PENDING, CO_ST_FAILED},
    {CO_ST_RESERVED, CO_ST_AUTHORIZED},       {CO_ST_RESERVED, CO_ST_AWAITING_PAYMENT},
    {CO_ST_RESERVED, CO_ST_FAILED},           {CO_ST_RESERVED, CO_ST_VOIDING},
    {CO_ST_AWAITING_PAYMENT, CO_ST_AUTHORIZED}, {CO_ST_AWAITING_PAYMENT, CO_ST_CONFIRMED},
    {CO_ST_AWAITING_PAYMENT, CO_ST_VOIDING},
    {CO_ST_AUTHORIZED, CO_ST_CAPTURED},       {CO_ST_AUTHORIZED, CO_ST_CONFIRMED},
    {CO_ST_AUTHORIZED, CO_ST_VOIDING},        {CO_ST_AUTHORIZED, CO_ST_REFUNDING},
    {CO_ST_CAPTURED, CO_ST_CONFIRMED},        {CO_ST_CAPTURED, CO_ST_REFUNDING},
    {CO_ST_CONFIRMED, CO_ST_REFUNDING},
    {CO_ST_VOIDING, CO_ST_FAILED},            {CO_ST_VOIDING, CO_ST_EXPIRED},
    {CO_ST_VOIDING, CO_ST_CANCELLED},         {CO_ST_VOIDING, CO_ST_AUTHORIZED},
    {CO_ST_VOIDING, CO_ST_REFUNDING},
    {CO_ST_REFUNDING, CO_ST_REFUNDED},
    {CO_ST_EXPIRED, CO_ST_AUTHORIZED},
};

static bool listed(co_state from, co_state to)
{
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        if (edges[i].from == from && edges[i].to == to)
            return true;
    return false;
}

START_TEST(every_pair_is_legal_exactly_when_listed)
{
    int legal = 0;

    for (int from = 0; from < N_STATES; from++) {
        for (int to = 0; to < N_STATES; to++) {
            bool want = listed((co_state)from, (co_state)to);
            bool got = co_saga_legal((co_state)from, (co_state)to);

            ck_assert_msg(got == want, "%s -> %s: legal %d, expected %d",
                          co_state_name((co_state)from), co_state_name((co_state)to), got, want);
            legal += got;
        }
    }
    ck_assert_int_eq(legal, (int)(sizeof edges / sizeof edges[0]));
}
END_TEST

START_TEST(ended_orders_never_move_except_late_authorization)
{
    const co_state ended[] = {CO_ST_FAILED, CO_ST_CANCELLED, CO_ST_REFUNDED};

    for (size_t i = 0; i < sizeof ended / sizeof ended[0]; i++)
        for (int to = 0; to < N_STATES; to++)
            ck_assert(!co_saga_legal(ended[i], (co_state)to));
    for (int to = 0; to < N_STATES; to++)
        ck_assert(co_saga_legal(CO_ST_EXPIRED, (co_state)to) == (to == CO_ST_AUTHORIZED));
}
END_TEST

START_TEST(an_illegal_move_aborts_before_touching_the_store)
{
    co_saga saga;
    co_run run;
    co_order o;
    co_change ch = CO_CHANGE_INIT;

    memset(&saga, 0, sizeof saga); /* no ports: reaching the store would crash otherwise */
    run = co_run_begin(&saga);
    memset(&o, 0, sizeof o);
    o.status = CO_ST_REFUNDED;
    (void)co_saga_transition(&run, &o, CO_ST_CONFIRMED, &ch);
}
END_TEST

START_TEST(deciding_states_are_the_ones_that_answer_the_checkout)
{
    co_order o;

    memset(&o, 0, sizeof o);
    for (int st = 0; st < N_STATES; st++) {
        o.status = (co_state)st;
        o.compensate_to = CO_ST_NONE;
        ck_assert_msg(co_order_answer_decided(&o) ==
                          (st == CO_ST_CONFIRMED || st == CO_ST_AWAITING_PAYMENT ||
                           st == CO_ST_FAILED),
                      "%s", co_state_name((co_state)st));
    }
    o.status = CO_ST_VOIDING;
    o.compensate_to = CO_ST_FAILED;
    ck_assert(co_order_answer_decided(&o)); /* a failure being voided: the answer is known */
    o.compensate_to = CO_ST_CANCELLED;
    ck_assert(!co_order_answer_decided(&o));
}
END_TEST

START_TEST(names_round_trip_and_terminal_states)
{
    for (int st = 0; st < N_STATES; st++) {
        ck_assert_int_eq(co_state_parse(co_state_name((co_state)st)), st);
        ck_assert(co_state_terminal((co_state)st) ==
                  (st == CO_ST_CONFIRMED || st == CO_ST_FAILED || st == CO_ST_EXPIRED ||
                   st == CO_ST_CANCELLED || st == CO_ST_REFUNDED));
    }
    ck_assert_int_eq(co_state_parse("nonsense"), CO_ST_NONE);
    ck_assert_int_eq(co_state_parse(NULL), CO_ST_NONE);
    ck_assert_str_eq(co_state_name(CO_ST_NONE), "none");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/states/transition");
    TCase *tc = tcase_create("transition");

    tcase_add_test(tc, every_pair_is_legal_exactly_when_listed);
    tcase_add_test(tc, ended_orders_never_move_except_late_authorization);
    tcase_add_test_raise_signal(tc, an_illegal_move_aborts_before_touching_the_store, SIGABRT);
    tcase_add_test(tc, deciding_states_are_the_ones_that_answer_the_checkout);
    tcase_add_test(tc, names_round_trip_and_terminal_states);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

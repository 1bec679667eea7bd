/* The memo of this process's orders (states/memo.c): what it holds, for how
 * long, and when it forgets. No server, no database. */
#include "harness.h"
#include "memo.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ORDER "7d1f5a4e-0c1b-4f7e-9a55-3b1d2c0e9f11"
#define OTHER "0b2c9a61-5d3e-4a8f-b1c7-6e9d8f0a2b34"

static co_memo *memo;

static void setup(void)
{
    memo = calloc(1, sizeof *memo);
    ck_assert_ptr_nonnull(memo);
    pthread_mutex_init(&memo->mu, NULL);
    memo->driving_ms = 1000;
}

static void teardown(void)
{
    pthread_mutex_destroy(&memo->mu);
    free(memo);
}

static co_memo_kind kind_of(const char *order)
{
    co_memo_entry e;

    return co_memo_get(memo, order, &e) ? e.kind : CO_MEMO_NONE;
}

/* Driving from the first commit, its state and intent kept up to date by the
 * request's moves, and gone when the request ends or its answer is stored. */
START_TEST(driving_follows_the_request)
{
    co_memo_entry e;

    co_memo_driving(memo, ORDER);
    ck_assert_int_eq(kind_of(ORDER), CO_MEMO_DRIVING);
    ck_assert_int_eq(kind_of(OTHER), CO_MEMO_NONE);
    co_memo_moved(memo, ORDER, CO_ST_AUTHORIZED, "pi_123", NULL);
    ck_assert(co_memo_get(memo, ORDER, &e));
    ck_assert_int_eq(e.status, CO_ST_AUTHORIZED);
    ck_assert_str_eq(e.intent, "pi_123");
    ck_assert(!e.confirming);
    co_memo_confirming(memo, ORDER);
    ck_assert(co_memo_get(memo, ORDER, &e));
    ck_assert(e.confirming);
    co_memo_done(memo, ORDER);
    ck_assert_int_eq(kind_of(ORDER), CO_MEMO_NONE);
}
END_TEST

/* A driving entry holds only driving_ms after the request's last move: a
 * request stalled past its lease may have lost the order to another process. */
START_TEST(driving_lapses_without_a_move)
{
    co_memo_driving(memo, ORDER);
    usleep(600 * 1000);
    co_memo_moved(memo, ORDER, CO_ST_AUTHORIZED, "pi_123", NULL); /* renews it */
    usleep(600 * 1000);
    ck_assert_int_eq(kind_of(ORDER), CO_MEMO_DRIVING);
    usleep(700 * 1000);
    ck_assert_int_eq(kind_of(ORDER), CO_MEMO_NONE);
    memo->driving_ms = 0; /* off: never kept */
    co_memo_driving(memo, OTHER);
    ck_assert_int_eq(kind_of(OTHER), CO_MEMO_NONE);
}
END_TEST

/* Confirmed: kept with its intent and the event whose run confirmed it,
 * beyond any request; the end of a request does not drop it; a move on from
 * confirmed forgets it. */
START_TEST(confirmed_until_it_moves_on)
{
    co_memo_entry e;

    co_memo_driving(memo, ORDER);
    co_memo_done(memo, ORDER);
    co_memo_moved(memo, ORDER, CO_ST_CONFIRMED, "pi_123", "evt_1");
    usleep(1100 * 1000); /* past driving_ms: a confirmed entry does not lapse */
    ck_assert(co_memo_get(memo, ORDER, &e));
    ck_assert_int_eq(e.kind, CO_MEMO_CONFIRMED);
    ck_assert_str_eq(e.intent, "pi_123");
    ck_assert_str_eq(e.event_id, "evt_1");
    co_memo_done(memo, ORDER);
    ck_assert_int_eq(kind_of(ORDER), CO_MEMO_CONFIRMED);
    co_memo_moved(memo, ORDER, CO_ST_REFUNDING, "pi_123", NULL);
    ck_assert_int_eq(kind_of(ORDER), CO_MEMO_NONE);
    /* Without an intent, or with an event id too long to keep, not kept. */
    co_memo_moved(memo, OTHER, CO_ST_CONFIRMED, "", NULL);
    ck_assert_int_eq(kind_of(OTHER), CO_MEMO_NONE);
    {
        char longid[CO_MEMO_EVENT + 8];

        memset(longid, 'e', sizeof longid - 1);
        longid[sizeof longid - 1] = '\0';
        co_memo_moved(memo, OTHER, CO_ST_CONFIRMED, "pi_9", longid);
        ck_assert_int_eq(kind_of(OTHER), CO_MEMO_NONE);
    }
}
END_TEST

/* A memo of none (the unit saga runs without one) holds nothing. */
START_TEST(no_memo_holds_nothing)
{
    co_memo_entry e;

    co_memo_driving(NULL, ORDER);
    co_memo_moved(NULL, ORDER, CO_ST_CONFIRMED, "pi_1", NULL);
    ck_assert(!co_memo_get(NULL, ORDER, &e));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/states/memo");
    TCase *tc = tcase_create("memo");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, driving_follows_the_request);
    tcase_add_test(tc, driving_lapses_without_a_move);
    tcase_add_test(tc, confirmed_until_it_moves_on);
    tcase_add_test(tc, no_memo_holds_nothing);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

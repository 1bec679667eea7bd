/* Faults at the provider. mock-stripe rate-limits a call (429 with
 * Retry-After), and delays, drops, duplicates and reorders its own webhook
 * deliveries (POST /_mock/faults with a "WEBHOOK <type>" match), as a real
 * provider's limits, network and retries do, and checkoutd still
 * ends every order once, with its money and stock right: a duplicate is
 * applied once, a late or overtaken event changes nothing it should not, and
 * a lost one leaves the order to the app's confirm (or the reservation's
 * expiry), never half done. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;
static char item[37], user[37];

static void start(void)
{
    co_test_server_start_hooked(&srv);
    co_test_item(srv.conn, "wh-faults", 4000, 5, item);
    co_test_uuid(user);
}

static void stop(void)
{
    if (srv.server.pid != 0 || srv.mock.pid != 0)
        co_test_server_stop(&srv);
}

/* Deliveries of type in status, waiting up to timeout_ms for want of them. */
static int wait_deliveries(const char *type, const char *status, int want, int timeout_ms)
{
    return co_test_mock_wait_deliveries(&srv, type, status, want, timeout_ms);
}

/* How many events of type checkoutd recorded as applied (each event id once;
 * an event that changes nothing is answered, not recorded). */
static long long recorded(const char *type)
{
    return co_test_ll1(srv.conn, "SELECT count(*) FROM payment_events WHERE type = $1", type);
}

/* A mobile checkout of 2 units, paid by the app at the mock. */
static void mobile_paid(char order[37], char pi[64])
{
    char cart[256];

    co_test_cart(cart, sizeof cart, item, 2, NULL);
    co_test_checkout_order(&srv, user, "k1", cart, 202, order, pi);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
}

static void expect_confirmed_once(const char *order)
{
    ck_assert_str_eq(co_test_wait_status(&srv, order, CO_TEST_TERMINAL, 15000), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    co_test_invariants(&srv, true);
}

/* The same event delivered twice: applied once, the second answered as a duplicate. */
START_TEST(a_duplicated_event_is_applied_once)
{
    char order[37], pi[64];

    start();
    co_test_fault(&srv, "WEBHOOK payment_intent.amount_capturable_updated", "duplicate", 1, 300);
    mobile_paid(order, pi);
    expect_confirmed_once(order);
    ck_assert_int_eq(wait_deliveries("payment_intent.amount_capturable_updated", "delivered", 2,
                                     10000), 2);
    ck_assert_int_eq(recorded("payment_intent.amount_capturable_updated"), 1);
}
END_TEST

/* The event that would capture never arrives: the order waits, holding its
 * stock, until the app's confirm captures it. */
START_TEST(a_dropped_event_leaves_the_order_to_the_apps_confirm)
{
    char order[37], pi[64];
    co_http_resp r = {0};

    start();
    co_test_fault(&srv, "WEBHOOK payment_intent.amount_capturable_updated", "drop", 1, 0);
    mobile_paid(order, pi);
    ck_assert_int_eq(wait_deliveries("payment_intent.amount_capturable_updated", "dropped", 1,
                                     5000), 1);
    usleep(1000 * 1000);
    ck_assert_str_eq(co_test_status(&srv, order), "awaiting_payment");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 0);
    ck_assert_int_eq(recorded("payment_intent.amount_capturable_updated"), 0);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    expect_confirmed_once(order);
}
END_TEST

/* The event arrives after the app's confirm already captured the order: it
 * changes nothing. */
START_TEST(a_late_event_after_the_confirm_changes_nothing)
{
    char order[37], pi[64];
    co_http_resp r = {0};

    start();
    co_test_fault(&srv, "WEBHOOK payment_intent.amount_capturable_updated", "delay", 1, 1500);
    mobile_paid(order, pi);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(wait_deliveries("payment_intent.amount_capturable_updated", "delivered", 1,
                                     10000), 1);
    expect_confirmed_once(order);
}
END_TEST

/* A server-flow checkout's events, the first held back until those made after
 * it were sent (and answered): the order stays confirmed, nothing is charged
 * or given back twice. */
START_TEST(reordered_events_leave_the_order_as_it_is)
{
    char cart[256], order[37], pi[64];

    start();
    co_test_fault(&srv, "WEBHOOK payment_intent.amount_capturable_updated", "reorder", 1, 3000);
    co_test_cart(cart, sizeof cart, item, 2, "pm_card_visa");
    co_test_checkout_order(&srv, user, "k1", cart, 201, order, pi);
    ck_assert_int_eq(wait_deliveries("payment_intent.succeeded", "delivered", 1, 10000), 1);
    /* Overtaken: the earlier event is still held back. */
    ck_assert_int_eq(wait_deliveries("payment_intent.amount_capturable_updated", "delivered", 1,
                                     0), 0);
    ck_assert_int_eq(wait_deliveries("payment_intent.amount_capturable_updated", "delivered", 1,
                                     10000), 1);
    expect_confirmed_once(order);
}
END_TEST

/* A webhook fault names an event type and a delivery action; anything else is refused. */
START_TEST(webhook_faults_are_checked)
{
    static const char *const bad[] = {
        "{\"match\":\"WEBHOOK\",\"action\":\"drop\"}",
        "{\"match\":\"WEBHOOK Payment-Intent\",\"action\":\"drop\"}",
        "{\"match\":\"WEBHOOK payment_intent.succeeded\",\"action\":\"status_500\"}",
        "{\"match\":\"POST /v1/payment_intents\",\"action\":\"duplicate\"}",
    };
    co_http_resp r = {0};

    start();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(co_test_mock(&srv, "POST", "/_mock/faults", bad[i], "application/json",
                                   &r) == 400, "%s: %ld %s", bad[i], r.status, r.body);
        co_http_resp_free(&r);
    }
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/_mock/faults",
                                  "{\"match\":\"WEBHOOK *\",\"action\":\"reorder\",\"count\":2}",
                                  "application/json", &r), 200);
    co_http_resp_free(&r);
}
END_TEST

/* A 429 with Retry-After: 2 is waited out (at least its two seconds), then
 * the checkout goes through, created once. */
START_TEST(a_rate_limited_call_waits_for_retry_after)
{
    char cart[256], order[37], pi[64];
    struct timespec t0, t1;
    long ms;

    start();
    co_test_fault(&srv, "POST /v1/payment_intents", "status_429", 1, 2000);
    co_test_cart(cart, sizeof cart, item, 2, "pm_card_visa");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    co_test_checkout_order(&srv, user, "k1", cart, 201, order, pi);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_msg(ms >= 2000, "retried after %ld ms, before the provider's Retry-After", ms);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    expect_confirmed_once(order);
}
END_TEST

static Suite *provider_faults_suite(void)
{
    Suite *s = suite_create("provider_faults");
    TCase *tc = co_test_tcase(s, "deliveries", 60);

    tcase_add_checked_fixture(tc, NULL, stop);
    tcase_add_test(tc, a_duplicated_event_is_applied_once);
    tcase_add_test(tc, a_dropped_event_leaves_the_order_to_the_apps_confirm);
    tcase_add_test(tc, a_late_event_after_the_confirm_changes_nothing);
    tcase_add_test(tc, reordered_events_leave_the_order_as_it_is);
    tcase_add_test(tc, webhook_faults_are_checked);
    tcase_add_test(tc, a_rate_limited_call_waits_for_retry_after);
    return s;
}

int main(void)
{
    return co_test_run_http(provider_faults_suite());
}

/* Crash recovery: checkoutd is SIGKILLed at each step boundary of the saga
 * (CHECKOUTD_CRASH_AT, states/saga.c co_saga_crash_point), restarted on the same
 * database and mock-stripe, and every order must then reach the terminal state
 * the saga promises, with money and stock matching (SPEC 6 and 8).
 *
 * Shape of each test: restart with the crash point -> the request dies at
 * transport level -> reap the killed process -> check the order stalled where
 * the crash point says (so the test proves it crashed there, not elsewhere) ->
 * restart without it -> recovery (lease 2 s, sweep every 100 ms: server.c)
 * finishes the order -> assert the end state, the provider's counters, the
 * stock ledger, the stored first answer, and the invariants. */
#include "server.h"

#include "race.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RECOVERY_MS 15000

static co_test_server srv;

/* ------------------------------------------------------------- helpers */

static long long db_ll(const char *sql)
{
    return co_test_ll(srv.conn, sql);
}

/* A column of the order (sql selects it WHERE id = $1) as text, into out. */
static void order_str(char *out, size_t n, const char *sql, const char *order)
{
    const char *p[1] = {order};

    co_test_strp(srv.conn, out, n, sql, 1, p);
}

/* Restarts checkoutd with CHECKOUTD_CRASH_AT=point; NULL clears it (an empty
 * value is unset for co_config). The setting stays for later restarts. */
static void restart_at(const char *point)
{
    char kv[96];
    const char *env[2] = {kv, NULL};

    snprintf(kv, sizeof kv, "CHECKOUTD_CRASH_AT=%s", point ? point : "");
    ck_assert_msg(co_test_server_restart(&srv, env), "checkoutd did not start (%s)", kv);
}

/* checkoutd must die of its own SIGKILL. Reaps it: srv.server.pid is 0 after,
 * so the next co_test_server_restart starts a fresh one without stopping. */
static void expect_killed(void)
{
    int status = 0;

    ck_assert_msg(co_proc_wait(&srv.server, 10000, &status),
                  "checkoutd did not die at its crash point");
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "checkoutd ended otherwise than by SIGKILL (wait status %d)", status);
    ck_assert_int_eq(srv.server.pid, 0);
}

/* The order a checkout created, from its Idempotency-Key record. */
static void order_of(const char *user, const char *key, char order[37])
{
    const char *p[2] = {user, key};

    co_test_strp(srv.conn, order, 37, "SELECT order_id FROM checkout_requests"
                                      " WHERE user_id = $1 AND idempotency_key = $2", 2, p);
    ck_assert_msg(order[0] != '\0', "no order for key %s", key);
}

/* A checkout that runs into the crash point: no answer (transport failure),
 * the process is gone, the order exists. */
static void checkout_into_crash(const char *user, const char *key, const char *body,
                                char order[37])
{
    co_http_resp r = {0};

    ck_assert_msg(co_test_checkout(&srv, user, key, body, &r) == 0,
                  "the checkout was answered (%ld %s): no crash", r.status, r.body);
    co_http_resp_free(&r);
    expect_killed();
    order_of(user, key, order);
}

/* The shopper's cancel of order runs into the crash point: no answer, the
 * process is gone. */
static void cancel_into_crash(const char *user, const char *order)
{
    co_http_resp r = {0};

    ck_assert_msg(co_test_order_post(&srv, user, order, "cancel", &r) == 0,
                  "the cancel was answered (%ld %s): no crash", r.status, r.body);
    co_http_resp_free(&r);
    expect_killed();
}

/* Waits for the order to end; asserts it ended in want. */
static void expect_end(const char *order, const char *want)
{
    const char *got = co_test_wait_status(&srv, order, CO_TEST_TERMINAL, RECOVERY_MS);

    ck_assert_msg(strcmp(got, want) == 0, "order %s ended %s, expected %s", order, got, want);
}

/* No transition was made twice (had two drivers both made one, it would show
 * here), and every order's history ends where the order is. */
static void expect_clean_history(void)
{
    ck_assert_int_eq(db_ll("SELECT count(*) FROM (SELECT order_id, to_status"
                           " FROM order_history GROUP BY 1, 2 HAVING count(*) > 1) d"), 0);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders o WHERE o.status <>"
                           " (SELECT h.to_status FROM order_history h"
                           "   WHERE h.order_id = o.id ORDER BY h.id DESC LIMIT 1)"), 0);
}

/* Orders that entered a terminal state other than exactly once (for sagas
 * with no later cancel: a confirmed order refunded ends twice, rightly). */
static long long ended_not_once(void)
{
    return co_test_ll1(srv.conn, "SELECT count(*) FROM orders o"
                                 " WHERE (SELECT count(*) FROM order_history h"
                                 "   WHERE h.order_id = o.id"
                                 "   AND h.to_status = ANY (string_to_array($1, ' '))) <> 1",
                       CO_TEST_TERMINAL);
}

/* Stock moves of an order in the ledger, by kind ('reserve' or 'release'). */
static long long ledger(const char *order, const char *kind)
{
    const char *p[2] = {order, kind};

    return co_test_llp(srv.conn, "SELECT count(*) FROM stock_ledger"
                                 " WHERE order_id = $1 AND kind = $2", 2, p);
}

/* The same checkout again: the stored first answer, marked as a replay. The
 * caller json_decref's the body. */
static json_t *replay(const char *user, const char *key, const char *body, long want)
{
    co_http_resp r = {0};
    char replayed[16] = "";
    json_t *j;

    ck_assert_msg(co_test_checkout(&srv, user, key, body, &r) == want,
                  "retry answered %ld %s, expected %ld", r.status, r.body, want);
    ck_assert_msg(co_http_header(&r, "Idempotent-Replayed", replayed, sizeof replayed) &&
                      strcmp(replayed, "true") == 0,
                  "retry is not a replay: %s", r.headers);
    j = co_http_json(&r);
    ck_assert_msg(j != NULL, "retry body: %s", r.body);
    co_http_resp_free(&r);
    return j;
}

/* ------------------------------------------------ server flow: confirmed */

/* A pm_card_visa checkout of 2 units (of 5) crashes at point, where the order
 * is stalled_in with pis PaymentIntents created and captured captures made;
 * after a restart it must end confirmed, captured once, stock taken once, and
 * the retry must replay the 201 recovery stored. */
static void crash_and_confirm(const char *point, const char *stalled_in, long long pis,
                              long long captured)
{
    char item[37], user[37], order[37], body[256], pi[64];
    const char *key = "crash-key";
    json_t *j;

    co_test_item(srv.conn, point, 4200, 5, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 2, "pm_card_visa");
    restart_at(point);
    checkout_into_crash(user, key, body, order);

    ck_assert_str_eq(co_test_status(&srv, order), stalled_in);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), pis);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), captured);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);

    restart_at(NULL);
    expect_end(order, "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(ledger(order, "reserve"), 1);
    ck_assert_int_eq(ledger(order, "release"), 0);

    j = replay(user, key, body, 201);
    order_str(pi, sizeof pi, "SELECT payment_intent FROM orders WHERE id = $1", order);
    ck_assert_str_eq(co_test_jstr(j, "order_id", NULL), order);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "confirmed");
    ck_assert_str_eq(co_test_jstr(j, "payment_intent", NULL), pi);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "amount")), 8400);
    json_decref(j);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders"), 1);
    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    co_test_invariants(&srv, true);
}

START_TEST(crash_after_reserve_confirms)
{
    /* Stock held, the provider never called. */
    crash_and_confirm("after_reserve", "reserved", 0, 0);
}
END_TEST

START_TEST(crash_after_authorize_call_confirms)
{
    /* Authorized at the provider, not recorded: the repeated authorize (same
     * key) must replay, not authorize a second PaymentIntent. */
    crash_and_confirm("after_authorize_call", "reserved", 1, 0);
}
END_TEST

START_TEST(crash_after_capture_call_confirms)
{
    /* Authorized and captured at the provider, neither recorded (the server
     * flow commits the authorization with the capture's outcome): the repeated
     * authorize and capture must replay, not charge twice nor be mistaken for
     * a failure. */
    crash_and_confirm("after_capture_call", "reserved", 1, 1);
}
END_TEST

START_TEST(crash_before_answer_replays_the_stored_answer)
{
    /* Confirmed in the DB with its answer stored; only the HTTP answer was lost. */
    crash_and_confirm("before_answer", "confirmed", 1, 1);
}
END_TEST

/* ------------------------------------------------------ declined card */

START_TEST(crash_after_declined_authorize_fails_and_releases)
{
    char item[37], user[37], order[37], body[256];
    const char *key = "declined-key";
    json_t *j;

    co_test_item(srv.conn, "declined", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa_chargeDeclined");
    restart_at("after_authorize_call");
    checkout_into_crash(user, key, body, order);
    ck_assert_str_eq(co_test_status(&srv, order), "reserved");
    ck_assert_int_eq(co_test_stock(&srv, item), 2);
    ck_assert_int_eq(co_test_mock_stat(&srv, "declines"), 1);

    restart_at(NULL);
    expect_end(order, "failed");
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(ledger(order, "reserve"), 1);
    ck_assert_int_eq(ledger(order, "release"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 0);
    /* The repeated authorize was the provider's replay, not a second attempt. */
    ck_assert_int_eq(co_test_mock_stat(&srv, "declines"), 1);
    ck_assert_int_eq(co_test_ll1(srv.conn, "SELECT count(*) FROM orders WHERE id = $1"
                                           " AND failure_code = 'payment_declined'", order),
                     1);

    j = replay(user, key, body, 402);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "payment_declined");
    ck_assert_str_eq(co_test_jstr(j, "error", "decline_code"), "generic_decline");
    ck_assert_str_eq(co_test_jstr(j, "error", "order_id"), order);
    json_decref(j);
    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    co_test_invariants(&srv, true);
}
END_TEST

/* -------------------------------------------------------- mobile flow */

START_TEST(crash_after_create_call_awaits_payment)
{
    char item[37], user[37], order[37], body[256], pi[64], secret[160];
    const char *key = "mobile-key";
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "mobile", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, NULL);
    restart_at("after_create_call");
    checkout_into_crash(user, key, body, order);
    ck_assert_str_eq(co_test_status(&srv, order), "reserved");
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);

    restart_at(NULL);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "awaiting_payment " CO_TEST_TERMINAL,
                                         RECOVERY_MS),
                     "awaiting_payment");
    /* The PaymentIntent created before the crash is the one recorded. */
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    order_str(pi, sizeof pi, "SELECT payment_intent FROM orders WHERE id = $1", order);
    order_str(secret, sizeof secret, "SELECT client_secret FROM orders WHERE id = $1", order);
    ck_assert_msg(strncmp(pi, "pi_", 3) == 0, "payment_intent %s", pi);
    ck_assert_msg(strncmp(secret, pi, strlen(pi)) == 0 && strstr(secret, "_secret_") != NULL,
                  "client_secret %s for %s", secret, pi);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);

    j = replay(user, key, body, 202);
    ck_assert_str_eq(co_test_jstr(j, "order_id", NULL), order);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "awaiting_payment");
    ck_assert_str_eq(co_test_jstr(j, "client_secret", NULL), secret);
    ck_assert_str_eq(co_test_jstr(j, "payment_intent", NULL), pi);
    json_decref(j);
    co_test_invariants(&srv, false);

    /* The recovered PaymentIntent is usable: the app pays, the order confirms. */
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);
    expect_clean_history();
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------------- compensation */

START_TEST(crash_after_cancel_call_fails_and_releases)
{
    char item[37], user[37], order[37], body[256];
    const char *key = "void-key";
    json_t *j;

    co_test_item(srv.conn, "void", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 2, "pm_card_visa");
    /* The capture fails for good, so the saga voids the authorization. */
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "status_500", 1000, 0);
    restart_at("after_cancel_call");
    checkout_into_crash(user, key, body, order);
    ck_assert_str_eq(co_test_status(&srv, order), "voiding");
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);

    restart_at(NULL);
    expect_end(order, "failed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(ledger(order, "release"), 1);

    /* The answer decided when voiding began was stored before the crash. */
    j = replay(user, key, body, 503);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "payment_provider_unavailable");
    ck_assert_str_eq(co_test_jstr(j, "error", "order_id"), order);
    json_decref(j);
    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(crash_after_cancel_call_of_a_shopper_cancel_ends_cancelled)
{
    char item[37], user[37], order[37], body[256];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "mcancel", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, user, "mcancel-key", body, 202, order, NULL);

    restart_at("after_cancel_call");
    cancel_into_crash(user, order);
    ck_assert_str_eq(co_test_status(&srv, order), "voiding");
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);

    restart_at(NULL);
    expect_end(order, "cancelled");
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(ledger(order, "release"), 1);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"cancelled\""));
    co_http_resp_free(&r);
    /* The checkout's first answer (202) stays what it was. */
    j = replay(user, "mcancel-key", body, 202);
    ck_assert_str_eq(co_test_jstr(j, "order_id", NULL), order);
    json_decref(j);
    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(crash_after_refund_call_refunds_once)
{
    char item[37], user[37], order[37], body[256];
    co_http_resp r = {0};

    co_test_item(srv.conn, "refund", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 2, "pm_card_visa");
    co_test_checkout_order(&srv, user, "refund-key", body, 201, order, NULL);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);

    restart_at("after_refund_call");
    cancel_into_crash(user, order);
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);

    restart_at(NULL);
    expect_end(order, "refunded");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(ledger(order, "release"), 1);
    /* Cancelling again answers where it is and refunds nothing more. */
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"refunded\""));
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    expect_clean_history();
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------------ two instances */

#define STALLED 8

typedef struct {
    char user[37], key[37], body[256];
    long status;
} shopper;

static void *shop(void *p)
{
    shopper *s = p;
    co_http_resp r = {0};

    co_test_race_wait();
    s->status = co_test_checkout(&srv, s->user, s->key, s->body, &r);
    co_http_resp_free(&r);
    return NULL;
}

/* STALLED server-flow checkouts of one unit each (every fourth with a declined
 * card) stall together in reserved: every authorize is held 1 s at the
 * provider, so all of them are reserved and inside their authorize call when
 * the first one returns and the process kills itself (after_authorize_call).
 * Fills sh[] (user, key, body; their orders in order[]). Returns the number
 * of declined cards. The server is left dead (reaped). */
static int stall_checkouts(const char *item, shopper sh[STALLED], char order[STALLED][37])
{
    int declined = 0;

    co_test_fault(&srv, "POST /v1/payment_intents", "delay", STALLED, 1000);
    restart_at("after_authorize_call");
    for (int i = 0; i < STALLED; i++) {
        bool decline = i % 4 == 3;

        co_test_uuid(sh[i].user);
        snprintf(sh[i].key, sizeof sh[i].key, "stalled-%d", i);
        co_test_cart(sh[i].body, sizeof sh[i].body, item, 1,
                     decline ? "pm_card_visa_chargeDeclined" : "pm_card_visa");
        declined += decline;
    }
    co_test_race(STALLED, shop, sh, sizeof sh[0]);
    for (int i = 0; i < STALLED; i++)
        ck_assert_msg(sh[i].status == 0, "checkout %d was answered %ld before the crash", i,
                      sh[i].status);
    expect_killed();
    for (int i = 0; i < STALLED; i++)
        order_of(sh[i].user, sh[i].key, order[i]);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders WHERE status = 'reserved'"),
                     STALLED);
    return declined;
}

START_TEST(two_servers_recover_each_order_once)
{
    char item[37], order[STALLED][37];
    static shopper sh[STALLED];
    co_proc other;
    int declined;

    co_test_item(srv.conn, "two", 4200, 20, item);
    declined = stall_checkouts(item, sh, order);

    /* Two instances on one database and one provider, both recovering. */
    restart_at(NULL);
    ck_assert_msg(co_test_server_start_another(&srv, &other), "second checkoutd did not start");
    for (int i = 0; i < STALLED; i++)
        expect_end(order[i], i % 4 == 3 ? "failed" : "confirmed");
    /* Both quiet before looking: a late driver must not slip past the checks (a
     * graceful stop lets recovery finish the drive in hand). */
    co_test_stop_clean(&other, "second checkoutd");
    co_test_stop_clean(&srv.server, "checkoutd");
    /* Each was finished by recovery (co_claim_stalled counts its claims). */
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders WHERE attempts = 0"), 0);

    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), STALLED);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), STALLED - declined);
    ck_assert_int_eq(co_test_mock_stat(&srv, "declines"), declined);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders WHERE status = 'confirmed'"),
                     STALLED - declined);
    ck_assert_int_eq(co_test_stock(&srv, item), 20 - (STALLED - declined));
    ck_assert_int_eq(db_ll("SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'"),
                     STALLED);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM stock_ledger WHERE kind = 'release'"),
                     declined);
    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    restart_at(NULL);
    for (int i = 0; i < STALLED; i++) {
        json_t *j = replay(sh[i].user, sh[i].key, sh[i].body, i % 4 == 3 ? 402 : 201);

        ck_assert_str_eq(i % 4 == 3 ? co_test_jstr(j, "error", "order_id")
                                    : co_test_jstr(j, "order_id", NULL),
                         order[i]);
        json_decref(j);
    }
    co_test_invariants(&srv, true);
}
END_TEST

/* The provider holds a capture longer than the lease (2 s), so while one
 * instance waits on it the other claims the same order and drives it too: two
 * drivers of one order at once, the case leases cannot exclude. The
 * transition's compare-and-set and the step idempotency keys must still leave
 * one history, one outcome per order, and money matching goods. */
START_TEST(two_servers_lease_lapses_mid_capture)
{
    char item[37], order[STALLED][37];
    static shopper sh[STALLED];
    co_proc other;
    int declined;

    co_test_item(srv.conn, "lapse", 4200, 20, item);
    declined = stall_checkouts(item, sh, order);
    /* One capture (the first made) is held past the lease; the rest are quick,
     * so whichever instance is not stuck in it is free to claim it again. */
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "delay", 1, 2600);

    restart_at(NULL);
    ck_assert_msg(co_test_server_start_another(&srv, &other), "second checkoutd did not start");
    for (int i = 0; i < STALLED; i++) {
        const char *end = co_test_wait_status(&srv, order[i], CO_TEST_TERMINAL, 30000);

        /* The driver that meets the other's capture in flight (409
         * idempotency_key_in_use) must leave the order to it, not void it:
         * a good card ends confirmed, a declined one failed. */
        ck_assert_msg(strcmp(end, i % 4 == 3 ? "failed" : "confirmed") == 0, "order %s ended %s",
                      order[i], end);
    }
    /* The driver that lost the race may still be inside its capture call:
     * let both finish (a graceful stop waits for it) before looking. */
    co_test_stop_clean(&other, "second checkoutd");
    co_test_stop_clean(&srv.server, "checkoutd");
    /* The slow capture outlived its lease, so its order was claimed again while
     * its first driver was still at it: the overlap this test is for. */
    ck_assert_int_ge(db_ll("SELECT max(attempts) FROM orders"), 2);

    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), STALLED);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"),
                     db_ll("SELECT count(*) FROM orders"
                           " WHERE status IN ('confirmed', 'refunded')"));
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"),
                     db_ll("SELECT count(*) FROM orders WHERE status = 'refunded'"));
    ck_assert_int_eq(db_ll("SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'"),
                     STALLED);
    ck_assert_int_eq(co_test_stock(&srv, item),
                     20 - db_ll("SELECT count(*) FROM orders WHERE status = 'confirmed'"));
    ck_assert_int_ge(db_ll("SELECT count(*) FROM orders WHERE status = 'failed'"),
                     declined);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------- a call past the lease */

/* A provider call that outlives the saga lease lets recovery claim the order
 * while the request is still driving it. One server, no crash: the capture
 * takes 4 s, the lease is 2 s. At 2 s recovery claims the order and repeats
 * the capture; the provider answers 409 idempotency_key_in_use (the request's
 * capture is in flight). Recovery must leave the order to the request, not
 * take the 409 for "provider unavailable" and void it (which cancelled the
 * authorization under the slow capture: a good card failed, answered 503).
 * Production defaults now size the lease past a step's worst case; this
 * covers a lease set shorter by hand. */
START_TEST(slow_capture_outliving_the_lease_still_confirms)
{
    const char *env[] = {"STRIPE_TIMEOUT_MS=10000", NULL};
    char item[37], user[37], body[256], order[37];
    co_http_resp r = {0};

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "slow", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "delay", 1, 4000);
    (void)co_test_checkout(&srv, user, "slow-key", body, &r);
    order_of(user, "slow-key", order);
    expect_end(order, "confirmed");
    ck_assert_msg(r.status == 201, "the checkout answered %ld %s", r.status, r.body);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    co_test_invariants(&srv, true);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("sigkill");

    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, crash_after_reserve_confirms);
    tcase_add_test(tc, crash_after_authorize_call_confirms);
    tcase_add_test(tc, crash_after_capture_call_confirms);
    tcase_add_test(tc, crash_before_answer_replays_the_stored_answer);
    tcase_add_test(tc, crash_after_declined_authorize_fails_and_releases);
    tcase_add_test(tc, crash_after_create_call_awaits_payment);
    tcase_add_test(tc, crash_after_cancel_call_fails_and_releases);
    tcase_add_test(tc, crash_after_cancel_call_of_a_shopper_cancel_ends_cancelled);
    tcase_add_test(tc, crash_after_refund_call_refunds_once);
    tcase_add_test(tc, two_servers_recover_each_order_once);
    tcase_add_test(tc, two_servers_lease_lapses_mid_capture);
    suite_add_tcase(s, tc);
    tc = tcase_create("slow_provider");
    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, slow_capture_outliving_the_lease_still_confirms);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    rc = co_test_run(crash_suite());
    curl_global_cleanup();
    return rc;
}

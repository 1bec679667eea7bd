/* The payment provider restarts: mock-stripe is SIGKILLed and started again on
 * the same port with the same state dir (co_test_mock_restart), as a real
 * provider's outage ends, and checkoutd rides through it. What the provider
 * had done before the kill is still there after it (its journal), so a capture
 * or refund held when it died completes once, an intent awaiting the app is
 * still payable, a retried create replays instead of making a second intent,
 * and events still to deliver are delivered. Each test ends with the invariants
 * across the database and the provider. */
#include "server.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static co_test_server srv;
static char item[37], user[37];

#define PRICE 2500
#define WAIT_MS 20000
#define CAPTURE_MATCH "POST /v1/payment_intents/*/capture"
#define REFUND_MATCH "POST /v1/refunds"
#define CAPTURABLE "payment_intent.amount_capturable_updated"

/* A server whose provider calls retry long enough (8 retries, about 11 s of
 * backoff) to outlast a restart of the provider; with webhooks, the provider
 * sends it signed events. Without, only the app's confirm captures a mobile
 * order (with them, the event and the confirm race, and the confirm may meet
 * the capture under way: 409). */
static void start_with(bool webhooks, const char *extra)
{
    char listen[64], hook[128];
    const char *env[] = {listen, "STRIPE_MAX_RETRIES=8", extra, NULL};
    const char *margs[] = {"--webhook-url", hook, NULL};
    unsigned port = co_test_free_port();

    snprintf(listen, sizeof listen, "LISTEN_ADDR=127.0.0.1:%u", port);
    snprintf(hook, sizeof hook, "http://127.0.0.1:%u/webhooks/stripe", port);
    co_test_server_start(&srv, env, webhooks ? margs : NULL);
    co_test_item(srv.conn, "restart", PRICE, 5, item);
    co_test_uuid(user);
}

static void start(void)
{
    start_with(true, NULL);
}

static void stop(void)
{
    if (srv.server.pid != 0 || srv.mock.pid != 0)
        co_test_server_stop(&srv);
}

/* ------------------------------------------------------------- helpers */

/* Hits of the fault whose match is match (GET /_mock/faults); 0 when none. */
static long long fault_hits(const char *match)
{
    co_http_resp r = {0};
    json_t *j, *f;
    size_t i;
    long long hits = 0;

    ck_assert_int_eq(co_test_mock(&srv, "GET", "/_mock/faults", NULL, NULL, &r), 200);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    json_array_foreach(json_object_get(j, "data"), i, f) {
        if (strcmp(co_test_jstr(f, "match", NULL), match) == 0)
            hits = json_integer_value(json_object_get(f, "hits"));
    }
    json_decref(j);
    return hits;
}

/* Waits until a request matching match is held at the provider. */
static void wait_held(const char *match)
{
    for (int waited = 0; fault_hits(match) < 1; waited += 50) {
        ck_assert_msg(waited < WAIT_MS, "no request reached %s", match);
        usleep(50 * 1000);
    }
}

/* The provider's list of PaymentIntents (GET /v1/payment_intents). */
static json_t *intents(void)
{
    co_http_resp r = {0};
    json_t *j;

    ck_assert_int_eq(co_test_mock(&srv, "GET", "/v1/payment_intents?limit=100", NULL, NULL, &r),
                     200);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* The provider's PaymentIntent pi (GET /v1/payment_intents/pi). */
static json_t *intent(const char *pi)
{
    char path[128];
    co_http_resp r = {0};
    json_t *j;

    snprintf(path, sizeof path, "/v1/payment_intents/%s", pi);
    ck_assert_msg(co_test_mock(&srv, "GET", path, NULL, NULL, &r) == 200,
                  "the provider lost %s: %ld %s", pi, r.status, r.body);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    return j;
}

/* Refunds of pi at the provider: how many, and their sum into *sum. */
static size_t refunds_of(const char *pi, long long *sum)
{
    char path[160];
    co_http_resp r = {0};
    json_t *j, *rf;
    size_t i, n;

    snprintf(path, sizeof path, "/v1/refunds?payment_intent=%s&limit=100", pi);
    ck_assert_int_eq(co_test_mock(&srv, "GET", path, NULL, NULL, &r), 200);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    *sum = 0;
    json_array_foreach(json_object_get(j, "data"), i, rf)
        *sum += json_integer_value(json_object_get(rf, "amount"));
    n = json_array_size(json_object_get(j, "data"));
    json_decref(j);
    return n;
}

static int deliveries(const char *type, const char *status, long long *attempts)
{
    return co_test_mock_deliveries(&srv, type, status, attempts);
}

static long long recorded(const char *type)
{
    return co_test_ll1(srv.conn, "SELECT count(*) FROM payment_events WHERE type = $1", type);
}

static void order_pi(const char *order, char pi[64])
{
    const char *p[1] = {order};

    co_test_strp(srv.conn, pi, 64, "SELECT payment_intent FROM orders WHERE id = $1", 1, p);
}

static void expect_ends(const char *order, const char *want)
{
    const char *got = co_test_wait_status(&srv, order, CO_TEST_TERMINAL, WAIT_MS);

    ck_assert_msg(strcmp(got, want) == 0, "order %s ended %s, expected %s", order, got, want);
}

/* A request to checkoutd that blocks while the provider holds its call. */
typedef struct {
    pthread_t t;
    const char *what;           /* "checkout" or "cancel" */
    const char *key, *body, *order;
    long status;
    char body_out[512];
} bg_call;

static void *bg_run(void *p)
{
    bg_call *c = p;
    co_http_resp r = {0};

    if (strcmp(c->what, "checkout") == 0)
        c->status = co_test_checkout(&srv, user, c->key, c->body, &r);
    else
        c->status = co_test_order_post(&srv, user, c->order, "cancel", &r);
    snprintf(c->body_out, sizeof c->body_out, "%s", r.body != NULL ? r.body : "");
    co_http_resp_free(&r);
    return NULL;
}

static void bg_start(bg_call *c)
{
    ck_assert_int_eq(pthread_create(&c->t, NULL, bg_run, c), 0);
}

static void bg_join(bg_call *c)
{
    ck_assert_int_eq(pthread_join(c->t, NULL), 0);
}

/* A confirmed server-flow order, into order and pi. */
static void confirmed_order(const char *key, char order[37], char pi[64])
{
    char cart[256];

    co_test_cart(cart, sizeof cart, item, 1, "pm_card_visa");
    co_test_checkout_order(&srv, user, key, cart, 201, order, pi);
}

/* ------------------------------------------------------------- the tests */

/* (a) The provider dies holding the capture (a delay fault) of an authorized
 * server-flow checkout and comes back: the client's retry with the same key
 * captures the authorization the journal kept, once. */
START_TEST(killed_between_authorize_and_capture)
{
    char cart[256], order[37], pi[64];
    bg_call c = {.what = "checkout", .key = "k-capture"};
    json_t *j, *got;

    start();
    co_test_cart(cart, sizeof cart, item, 2, "pm_card_visa");
    c.body = cart;
    co_test_fault(&srv, CAPTURE_MATCH, "delay", -1, 60000);
    bg_start(&c);
    wait_held(CAPTURE_MATCH);
    j = intents();
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
    ck_assert_str_eq(co_test_jstr(json_array_get(json_object_get(j, "data"), 0), "status", NULL),
                     "requires_capture");
    json_decref(j);

    co_test_mock_restart(&srv);     /* the held capture dies with it, unapplied */
    bg_join(&c);
    ck_assert_msg(c.status == 201, "checkout answered %ld %s", c.status, c.body_out);
    got = json_loads(c.body_out, 0, NULL);
    snprintf(order, sizeof order, "%s", co_test_jstr(got, "order_id", NULL));
    json_decref(got);
    expect_ends(order, "confirmed");
    order_pi(order, pi);
    j = intent(pi);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "succeeded");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "amount_received")), 2 * PRICE);
    json_decref(j);
    j = intents();
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    co_test_invariants(&srv, true);
}
END_TEST

/* (b) The provider dies while the order is refunding (its refund held) and
 * stays down a moment: the refund is retried against the intent the journal
 * kept and the order ends refunded, refunded once. */
START_TEST(killed_while_refunding)
{
    char order[37], pi[64];
    bg_call c = {.what = "cancel"};
    long long sum;

    start();
    confirmed_order("k-refund", order, pi);
    co_test_fault(&srv, REFUND_MATCH, "delay", -1, 60000);
    c.order = order;
    bg_start(&c);
    wait_held(REFUND_MATCH);
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");

    co_test_mock_kill(&srv);
    usleep(700 * 1000);             /* an outage, not only a blip */
    ck_assert(co_test_mock_start_again(&srv));
    bg_join(&c);
    ck_assert_msg(c.status == 200 || c.status == 202, "cancel answered %ld %s", c.status,
                  c.body_out);
    expect_ends(order, "refunded");
    ck_assert_int_eq(refunds_of(pi, &sum), 1);
    ck_assert_int_eq(sum, PRICE);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    co_test_invariants(&srv, true);

    /* A later restart keeps the refund with its intent. */
    co_test_mock_restart(&srv);
    ck_assert_int_eq(refunds_of(pi, &sum), 1);
    ck_assert_int_eq(sum, PRICE);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

/* (c) A mobile intent awaits the app's confirm when the provider restarts: the
 * app confirms it after the restart and the order ends confirmed. */
START_TEST(mobile_intent_survives_the_restart)
{
    char cart[256], order[37], pi[64];
    co_http_resp r = {0};
    json_t *j;

    start_with(false, NULL);
    co_test_cart(cart, sizeof cart, item, 1, NULL);
    co_test_checkout_order(&srv, user, "k-mobile", cart, 202, order, pi);
    co_test_mock_restart(&srv);

    j = intent(pi);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "requires_payment_method");
    json_decref(j);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    expect_ends(order, "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    co_test_invariants(&srv, true);
}
END_TEST

/* (d) checkoutd dies right after creating a mobile intent, the provider
 * restarts, and recovery creates it again with the same Idempotency-Key: the
 * provider replays the first answer (the journal kept it) instead of making a
 * second intent. */
START_TEST(idempotent_create_replays_after_the_restart)
{
    char cart[256], order[37], pi[64];
    co_http_resp r = {0};
    const char *p[2] = {user, "k-create"};
    const char *no_crash[] = {"CHECKOUTD_CRASH_AT=", NULL};
    json_t *j;
    int status = 0;

    start_with(false, "CHECKOUTD_CRASH_AT=after_create_call");
    co_test_cart(cart, sizeof cart, item, 1, NULL);
    ck_assert_int_eq(co_test_checkout(&srv, user, "k-create", cart, &r), 0);
    co_http_resp_free(&r);
    ck_assert(co_proc_wait(&srv.server, 10000, &status));
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    co_test_strp(srv.conn, order, sizeof order, "SELECT order_id FROM checkout_requests"
                 " WHERE user_id = $1 AND idempotency_key = $2", 2, p);
    ck_assert_str_eq(co_test_status(&srv, order), "reserved");
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);

    co_test_mock_restart(&srv);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "idempotent_replays"), 0);
    ck_assert(co_test_server_restart(&srv, no_crash));
    ck_assert_str_eq(co_test_wait_status(&srv, order, "awaiting_payment " CO_TEST_TERMINAL,
                                         WAIT_MS), "awaiting_payment");
    /* The create ran again and was answered from the journal. */
    ck_assert_int_ge(co_test_mock_stat(&srv, "idempotent_replays"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    j = intents();
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
    order_pi(order, pi);
    ck_assert_str_eq(co_test_jstr(json_array_get(json_object_get(j, "data"), 0), "id", NULL), pi);
    json_decref(j);

    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    expect_ends(order, "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

/* (e) An event still to deliver when the provider dies (held back by a delay
 * fault) is delivered after the restart: it alone captures the mobile order. */
START_TEST(pending_webhook_is_delivered_after_the_restart)
{
    char cart[256], order[37], pi[64];

    start();
    co_test_cart(cart, sizeof cart, item, 1, NULL);
    co_test_checkout_order(&srv, user, "k-event", cart, 202, order, pi);
    co_test_fault(&srv, "WEBHOOK " CAPTURABLE, "delay", 1, 3000);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(deliveries(CAPTURABLE, "pending", NULL), 1);
    co_test_mock_restart(&srv);

    ck_assert_int_eq(deliveries(CAPTURABLE, "pending", NULL), 1);
    expect_ends(order, "confirmed");
    ck_assert_int_eq(co_test_mock_wait_deliveries(&srv, CAPTURABLE, "delivered", 1, WAIT_MS), 1);
    ck_assert_int_eq(deliveries(CAPTURABLE, "pending", NULL), 0);
    ck_assert_int_eq(recorded(CAPTURABLE), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

/* (e) An event whose deliveries fail (checkoutd is down) keeps its attempts
 * across the restart and is delivered once checkoutd is back. */
START_TEST(retried_webhook_keeps_its_attempts)
{
    char cart[256], order[37], pi[64];
    long long attempts = 0;

    start();
    co_test_cart(cart, sizeof cart, item, 1, NULL);
    co_test_checkout_order(&srv, user, "k-retried", cart, 202, order, pi);
    co_test_stop_clean(&srv.server, "checkoutd");
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    for (int waited = 0; attempts < 3; waited += 50) {
        ck_assert_msg(waited < WAIT_MS, "the event was not retried");
        deliveries(CAPTURABLE, "pending", &attempts);
        usleep(50 * 1000);
    }
    co_test_mock_restart(&srv);

    ck_assert_int_eq(deliveries(CAPTURABLE, "pending", &attempts), 1);
    ck_assert_msg(attempts >= 2, "attempts after the restart: %lld", attempts);
    ck_assert(co_test_server_restart(&srv, NULL));
    expect_ends(order, "confirmed");
    ck_assert_int_eq(co_test_mock_wait_deliveries(&srv, CAPTURABLE, "delivered", 1, WAIT_MS), 1);
    ck_assert_int_eq(deliveries(CAPTURABLE, "pending", NULL), 0);
    ck_assert_int_eq(recorded(CAPTURABLE), 1);
    co_test_invariants(&srv, true);
}
END_TEST

/* (f) A journal whose last line was torn (the provider killed mid-write) still
 * starts: the line is skipped, everything before it is kept, and the compacted
 * journal holds only whole records. */
START_TEST(torn_journal_line_is_skipped)
{
    char order[37], pi[64], order2[37], path[320];
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *f;
    int lines = 0;
    json_t *j;

    start();
    confirmed_order("k-torn", order, pi);
    co_test_mock_kill(&srv);
    snprintf(path, sizeof path, "%s/journal", srv.mock_dir);
    f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fputs("{\"t\":\"pi\",\"id\":\"pi_torn\",\"secret\":\"pi_torn_sec", f);
    fclose(f);
    ck_assert_msg(co_test_mock_start_again(&srv), "mock-stripe refused its torn journal");

    j = intent(pi);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "succeeded");
    json_decref(j);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    for (len = getline(&line, &cap, f); len > 0; len = getline(&line, &cap, f)) {
        json_t *rec = json_loadb(line, (size_t)len, 0, NULL);

        ck_assert_msg(line[len - 1] == '\n' && json_is_object(rec), "journal line %d: %s",
                      lines + 1, line);
        ck_assert_msg(strstr(line, "pi_torn") == NULL, "the torn record was kept");
        json_decref(rec);
        lines++;
    }
    free(line);
    fclose(f);
    ck_assert_int_gt(lines, 0);

    confirmed_order("k-after", order2, pi);
    expect_ends(order, "confirmed");
    expect_ends(order2, "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 2);
    co_test_invariants(&srv, true);
}
END_TEST

/* POST /_mock/reset forgets the journal too: a restart after it brings back
 * nothing. */
START_TEST(reset_clears_the_journal)
{
    co_http_resp r = {0};
    json_t *j;

    start();
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/payment_intents",
                                  "amount=100&currency=usd", NULL, &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/_mock/reset", NULL, NULL, &r), 200);
    co_http_resp_free(&r);
    co_test_mock_restart(&srv);
    j = intents();
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 0);
    co_test_invariants(&srv, true);
}
END_TEST

static Suite *provider_restart_suite(void)
{
    Suite *s = suite_create("provider_restart");
    TCase *tc = co_test_tcase(s, "sigkill", 90);

    tcase_add_checked_fixture(tc, NULL, stop);
    tcase_add_test(tc, killed_between_authorize_and_capture);
    tcase_add_test(tc, killed_while_refunding);
    tcase_add_test(tc, mobile_intent_survives_the_restart);
    tcase_add_test(tc, idempotent_create_replays_after_the_restart);
    tcase_add_test(tc, pending_webhook_is_delivered_after_the_restart);
    tcase_add_test(tc, retried_webhook_keeps_its_attempts);
    tcase_add_test(tc, torn_journal_line_is_skipped);
    tcase_add_test(tc, reset_clears_the_journal);
    return s;
}

int main(void)
{
    return co_test_run_http(provider_restart_suite());
}

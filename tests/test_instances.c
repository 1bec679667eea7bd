/* Several instances: three checkoutd processes on one database behind nginx
 * (Debian's, round robin, no stickiness), as a shop that outgrew one process
 * runs them. Every call of the suite and every webhook of the mock goes
 * through nginx, so consecutive calls, and a retry of the same checkout, land
 * on different instances. The last-unit race, a retry on another instance,
 * webhooks, back-in-stock notifications and an instance SIGKILLed mid-load
 * must come out exactly as with one instance: nothing oversold, nothing lost,
 * nothing charged twice. */
#include "lb.h"
#include "server.h"

#include "co_sig.h"
#include "race.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define INSTANCES 3

static co_test_server srv;
static co_proc others[INSTANCES - 1]; /* srv.server is the first instance */
static char direct[INSTANCES][256];   /* each instance's own URL */
static co_test_lb lb;

/* ------------------------------------------------------------ the instances */

static const char *const instance_env[] = {"NOTIFY_INTERVAL_MS=50", "NOTIFY_BACKOFF_MS=100",
                                           NULL};

/* Three instances on one database and one mock, nginx in front on a port
 * chosen first, so that the mock's webhooks go through it too. */
static void start(void)
{
    char hook[128];
    const char *margs[] = {"--webhook-url", hook, NULL};
    unsigned port = co_test_free_port();

    snprintf(hook, sizeof hook, "http://127.0.0.1:%u/webhooks/stripe", port);
    co_test_server_start_notify(&srv, instance_env, margs);
    snprintf(direct[0], sizeof direct[0], "%s", srv.url);
    for (int i = 0; i < INSTANCES - 1; i++) {
        ck_assert(co_test_server_start_another(&srv, &others[i]));
        snprintf(direct[i + 1], sizeof direct[i + 1], "%s", others[i].url);
    }
    {
        const char *urls[INSTANCES];

        for (int i = 0; i < INSTANCES; i++)
            urls[i] = direct[i];
        co_test_lb_start(&lb, port, urls, INSTANCES);
    }
    snprintf(srv.url, sizeof srv.url, "%s", lb.url);
}

static void stop(void)
{
    co_test_lb_stop(&lb);
    for (int i = 0; i < INSTANCES - 1; i++)
        if (others[i].pid != 0)
            co_proc_stop(&others[i], SIGTERM);
    if (srv.server.pid != 0 || srv.mock.pid != 0)
        co_test_server_stop(&srv);
}

/* ------------------------------------------------------------ the race */

#define RACERS 60
#define UNITS 5

/* Sixty shoppers over three instances for five units: five confirmed, the
 * rest out of stock, each instance having served some. */
START_TEST(the_last_units_race_across_instances)
{
    char item[37];
    static co_test_racer rs[RACERS];
    int created, out;

    start();
    co_test_item(srv.conn, "last-units", 120000, UNITS, item);
    co_test_race_units(&srv, item, rs, RACERS, &created, &out);
    ck_assert_int_eq(created, UNITS);
    ck_assert_int_eq(out, RACERS - UNITS);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), UNITS);
    ck_assert_int_eq(co_test_lb_served(&lb, "/v1/checkout"), INSTANCES);
    co_test_invariants(&srv, true);
}
END_TEST

/* The same checkout sent again lands on another instance: the first answer,
 * byte for byte, and one charge. */
START_TEST(a_retry_on_another_instance_replays_the_answer)
{
    char item[37], body[256], user[37], first[1024] = "";

    start();
    co_test_item(srv.conn, "retried", 5000, 10, item);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_uuid(user);
    /* Round robin, shared with the mock's webhooks: a few more sends than
     * instances reach every one of them. */
    for (int i = 0; i < 4 * INSTANCES && (i < INSTANCES ||
                                           co_test_lb_served(&lb, "/v1/checkout") < INSTANCES);
         i++) {
        co_http_resp r = {0};

        ck_assert_int_eq(co_test_checkout(&srv, user, "same-key", body, &r), 201);
        if (i == 0)
            snprintf(first, sizeof first, "%s", r.body);
        else
            ck_assert_str_eq(r.body, first);
        co_http_resp_free(&r);
    }
    ck_assert_int_eq(co_test_lb_served(&lb, "/v1/checkout"), INSTANCES);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

/* Mobile checkouts on all instances, captured by the mock's own webhooks,
 * which nginx spreads over them too. */
START_TEST(webhooks_spread_over_instances_capture_each_order_once)
{
    char item[37], body[256], order[6][37], pi[6][64], user[37];

    start();
    co_test_item(srv.conn, "mobile", 3000, 6, item);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_uuid(user);
    for (int i = 0; i < 6; i++) {
        char key[16];

        snprintf(key, sizeof key, "m%d", i);
        co_test_checkout_order(&srv, user, key, body, 202, order[i], pi[i]);
        ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi[i], "pm_card_visa"), 200);
    }
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(co_test_wait_status(&srv, order[i], CO_TEST_TERMINAL, 15000),
                         "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 6);
    ck_assert_int_ge(co_test_lb_served(&lb, "/webhooks/stripe"), 2);
    co_test_invariants(&srv, true);
}
END_TEST

/* mock-notify's delivery count. */
static long long notified(void)
{
    char url[512];
    co_http_resp r = {0};
    json_t *j;
    long long n;

    snprintf(url, sizeof url, "%s/_mock/deliveries", srv.notify.url);
    ck_assert(co_http("GET", url, NULL, NULL, 0, &r));
    j = co_http_json(&r);
    n = json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    co_http_resp_free(&r);
    return n;
}

/* A restock that brings an item back: every subscriber notified once, though
 * three notifiers share the outbox. */
START_TEST(three_notifiers_notify_each_subscriber_once)
{
    char item[37], body[256], sig[CO_SIG_HEADER_MAX], hdr[CO_SIG_HEADER_MAX + 32], url[512];
    const char *headers[3] = {"Content-Type: application/json", hdr, NULL};
    co_http_resp r = {0};
    long long n = 0;

    start();
    co_test_item(srv.conn, "sold-out", 3000, 0, item);
    for (int i = 0; i < 12; i++) {
        char user[37], path[160], *tok;

        co_test_uuid(user);
        tok = co_test_token(user, 600);
        snprintf(path, sizeof path, "/v1/items/%s/back-in-stock", item);
        ck_assert_int_eq(co_test_call(&srv, "POST", path, tok, NULL, &r), 201);
        co_http_resp_free(&r);
        free(tok);
    }
    snprintf(body, sizeof body, "{\"event_id\":\"rs_back\",\"item_id\":\"%s\",\"quantity\":3}",
             item);
    co_sig_header(CO_TEST_RESTOCK_SECRET, time(NULL), body, strlen(body), sig);
    snprintf(hdr, sizeof hdr, "Restock-Signature: %s", sig);
    snprintf(url, sizeof url, "%s/webhooks/restock", srv.url);
    ck_assert(co_http("POST", url, headers, body, strlen(body), &r));
    ck_assert_msg(r.status == 200, "restock: %ld %s", r.status, r.body);
    co_http_resp_free(&r);
    for (int waited = 0; waited < 10000 && n < 12; waited += 100) {
        n = notified();
        usleep(100 * 1000);
    }
    usleep(500 * 1000); /* a second delivery, were there one, would come by now */
    ck_assert_int_eq(notified(), 12);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox"
                                          " WHERE status <> 'delivered'"), 0);
}
END_TEST

/* ------------------------------------------------------------ a kill mid-load */

#define SHOPPERS 24

typedef struct {
    const char *body;
    long status;
    int attempts;
} shopper;

/* Buys with one key until a final answer (201, or 409 out of stock), as an
 * app does: a broken connection or a 502 from nginx (its instance died), a
 * 409 request_in_progress (another instance has not yet taken over the
 * order) or a 503 are retried with the same key. */
static void *shop(void *p)
{
    shopper *s = p;
    char user[37], key[37];

    co_test_uuid(user);
    co_test_uuid(key);
    co_test_race_wait();
    for (s->attempts = 1; s->attempts <= 200; s->attempts++) {
        co_http_resp r = {0};
        json_t *j;
        bool again;

        s->status = co_test_checkout(&srv, user, key, s->body, &r);
        j = co_http_json(&r);
        again = s->status == 0 || s->status == 502 || s->status == 503 ||
                (s->status == 409 && strcmp(co_test_jstr(j, "error", "code"),
                                            "request_in_progress") == 0);
        json_decref(j);
        co_http_resp_free(&r);
        if (!again)
            break;
        usleep(250 * 1000);
    }
    return NULL;
}

static void *load(void *p)
{
    co_test_race(SHOPPERS, shop, p, sizeof(shopper));
    return NULL;
}

/* One of the three is SIGKILLed while sagas are at the provider: the others
 * take its orders over (lease 2 s), the shoppers' retries get their answers,
 * and every order ends once with its money and stock right. */
START_TEST(an_instance_killed_mid_load_loses_nothing)
{
    char item[37], body[256];
    static shopper sh[SHOPPERS];
    int created = 0, out = 0, retried = 0;
    pthread_t loader;
    long long in_flight = 0;

    start();
    co_test_item(srv.conn, "kill", 9000, SHOPPERS - 4, item);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    /* Captures wait 1.5 s at the provider: the kill finds sagas in flight. */
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "delay", SHOPPERS, 1500);
    for (int i = 0; i < SHOPPERS; i++)
        sh[i] = (shopper){.body = body};
    pthread_create(&loader, NULL, load, sh);
    for (int waited = 0; waited < 10000 && in_flight < 6; waited += 20) {
        in_flight = co_test_ll(srv.conn, "SELECT count(*) FROM orders WHERE status = 'reserved'");
        usleep(20 * 1000);
    }
    ck_assert_msg(in_flight >= 6, "only %lld sagas at the provider", in_flight);
    co_proc_stop(&others[0], SIGKILL);
    pthread_join(loader, NULL);
    for (int i = 0; i < SHOPPERS; i++) {
        created += sh[i].status == 201;
        out += sh[i].status == 409;
        retried += sh[i].attempts > 1;
    }
    ck_assert_int_eq(created, SHOPPERS - 4);
    ck_assert_int_eq(out, 4);
    ck_assert_msg(retried > 0, "no shopper lost an answer to the kill");
    ck_assert_int_eq(co_test_unended(&srv), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), SHOPPERS - 4);
    co_test_invariants(&srv, true);
}
END_TEST

static Suite *instances_suite(void)
{
    Suite *s = suite_create("instances");
    TCase *tc = co_test_tcase(s, "behind_nginx", 120);

    tcase_add_checked_fixture(tc, NULL, stop);
    tcase_add_test(tc, the_last_units_race_across_instances);
    tcase_add_test(tc, a_retry_on_another_instance_replays_the_answer);
    tcase_add_test(tc, webhooks_spread_over_instances_capture_each_order_once);
    tcase_add_test(tc, three_notifiers_notify_each_subscriber_once);
    tcase_add_test(tc, an_instance_killed_mid_load_loses_nothing);
    return s;
}

int main(void)
{
    return co_test_run_http(instances_suite());
}

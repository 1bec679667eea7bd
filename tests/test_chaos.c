/* Chaos: shoppers buy (both flows, good and declined cards) while the
 * provider fails in every way the mock can, the server is SIGKILLed and
 * restarted at random moments, and Postgres restarts once. Afterwards every
 * order must have ended and SPEC section 8's invariants must hold.
 *
 * make test runs a short smoke (CHAOS_SECONDS, default 12); make chaos runs it
 * long (CHAOS_LONG=1: 120 s unless CHAOS_SECONDS says otherwise). */
#include "server.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHOPPERS 8
#define ITEMS 3

static co_test_server srv;
static char items[ITEMS][37];
static atomic_bool stop;

static struct {
    atomic_int answered, confirmed, declined, out_of_stock, unavailable, transport, other;
} tally;

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* One shopper's checkout, retried with the same key across crashes as a real
 * app would, until it gets an answer or gives up. */
static void shop(unsigned *seed, const char *user, int n)
{
    static const char *const cards[] = {"pm_card_visa", "pm_card_visa", "pm_card_mastercard",
                                        "pm_card_visa_chargeDeclined",
                                        "pm_card_visa_chargeDeclinedInsufficientFunds", NULL};
    const char *pm = cards[rand_r(seed) % 6];
    char key[64], body[512];
    co_http_resp r = {0};
    long status = 0;

    snprintf(key, sizeof key, "%s-%d", user, n);
    snprintf(body, sizeof body,
             "{\"items\":[{\"item_id\":\"%s\",\"quantity\":%d}]%s%s%s}",
             items[rand_r(seed) % ITEMS], 1 + (int)(rand_r(seed) % 2),
             pm ? ",\"payment_method\":\"" : "", pm ? pm : "", pm ? "\"" : "");
    for (int attempt = 0; attempt < 20 && !atomic_load(&stop); attempt++) {
        co_http_resp_free(&r);
        status = co_test_checkout(&srv, user, key, body, &r);
        if (status != 0 && status != 409 && status != 503)
            break;
        if (status == 409 && strstr(r.body, "out_of_stock") != NULL)
            break;
        if (status == 503 && strstr(r.body, "payment_provider_unavailable") != NULL)
            break;
        sleep_ms(200); /* crashed, in progress, or not decided yet: same key again */
    }
    atomic_fetch_add(&tally.answered, status != 0);
    if (status == 201)
        atomic_fetch_add(&tally.confirmed, 1);
    else if (status == 402)
        atomic_fetch_add(&tally.declined, 1);
    else if (status == 409) {
        atomic_fetch_add(&tally.out_of_stock, 1);
        sleep_ms(50); /* sold out: a shopper does not retry at machine speed */
    }
    else if (status == 503)
        atomic_fetch_add(&tally.unavailable, 1);
    else if (status == 0)
        atomic_fetch_add(&tally.transport, 1);
    else if (status != 202)
        atomic_fetch_add(&tally.other, 1);

    /* Mobile flow: pay at the provider as the app would, then tell us, most of
     * the time; otherwise abandon it to expire. */
    if (status == 202 && rand_r(seed) % 4 != 0) {
        json_t *j = co_http_json(&r);
        char path[160];
        co_http_resp c = {0};
        const char *pi = json_string_value(json_object_get(j, "payment_intent"));
        const char *order = json_string_value(json_object_get(j, "order_id"));
        char *tok = co_test_token(user, 3600);

        if (pi != NULL && order != NULL) {
            snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", pi);
            co_test_mock(&srv, "POST", path, "payment_method=pm_card_visa", NULL, &c);
            co_http_resp_free(&c);
            snprintf(path, sizeof path, "/v1/orders/%s/confirm", order);
            co_test_call(&srv, "POST", path, tok, NULL, &c);
            co_http_resp_free(&c);
        }
        free(tok);
        json_decref(j);
    }
    co_http_resp_free(&r);
}

static void *shopper(void *p)
{
    unsigned seed = (unsigned)(uintptr_t)p;
    char user[37];
    int n = 0;

    co_test_uuid(user);
    while (!atomic_load(&stop))
        shop(&seed, user, n++);
    return NULL;
}

/* Restocks now and then so stock keeps running out and coming back. */
static void restock(int round)
{
    char sql[256];

    for (int i = 0; i < ITEMS; i++) {
        snprintf(sql, sizeof sql, "SELECT applied FROM co_restock('chaos-%d-%d', '%s', 5)", round,
                 i, items[i]);
        co_test_exec(srv.conn, sql);
    }
}

START_TEST(chaos_keeps_the_invariants)
{
    const char *secs = getenv("CHAOS_SECONDS");
    int seconds = secs ? atoi(secs) : (getenv("CHAOS_LONG") ? 120 : 12);
    const char *pg_restart = getenv("CO_TEST_PG_RESTART");
    char listen[64];
    /* A few shoppers do the work of many here: the per-shopper abuse limits
     * (tested on their own in the checkout suite) would only get in the way. */
    const char *env[] = {listen, "RESERVATION_TTL_SECONDS=3", "SAGA_LEASE_SECONDS=1",
                         "STRIPE_TIMEOUT_MS=1500", "STRIPE_MAX_RETRIES=2",
                         "CHECKOUT_RATE_PER_SECOND=0", "MAX_UNPAID_UNITS=0", NULL};
    pthread_t t[SHOPPERS];
    unsigned seed = 4242;
    time_t end;
    int round = 0, kills = 0, faults = 0;
    bool pg_restarted = false;
    long long unended;

    snprintf(listen, sizeof listen, "LISTEN_ADDR=127.0.0.1:%u", co_test_free_port());
    ck_assert(co_test_server_restart(&srv, env));
    for (int i = 0; i < ITEMS; i++) {
        char sku[32];
        snprintf(sku, sizeof sku, "chaos-%d", i);
        co_test_item(srv.conn, sku, 1000 + i, 30, items[i]);
    }
    for (int i = 0; i < SHOPPERS; i++)
        pthread_create(&t[i], NULL, shopper, (void *)(uintptr_t)(i + 1));

    end = time(NULL) + seconds;
    while (time(NULL) < end) {
        static const char *const matches[] = {
            "POST /v1/payment_intents", "POST /v1/payment_intents/*/capture",
            "POST /v1/payment_intents/*/cancel", "GET /v1/payment_intents/*", "POST /v1/refunds"};
        static const char *const actions[] = {"status_500", "drop_response", "delay", "hang"};
        int what = (int)(rand_r(&seed) % 10);

        sleep_ms(400 + (int)(rand_r(&seed) % 800));
        if (what < 5) {
            co_test_fault(&srv, matches[rand_r(&seed) % 5], actions[rand_r(&seed) % 4],
                          1 + (int)(rand_r(&seed) % 3), 200 + (int)(rand_r(&seed) % 2000));
            faults++;
        } else if (what < 8) {
            /* SIGKILL at a random moment, then start again on the same port. */
            co_proc_stop(&srv.server, SIGKILL);
            kills++;
            ck_assert(co_test_server_restart(&srv, NULL));
        } else if (pg_restart != NULL && pg_restart[0] != '\0' && !pg_restarted &&
                   time(NULL) > end - seconds / 2) {
            ck_assert_int_eq(system(pg_restart), 0);
            pg_restarted = true;
            PQreset(srv.conn);
        } else {
            restock(round++);
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < SHOPPERS; i++)
        pthread_join(t[i], NULL);

    /* Calm: no faults; every order must end by itself (recovery, expiry). */
    {
        co_http_resp r = {0};
        co_test_mock(&srv, "DELETE", "/_mock/faults", NULL, NULL, &r);
        co_http_resp_free(&r);
    }
    for (int waited = 0; waited < 60000; waited += 250) {
        unended = co_test_unended(&srv);
        if (unended == 0)
            break;
        sleep_ms(250);
    }
    fprintf(stderr,
            "chaos: %ds, %d kills, %d faults, pg restarted: %s; answers %d (201 %d, 402 %d, "
            "409 %d, 503 %d, none %d, other %d); orders %lld (confirmed %lld)\n",
            seconds, kills, faults, pg_restarted ? "yes" : "no", atomic_load(&tally.answered),
            atomic_load(&tally.confirmed), atomic_load(&tally.declined),
            atomic_load(&tally.out_of_stock), atomic_load(&tally.unavailable),
            atomic_load(&tally.transport), atomic_load(&tally.other),
            co_test_ll(srv.conn, "SELECT count(*) FROM orders"),
            co_test_ll(srv.conn, "SELECT count(*) FROM orders WHERE status = 'confirmed'"));
    ck_assert_int_eq(unended, 0);
    ck_assert_int_gt(atomic_load(&tally.confirmed), 0);
    ck_assert_int_eq(atomic_load(&tally.other), 0);
    /* Every 201 the shoppers saw is a confirmed order (never a refund behind their back). */
    ck_assert_int_ge(co_test_ll(srv.conn, "SELECT count(*) FROM orders WHERE status = 'confirmed'"),
                     atomic_load(&tally.confirmed));
    co_test_invariants(&srv, true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = co_test_tcase(s, "chaos", getenv("CHAOS_LONG") ? 900 : 180);

    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_add_test(tc, chaos_keeps_the_invariants);
    return co_test_run_http(s);
}

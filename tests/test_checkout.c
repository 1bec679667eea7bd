/* POST /v1/checkout and the order endpoints over HTTP, against a real
 * checkoutd, a real mock-stripe and real Postgres. */
#include "server.h"

#include "co_jwt.h"
#include "race.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;

#define CAPTURE "POST /v1/payment_intents/*/capture"

/* A pm_card_visa checkout of qty units of item by a new shopper; returns the
 * status, the answer in r (the caller frees it). */
static long buy(const char *item, int qty, co_http_resp *r)
{
    char body[256], user[37];

    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, qty, "pm_card_visa");
    return co_test_checkout(&srv, user, "k", body, r);
}

/* -------------------------------------------- 200 shoppers, one unit */

#define RACERS 200

START_TEST(two_hundred_shoppers_one_unit)
{
    char item[37];
    static co_test_racer rs[RACERS];
    int created, out;

    co_test_item(srv.conn, "last-phone", 120000, 1, item);
    co_test_race_units(&srv, item, rs, RACERS, &created, &out);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(out, RACERS - 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders WHERE status = 'confirmed'"),
                     1);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------------- sagas in flight */

#define FAR_SHOPPERS 48
#define FAR_POOL 3

typedef struct {
    co_test_server *s;
    _Atomic int stop;
    long long max_conns, max_waiting;
} sampler;

/* Samples, until told to stop, how many Postgres connections checkoutd holds
 * (its TCP connections to the database's address: Postgres', or pgbouncer's)
 * and how many orders wait on the provider (reserved: authorize in flight). */
static void *sample(void *p)
{
    sampler *x = p;
    PGconn *c = co_test_connect(&x->s->db);

    unsigned port = (unsigned)atoi(PQport(c));

    while (!x->stop) {
        long long conns = co_proc_tcp_conns(x->s->server.pid, port);
        long long waiting = co_test_ll(c, "SELECT count(*) FROM orders"
                                          " WHERE status = 'reserved'");
        if (conns > x->max_conns)
            x->max_conns = conns;
        if (waiting > x->max_waiting)
            x->max_waiting = waiting;
        usleep(10000);
    }
    PQfinish(c);
    return NULL;
}

START_TEST(sagas_waiting_on_the_provider_hold_no_connection)
{
    static const char *const env[] = {"WORKERS=64", "DB_POOL_SIZE=3", NULL};
    char item[37], body[256];
    static co_test_racer rs[FAR_SHOPPERS];
    sampler x = {.s = &srv};
    pthread_t t;
    int created = 0;

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "far", 1000, FAR_SHOPPERS, item);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    /* Every authorization takes 400 ms at the provider: an ocean away. */
    co_test_fault(&srv, "POST /v1/payment_intents", "delay", FAR_SHOPPERS, 400);
    for (int i = 0; i < FAR_SHOPPERS; i++)
        rs[i] = (co_test_racer){.s = &srv, .body = body};
    pthread_create(&t, NULL, sample, &x);
    co_test_race(FAR_SHOPPERS, co_test_race_checkout, rs, sizeof rs[0]);
    x.stop = 1;
    pthread_join(t, NULL);
    for (int i = 0; i < FAR_SHOPPERS; i++)
        created += rs[i].status == 201;
    ck_assert_int_eq(created, FAR_SHOPPERS);
    /* Many sagas were waiting on the provider at the same moment... */
    ck_assert_msg(x.max_waiting >= FAR_SHOPPERS / 2, "at most %lld waited at once",
                  x.max_waiting);
    /* ...while checkoutd never held more than its pool. */
    ck_assert_msg(x.max_conns >= 1 && x.max_conns <= FAR_POOL, "checkoutd held %lld connections",
                  x.max_conns);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), FAR_SHOPPERS);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------------- abuse limits */

/* A mobile checkout of qty units of item by user; returns the status and the
 * Retry-After header into retry (64 bytes, "" when absent). */
static long mobile_checkout(const char *user, const char *key, const char *item, int qty,
                            char retry[64], char code[64])
{
    char body[256];
    co_http_resp r = {0};
    long st;
    json_t *j;

    co_test_cart(body, sizeof body, item, qty, NULL);
    st = co_test_checkout(&srv, user, key, body, &r);
    retry[0] = code[0] = '\0';
    (void)co_http_header(&r, "Retry-After", retry, 64);
    j = co_http_json(&r);
    snprintf(code, 64, "%s", co_test_jstr(j, "error", "code"));
    json_decref(j);
    co_http_resp_free(&r);
    return st;
}

START_TEST(a_shopper_cannot_hoard_unpaid_reservations)
{
    static const char *const env[] = {"MAX_UNPAID_UNITS=3", NULL};
    char item[37], hoarder[37], honest[37], retry[64], code[64], body[256];
    co_http_resp r = {0};

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "hoarded", 1000, 10, item);
    co_test_uuid(hoarder);
    co_test_uuid(honest);
    ck_assert_int_eq(mobile_checkout(hoarder, "h1", item, 2, retry, code), 202);
    ck_assert_int_eq(mobile_checkout(hoarder, "h2", item, 1, retry, code), 202);
    /* A fourth unpaid unit is refused, with when to come back, and nothing is held. */
    ck_assert_int_eq(mobile_checkout(hoarder, "h3", item, 1, retry, code), 429);
    ck_assert_str_eq(code, "reservation_limit");
    ck_assert_msg(atoi(retry) >= 1, "Retry-After: '%s'", retry);
    ck_assert_int_eq(co_test_stock(&srv, item), 7);
    /* The refused key was not spent: the same key is refused the same way. */
    ck_assert_int_eq(mobile_checkout(hoarder, "h3", item, 1, retry, code), 429);
    /* Others are not affected, nor is paying at once. */
    ck_assert_int_eq(mobile_checkout(honest, "o1", item, 3, retry, code), 202);
    co_test_cart(body, sizeof body, item, 2, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, hoarder, "h4", body, &r), 201);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);
    co_test_invariants(&srv, false);
}
END_TEST

START_TEST(checkout_attempts_are_rate_limited_per_shopper)
{
    static const char *const env[] = {"CHECKOUT_RATE_PER_SECOND=1", "CHECKOUT_RATE_BURST=3",
                                      NULL};
    char item[37], fast[37], other[37], retry[64], code[64], key[16];
    int limited = 0;

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "rl", 1000, 100, item);
    co_test_uuid(fast);
    co_test_uuid(other);
    /* The burst passes; then attempts are refused until a token is back. */
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "rl%d", i);
        if (mobile_checkout(fast, key, item, 1, retry, code) == 429) {
            ck_assert_str_eq(code, "rate_limited");
            ck_assert_msg(atoi(retry) >= 1, "Retry-After: '%s'", retry);
            limited++;
        }
    }
    ck_assert_msg(limited >= 2, "only %d of 6 rapid attempts were limited", limited);
    ck_assert_int_eq(mobile_checkout(other, "x1", item, 1, retry, code), 202);
}
END_TEST

/* ------------------------------------------------------- compensation */

START_TEST(decline_releases_stock_for_the_next_shopper)
{
    char item[37], body[256], a[37], b[37];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "one", 5000, 1, item);
    co_test_uuid(a);
    co_test_uuid(b);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa_chargeDeclinedInsufficientFunds");
    ck_assert_int_eq(co_test_checkout(&srv, a, "k1", body, &r), 402);
    j = co_http_json(&r);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "payment_declined");
    ck_assert_str_eq(co_test_jstr(j, "error", "decline_code"), "insufficient_funds");
    ck_assert_str_eq(co_test_wait_status(&srv, co_test_jstr(j, "error", "order_id"), "failed", 0),
                     "failed");
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);

    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, b, "k1", body, &r), 201);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    co_test_invariants(&srv, true);
}
END_TEST

/* One capture fails with action (a mock fault); the client's retry of it with
 * the same key gets through: the checkout still answers 201, charged once. */
static void one_capture_fault_heals(const char *sku, const char *action)
{
    char item[37];
    co_http_resp r = {0};

    co_test_item(srv.conn, sku, 5000, 3, item);
    co_test_fault(&srv, CAPTURE, action, 1, 0);
    ck_assert_int_eq(buy(item, 1, &r), 201);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    co_test_invariants(&srv, true);
}

START_TEST(capture_500_then_success)
{
    one_capture_fault_heals("c500", "status_500");
}
END_TEST

START_TEST(capture_failing_for_good_voids_and_releases)
{
    char item[37], order[37];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "cfail", 5000, 3, item);
    co_test_fault(&srv, CAPTURE, "status_500", 1000, 0);
    ck_assert_int_eq(buy(item, 2, &r), 503);
    j = co_http_json(&r);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "payment_provider_unavailable");
    snprintf(order, sizeof order, "%s", co_test_jstr(j, "error", "order_id"));
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "failed", 10000), "failed");
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(lost_capture_answer_charges_once)
{
    /* The capture happens, its answer is lost. */
    one_capture_fault_heals("drop", "drop_response");
}
END_TEST

/* -------------------------------------------------------- idempotency */

START_TEST(same_key_replays_byte_for_byte)
{
    char item[37], body[256], other[256], u[37];
    co_http_resp a = {0}, b = {0}, c = {0};
    char replayed[16] = "";

    co_test_item(srv.conn, "idem", 5000, 5, item);
    co_test_uuid(u);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_cart(other, sizeof other, item, 2, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, u, "same", body, &a), 201);
    ck_assert_int_eq(co_test_checkout(&srv, u, "same", body, &b), 201);
    ck_assert_uint_eq(a.body_len, b.body_len);
    ck_assert_int_eq(memcmp(a.body, b.body, a.body_len), 0);
    ck_assert(co_http_header(&b, "Idempotent-Replayed", replayed, sizeof replayed));
    ck_assert_str_eq(replayed, "true");
    ck_assert_int_eq(co_test_checkout(&srv, u, "same", other, &c), 422);
    ck_assert_ptr_nonnull(strstr(c.body, "idempotency_key_reused"));
    co_http_resp_free(&a);
    co_http_resp_free(&b);
    co_http_resp_free(&c);
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
}
END_TEST

typedef struct {
    const char *user, *body;
    long status;
} slow_arg;

static void *slow_checkout(void *p)
{
    slow_arg *a = p;
    co_http_resp r = {0};

    a->status = co_test_checkout(&srv, a->user, "slow", a->body, &r);
    co_http_resp_free(&r);
    return NULL;
}

START_TEST(same_key_while_running_is_409)
{
    char item[37], body[256], u[37];
    pthread_t t;
    slow_arg a;
    co_http_resp r = {0};

    co_test_item(srv.conn, "slow", 5000, 5, item);
    co_test_uuid(u);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_fault(&srv, "POST /v1/payment_intents", "delay", 1, 1500);
    a = (slow_arg){.user = u, .body = body};
    pthread_create(&t, NULL, slow_checkout, &a);
    /* The first request is inside the provider call once its order exists. */
    for (int i = 0; i < 100 && co_test_ll(srv.conn, "SELECT count(*) FROM orders") == 0; i++)
        usleep(20000);
    ck_assert_int_eq(co_test_checkout(&srv, u, "slow", body, &r), 409);
    ck_assert_ptr_nonnull(strstr(r.body, "request_in_progress"));
    co_http_resp_free(&r);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.status, 201);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), 1);
}
END_TEST

/* ------------------------------------------------------- mobile flow */

START_TEST(mobile_flow_end_to_end)
{
    char item[37], body[256], u[37], order[37], pi[64];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "mob", 7000, 2, item);
    co_test_uuid(u);
    co_test_cart(body, sizeof body, item, 1, NULL);
    ck_assert_int_eq(co_test_checkout(&srv, u, "m", body, &r), 202);
    j = co_http_json(&r);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "awaiting_payment");
    ck_assert_ptr_nonnull(strstr(co_test_jstr(j, "client_secret", NULL), "_secret_"));
    ck_assert_int_gt(strlen(co_test_jstr(j, "reservation_expires_at", NULL)), 0);
    snprintf(order, sizeof order, "%s", co_test_jstr(j, "order_id", NULL));
    snprintf(pi, sizeof pi, "%s", co_test_jstr(j, "payment_intent", NULL));
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);

    /* Confirming before paying is refused. */
    ck_assert_int_eq(co_test_order_post(&srv, u, order, "confirm", &r), 409);
    co_http_resp_free(&r);

    /* The app confirms with the provider, then tells us. */
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(co_test_order_post(&srv, u, order, "confirm", &r), 200);
    j = co_http_json(&r);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "confirmed");
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(unpaid_reservation_expires)
{
    const char *env[] = {"RESERVATION_TTL_SECONDS=1", NULL};
    char item[37], body[256], u[37], order[37];

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "exp", 7000, 1, item);
    co_test_uuid(u);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, u, "e", body, 202, order, NULL);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "expired", 10000), "expired");
    ck_assert_int_eq(co_test_stock(&srv, item), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(cancel_voids_or_refunds)
{
    char item[37], body[256], u[37], o1[37], o2[37];
    co_http_resp r = {0};

    co_test_item(srv.conn, "can", 7000, 5, item);
    co_test_uuid(u);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, u, "c1", body, 202, o1, NULL);
    co_test_cart(body, sizeof body, item, 2, "pm_card_visa");
    co_test_checkout_order(&srv, u, "c2", body, 201, o2, NULL);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);

    ck_assert_int_eq(co_test_order_post(&srv, u, o1, "cancel", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"cancelled\""));
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_order_post(&srv, u, o2, "cancel", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"refunded\""));
    co_http_resp_free(&r);
    /* Cancelling again changes nothing. */
    ck_assert_int_eq(co_test_order_post(&srv, u, o2, "cancel", &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------------------- auth */

START_TEST(auth_is_enforced)
{
    char item[37], body[256], u[37], other[37], order[37], path[128];
    co_http_resp r = {0};
    char *tok, *expired, *wrong, *none;

    co_test_item(srv.conn, "auth", 7000, 5, item);
    co_test_uuid(u);
    co_test_uuid(other);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_checkout_order(&srv, u, "a", body, 201, order, NULL);
    snprintf(path, sizeof path, "/v1/orders/%s", order);

    tok = co_test_token(u, 600);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, tok, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"history\""));
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, NULL, NULL, &r), 401);
    ck_assert_ptr_nonnull(strstr(r.body, "unauthenticated"));
    co_http_resp_free(&r);
    expired = co_test_token(u, -10);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, expired, NULL, &r), 401);
    co_http_resp_free(&r);
    wrong = co_jwt_sign("another-secret", u, time(NULL) + 600, time(NULL));
    ck_assert_int_eq(co_test_call(&srv, "GET", path, wrong, NULL, &r), 401);
    co_http_resp_free(&r);
    /* alg:none with the payload of a valid token and no signature. */
    {
        char *dot = strchr(tok, '.');
        char *end = strrchr(tok, '.');
        size_t n = (size_t)(end - dot) + 1;
        none = malloc(64 + n);
        snprintf(none, 64 + n, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%.*s", (int)n, dot);
    }
    ck_assert_int_eq(co_test_call(&srv, "GET", path, none, NULL, &r), 401);
    co_http_resp_free(&r);
    free(tok);
    tok = co_test_token(other, 600);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, tok, NULL, &r), 404);
    ck_assert_ptr_nonnull(strstr(r.body, "order_not_found"));
    co_http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
    ck_assert_int_eq(co_test_call(&srv, "POST", path, tok, NULL, &r), 404);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "GET", "/v1/admin/orders", tok, NULL, &r), 401);
    co_http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/admin/orders/%s", order);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, CO_TEST_ADMIN_KEY, NULL, &r), 200);
    co_http_resp_free(&r);
    /* The owner's route also serves the admin (SPEC: "its owner (or admin)"). */
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, CO_TEST_ADMIN_KEY, NULL, &r), 200);
    co_http_resp_free(&r);
    free(tok);
    free(expired);
    free(wrong);
    free(none);
}
END_TEST

/* ------------------------------------------------------- bad input */

START_TEST(bad_bodies_change_nothing)
{
    char item[37], u[37], buf[512];
    co_http_resp r = {0};
    char *big, *deep;
    static const struct {
        const char *body; /* %s: a real item id */
        long status;
        const char *code;
    } cases[] = {
        {"{\"items\":", 400, "invalid_json"},
        {"not json", 400, "invalid_json"},
        {"", 400, "invalid_json"},
        {"[]", 400, "invalid_request"},
        {"{\"items\":[]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":0}]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":-3}]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":99999999999999999999}]}", 400, NULL},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":1.5}]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":\"1\"}]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":1001}]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"nope\",\"quantity\":1}]}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"00000000-0000-0000-0000-000000000000\",\"quantity\":1}]}",
         404, "item_not_found"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":1}],\"payment_method\":7}", 400,
         "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":1}],\"price\":1}", 400, "invalid_request"},
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":1}],\"items\":[]}", 400, "invalid_json"},
        /* Two lines of one item that add up to more than a line may hold. */
        {"{\"items\":[{\"item_id\":\"%s\",\"quantity\":1000},{\"item_id\":\"%s\",\"quantity\":1}]}",
         400, "invalid_request"},
    };

    co_test_item(srv.conn, "bad", 7000, 5, item);
    co_test_uuid(u);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(buf, sizeof buf, cases[i].body, item, item);
#pragma GCC diagnostic pop
        ck_assert_msg(co_test_checkout(&srv, u, "bad", buf, &r) == cases[i].status,
                      "case %zu (%s): %ld %s", i, buf, r.status, r.body);
        j = co_http_json(&r);
        ck_assert_msg(j != NULL && json_is_object(json_object_get(j, "error")), "case %zu: %s", i,
                      r.body);
        if (cases[i].code != NULL)
            ck_assert_msg(strcmp(co_test_jstr(j, "error", "code"), cases[i].code) == 0,
                          "case %zu: %s", i, r.body);
        json_decref(j);
        co_http_resp_free(&r);
    }
    /* 2 MB body: refused with 413 before it is read. */
    big = malloc(2 * 1024 * 1024 + 1);
    memset(big, ' ', 2 * 1024 * 1024);
    big[2 * 1024 * 1024] = '\0';
    ck_assert_int_eq(co_test_checkout(&srv, u, "big", big, &r), 413);
    co_http_resp_free(&r);
    free(big);
    /* Deep nesting. */
    deep = malloc(40001);
    memset(deep, '[', 20000);
    memset(deep + 20000, ']', 20000);
    deep[40000] = '\0';
    ck_assert_int_eq(co_test_checkout(&srv, u, "deep", deep, &r), 400);
    co_http_resp_free(&r);
    free(deep);
    /* No key. */
    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/checkout", NULL, "{}", &r), 401);
    co_http_resp_free(&r);
    {
        char *tok = co_test_token(u, 600);
        co_test_cart(buf, sizeof buf, item, 1, "pm_card_visa");
        ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/checkout", tok, buf, &r), 400);
        ck_assert_ptr_nonnull(strstr(r.body, "Idempotency-Key"));
        co_http_resp_free(&r);
        free(tok);
    }
    /* An Idempotency-Key that is not printable ASCII. */
    co_test_cart(buf, sizeof buf, item, 1, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, u, "k\xff\xfe", buf, &r), 400);
    ck_assert_ptr_nonnull(strstr(r.body, "Idempotency-Key"));
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "GET", "/nope", NULL, NULL, &r), 404);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "DELETE", "/v1/checkout", NULL, NULL, &r), 405);
    co_http_resp_free(&r);
    /* Nothing changed, and the server is alive. */
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM checkout_requests"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    ck_assert_int_eq(co_test_call(&srv, "GET", "/healthz", NULL, NULL, &r), 200);
    co_http_resp_free(&r);
}
END_TEST

/* A message that quotes the client must still be valid UTF-8: an invalid
 * JSON escape before a multibyte character, a field name cut at 60 bytes in
 * the middle of a character. Each is a 400 with a JSON answer, never a 500. */
START_TEST(bytes_quoted_in_errors_stay_valid_utf8)
{
    static const char bad_escape[] = "\"\\\xc3\xa9\"";
    char user[37], body[256];
    co_http_resp r = {0};
    json_t *j;

    co_test_uuid(user);
    ck_assert_int_eq(co_test_checkout(&srv, user, "u1", bad_escape, &r), 400);
    j = co_http_json(&r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "invalid_json");
    json_decref(j);
    co_http_resp_free(&r);

    snprintf(body, sizeof body, "{\"%s\xc3\xa9\":1,\"items\":[]}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    ck_assert_int_eq(co_test_checkout(&srv, user, "u2", body, &r), 400);
    j = co_http_json(&r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "invalid_request");
    json_decref(j);
    co_http_resp_free(&r);

    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  bad_escape, &r),
                     400);
    j = co_http_json(&r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "invalid_json");
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM items"), 0);
}
END_TEST

/* Every answer carries X-Request-Id: the client's when it is a sane token,
 * else one made by the server, new for each request. */
START_TEST(every_answer_carries_a_request_id)
{
    static const char *const mine[] = {"X-Request-Id: shop-42.a:b_c", NULL};
    static const char *const bad[] = {"X-Request-Id: has space<and>", NULL};
    char url[300], id1[128], id2[128];
    co_http_resp r = {0};

    snprintf(url, sizeof url, "%s/healthz", srv.url);
    ck_assert(co_http("GET", url, mine, NULL, 0, &r));
    ck_assert(co_http_header(&r, "X-Request-Id", id1, sizeof id1));
    ck_assert_str_eq(id1, "shop-42.a:b_c");
    co_http_resp_free(&r);
    ck_assert(co_http("GET", url, bad, NULL, 0, &r));
    ck_assert(co_http_header(&r, "X-Request-Id", id1, sizeof id1));
    ck_assert_msg(strncmp(id1, "req_", 4) == 0 && strlen(id1) == 36, "made id '%s'", id1);
    co_http_resp_free(&r);
    snprintf(url, sizeof url, "%s/v1/orders/nope", srv.url);
    ck_assert(co_http("GET", url, NULL, NULL, 0, &r)); /* an error answer carries one too */
    ck_assert_int_eq(r.status, 401);
    ck_assert(co_http_header(&r, "X-Request-Id", id2, sizeof id2));
    ck_assert_str_ne(id1, id2);
    co_http_resp_free(&r);
}
END_TEST

START_TEST(admin_items_and_pages)
{
    co_http_resp r = {0};
    json_t *j;
    char path[160], id[37], u[37], body[256];

    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  "{\"sku\":\"A1\",\"name\":\"A\",\"price\":100,"
                                  "\"currency\":\"usd\",\"stock\":3}", &r), 201);
    j = co_http_json(&r);
    snprintf(id, sizeof id, "%s", co_test_jstr(j, "id", NULL));
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  "{\"sku\":\"A1\",\"name\":\"A\",\"price\":100,"
                                  "\"currency\":\"usd\",\"stock\":3}", &r), 409);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  "{\"sku\":\"A2\",\"name\":\"A\",\"price\":-1,"
                                  "\"currency\":\"usd\",\"stock\":3}", &r), 400);
    co_http_resp_free(&r);
    /* A free item could never be paid for: refused. */
    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  "{\"sku\":\"A3\",\"name\":\"A\",\"price\":0,\"currency\":\"usd\","
                                  "\"stock\":3}", &r), 400);
    co_http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/items/%s", id);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, NULL, NULL, &r), 200);
    j = co_http_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "stock_available")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "price")), 100);
    json_decref(j);
    co_http_resp_free(&r);
    co_test_uuid(u);
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        co_test_cart(body, sizeof body, id, 1, "pm_card_visa");
        ck_assert_int_eq(co_test_checkout(&srv, u, key, body, &r), 201);
        co_http_resp_free(&r);
    }
    ck_assert_int_eq(co_test_call(&srv, "GET", "/v1/admin/orders?limit=2&status=confirmed",
                                  CO_TEST_ADMIN_KEY, NULL, &r), 200);
    j = co_http_json(&r);
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 2);
    ck_assert(json_is_true(json_object_get(j, "has_more")));
    snprintf(path, sizeof path, "/v1/admin/orders?limit=2&starting_after=%s",
             co_test_jstr(json_array_get(json_object_get(j, "data"), 1), "id", NULL));
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, CO_TEST_ADMIN_KEY, NULL, &r), 200);
    j = co_http_json(&r);
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 1);
    ck_assert(json_is_false(json_object_get(j, "has_more")));
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_call(&srv, "GET", "/v1/admin/orders?limit=0", CO_TEST_ADMIN_KEY, NULL,
                                  &r), 400);
    co_http_resp_free(&r);
}
END_TEST

/* The lease lapses while the request is still inside a slow capture, so
 * recovery starts driving the same order; its capture meets the provider's
 * 409 for a key in use. That means someone else is driving: recovery leaves
 * the order alone instead of voiding a payment the shopper is completing. */
START_TEST(recovery_leaves_an_order_being_driven_alone)
{
    const char *env[] = {"SAGA_LEASE_SECONDS=1", NULL};
    char item[37];
    co_http_resp r = {0};

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "slowcap", 5000, 1, item);
    /* Longer than the lease, shorter than the client's 3 s timeout. */
    co_test_fault(&srv, CAPTURE, "delay", 1, 2500);
    ck_assert_int_eq(buy(item, 1, &r), 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"confirmed\""));
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders WHERE status = 'confirmed'"),
                     1);
    co_test_invariants(&srv, true);
}
END_TEST

/* The server dies after refusing a cart for stock but before storing that
 * answer: the retry with the same key still gets the refusal, not a 409
 * request_in_progress for ever. */
START_TEST(out_of_stock_answer_survives_a_crash)
{
    const char *crash[] = {"CHECKOUTD_CRASH_AT=before_out_of_stock_answer", NULL};
    const char *calm[] = {"CHECKOUTD_CRASH_AT=", NULL};
    char item[37], body[256], u[37];
    co_http_resp r = {0};
    int status = 0;

    ck_assert(co_test_server_restart(&srv, crash));
    co_test_item(srv.conn, "none-left", 5000, 0, item);
    co_test_uuid(u);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, u, "oos", body, &r), 0);
    co_http_resp_free(&r);
    ck_assert(co_proc_wait(&srv.server, 10000, &status));
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ck_assert(co_test_server_restart(&srv, calm));
    ck_assert_int_eq(co_test_checkout(&srv, u, "oos", body, &r), 409);
    ck_assert_ptr_nonnull(strstr(r.body, "out_of_stock"));
    ck_assert_ptr_nonnull(strstr(r.body, item));
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_checkout(&srv, u, "oos", body, &r), 409);
    ck_assert_ptr_nonnull(strstr(r.body, "out_of_stock"));
    co_http_resp_free(&r);
}
END_TEST

static Suite *checkout_suite(void)
{
    Suite *s = suite_create("checkout");
    TCase *tc = co_test_tcase(s, "http", 90);

    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_add_test(tc, two_hundred_shoppers_one_unit);
    tcase_add_test(tc, sagas_waiting_on_the_provider_hold_no_connection);
    tcase_add_test(tc, a_shopper_cannot_hoard_unpaid_reservations);
    tcase_add_test(tc, checkout_attempts_are_rate_limited_per_shopper);
    tcase_add_test(tc, decline_releases_stock_for_the_next_shopper);
    tcase_add_test(tc, capture_500_then_success);
    tcase_add_test(tc, capture_failing_for_good_voids_and_releases);
    tcase_add_test(tc, lost_capture_answer_charges_once);
    tcase_add_test(tc, same_key_replays_byte_for_byte);
    tcase_add_test(tc, same_key_while_running_is_409);
    tcase_add_test(tc, mobile_flow_end_to_end);
    tcase_add_test(tc, unpaid_reservation_expires);
    tcase_add_test(tc, cancel_voids_or_refunds);
    tcase_add_test(tc, auth_is_enforced);
    tcase_add_test(tc, bad_bodies_change_nothing);
    tcase_add_test(tc, bytes_quoted_in_errors_stay_valid_utf8);
    tcase_add_test(tc, every_answer_carries_a_request_id);
    tcase_add_test(tc, admin_items_and_pages);
    tcase_add_test(tc, out_of_stock_answer_survives_a_crash);
    tcase_add_test(tc, recovery_leaves_an_order_being_driven_alone);
    return s;
}

int main(void)
{
    return co_test_run_http(checkout_suite());
}

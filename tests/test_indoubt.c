/* In-doubt commits: a statement commits on the server, then the connection
 * breaks before its answer reaches checkoutd (tests/pgproxy.c swallows it).
 * co_db_call runs the statement again on a new connection; each statement the
 * server runs that way must recognise its own earlier effect, so the request
 * ends as if nothing had happened: one order, one reservation, one charge, the
 * answer the shopper would have had, every invariant holding.
 *
 * Each case loses the answer of one statement (the needle: a function name in
 * its text, and how many such statements to let through first) in one flow. */
#include "pgproxy.h"
#include "race.h"
#include "server.h"

#include "co_sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static co_test_server srv;
static co_pgproxy *proxy;

/* checkoutd again, its database connections through a new proxy. */
static void through_proxy(void)
{
    char info[1024], env[1100];
    /* One batch of each kind in flight: concurrent requests then always
     * gather into batches (flow_batch). */
    const char *e[] = {env, "CHECKOUT_BATCH_INFLIGHT=1", NULL};

    proxy = co_pgproxy_start(PQhost(srv.conn), PQport(srv.conn));
    co_pgproxy_conninfo(proxy, srv.conn, srv.db.name, info, sizeof info);
    snprintf(env, sizeof env, "DATABASE_URL=%s", info);
    ck_assert(co_test_server_restart(&srv, e));
}

static void start(void)
{
    co_test_server_start_hooked(&srv);
    through_proxy();
}

static void stop(void)
{
    if (srv.server.pid != 0 || srv.mock.pid != 0)
        co_test_server_stop(&srv);
    if (proxy != NULL)
        co_pgproxy_stop(proxy);
    proxy = NULL;
}

static long long db_ll1(const char *sql, const char *param)
{
    return co_test_ll1(srv.conn, sql, param);
}

/* The order's history has each state once and ends where the order is. */
static void expect_clean_history(const char *order)
{
    ck_assert_int_eq(db_ll1("SELECT count(*) FROM (SELECT to_status FROM order_history"
                            " WHERE order_id = $1 GROUP BY 1 HAVING count(*) > 1) d", order), 0);
    ck_assert_int_eq(db_ll1("SELECT count(*) FROM orders o WHERE id = $1 AND o.status <>"
                            " (SELECT h.to_status FROM order_history h"
                            "   WHERE h.order_id = o.id ORDER BY h.id DESC LIMIT 1)", order), 0);
}

/* ------------------------------------------------------------ the flows */

static char item[37], user[37];

/* A paid order of 2 units: confirmed, captured once. */
static void server_checkout(char order[37])
{
    char cart[256], pi[64];

    co_test_cart(cart, sizeof cart, item, 2, "pm_card_visa");
    co_test_checkout_order(&srv, user, "k1", cart, 201, order, pi);
}

/* The mobile flow, paid by the app at the mock; captured by the webhook, or
 * by POST /v1/orders/{id}/confirm when confirm. */
static void mobile_checkout(char order[37], bool confirm)
{
    char cart[256], pi[64];

    co_test_cart(cart, sizeof cart, item, 2, NULL);
    co_test_checkout_order(&srv, user, "k1", cart, 202, order, pi);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    if (confirm) {
        co_http_resp r = {0};

        ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
        co_http_resp_free(&r);
    }
    ck_assert_str_eq(co_test_wait_status(&srv, order, CO_TEST_TERMINAL, 15000), "confirmed");
}

/* The money and stock of one confirmed order of 2 units out of 5. */
static void expect_confirmed(const char *order)
{
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), 1);
    ck_assert_int_eq(db_ll1("SELECT count(*) FROM stock_ledger WHERE order_id = $1", order), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 0);
}

static void flow_server(void)
{
    char order[37];

    server_checkout(order);
    expect_confirmed(order);
    expect_clean_history(order);
}

static void flow_mobile_confirm(void)
{
    char order[37];

    mobile_checkout(order, true);
    expect_confirmed(order);
    expect_clean_history(order);
}

static void flow_mobile_webhook(void)
{
    char order[37];

    mobile_checkout(order, false);
    expect_confirmed(order);
    expect_clean_history(order);
}

/* A confirmed order cancelled by its shopper: refunded once, stock back. */
static void flow_cancel(void)
{
    char order[37];
    co_http_resp r = {0};

    server_checkout(order);
    co_pgproxy_lose_answer(proxy, "co_transition(", 0);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "refunded", 15000), "refunded");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    ck_assert_int_eq(db_ll1("SELECT count(*) FROM stock_ledger WHERE order_id = $1"
                            " AND kind = 'release'", order), 1);
}

/* POST /v1/admin/items: one item made, and answered 201 as made. */
static void flow_item_create(void)
{
    co_http_resp r = {0};
    const char *body = "{\"sku\":\"new-sku\",\"name\":\"Phone\",\"price\":1200,"
                       "\"currency\":\"usd\",\"stock\":7}";
    json_t *j;

    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY, body, &r),
                     201);
    j = co_http_json(&r);
    ck_assert_str_eq(co_test_jstr(j, "sku", NULL), "new-sku");
    ck_assert_int_eq(co_test_stock(&srv, co_test_jstr(j, "id", NULL)), 7);
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM items WHERE sku = 'new-sku'"), 1);
}

/* A signed restock: applied once, answered as applied. */
static void flow_restock(void)
{
    char body[256], url[512], sig[CO_SIG_HEADER_MAX], hdr[CO_SIG_HEADER_MAX + 32];
    const char *headers[3] = {"Content-Type: application/json", hdr, NULL};
    co_http_resp r = {0};
    json_t *j;

    snprintf(body, sizeof body, "{\"event_id\":\"rs_1\",\"item_id\":\"%s\",\"quantity\":4}", item);
    co_sig_header(CO_TEST_RESTOCK_SECRET, time(NULL), body, strlen(body), sig);
    snprintf(hdr, sizeof hdr, "Restock-Signature: %s", sig);
    snprintf(url, sizeof url, "%s/webhooks/restock", srv.url);
    ck_assert(co_http("POST", url, headers, body, strlen(body), &r));
    ck_assert_msg(r.status == 200, "restock: %ld %s", r.status, r.body);
    j = co_http_json(&r);
    ck_assert_msg(json_is_true(json_object_get(j, "applied")), "restock answer: %s", r.body);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "stock")), 9);
    json_decref(j);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 9);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM stock_ledger"
                                          " WHERE kind = 'restock'"), 1);
}

/* 16 shoppers at once for 16 units: their first commits and their moves go
 * in batches (sql/0017, sql/0018); all 16 confirmed, each captured once,
 * each answered 201 and that answer stored. */
#define BATCHED 16

static void flow_batch(void)
{
    char hot[37], body[256];
    static co_test_racer rs[BATCHED];
    int created = 0;

    co_test_item(srv.conn, "batched", 1000, BATCHED, hot);
    co_test_cart(body, sizeof body, hot, 1, "pm_card_visa");
    for (int i = 0; i < BATCHED; i++)
        rs[i] = (co_test_racer){.s = &srv, .body = body};
    co_test_race(BATCHED, co_test_race_checkout, rs, sizeof rs[0]);
    for (int i = 0; i < BATCHED; i++)
        created += rs[i].status == 201;
    ck_assert_int_eq(created, BATCHED);
    ck_assert_int_eq(co_test_stock(&srv, hot), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), BATCHED);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"
                                          " WHERE status = 'confirmed'"), BATCHED);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM checkout_requests"
                                          " WHERE response_status = 201"), BATCHED);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM stock_ledger"
                                          " WHERE kind = 'reserve'"), BATCHED);
}

/* ------------------------------------------------------------ the table */

typedef struct {
    const char *name;
    const char *needle; /* a word of the statement whose answer is lost; NULL: the flow arms */
    int skip;           /* such statements let through first */
    void (*flow)(void);
} lost_case;

static const lost_case lost_cases[] = {
    {"checkout_begin", "co_checkout_begin", 0, flow_server},
    {"checkout_transition", "co_transition(", 0, flow_server},
    {"mobile_checkout_begin", "co_checkout_begin", 0, flow_mobile_confirm},
    {"mobile_awaiting_payment", "co_transition(", 0, flow_mobile_confirm},
    {"mobile_confirm_capture", "co_transition(", 1, flow_mobile_confirm},
    {"webhook_capture", "co_transition(", 1, flow_mobile_webhook},
    {"webhook_event_lookup", "co_event_order", 0, flow_mobile_webhook},
    {"cancel_refund", NULL, 0, flow_cancel},
    {"admin_item_create", "co_create_item", 0, flow_item_create},
    {"restock", "co_restock(", 0, flow_restock},
    {"checkout_begin_batch", "co_checkout_begin_many", 0, flow_batch},
    {"transition_batch", "co_transition_many", 0, flow_batch},
};

static void lost_case_test(int i)
{
    const lost_case *c = &lost_cases[i];

    start();
    co_test_item(srv.conn, "doubt", 2500, 5, item);
    co_test_uuid(user);
    if (c->needle != NULL)
        co_pgproxy_lose_answer(proxy, c->needle, c->skip);
    c->flow();
    ck_assert_msg(co_pgproxy_lost(proxy) == 1, "%s: no answer was lost (the needle %s, skip %d)",
                  c->name, c->needle, c->skip);
    co_test_invariants(&srv, true);
}

START_TEST(lost_answer)
{
    lost_case_test(_i);
}
END_TEST

static Suite *indoubt_suite(void)
{
    Suite *s = suite_create("indoubt");
    TCase *tc = co_test_tcase(s, "lost_answer", 60);

    tcase_add_checked_fixture(tc, NULL, stop);
    tcase_add_loop_test(tc, lost_answer, 0, (int)(sizeof lost_cases / sizeof lost_cases[0]));
    return s;
}

int main(void)
{
    return co_test_run_http(indoubt_suite());
}

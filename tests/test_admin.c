/* Lists and operator tools over HTTP: GET /v1/items, GET /v1/orders, the
 * filters of GET /v1/admin/orders, POST /v1/admin/orders/{id}/drive and
 * /resolve (each rule), 409 item_in_stock, the checkout answer's id, and the
 * history reason of every hop. Recovery is kept out of the way (its sweep
 * runs every ten minutes here), so a stuck order stays stuck until a test moves it. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_test_server srv;

static const char *const env[] = {"RECOVERY_INTERVAL_MS=600000", "STRIPE_MAX_RETRIES=0",
                                  NULL};

#define REFUND "POST /v1/refunds"
#define CANCEL "POST /v1/payment_intents/*/cancel"

/* ------------------------------------------------------------ helpers */

/* A call that must answer want; returns its JSON (the caller decrefs). */
static json_t *call_json(const char *method, const char *path, const char *bearer,
                         const char *body, long want)
{
    co_http_resp r = {0};
    long got = co_test_call(&srv, method, path, bearer, body, &r);
    json_t *j;

    ck_assert_msg(got == want, "%s %s: %ld (want %ld) %s", method, path, got, want, r.body);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* A call that must be refused with status, code and (when param is not NULL)
 * that param. */
static void refused(const char *method, const char *path, const char *bearer, const char *body,
                    long status, const char *code, const char *param)
{
    json_t *j = call_json(method, path, bearer, body, status);

    ck_assert_msg(strcmp(co_test_jstr(j, "error", "code"), code) == 0, "%s %s: code %s", method,
                  path, co_test_jstr(j, "error", "code"));
    if (param != NULL)
        ck_assert_msg(strcmp(co_test_jstr(j, "error", "param"), param) == 0, "%s %s: param %s",
                      method, path, co_test_jstr(j, "error", "param"));
    json_decref(j);
}

static char *shopper_token(const char *user)
{
    return co_test_token(user, 600);
}

/* An order's history rows as "from>to:reason|..." (the database's order). */
static void history(const char *order, char *out, size_t n)
{
    const char *p[1] = {order};

    co_test_strp(srv.conn, out, n,
                 "SELECT string_agg(coalesce(from_status, '') || '>' || to_status || ':' ||"
                 "                  coalesce(reason, ''), '|' ORDER BY id)"
                 "  FROM order_history WHERE order_id = $1",
                 1, p);
}

static long long history_rows(const char *order)
{
    return co_test_ll1(srv.conn, "SELECT count(*) FROM order_history WHERE order_id = $1",
                       order);
}

/* The reason of the order's last history row. */
static void last_reason(const char *order, char *out, size_t n)
{
    const char *p[1] = {order};

    co_test_strp(srv.conn, out, n,
                 "SELECT reason FROM order_history WHERE order_id = $1 ORDER BY id DESC LIMIT 1",
                 1, p);
}

/* A confirmed order of a new shopper whose refund fails at the provider: the
 * shopper's cancel leaves it refunding. */
static void stuck_refunding(const char *item, char order[37], char pi[64])
{
    char body[256], user[37];
    co_http_resp r = {0};

    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_checkout_order(&srv, user, "k", body, 201, order, pi);
    co_test_fault(&srv, REFUND, "status_500", 1000, 0);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 202);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");
}

/* A mobile order of a new shopper whose void fails at the provider: the
 * shopper's cancel leaves it voiding (towards cancelled). */
static void stuck_voiding(const char *item, char order[37], char pi[64])
{
    char body[256], user[37];
    co_http_resp r = {0};

    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, user, "k", body, 202, order, pi);
    co_test_fault(&srv, CANCEL, "status_500", 1000, 0);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 202);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "voiding");
}

static void clear_faults(void)
{
    co_http_resp r = {0};

    ck_assert_int_lt(co_test_mock(&srv, "DELETE", "/_mock/faults", NULL, NULL, &r), 300);
    co_http_resp_free(&r);
}

/* POST /v1/admin/orders/{order}/resolve with reason; returns the answer's JSON. */
static json_t *resolve(const char *order, const char *reason, long want)
{
    char path[160], body[1200];

    snprintf(path, sizeof path, "/v1/admin/orders/%s/resolve", order);
    snprintf(body, sizeof body, "{\"reason\":\"%s\"}", reason);
    return call_json("POST", path, CO_TEST_ADMIN_KEY, body, want);
}

/* ------------------------------------------------------------ GET /v1/items */

START_TEST(items_list_pages_every_item_once_by_sku)
{
    enum { N = 23 };
    char ids[N][37], sku[32], path[200], after[37] = "", prev_sku[64] = "";
    int seen = 0, pages = 0;
    json_t *j, *one;

    /* Created out of sku order, so the list's order is its own doing. */
    for (int i = 0; i < N; i++) {
        snprintf(sku, sizeof sku, "sku-%02d", (i * 7) % N);
        co_test_item(srv.conn, sku, 100 + i, i % 3, ids[i]);
    }
    while (true) {
        json_t *data;
        size_t k;
        json_t *it;

        if (after[0])
            snprintf(path, sizeof path, "/v1/items?limit=5&starting_after=%s", after);
        else
            snprintf(path, sizeof path, "/v1/items?limit=5");
        j = call_json("GET", path, NULL, NULL, 200);
        ck_assert_str_eq(co_test_jstr(j, "object", NULL), "list");
        ck_assert_str_eq(co_test_jstr(j, "url", NULL), "/v1/items");
        data = json_object_get(j, "data");
        ck_assert(json_array_size(data) <= 5);
        json_array_foreach(data, k, it) {
            const char *s = co_test_jstr(it, "sku", NULL);

            ck_assert_msg(strcmp(s, prev_sku) > 0, "%s after %s", s, prev_sku);
            snprintf(prev_sku, sizeof prev_sku, "%s", s);
            snprintf(after, sizeof after, "%s", co_test_jstr(it, "id", NULL));
            seen++;
        }
        pages++;
        if (!json_is_true(json_object_get(j, "has_more"))) {
            json_decref(j);
            break;
        }
        ck_assert_int_eq(json_array_size(data), 5);
        json_decref(j);
        ck_assert_int_lt(pages, 10);
    }
    ck_assert_int_eq(seen, N);
    ck_assert_int_eq(pages, 5);
    /* Default limit 10; each item exactly as GET /v1/items/{id} shows it. */
    j = call_json("GET", "/v1/items", NULL, NULL, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 10);
    ck_assert(json_is_true(json_object_get(j, "has_more")));
    snprintf(path, sizeof path, "/v1/items/%s",
             co_test_jstr(json_array_get(json_object_get(j, "data"), 3), "id", NULL));
    one = call_json("GET", path, NULL, NULL, 200);
    ck_assert(json_equal(one, json_array_get(json_object_get(j, "data"), 3)));
    json_decref(one);
    json_decref(j);
}
END_TEST

START_TEST(items_list_bad_params_are_400_naming_the_param)
{
    char id[37], path[200], unknown[37];

    co_test_item(srv.conn, "only", 100, 1, id);
    refused("GET", "/v1/items?limit=0", NULL, NULL, 400, "invalid_request", "limit");
    refused("GET", "/v1/items?limit=101", NULL, NULL, 400, "invalid_request", "limit");
    refused("GET", "/v1/items?limit=3x", NULL, NULL, 400, "invalid_request", "limit");
    refused("GET", "/v1/items?limit=", NULL, NULL, 400, "invalid_request", "limit");
    refused("GET", "/v1/items?starting_after=nope", NULL, NULL, 400, "invalid_request",
            "starting_after");
    co_test_uuid(unknown);
    snprintf(path, sizeof path, "/v1/items?starting_after=%s", unknown);
    refused("GET", path, NULL, NULL, 400, "invalid_request", "starting_after");
    /* The last item as cursor: an empty last page. */
    snprintf(path, sizeof path, "/v1/items?starting_after=%s&limit=100", id);
    {
        json_t *j = call_json("GET", path, NULL, NULL, 200);

        ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 0);
        ck_assert(json_is_false(json_object_get(j, "has_more")));
        json_decref(j);
    }
}
END_TEST

/* ------------------------------------------------------------ GET /v1/orders */

START_TEST(orders_list_is_the_shoppers_own_newest_first)
{
    char item[37], a[37], b[37], body[256], key[16], order[37], path[200], after[37] = "";
    char a_orders[5][37], b_orders[2][37];
    char *ta, *tb;
    int seen = 0;
    json_t *j;

    co_test_item(srv.conn, "ol", 100, 50, item);
    co_test_uuid(a);
    co_test_uuid(b);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "a%d", i);
        co_test_checkout_order(&srv, a, key, body, 201, a_orders[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "b%d", i);
        co_test_checkout_order(&srv, b, key, body, 201, b_orders[i], NULL);
    }
    ta = shopper_token(a);
    tb = shopper_token(b);
    /* A's five in pages of two, newest first: a_orders[4] .. a_orders[0]. */
    for (int page = 0; page < 3; page++) {
        json_t *data, *it;
        size_t k;

        if (after[0])
            snprintf(path, sizeof path, "/v1/orders?limit=2&starting_after=%s", after);
        else
            snprintf(path, sizeof path, "/v1/orders?limit=2");
        j = call_json("GET", path, ta, NULL, 200);
        ck_assert_str_eq(co_test_jstr(j, "object", NULL), "list");
        ck_assert_str_eq(co_test_jstr(j, "url", NULL), "/v1/orders");
        data = json_object_get(j, "data");
        json_array_foreach(data, k, it) {
            json_t *one;

            ck_assert_str_eq(co_test_jstr(it, "user_id", NULL), a);
            ck_assert_str_eq(co_test_jstr(it, "id", NULL), a_orders[4 - seen]);
            snprintf(order, sizeof order, "%s", co_test_jstr(it, "id", NULL));
            snprintf(path, sizeof path, "/v1/orders/%s", order);
            one = call_json("GET", path, ta, NULL, 200);
            ck_assert(json_equal(one, it)); /* exactly the order object */
            json_decref(one);
            snprintf(after, sizeof after, "%s", order);
            seen++;
        }
        ck_assert(json_is_true(json_object_get(j, "has_more")) == (page < 2));
        json_decref(j);
    }
    ck_assert_int_eq(seen, 5);
    /* B sees only B's; another's order is no cursor (as unknown as any). */
    j = call_json("GET", "/v1/orders?limit=100", tb, NULL, 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "data")), 2);
    ck_assert_str_eq(co_test_jstr(json_array_get(json_object_get(j, "data"), 0), "id", NULL),
                     b_orders[1]);
    json_decref(j);
    snprintf(path, sizeof path, "/v1/orders?starting_after=%s", a_orders[2]);
    refused("GET", path, tb, NULL, 400, "invalid_request", "starting_after");
    refused("GET", "/v1/orders?limit=0", tb, NULL, 400, "invalid_request", "limit");
    refused("GET", "/v1/orders?starting_after=x", tb, NULL, 400, "invalid_request",
            "starting_after");
    refused("GET", "/v1/orders", NULL, NULL, 401, "unauthenticated", NULL);
    refused("GET", "/v1/orders", CO_TEST_ADMIN_KEY, NULL, 401, "unauthenticated", NULL);
    free(ta);
    free(tb);
}
END_TEST

/* ------------------------------------------------------ GET /v1/admin/orders */

/* Orders written straight into the table: statuses, ages and leases the
 * filters tell apart. Row i: created i minutes ago; status by i % 6 (ones the
 * recovery sweep leaves alone, so nothing moves them while pages are read);
 * lease held (i % 3 == 0), lapsed (1) or none (2). */
#define ROWS 60
static void seed_orders(void)
{
    co_test_exec(srv.conn,
                 "INSERT INTO orders (id, user_id, status, flow, amount, currency,"
                 "                    failure_code, compensate_to, lease_owner, lease_until,"
                 "                    created_at)"
                 " SELECT gen_random_uuid(), gen_random_uuid(),"
                 "        (ARRAY['pending','awaiting_payment','confirmed','failed','cancelled',"
                 "               'expired'])[i % 6 + 1], 'mobile', 100, 'usd',"
                 "        CASE WHEN i % 6 = 3 THEN 'payment_declined' END, NULL,"
                 "        CASE WHEN i % 3 < 2 THEN 'elsewhere:1' END,"
                 "        CASE WHEN i % 3 = 0 THEN now() + interval '1 hour'"
                 "             WHEN i % 3 = 1 THEN now() - interval '1 hour' END,"
                 "        date_trunc('second', now()) - make_interval(mins => i)"
                 "   FROM generate_series(1, 60) AS i");
}

/* Pages through GET path (which has a '?') with limit; checks the order
 * (newest first), that each row comes once, and that each passes the SQL
 * condition cond over orders; returns how many rows came. */
static int walk(const char *path, int limit, const char *cond)
{
    char url[400], after[37] = "", prev_at[40] = "9999", sql[600];
    int seen = 0, pages = 0;

    while (true) {
        json_t *j, *data, *it;
        size_t k;

        snprintf(url, sizeof url, "%s%slimit=%d%s%s", path, strchr(path, '?') ? "&" : "?",
                 limit, after[0] ? "&starting_after=" : "", after);
        j = call_json("GET", url, CO_TEST_ADMIN_KEY, NULL, 200);
        ck_assert_str_eq(co_test_jstr(j, "object", NULL), "list");
        ck_assert_str_eq(co_test_jstr(j, "url", NULL), "/v1/admin/orders");
        data = json_object_get(j, "data");
        json_array_foreach(data, k, it) {
            const char *at = co_test_jstr(it, "created_at", NULL);
            const char *id = co_test_jstr(it, "id", NULL);
            json_t *owner = json_object_get(it, "lease_owner");
            json_t *until = json_object_get(it, "lease_expires_at");
            const char *p[3] = {id, json_string_value(owner), json_string_value(until)};

            ck_assert_msg(strcmp(at, prev_at) <= 0, "%s after %s", at, prev_at);
            snprintf(prev_at, sizeof prev_at, "%s", at);
            ck_assert(owner != NULL && (json_is_null(owner) || json_is_string(owner)));
            ck_assert(until != NULL && (json_is_null(until) || json_is_string(until)));
            /* The lease as the table has it. */
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM orders WHERE id = $1 AND (%s)"
                     "   AND lease_owner IS NOT DISTINCT FROM $2"
                     "   AND co_iso(lease_until) IS NOT DISTINCT FROM $3", cond);
            ck_assert_msg(co_test_llp(srv.conn, sql, 3, p) == 1, "%s fails %s", id, cond);
            snprintf(after, sizeof after, "%s", id);
            seen++;
        }
        pages++;
        ck_assert_int_lt(pages, 100);
        if (!json_is_true(json_object_get(j, "has_more"))) {
            json_decref(j);
            break;
        }
        ck_assert_int_eq(json_array_size(data), limit);
        json_decref(j);
    }
    /* Every row once: as many as match, and no id twice (checked by count). */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM orders WHERE %s", cond);
    ck_assert_int_eq(seen, co_test_ll(srv.conn, sql));
    return seen;
}

START_TEST(admin_orders_filters_and_keysets)
{
    char path[200], before[40], cond[300];

    seed_orders();
    ck_assert_int_eq(walk("/v1/admin/orders", 7, "true"), ROWS);
    ck_assert_int_eq(walk("/v1/admin/orders?status=pending,awaiting_payment", 4,
                          "status IN ('pending', 'awaiting_payment')"), 20);
    ck_assert_int_eq(walk("/v1/admin/orders?status=failed", 3, "status = 'failed'"), 10);
    ck_assert_int_eq(walk("/v1/admin/orders?lease=held", 6, "lease_until >= now()"), 20);
    ck_assert_int_eq(walk("/v1/admin/orders?lease=lapsed", 6, "lease_until < now()"), 20);
    ck_assert_int_eq(walk("/v1/admin/orders?lease=none", 6, "lease_until IS NULL"), 20);
    /* Made over half an hour ago: the operator's usual question. */
    co_test_strp(srv.conn, before, sizeof before,
                 "SELECT co_iso(date_trunc('second', now()) - interval '30 minutes')", 0, NULL);
    snprintf(path, sizeof path, "/v1/admin/orders?created_before=%s", before);
    snprintf(cond, sizeof cond, "created_at < '%s'", before);
    ck_assert_int_ge(walk(path, 8, cond), 30);
    snprintf(path, sizeof path,
             "/v1/admin/orders?status=pending,awaiting_payment,failed&lease=lapsed"
             "&created_before=%s", before);
    snprintf(cond, sizeof cond,
             "status IN ('pending', 'awaiting_payment', 'failed') AND lease_until < now()"
             " AND created_at < '%s'", before);
    ck_assert_int_ge(walk(path, 2, cond), 5);
}
END_TEST

START_TEST(admin_orders_bad_params_and_auth)
{
    char user[37], *tok, path[200];

    co_test_uuid(user);
    tok = shopper_token(user);
    refused("GET", "/v1/admin/orders", NULL, NULL, 401, "unauthenticated", NULL);
    refused("GET", "/v1/admin/orders", tok, NULL, 401, "unauthenticated", NULL);
    refused("GET", "/v1/admin/orders?status=stuck", CO_TEST_ADMIN_KEY, NULL, 400,
            "invalid_request", "status");
    refused("GET", "/v1/admin/orders?status=voiding,", CO_TEST_ADMIN_KEY, NULL, 400,
            "invalid_request", "status");
    refused("GET", "/v1/admin/orders?status=", CO_TEST_ADMIN_KEY, NULL, 400, "invalid_request",
            "status");
    refused("GET", "/v1/admin/orders?lease=maybe", CO_TEST_ADMIN_KEY, NULL, 400,
            "invalid_request", "lease");
    refused("GET", "/v1/admin/orders?created_before=yesterday", CO_TEST_ADMIN_KEY, NULL, 400,
            "invalid_request", "created_before");
    refused("GET", "/v1/admin/orders?created_before=2026-02-30T00:00:00Z", CO_TEST_ADMIN_KEY,
            NULL, 400, "invalid_request", "created_before");
    refused("GET", "/v1/admin/orders?created_before=0000-01-01T00:00:00Z", CO_TEST_ADMIN_KEY,
            NULL, 400, "invalid_request", "created_before");
    refused("GET", "/v1/admin/orders?created_before=2026-12-01T12:00:00%2B01:00",
            CO_TEST_ADMIN_KEY, NULL, 400, "invalid_request", "created_before");
    refused("GET", "/v1/admin/orders?limit=101", CO_TEST_ADMIN_KEY, NULL, 400,
            "invalid_request", "limit");
    snprintf(path, sizeof path, "/v1/admin/orders?starting_after=%s", user);
    refused("GET", path, CO_TEST_ADMIN_KEY, NULL, 400, "invalid_request", "starting_after");
    /* A fraction of a second is RFC 3339 too. */
    json_decref(call_json("GET", "/v1/admin/orders?created_before=2026-12-01T12:00:00.5Z",
                          CO_TEST_ADMIN_KEY, NULL, 200));
    free(tok);
}
END_TEST

/* The pages walk indexes: on a few thousand rows no page reads a table
 * through a sequential scan (the statistics of this very transaction say, on
 * a backend of its own, never one of pgbouncer's pool: Postgres 15 keeps
 * counts it has not flushed yet in a backend's transaction view). */
static void no_seq_scan(const char *call, const char *table)
{
    char sql[600];
    PGresult *res;
    PGconn *c = co_test_connect_direct(&srv.db);

    co_test_exec(c, "BEGIN");
    co_test_exec(c, call);
    snprintf(sql, sizeof sql,
             "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
             " WHERE relname = '%s'", table);
    res = PQexec(c, sql);
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(res), 1);
    ck_assert_msg(strcmp(PQgetvalue(res, 0, 0), "0") == 0, "%s: %s sequential scans of %s",
                  call, PQgetvalue(res, 0, 0), table);
    ck_assert_msg(strcmp(PQgetvalue(res, 0, 1), "0") != 0, "%s: no index scan of %s", call,
                  table);
    PQclear(res);
    co_test_exec(c, "COMMIT");
    PQfinish(c);
}

START_TEST(pages_walk_indexes_not_tables)
{
    char sql[900], id[37];

    co_test_exec(srv.conn,
                 "INSERT INTO orders (id, user_id, status, flow, amount, currency,"
                 "                    failure_code, compensate_to, created_at)"
                 " SELECT gen_random_uuid(), CASE WHEN i % 10 = 0 THEN"
                 "        '00000000-0000-0000-0000-00000000000a'::uuid ELSE gen_random_uuid() END,"
                 "        (ARRAY['confirmed','failed','pending'])[i % 3 + 1], 'server', 100,"
                 "        'usd', CASE WHEN i % 3 = 1 THEN 'payment_declined' END, NULL,"
                 "        now() - make_interval(secs => i)"
                 "   FROM generate_series(1, 4000) AS i");
    co_test_exec(srv.conn,
                 "INSERT INTO items (sku, name, price, currency, stock)"
                 " SELECT 'sku-' || i, 'n', 100, 'usd', 0 FROM generate_series(1, 3000) AS i");
    co_test_exec(srv.conn, "ANALYZE orders");
    co_test_exec(srv.conn, "ANALYZE items");
    co_test_strp(srv.conn, id, sizeof id,
                 "SELECT id FROM orders ORDER BY created_at DESC OFFSET 2000 LIMIT 1", 0, NULL);
    no_seq_scan("SELECT co_admin_orders_page(NULL, NULL, NULL, 100, NULL)", "orders");
    snprintf(sql, sizeof sql, "SELECT co_admin_orders_page(NULL, NULL, NULL, 100, '%s')", id);
    no_seq_scan(sql, "orders");
    no_seq_scan("SELECT co_admin_orders_page('{pending}', now() - interval '10 minutes',"
                " 'none', 100, NULL)", "orders");
    no_seq_scan("SELECT co_user_orders_page('00000000-0000-0000-0000-00000000000a', 100, NULL)",
                "orders");
    co_test_strp(srv.conn, id, sizeof id, "SELECT id FROM items WHERE sku = 'sku-2000'", 0,
                 NULL);
    snprintf(sql, sizeof sql, "SELECT co_items_page(100, '%s')", id);
    no_seq_scan(sql, "items");
}
END_TEST

/* ------------------------------------------------ POST .../drive */

START_TEST(drive_runs_a_stalled_order_now)
{
    char item[37], order[37], pi[64], path[200], missing[37];
    json_t *j;

    co_test_item(srv.conn, "dr", 100, 5, item);
    stuck_refunding(item, order, pi);
    clear_faults();
    snprintf(path, sizeof path, "/v1/admin/orders/%s/drive", order);
    /* Another process holds the lease: left to it. */
    co_test_exec(srv.conn, "UPDATE orders SET lease_owner = 'elsewhere:1',"
                           " lease_until = now() + interval '1 hour' WHERE status = 'refunding'");
    refused("POST", path, CO_TEST_ADMIN_KEY, NULL, 409, "order_in_progress", NULL);
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 0);
    /* Its lease lapsed: stalled, and the operator drives it now. */
    co_test_exec(srv.conn, "UPDATE orders SET lease_until = now() - interval '1 second'"
                           " WHERE status = 'refunding'");
    j = call_json("POST", path, CO_TEST_ADMIN_KEY, "{}", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "refunded");
    ck_assert_str_eq(co_test_jstr(j, "id", NULL), order);
    ck_assert(json_is_null(json_object_get(j, "lease_owner")));
    ck_assert(json_is_null(json_object_get(j, "lease_expires_at")));
    json_decref(j);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    /* Ended: nothing to drive, the order as it is. */
    j = call_json("POST", path, CO_TEST_ADMIN_KEY, NULL, 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "refunded");
    json_decref(j);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    /* Bad calls. */
    refused("POST", path, CO_TEST_ADMIN_KEY, "{\"now\":true}", 400, "invalid_request", "now");
    refused("POST", path, NULL, NULL, 401, "unauthenticated", NULL);
    co_test_uuid(missing);
    snprintf(path, sizeof path, "/v1/admin/orders/%s/drive", missing);
    refused("POST", path, CO_TEST_ADMIN_KEY, NULL, 404, "order_not_found", NULL);
    refused("POST", "/v1/admin/orders/nope/drive", CO_TEST_ADMIN_KEY, NULL, 404,
            "order_not_found", NULL);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------ POST .../resolve */

/* The provider restarted and forgot the intent: no refund can ever be made,
 * so the order ends refunded, stock back, the history saying why. */
START_TEST(resolve_intent_unknown_to_the_provider_ends_compensated)
{
    char item[37], order[37], pi[64], reason[2200], hist[4096];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "ru", 100, 5, item);
    stuck_refunding(item, order, pi);
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/_mock/reset", NULL, NULL, &r), 200);
    co_http_resp_free(&r);
    /* Driving cannot end it: the refund and the retrieve are both 404. */
    {
        char path[200];
        json_t *d;

        snprintf(path, sizeof path, "/v1/admin/orders/%s/drive", order);
        d = call_json("POST", path, CO_TEST_ADMIN_KEY, NULL, 200);
        ck_assert_str_eq(co_test_jstr(d, "status", NULL), "refunding");
        json_decref(d);
    }
    j = resolve(order, "provider restarted \\\"pi\\\" lost", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "refunded");
    json_decref(j);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    ck_assert_int_eq(co_test_audit(srv.conn), 0);
    last_reason(order, reason, sizeof reason);
    ck_assert_str_eq(reason, "no_intent_at_provider (resolved by rule no_intent_at_provider: "
                             "provider restarted \"pi\" lost)");
    history(order, hist, sizeof hist);
    ck_assert_msg(strstr(hist, "refunding>refunded:no_intent_at_provider") != NULL, "%s", hist);
    /* Ended now: a second resolve is order_terminal, and changes nothing. */
    refused("POST", "/v1/admin/orders/x/resolve", CO_TEST_ADMIN_KEY, "{\"reason\":\"r\"}", 404,
            "order_not_found", NULL);
    j = resolve(order, "again", 409);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "order_terminal");
    json_decref(j);
}
END_TEST

/* A voiding order pointing at an intent the provider never had. */
START_TEST(resolve_voiding_with_an_intent_the_provider_never_had)
{
    char item[37], order[37], pi[64], reason[600];
    const char *p[1];
    json_t *j;

    co_test_item(srv.conn, "rv", 100, 2, item);
    stuck_voiding(item, order, pi);
    clear_faults();
    p[0] = order;
    co_test_llp(srv.conn, "WITH u AS (UPDATE orders SET payment_intent = 'pi_never_made'"
                          " WHERE id = $1 RETURNING 1) SELECT count(*) FROM u", 1, p);
    j = resolve(order, "intent id mistyped by an import", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "cancelled");
    json_decref(j);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);
    last_reason(order, reason, sizeof reason);
    ck_assert_str_eq(reason, "no_intent_at_provider (resolved by rule no_intent_at_provider: "
                             "intent id mistyped by an import)");
}
END_TEST

/* The refund was made at the provider by hand (its dashboard): the order
 * matches it, with no second refund. */
START_TEST(resolve_refund_done_at_the_provider_matches_it)
{
    char item[37], order[37], pi[64], form[128], reason[600];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "rr", 100, 3, item);
    stuck_refunding(item, order, pi);
    clear_faults();
    snprintf(form, sizeof form, "payment_intent=%s", pi);
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/refunds", form, NULL, &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    j = resolve(order, "refunded from the dashboard", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "refunded");
    json_decref(j);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    last_reason(order, reason, sizeof reason);
    ck_assert_str_eq(reason, "refunded_at_provider (resolved by rule done_at_provider: "
                             "refunded from the dashboard)");
    co_test_invariants(&srv, true);
}
END_TEST

/* A voiding order whose intent was canceled at the provider ends as its
 * compensation meant; one whose intent was captured and refunded there
 * passes through refunding to refunded (two hops, each its reason). */
START_TEST(resolve_void_done_at_the_provider_matches_it)
{
    char item[37], order[37], pi[64], path[200], reason[600], hist[4096];
    char order2[37], pi2[64];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "rc", 100, 4, item);
    stuck_voiding(item, order, pi);
    stuck_voiding(item, order2, pi2);
    clear_faults();
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", pi);
    ck_assert_int_eq(co_test_mock(&srv, "POST", path, "", NULL, &r), 200);
    co_http_resp_free(&r);
    j = resolve(order, "voided by hand", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "cancelled");
    json_decref(j);
    last_reason(order, reason, sizeof reason);
    ck_assert_str_eq(reason, "voided_at_provider (resolved by rule done_at_provider: "
                             "voided by hand)");
    /* The second: paid, captured and refunded at the provider meanwhile. */
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi2, "pm_card_visa"), 200);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/capture", pi2);
    ck_assert_int_eq(co_test_mock(&srv, "POST", path, "", NULL, &r), 200);
    co_http_resp_free(&r);
    snprintf(path, sizeof path, "payment_intent=%s", pi2);
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/refunds", path, NULL, &r), 200);
    co_http_resp_free(&r);
    j = resolve(order2, "paid late, refunded by support", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "refunded");
    json_decref(j);
    history(order2, hist, sizeof hist);
    ck_assert_msg(strstr(hist, "|voiding>refunding:refunding|refunding>refunded:"
                               "refunded_at_provider (resolved by rule done_at_provider: "
                               "paid late, refunded by support)") != NULL, "%s", hist);
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    co_test_invariants(&srv, true);
}
END_TEST

/* The provider still holds the money and refunds now: resolving is driving,
 * with the operator's reason in the history. */
START_TEST(resolve_money_still_held_drives_the_refund)
{
    char item[37], order[37], pi[64], reason[600];
    json_t *j;

    co_test_item(srv.conn, "rd", 100, 3, item);
    stuck_refunding(item, order, pi);
    clear_faults();
    j = resolve(order, "provider outage is over", 200);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "refunded");
    json_decref(j);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    last_reason(order, reason, sizeof reason);
    ck_assert_str_eq(reason, "refunded (resolved by rule drive: provider outage is over)");
    co_test_invariants(&srv, true);
}
END_TEST

/* No rule applies: 409 cannot_resolve saying the provider's state, nothing
 * changed. */
START_TEST(resolve_without_a_rule_is_409_and_changes_nothing)
{
    char item[37], order[37], pi[64], path[200], body[256], user[37], other[37], opi[64];
    char other_pi[64];
    const char *p[2];
    co_http_resp r = {0};
    long long rows;
    json_t *j, *pij;

    co_test_item(srv.conn, "rn", 100, 5, item);
    stuck_refunding(item, order, pi);
    rows = history_rows(order);
    /* Still failing at the provider: driving moves nothing. */
    j = resolve(order, "try", 409);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "cannot_resolve");
    ck_assert_str_eq(co_test_jstr(j, "error", "status"), "refunding");
    json_decref(j);
    clear_faults();
    /* A refunding order whose intent is an open authorization: no refund can
     * be made of it and it is not done either. */
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/payment_intents",
                                  "amount=100&currency=usd&payment_method=pm_card_visa"
                                  "&confirm=true&capture_method=manual"
                                  "&payment_method_types[0]=card", NULL, &r), 200);
    pij = co_http_json(&r);
    snprintf(other_pi, sizeof other_pi, "%s", co_test_jstr(pij, "id", NULL));
    json_decref(pij);
    co_http_resp_free(&r);
    p[0] = order;
    p[1] = other_pi;
    co_test_llp(srv.conn, "WITH u AS (UPDATE orders SET payment_intent = $2 WHERE id = $1"
                          " RETURNING 1) SELECT count(*) FROM u", 2, p);
    j = resolve(order, "try again", 409);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "cannot_resolve");
    ck_assert_msg(strstr(co_test_jstr(j, "error", "message"), "requires_capture") != NULL, "%s",
                  co_test_jstr(j, "error", "message"));
    json_decref(j);
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");
    ck_assert_int_eq(history_rows(order), rows);
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    /* An order that is not compensating. */
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, user, "m", body, 202, other, opi);
    j = resolve(other, "why not", 409);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "cannot_resolve");
    json_decref(j);
    ck_assert_str_eq(co_test_status(&srv, other), "awaiting_payment");
    /* Bad bodies, auth. */
    snprintf(path, sizeof path, "/v1/admin/orders/%s/resolve", order);
    refused("POST", path, CO_TEST_ADMIN_KEY, "{}", 400, "invalid_request", "reason");
    refused("POST", path, CO_TEST_ADMIN_KEY, "{\"reason\":\"\"}", 400, "invalid_request",
            "reason");
    refused("POST", path, CO_TEST_ADMIN_KEY, "{\"reason\":5}", 400, "invalid_request",
            "reason");
    refused("POST", path, CO_TEST_ADMIN_KEY, "{\"reason\":\"r\",\"force\":true}", 400,
            "invalid_request", "force");
    refused("POST", path, CO_TEST_ADMIN_KEY, NULL, 400, "invalid_json", NULL);
    {
        char longer[1100];

        memset(longer, 'x', 501);
        longer[501] = '\0';
        j = resolve(order, longer, 400);
        ck_assert_str_eq(co_test_jstr(j, "error", "param"), "reason");
        json_decref(j);
        /* 500 characters of two bytes each are 500 characters: taken (and
         * then no rule applies). */
        for (int i = 0; i < 500; i++)
            memcpy(longer + 2 * i, "\xc3\xa9", 2);
        longer[1000] = '\0';
        j = resolve(order, longer, 409);
        ck_assert_str_eq(co_test_jstr(j, "error", "code"), "cannot_resolve");
        json_decref(j);
    }
    refused("POST", path, NULL, "{\"reason\":\"r\"}", 401, "unauthenticated", NULL);
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");
    ck_assert_int_eq(history_rows(order), rows);
}
END_TEST

/* ------------------------------------------------ back-in-stock, answers, history */

START_TEST(subscribing_to_an_item_in_stock_is_409)
{
    char item[37], empty[37], user[37], path[200], *tok;

    co_test_item(srv.conn, "bis", 100, 1, item);
    co_test_item(srv.conn, "bis0", 100, 0, empty);
    co_test_uuid(user);
    tok = shopper_token(user);
    snprintf(path, sizeof path, "/v1/items/%s/back-in-stock", item);
    refused("POST", path, tok, NULL, 409, "item_in_stock", NULL);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM stock_subscriptions"), 0);
    snprintf(path, sizeof path, "/v1/items/%s/back-in-stock", empty);
    json_decref(call_json("POST", path, tok, NULL, 201));
    json_decref(call_json("POST", path, tok, NULL, 200));
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM stock_subscriptions"), 1);
    free(tok);
}
END_TEST

START_TEST(checkout_answers_carry_the_orders_id)
{
    char item[37], user[37], body[256], path[200];
    const char *modes[2] = {"pm_card_visa", NULL};
    long want[2] = {201, 202};

    co_test_item(srv.conn, "ans", 100, 5, item);
    co_test_uuid(user);
    for (int i = 0; i < 2; i++) {
        co_http_resp r = {0};
        json_t *j, *o;
        char key[16];

        snprintf(key, sizeof key, "k%d", i);
        co_test_cart(body, sizeof body, item, 1, modes[i]);
        ck_assert_int_eq(co_test_checkout(&srv, user, key, body, &r), want[i]);
        j = co_http_json(&r);
        co_http_resp_free(&r);
        ck_assert_str_eq(co_test_jstr(j, "id", NULL), co_test_jstr(j, "order_id", NULL));
        snprintf(path, sizeof path, "/v1/orders/%s", co_test_jstr(j, "id", NULL));
        o = call_json("GET", path, CO_TEST_ADMIN_KEY, NULL, 200);
        ck_assert_str_eq(co_test_jstr(o, "id", NULL), co_test_jstr(j, "id", NULL));
        ck_assert_int_eq(strlen(co_test_jstr(j, "id", NULL)), 36);
        json_decref(o);
        json_decref(j);
    }
}
END_TEST

START_TEST(history_gives_each_hop_its_reason)
{
    char item[37], user[37], body[256], order[37], pi[64], hist[4096];
    co_http_resp r = {0};

    co_test_item(srv.conn, "hist", 100, 5, item);
    co_test_uuid(user);
    /* Server flow: one commit makes three hops. */
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_checkout_order(&srv, user, "s", body, 201, order, NULL);
    history(order, hist, sizeof hist);
    ck_assert_msg(strstr(hist, "|reserved>authorized:authorized|authorized>captured:captured"
                               "|captured>confirmed:confirmed") != NULL, "%s", hist);
    ck_assert_msg(strstr(hist, ">authorized:captured") == NULL, "%s", hist);
    /* Mobile flow, confirmed by the app: authorized, then capture and confirm. */
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, user, "m", body, 202, order, pi);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    history(order, hist, sizeof hist);
    ck_assert_msg(strstr(hist, "|reserved>awaiting_payment:payment_intent_created"
                               "|awaiting_payment>authorized:authorized"
                               "|authorized>captured:captured|captured>confirmed:confirmed") !=
                      NULL,
                  "%s", hist);
    /* A capture that fails for good after the authorization: authorized,
     * then voiding for the failure. */
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "status_500", 10, 0);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, user, "f", body, &r), 503);
    co_http_resp_free(&r);
    co_test_strp(srv.conn, order, sizeof order,
                 "SELECT id FROM orders ORDER BY created_at DESC LIMIT 1", 0, NULL);
    history(order, hist, sizeof hist);
    ck_assert_msg(strstr(hist, "|reserved>authorized:authorized"
                               "|authorized>voiding:payment_provider_unavailable") != NULL,
                  "%s", hist);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = co_test_tcase(s, "http", 90);

    co_test_server_fixture(tc, &srv, env, false);
    tcase_add_test(tc, items_list_pages_every_item_once_by_sku);
    tcase_add_test(tc, items_list_bad_params_are_400_naming_the_param);
    tcase_add_test(tc, orders_list_is_the_shoppers_own_newest_first);
    tcase_add_test(tc, admin_orders_filters_and_keysets);
    tcase_add_test(tc, admin_orders_bad_params_and_auth);
    tcase_add_test(tc, pages_walk_indexes_not_tables);
    tcase_add_test(tc, drive_runs_a_stalled_order_now);
    tcase_add_test(tc, resolve_intent_unknown_to_the_provider_ends_compensated);
    tcase_add_test(tc, resolve_voiding_with_an_intent_the_provider_never_had);
    tcase_add_test(tc, resolve_refund_done_at_the_provider_matches_it);
    tcase_add_test(tc, resolve_void_done_at_the_provider_matches_it);
    tcase_add_test(tc, resolve_money_still_held_drives_the_refund);
    tcase_add_test(tc, resolve_without_a_rule_is_409_and_changes_nothing);
    tcase_add_test(tc, subscribing_to_an_item_in_stock_is_409);
    tcase_add_test(tc, checkout_answers_carry_the_orders_id);
    tcase_add_test(tc, history_gives_each_hop_its_reason);
    return s;
}

int main(void)
{
    return co_test_run_http(admin_suite());
}

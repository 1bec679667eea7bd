/* Hot-item mode (sql/0007_hot_items.sql): what only a split item does. The
 * stock suite runs its races and rules on split items too; here are the
 * bucket rules (a line larger than any bucket, busy buckets skipped, the item
 * row never locked by a hot reservation, rebalancing, restock, release, a
 * late authorization), the automatic switch driven through its counter, the
 * mode switched back and forth under load, and the admin endpoint over HTTP. */
#include "server.h"

#include "race.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_test_db db;
static PGconn *conn;
static co_test_server srv;

static void setup(void)
{
    co_test_db_create(&db);
    conn = co_test_connect(&db);
}

static void teardown(void)
{
    PQfinish(conn);
    co_test_db_drop(&db);
}

/* ---------------------------------------------------------------- helpers */

/* co_hot_set(item, n) on c; returns the mode's bucket_stock as JSON text. */
static void hot_set(PGconn *c, const char *item, int n, char *out, size_t len)
{
    char nb[16];
    const char *p[2] = {item, nb};

    snprintf(nb, sizeof nb, "%d", n);
    co_test_strp(c, out, len, "SELECT (co_hot_set($1, $2::int)->'bucket_stock')::text", 2, p);
}

/* The item's buckets now, as JSON text ("[3, 3, 2, 2]"). */
static const char *buckets_of(PGconn *c, const char *item)
{
    static char out[512];
    const char *p[1] = {item};

    co_test_strp(c, out, sizeof out, "SELECT (co_hot_json($1)->'bucket_stock')::text", 1, p);
    return out;
}

static long long avail(PGconn *c, const char *item)
{
    return co_test_ll1(c, "SELECT co_item_available($1)", item);
}

/* co_checkout_begin of qty units of item by a new shopper (server flow), as
 * the server calls it; returns its outcome ("reserved", "out_of_stock") or
 * the SQLSTATE of its error, in a static buffer; the order id into order
 * (may be NULL). */
static __thread char last_error[256]; /* the message of begin_on's last error */

static const char *begin_on(PGconn *c, const char *item, int qty, char order_out[37])
{
    static __thread char out[32];
    char user[37], order[37], cart[128];
    const char *p[4] = {user, order, cart, NULL};
    PGresult *r;

    co_test_uuid(user);
    co_test_uuid(order);
    snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":%d}]", item, qty);
    r = PQexecParams(c,
                     "SELECT outcome FROM co_checkout_begin($1, 'key', 'hash', $2, $3::jsonb,"
                     " 'server', 'pm_card_visa', 900, 60, 'test')",
                     3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    else {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

        snprintf(out, sizeof out, "%s", st ? st : "no sqlstate");
        snprintf(last_error, sizeof last_error, "%s", PQresultErrorMessage(r));
    }
    PQclear(r);
    if (order_out != NULL)
        memcpy(order_out, order, 37);
    return out;
}

static const char *begin(const char *item, int qty)
{
    return begin_on(conn, item, qty, NULL);
}

/* ---------------------------------------------------------------- bucket rules */

/* A line larger than any one bucket is served from all of them, locked in
 * bucket order, and what is left is spread evenly; refused only when all the
 * buckets together are short, so no unit is stranded in one. */
START_TEST(line_larger_than_any_bucket_takes_from_all)
{
    char item[37], b[128];

    co_test_item(conn, "wide", 100, 40, item);
    hot_set(conn, item, 4, b, sizeof b);
    ck_assert_str_eq(b, "[10, 10, 10, 10]");
    ck_assert_str_eq(begin(item, 25), "reserved");
    /* 15 left, rebalanced in the same transaction. */
    ck_assert_str_eq(buckets_of(conn, item), "[4, 4, 4, 3]");
    ck_assert_str_eq(begin(item, 14), "reserved");
    ck_assert_str_eq(buckets_of(conn, item), "[1, 0, 0, 0]");
    /* The last unit, in one bucket of four: reachable, and then nothing is. */
    ck_assert_str_eq(begin(item, 2), "out_of_stock");
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_str_eq(begin(item, 1), "out_of_stock");
    ck_assert_int_eq(avail(conn, item), 0);
    co_test_stock_invariant(conn);
}
END_TEST

/* A hot reservation never waits for the item row or a busy bucket while a
 * free bucket can serve it, and waits only when every bucket is busy. The
 * lock_timeout is a detector, not a clock: a reservation that takes no lock
 * wait cannot reach it however slow the machine, and one that waits for a
 * lock held until we release it always does. */
START_TEST(busy_buckets_are_skipped_and_the_row_is_never_locked)
{
    char item[37], b[128];
    PGconn *other = co_test_connect(&db);
    const char *p[1] = {item};
    PGresult *r;

    co_test_item(conn, "busy", 100, 8, item);
    hot_set(conn, item, 4, b, sizeof b);
    co_test_exec(other, "BEGIN");
    r = PQexecParams(other,
                     "SELECT (SELECT count(*) FROM (SELECT 1 FROM items WHERE id = $1"
                     "  FOR NO KEY UPDATE) i) + (SELECT count(*) FROM (SELECT 1 FROM item_buckets"
                     "  WHERE item_id = $1 AND bucket <= 3 ORDER BY bucket FOR NO KEY UPDATE) x)",
                     1, NULL, p, NULL, NULL, 0);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "4");
    PQclear(r);
    co_test_exec(conn, "SET lock_timeout = '5s'");
    /* Row and buckets 1-3 held elsewhere: bucket 4 serves, twice. */
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_str_eq(buckets_of(other, item), "[2, 2, 2, 0]");
    /* Now every bucket that could serve is busy: the reservation waits. */
    co_test_exec(conn, "SET lock_timeout = '200ms'");
    ck_assert_str_eq(begin(item, 1), "55P03");
    co_test_exec(other, "ROLLBACK");
    PQfinish(other);
    co_test_exec(conn, "RESET lock_timeout");
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_int_eq(avail(conn, item), 5);
    co_test_stock_invariant(conn);
}
END_TEST

/* Releases go to the emptiest bucket; a restock spreads the new total evenly
 * and counts as "back in stock" only when every bucket was empty. */
START_TEST(release_and_restock_rebalance)
{
    char item[37], b[128], order[37], user[37];
    const char *po[1] = {order};
    const char *ps[2] = {item, user};
    PGresult *r;

    co_test_item(conn, "rb", 100, 4, item);
    hot_set(conn, item, 4, b, sizeof b);
    ck_assert_str_eq(b, "[1, 1, 1, 1]");
    ck_assert_str_eq(begin_on(conn, item, 3, order), "reserved");
    ck_assert_str_eq(buckets_of(conn, item), "[1, 0, 0, 0]");
    ck_assert_int_eq(co_test_llp(conn, "SELECT co_release_order($1)::int", 1, po), 1);
    /* All three into one of the empty buckets (which one is chance). */
    ck_assert_int_eq(co_test_ll1(conn, "SELECT stock FROM item_buckets WHERE item_id = $1"
                                       " AND bucket = 1", item), 1);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT count(*) FROM item_buckets WHERE item_id = $1"
                                       " AND stock = 3", item), 1);
    ck_assert_int_eq(avail(conn, item), 4);
    /* Not empty (the units are in the buckets, not the row): no notification. */
    ck_assert_int_eq(co_test_ll1(conn, "SELECT became_available::int FROM co_restock('r1', $1, 2)",
                                 item), 0);
    ck_assert_str_eq(buckets_of(conn, item), "[2, 2, 1, 1]");
    /* Sold out, one shopper waiting: the restock brings it back and tells them. */
    ck_assert_str_eq(begin(item, 6), "reserved");
    co_test_uuid(user);
    co_test_llp(conn, "INSERT INTO stock_subscriptions (item_id, user_id) VALUES ($1, $2)"
                      " RETURNING 1", 2, ps);
    r = PQexecParams(conn, "SELECT applied, became_available, stock, notified"
                           " FROM co_restock('r2', $1, 5)", 1, NULL, ps, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "t");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "5");
    ck_assert_str_eq(PQgetvalue(r, 0, 3), "1");
    PQclear(r);
    ck_assert_str_eq(buckets_of(conn, item), "[2, 1, 1, 1]");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT count(*) FROM notification_outbox"
                                       " WHERE item_id = $1", item), 1);
    co_test_stock_invariant(conn);
}
END_TEST

/* co_transition with p_take (a late authorization of an expired order) takes
 * the units from the buckets again, or answers 'short' when they are gone. */
START_TEST(late_authorization_takes_from_buckets)
{
    char item[37], b[128], order[37], order2[37];
    const char *p[1] = {order};
    const char *p2[1] = {order2};
    static const char *const expire =
        "SELECT co_transition($1, 'reserved', '{expired}', 'test', true, false, NULL, NULL,"
        " NULL, NULL, NULL, NULL, NULL, NULL, NULL)";
    static const char *const late =
        "SELECT co_transition($1, 'expired', '{authorized}', 'late', false, true, NULL, NULL,"
        " NULL, NULL, NULL, 60, 'test', NULL, NULL)";
    char out[16];

    co_test_item(conn, "late", 100, 6, item);
    hot_set(conn, item, 3, b, sizeof b);
    ck_assert_str_eq(begin_on(conn, item, 5, order), "reserved");
    co_test_strp(conn, out, sizeof out, expire, 1, p);
    ck_assert_str_eq(out, "ok");
    ck_assert_int_eq(avail(conn, item), 6);
    /* The paid order takes its 5 again (more than any bucket holds). */
    co_test_strp(conn, out, sizeof out, late, 1, p);
    ck_assert_str_eq(out, "ok");
    ck_assert_int_eq(avail(conn, item), 1);
    ck_assert_int_eq(co_test_llp(conn, "SELECT stock_held::int FROM orders WHERE id = $1", 1, p),
                     1);
    /* Another one expires, its units are sold meanwhile: its late payment is short. */
    ck_assert_str_eq(begin_on(conn, item, 1, order2), "reserved");
    co_test_strp(conn, out, sizeof out, expire, 1, p2);
    ck_assert_str_eq(begin(item, 1), "reserved");
    co_test_strp(conn, out, sizeof out, late, 1, p2);
    ck_assert_str_eq(out, "short");
    ck_assert_int_eq(avail(conn, item), 0);
    co_test_stock_invariant(conn);
}
END_TEST

/* ---------------------------------------------------------------- the automatic switch */

/* The rule (co_hot_rule) driven through its counter: with wait_ms = 0
 * every lock wait counts, so the count is a count of reservations, not of
 * time. The reservation that reaches waits switches the item on; the
 * next ones take from its buckets. */
START_TEST(contended_waits_switch_the_item_on)
{
    char item[37], quiet[37], b[128];
    PGresult *res;

    co_test_item(conn, "auto", 100, 20, item);
    co_test_exec(conn, "UPDATE co_hot_settings SET wait_ms = 0, waits = 3, auto_buckets = 4");
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_buckets FROM items WHERE id = $1", item), 0);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_waits FROM items WHERE id = $1", item), 2);
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_buckets FROM items WHERE id = $1", item), 4);
    ck_assert_str_eq(buckets_of(conn, item), "[5, 4, 4, 4]");
    ck_assert_str_eq(begin(item, 1), "reserved");
    ck_assert_int_eq(avail(conn, item), 16);
    co_test_stock_invariant(conn);

    /* Waits that do not reach the threshold, a window too short to hold two,
     * or the rule off (waits = 0): the item stays plain. */
    co_test_item(conn, "quiet", 100, 20, quiet);
    co_test_exec(conn, "UPDATE co_hot_settings SET wait_ms = 600000");
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(begin(quiet, 1), "reserved");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_waits FROM items WHERE id = $1", quiet), 0);
    co_test_exec(conn, "UPDATE co_hot_settings SET wait_ms = 0, window_s = 0");
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(begin(quiet, 1), "reserved");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_waits FROM items WHERE id = $1", quiet), 1);
    co_test_exec(conn, "UPDATE co_hot_settings SET window_s = NULL, waits = 0");
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(begin(quiet, 1), "reserved");
    /* A setting that is no number cannot be stored: checkouts go on. */
    res = PQexec(conn, "UPDATE co_hot_settings SET waits = 'lots'");
    ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    ck_assert_str_eq(begin(quiet, 1), "reserved");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_buckets FROM items WHERE id = $1", quiet), 0);
    /* The plain path (co_reserve_order's co_take_stock) counts the same way;
     * co_hot_set(0) on a plain item only resets its count. */
    co_test_exec(conn, "UPDATE co_hot_settings SET waits = 2");
    hot_set(conn, quiet, 0, b, sizeof b);
    for (int i = 0; i < 2; i++) {
        char order[37], user[37];
        char cart[128];
        const char *p[3] = {order, user, cart};

        co_test_uuid(order);
        co_test_uuid(user);
        snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":1}]", quiet);
        co_test_llp(conn, "SELECT amount FROM co_create_order($1, $2, $3)", 3, p);
        co_test_llp(conn, "SELECT 1 FROM co_reserve_order($1)", 1, p);
    }
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_buckets FROM items WHERE id = $1", quiet), 4);
    ck_assert_int_eq(avail(conn, quiet), 5);
    co_test_stock_invariant(conn);
}
END_TEST

/* ---------------------------------------------------------------- switching under load */

#define SWITCH_BUYERS 12
#define SWITCH_BUYS 40
#define SWITCH_STOCK 300
#define SWITCHES 30

static char switch_item[37];

typedef struct {
    bool toggler;
    int ok, oos, deadlocks, other;
    char state[300];
} switch_arg;

static void *switch_worker(void *p)
{
    switch_arg *a = p;
    PGconn *c = PQconnectdb(db.url);
    static const int modes[] = {8, 0, 3, 16, 1, 0, 5, 2};
    char b[32];

    co_test_race_wait();
    for (int i = 0; PQstatus(c) == CONNECTION_OK && i < (a->toggler ? SWITCHES : SWITCH_BUYS);
         i++) {
        if (a->toggler) {
            char nb[16];
            const char *params[2] = {switch_item, nb};
            PGresult *r;

            snprintf(nb, sizeof nb, "%d", modes[i % 8]);
            r = PQexecParams(c, "SELECT co_hot_set($1, $2::int)", 2, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                a->other++;
                snprintf(a->state, sizeof a->state, "%.290s", PQresultErrorMessage(r));
            }
            PQclear(r);
            continue;
        }
        snprintf(b, sizeof b, "%s", begin_on(c, switch_item, 1, NULL));
        if (strcmp(b, "reserved") == 0) {
            a->ok++;
        } else if (strcmp(b, "out_of_stock") == 0) {
            a->oos++;
        } else if (strcmp(b, "40P01") == 0) {
            a->deadlocks++;
        } else {
            a->other++;
            snprintf(a->state, sizeof a->state, "%.20s %.260s", b, last_error);
        }
    }
    PQfinish(c);
    return NULL;
}

/* Buyers race while the mode is switched on, off and between bucket counts
 * under them: no deadlock, no error, and refusals only when nothing is left
 * (demand exceeds supply and stock only falls, so every unit is sold). */
START_TEST(switching_under_load)
{
    switch_arg args[SWITCH_BUYERS + 1];
    int ok = 0;
    char sql[160];

    /* Only the toggler switches: the buyers' connections have the rule off. */
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" SET co.hot_waits = 0", db.name);
    co_test_exec(conn, sql);
    co_test_item(conn, "switch", 100, SWITCH_STOCK, switch_item);
    memset(args, 0, sizeof args);
    args[SWITCH_BUYERS].toggler = true;
    co_test_race(SWITCH_BUYERS + 1, switch_worker, args, sizeof args[0]);
    for (int i = 0; i <= SWITCH_BUYERS; i++) {
        ck_assert_msg(args[i].other == 0, "unexpected outcome %s", args[i].state);
        ck_assert_int_eq(args[i].deadlocks, 0);
        ok += args[i].ok;
    }
    ck_assert_int_eq(ok, SWITCH_STOCK);
    ck_assert_int_eq(avail(conn, switch_item), 0);
    co_test_stock_invariant(conn);
}
END_TEST

/* ---------------------------------------------------------------- the admin endpoint */

static long hot_call(const char *method, const char *item, const char *bearer, const char *body,
                     json_t **out)
{
    char path[160];
    co_http_resp r = {0};
    long status;

    snprintf(path, sizeof path, "/v1/admin/items/%s/hot", item);
    status = co_test_call(&srv, method, path, bearer, body, &r);
    *out = co_http_json(&r);
    co_http_resp_free(&r);
    return status;
}

static long long jint(json_t *j, const char *k)
{
    return json_integer_value(json_object_get(j, k));
}

START_TEST(admin_switches_the_mode_over_http)
{
    char item[37], body[256], path[160], user[37], order[37];
    json_t *j;
    co_http_resp r = {0};
    char *bs;

    co_test_item(srv.conn, "hot-http", 250, 10, item);
    ck_assert_int_eq(hot_call("POST", item, CO_TEST_ADMIN_KEY, "{\"buckets\":4}", &j), 200);
    ck_assert_str_eq(co_test_jstr(j, "object", NULL), "item_hot_mode");
    ck_assert_int_eq(jint(j, "buckets"), 4);
    ck_assert_int_eq(jint(j, "previous_buckets"), 0);
    ck_assert_int_eq(jint(j, "stock_available"), 10);
    bs = json_dumps(json_object_get(j, "bucket_stock"), JSON_COMPACT);
    ck_assert_str_eq(bs, "[3,3,2,2]");
    free(bs);
    json_decref(j);
    /* The shopper's view is the sum; a checkout takes from the buckets. */
    snprintf(path, sizeof path, "/v1/items/%s", item);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, NULL, NULL, &r), 200);
    j = co_http_json(&r);
    ck_assert_int_eq(jint(j, "stock_available"), 10);
    json_decref(j);
    co_http_resp_free(&r);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 3, "pm_card_visa");
    co_test_checkout_order(&srv, user, "hot-1", body, 201, order, NULL);
    ck_assert_int_eq(co_test_stock(&srv, item), 7);
    ck_assert_int_eq(hot_call("GET", item, CO_TEST_ADMIN_KEY, NULL, &j), 200);
    ck_assert_int_eq(jint(j, "buckets"), 4);
    ck_assert_int_eq(jint(j, "stock_available"), 7);
    json_decref(j);
    /* A refund releases into the buckets. */
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 10);
    /* Off: merged back into the item row. */
    ck_assert_int_eq(hot_call("POST", item, CO_TEST_ADMIN_KEY, "{\"buckets\":0}", &j), 200);
    ck_assert_int_eq(jint(j, "buckets"), 0);
    ck_assert_int_eq(jint(j, "previous_buckets"), 4);
    ck_assert_int_eq(jint(j, "stock_available"), 10);
    json_decref(j);
    ck_assert_int_eq(co_test_ll1(srv.conn, "SELECT stock FROM items WHERE id = $1", item), 10);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM item_buckets"), 0);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(admin_bad_input_changes_nothing)
{
    char item[37], unknown[37], u[37];
    char *tok;
    json_t *j;
    static const struct {
        const char *body;
        long status;
        const char *code, *param;
    } cases[] = {
        {"{\"buckets\":-1}", 400, "invalid_request", "buckets"},
        {"{\"buckets\":65}", 400, "invalid_request", "buckets"},
        {"{\"buckets\":\"4\"}", 400, "invalid_request", "buckets"},
        {"{\"buckets\":1.5}", 400, "invalid_request", "buckets"},
        {"{\"buckets\":null}", 400, "invalid_request", "buckets"},
        {"{\"buckets\":99999999999999999}", 400, "invalid_request", "buckets"},
        {"{}", 400, "invalid_request", "buckets"},
        {"{\"buckets\":4,\"auto\":true}", 400, "invalid_request", "auto"},
        {"[4]", 400, "invalid_request", "body"},
        {"{\"buckets\":4", 400, "invalid_json", ""},
        {"", 400, "invalid_json", ""},
    };

    co_test_item(srv.conn, "hot-bad", 250, 10, item);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(hot_call("POST", item, CO_TEST_ADMIN_KEY, cases[i].body, &j) ==
                          cases[i].status, "case %zu", i);
        ck_assert_str_eq(co_test_jstr(j, "error", "code"), cases[i].code);
        ck_assert_str_eq(co_test_jstr(j, "error", "param"), cases[i].param);
        json_decref(j);
    }
    /* Who asks: nobody, a shopper, a wrong key. */
    co_test_uuid(u);
    tok = co_test_token(u, 600);
    ck_assert_int_eq(hot_call("POST", item, NULL, "{\"buckets\":4}", &j), 401);
    json_decref(j);
    ck_assert_int_eq(hot_call("POST", item, tok, "{\"buckets\":4}", &j), 401);
    json_decref(j);
    ck_assert_int_eq(hot_call("GET", item, "adm_wrong", NULL, &j), 401);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "unauthenticated");
    json_decref(j);
    free(tok);
    /* Which item: none with this id, no uuid at all. */
    co_test_uuid(unknown);
    ck_assert_int_eq(hot_call("POST", unknown, CO_TEST_ADMIN_KEY, "{\"buckets\":4}", &j), 404);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "item_not_found");
    ck_assert_str_eq(co_test_jstr(j, "error", "item_id"), unknown);
    json_decref(j);
    ck_assert_int_eq(hot_call("GET", unknown, CO_TEST_ADMIN_KEY, NULL, &j), 404);
    json_decref(j);
    ck_assert_int_eq(hot_call("POST", "not-a-uuid", CO_TEST_ADMIN_KEY, "{\"buckets\":4}", &j),
                     404);
    ck_assert_str_eq(co_test_jstr(j, "error", "code"), "item_not_found");
    json_decref(j);
    /* Nothing changed. */
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM items WHERE hot_buckets <> 0"), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM item_buckets"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 10);
    co_test_stock_invariant(srv.conn);
}
END_TEST

static Suite *hot_suite(void)
{
    Suite *s = suite_create("hot");
    TCase *rules = co_test_tcase(s, "rules", 30);
    TCase *race = co_test_tcase(s, "race", 120);
    TCase *http = co_test_tcase(s, "http", 60);

    tcase_add_checked_fixture(rules, setup, teardown);
    tcase_add_test(rules, line_larger_than_any_bucket_takes_from_all);
    tcase_add_test(rules, busy_buckets_are_skipped_and_the_row_is_never_locked);
    tcase_add_test(rules, release_and_restock_rebalance);
    tcase_add_test(rules, late_authorization_takes_from_buckets);
    tcase_add_test(rules, contended_waits_switch_the_item_on);

    tcase_add_checked_fixture(race, setup, teardown);
    tcase_add_test(race, switching_under_load);

    co_test_server_fixture(http, &srv, NULL, false);
    tcase_add_test(http, admin_switches_the_mode_over_http);
    tcase_add_test(http, admin_bad_input_changes_nothing);
    return s;
}

int main(void)
{
    return co_test_run_http(hot_suite());
}

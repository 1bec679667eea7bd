/* Group commit of the checkout's first commit (sql/0017 co_checkout_begin_many,
 * src/co_batch.c, src/store_checkout.c): a batch answers each request as
 * co_checkout_begin would have answered it alone, in arrival order, and
 * concurrent checkouts through checkoutd share transactions without one unit
 * sold twice. */
#include "server.h"

#include "race.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_test_server srv;

/* ------------------------------------------------------------- in SQL */

static co_test_db db;
static PGconn *conn;

static void sql_setup(void)
{
    co_test_db_create(&db);
    conn = co_test_connect(&db);
}

static void sql_teardown(void)
{
    PQfinish(conn);
    co_test_db_drop(&db);
}

typedef struct {
    const char *user, *key, *hash, *item;
    int qty;
    char order[37];
} req;

/* Runs reqs as one co_checkout_begin_many; the answer rows by n. */
static PGresult *begin_many(req *reqs, int n)
{
    char json[8192];
    size_t len = 0;
    const char *params[1] = {json};
    PGresult *r;

    len += (size_t)snprintf(json + len, sizeof json - len, "[");
    for (int i = 0; i < n; i++) {
        co_test_uuid(reqs[i].order);
        len += (size_t)snprintf(
            json + len, sizeof json - len,
            "%s{\"user_id\":\"%s\",\"key\":\"%s\",\"hash\":\"%s\",\"order_id\":\"%s\","
            "\"items\":[{\"item_id\":\"%s\",\"quantity\":%d}],\"flow\":\"server\","
            "\"payment_method\":\"pm_card_visa\",\"ttl_seconds\":900,\"lease_seconds\":60,"
            "\"owner\":\"test\",\"max_unpaid_units\":null}",
            i > 0 ? "," : "", reqs[i].user, reqs[i].key, reqs[i].hash, reqs[i].order,
            reqs[i].item, reqs[i].qty);
        ck_assert_uint_lt(len, sizeof json - 1);
    }
    snprintf(json + len, sizeof json - len, "]");
    r = PQexecParams(conn,
                     "SELECT n, outcome, order_id, response_status, response_body, amount,"
                     "       short_item FROM co_checkout_begin_many($1) ORDER BY n",
                     1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
    ck_assert_int_le(PQntuples(r), n);
    return r;
}

/* The row answering request k (0-based), -1 when the batch left it alone. */
static int row_of(PGresult *r, int k)
{
    for (int row = 0; row < PQntuples(r); row++)
        if (atoi(PQgetvalue(r, row, PQfnumber(r, "n"))) == k + 1)
            return row;
    return -1;
}

/* Column col of the answer to request k; fails when it has none. */
static const char *cell(PGresult *r, int k, const char *col)
{
    int row = row_of(r, k);

    ck_assert_msg(row >= 0, "request %d was not answered by the batch", k + 1);
    return PQgetvalue(r, row, PQfnumber(r, col));
}

static long long order_count(const char *order, const char *sql)
{
    return co_test_ll1(conn, sql, order);
}

/* First come first: with 3 units, 2 + 2 + 1 is reserved, short, reserved;
 * the same key again is in progress (same body) or reused (another); a
 * request for an unknown item is left to co_checkout_begin alone (no row,
 * nothing written for it: alone it looks at the key first, a reused key with
 * a bogus cart is 422 there); every reserved and short order has its line,
 * its history and (reserved) its ledger row. */
START_TEST(a_batch_answers_each_request_as_alone)
{
    char item[37], ghost[37], u1[37], u2[37], u3[37];
    req reqs[7];
    PGresult *r;

    co_test_item(conn, "batched", 1000, 3, item);
    co_test_uuid(ghost);
    co_test_uuid(u1);
    co_test_uuid(u2);
    co_test_uuid(u3);
    reqs[0] = (req){u1, "k1", "h1", item, 2, ""};
    reqs[1] = (req){u2, "k2", "h2", item, 2, ""};
    reqs[2] = (req){u3, "k3", "h3", item, 1, ""};
    reqs[3] = (req){u1, "k1", "h1", item, 2, ""};  /* the first again */
    reqs[4] = (req){u1, "k1", "hX", item, 1, ""};  /* its key, another body */
    reqs[5] = (req){u2, "k5", "h5", ghost, 1, ""}; /* no such item */
    reqs[6] = (req){u1, "k1", "hY", ghost, 1, ""}; /* a used key, a bogus cart */
    r = begin_many(reqs, 7);
    ck_assert_str_eq(cell(r, 0, "outcome"), "reserved");
    ck_assert_str_eq(cell(r, 0, "amount"), "2000");
    ck_assert_str_eq(cell(r, 1, "outcome"), "out_of_stock");
    ck_assert_str_eq(cell(r, 1, "short_item"), item);
    ck_assert_str_eq(cell(r, 2, "outcome"), "reserved");
    ck_assert_str_eq(cell(r, 3, "outcome"), "in_progress");
    ck_assert_str_eq(cell(r, 3, "order_id"), reqs[0].order);
    ck_assert_str_eq(cell(r, 4, "outcome"), "reused");
    ck_assert_int_eq(row_of(r, 5), -1);
    ck_assert_int_eq(row_of(r, 6), -1);
    ck_assert_int_eq(PQntuples(r), 5);
    PQclear(r);

    ck_assert_int_eq(co_test_ll1(conn, "SELECT stock FROM items WHERE id = $1", item), 0);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders"), 3);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM checkout_requests"), 3);
    ck_assert_int_eq(order_count(reqs[0].order, "SELECT count(*) FROM orders WHERE id = $1"
                                                " AND status = 'reserved' AND stock_held"
                                                " AND lease_owner = 'test'"), 1);
    ck_assert_int_eq(order_count(reqs[1].order, "SELECT count(*) FROM orders WHERE id = $1"
                                                " AND status = 'failed' AND NOT stock_held"
                                                " AND failure_code = 'out_of_stock'"), 1);
    ck_assert_int_eq(order_count(reqs[1].order, "SELECT count(*) FROM order_history"
                                                " WHERE order_id = $1 AND to_status = 'failed'"
                                                " AND reason = 'out_of_stock'"), 1);
    ck_assert_int_eq(order_count(reqs[2].order, "SELECT count(*) FROM order_history"
                                                " WHERE order_id = $1"), 2);
    ck_assert_int_eq(order_count(reqs[2].order, "SELECT quantity * unit_price FROM order_lines"
                                                " WHERE order_id = $1"), 1000);
    ck_assert_int_eq(order_count(reqs[0].order, "SELECT -delta FROM stock_ledger"
                                                " WHERE order_id = $1 AND kind = 'reserve'"), 2);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'"),
                     2);
    co_test_stock_invariant(conn);

    /* Answered since: the same request in a later batch replays the answer. */
    co_test_exec(conn, "UPDATE checkout_requests SET response_status = 201,"
                       " response_body = '{\"replayed\":true}' WHERE idempotency_key = 'k1'");
    r = begin_many(reqs, 1);
    ck_assert_str_eq(cell(r, 0, "outcome"), "replay");
    ck_assert_str_eq(cell(r, 0, "response_status"), "201");
    ck_assert_str_eq(cell(r, 0, "response_body"), "{\"replayed\":true}");
    PQclear(r);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders"), 3);
}
END_TEST

/* Requests for an item in hot mode (its units in buckets, served so that
 * several run at once) are left to co_checkout_begin alone, each on its own
 * thread; the plain one beside them is served; nothing is written for the
 * hot ones. */
START_TEST(hot_item_in_a_batch)
{
    char hot[37], plain[37], users[4][37];
    req reqs[4];
    PGresult *r;
    const char *p[1];

    co_test_item(conn, "hot", 500, 3, hot);
    co_test_item(conn, "plain", 700, 1, plain);
    p[0] = hot;
    PQclear(PQexecParams(conn, "SELECT co_hot_set($1, 4)", 1, NULL, p, NULL, NULL, 0));
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_buckets FROM items WHERE id = $1", hot), 4);
    for (int i = 0; i < 4; i++)
        co_test_uuid(users[i]);
    reqs[0] = (req){users[0], "a", "a", hot, 2, ""};
    reqs[1] = (req){users[1], "b", "b", plain, 1, ""};
    reqs[2] = (req){users[2], "c", "c", hot, 2, ""};
    reqs[3] = (req){users[3], "d", "d", hot, 1, ""};
    r = begin_many(reqs, 4);
    ck_assert_int_eq(PQntuples(r), 1);
    ck_assert_str_eq(cell(r, 1, "outcome"), "reserved");
    ck_assert_int_eq(row_of(r, 0), -1);
    ck_assert_int_eq(row_of(r, 2), -1);
    ck_assert_int_eq(row_of(r, 3), -1);
    PQclear(r);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders"), 1);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM checkout_requests"), 1);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT co_item_available($1)", hot), 3);
    co_test_stock_invariant(conn);
}
END_TEST

/* ------------------------------------------------------------- over HTTP */

#define RACERS 64
#define UNITS 20

static long long events(const char *name)
{
    return co_test_event_count(&srv, name);
}

/* 64 shoppers at once for 20 units: 20 confirmed, 44 out of stock, the stock
 * at 0, every invariant; with batching on (the default), their first commits
 * were shared (fewer batches than checkouts in them), with CHECKOUT_BATCH_MAX=1
 * none was. */
static void race(const char *const env[], bool batched, int buckets)
{
    char item[37];
    static co_test_racer rs[RACERS];
    int created, out;

    co_test_server_start(&srv, env, NULL);
    co_test_item(srv.conn, "flash", 99900, UNITS, item);
    if (buckets > 0) {
        char sql[128];

        snprintf(sql, sizeof sql, "SELECT co_hot_set('%s', %d)", item, buckets);
        co_test_exec(srv.conn, sql);
    }
    co_test_race_units(&srv, item, rs, RACERS, &created, &out);
    ck_assert_int_eq(created, UNITS);
    ck_assert_int_eq(out, RACERS - UNITS);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), UNITS);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), RACERS);
    if (batched) {
        long long batches = events("checkout_batch"), in = events("checkout_batched");

        ck_assert_msg(batches >= 1 && in > batches, "%lld checkouts in %lld batches", in, batches);
    } else {
        ck_assert_int_eq(events("checkout_batch"), 0);
    }
    co_test_invariants(&srv, true);
    co_test_server_stop(&srv);
}

START_TEST(concurrent_checkouts_share_their_first_commit)
{
    static const char *const env[] = {"CHECKOUT_RATE_PER_SECOND=0", NULL};

    race(env, true, 0);
}
END_TEST

/* The same race on an item in hot mode: every first commit is left to the
 * single path, each on its own thread, none shared, and the outcome is the
 * same. */
START_TEST(hot_item_checkouts_run_alone)
{
    static const char *const env[] = {"CHECKOUT_RATE_PER_SECOND=0", NULL};

    race(env, false, 8);
}
END_TEST

START_TEST(batch_of_one_is_each_alone)
{
    static const char *const env[] = {"CHECKOUT_RATE_PER_SECOND=0", "CHECKOUT_BATCH_MAX=1", NULL};

    race(env, false, 0);
}
END_TEST

static Suite *batch_suite(void)
{
    Suite *s = suite_create("batch");
    TCase *sql = co_test_tcase(s, "sql", 60);
    TCase *http = co_test_tcase(s, "http", 120);

    tcase_add_checked_fixture(sql, sql_setup, sql_teardown);
    tcase_add_test(sql, a_batch_answers_each_request_as_alone);
    tcase_add_test(sql, hot_item_in_a_batch);
    tcase_add_test(http, concurrent_checkouts_share_their_first_commit);
    tcase_add_test(http, batch_of_one_is_each_alone);
    tcase_add_test(http, hot_item_checkouts_run_alone);
    return s;
}

int main(void)
{
    return co_test_run_http(batch_suite());
}

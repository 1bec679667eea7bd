/* The stock functions (sql/0002_stock_functions.sql) under real concurrency:
 * real threads, one real connection each, against the real server.
 *
 * Every test runs twice: with hot-item mode off (the "race" and "rules"
 * cases) and on (the "race_hot" and "rules_hot" cases, whose items are split
 * over HOT_BUCKETS bucket rows as they are created, sql/0007_hot_items.sql),
 * with the same assertions. Stock is read through co_item_available(), the
 * sum over the item row and its buckets. The automatic switch is turned off
 * in both runs, so that each run tests the one mode it names. */
#include "harness.h"
#include "race.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Buckets of a hot item in the hot runs: more than one unit of the last-unit
 * race can fill, fewer than the race's threads. */
#define HOT_BUCKETS 8

static co_test_db db;
static PGconn *conn;
static int hot_buckets; /* 0 in the plain runs, HOT_BUCKETS in the hot ones */

static void setup(void)
{
    co_test_db_create(&db);
    conn = co_test_connect(&db);
    /* The automatic switch off (co_hot_rule): a plain run stays plain however
     * long its locks wait. */
    co_test_exec(conn, "UPDATE co_hot_settings SET waits = 0");
}

static void setup_hot(void)
{
    hot_buckets = HOT_BUCKETS;
    setup();
}

static void teardown(void)
{
    PQfinish(conn);
    co_test_db_drop(&db);
}

/* co_test_item, then in the hot runs the switch to hot_buckets buckets. */
static void make_item(const char *sku, long long price, int stock, char id[37])
{
    char n[16];
    const char *p[2] = {id, n};

    co_test_item(conn, sku, price, stock, id);
    if (hot_buckets == 0)
        return;
    snprintf(n, sizeof n, "%d", hot_buckets);
    ck_assert_int_eq(co_test_llp(conn, "SELECT (co_hot_set($1, $2::int)->>'buckets')::int", 2, p),
                     hot_buckets);
}

/* The item's free units (the row plus its buckets), by sku. */
static long long available(const char *sku)
{
    return co_test_ll1(conn, "SELECT co_item_available(id) FROM items WHERE sku = $1", sku);
}

/* The run's mode held to the end: the item is still split as it started. */
static void assert_mode(const char *sku)
{
    ck_assert_int_eq(co_test_ll1(conn, "SELECT hot_buckets FROM items WHERE sku = $1", sku),
                     hot_buckets);
}

/* ---------------------------------------------------------------- helpers */

typedef enum { BUY_OK, BUY_OUT_OF_STOCK, BUY_DEADLOCK, BUY_OTHER } buy_result;

/* Creates an order for cart (JSON) and reserves it: two RPCs, as a client of
 * the functions would make them. Returns how the reservation ended. */
static buy_result buy(PGconn *c, const char *cart, char *sqlstate_out)
{
    char order[37];
    char user[37];
    const char *p3[3] = {order, user, cart};
    const char *p1[1] = {order};
    PGresult *r;
    buy_result out = BUY_OK;

    co_test_uuid(order);
    co_test_uuid(user);
    r = PQexecParams(c, "SELECT * FROM co_create_order($1, $2, $3)", 3, NULL, p3, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        if (sqlstate_out)
            snprintf(sqlstate_out, 6, "%s", PQresultErrorField(r, PG_DIAG_SQLSTATE));
        PQclear(r);
        return BUY_OTHER;
    }
    PQclear(r);
    r = PQexecParams(c, "SELECT co_reserve_order($1)", 1, NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (sqlstate_out)
            snprintf(sqlstate_out, 6, "%s", st ? st : "?????");
        if (st && strcmp(st, "CK409") == 0)
            out = BUY_OUT_OF_STOCK;
        else if (st && strcmp(st, "40P01") == 0)
            out = BUY_DEADLOCK;
        else
            out = BUY_OTHER;
    }
    PQclear(r);
    return out;
}

static void cart1(char *out, size_t n, const char *item, int qty)
{
    snprintf(out, n, "[{\"item_id\":\"%s\",\"quantity\":%d}]", item, qty);
}

/* ------------------------------------------------- 64 threads, last unit */

#define LAST_UNIT_THREADS 64

typedef struct {
    const char *item;
    buy_result result;
    char sqlstate[6];
} last_unit_arg;

static void *last_unit_worker(void *p)
{
    last_unit_arg *a = p;
    PGconn *c = PQconnectdb(db.url);
    char cart[128];

    cart1(cart, sizeof cart, a->item, 1);
    co_test_race_wait();
    a->result = PQstatus(c) == CONNECTION_OK ? buy(c, cart, a->sqlstate) : BUY_OTHER;
    PQfinish(c);
    return NULL;
}

START_TEST(race_for_last_unit)
{
    char item[37];
    last_unit_arg args[LAST_UNIT_THREADS];
    int ok = 0;
    int oos = 0;

    make_item("last-unit", 120000, 1, item);
    for (int i = 0; i < LAST_UNIT_THREADS; i++)
        args[i] = (last_unit_arg){.item = item};
    co_test_race(LAST_UNIT_THREADS, last_unit_worker, args, sizeof args[0]);
    for (int i = 0; i < LAST_UNIT_THREADS; i++) {
        ok += args[i].result == BUY_OK;
        oos += args[i].result == BUY_OUT_OF_STOCK;
    }
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(oos, LAST_UNIT_THREADS - 1);
    ck_assert_int_eq(available("last-unit"), 0);
    assert_mode("last-unit");
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders WHERE stock_held"), 1);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'"),
                     1);
    ck_assert_int_eq(co_test_audit(conn), 0);
}
END_TEST

/* ------------------------------ 100 units, 500 buyers of 1-3 units each */

#define RANDOM_THREADS 50
#define RANDOM_BUYERS_PER_THREAD 10

typedef struct {
    const char *item;
    unsigned seed;
    int bought;       /* units reserved */
    int min_refused;  /* smallest quantity refused as out of stock (99 if none) */
    int errors;       /* anything but success or out_of_stock */
} random_arg;

static void *random_worker(void *p)
{
    random_arg *a = p;
    PGconn *c = PQconnectdb(db.url);
    char cart[128];

    a->min_refused = 99;
    co_test_race_wait();
    for (int i = 0; i < RANDOM_BUYERS_PER_THREAD; i++) {
        int qty = 1 + (int)(rand_r(&a->seed) % 3);
        buy_result r;

        cart1(cart, sizeof cart, a->item, qty);
        r = buy(c, cart, NULL);
        if (r == BUY_OK)
            a->bought += qty;
        else if (r == BUY_OUT_OF_STOCK)
            a->min_refused = qty < a->min_refused ? qty : a->min_refused;
        else
            a->errors++;
    }
    PQfinish(c);
    return NULL;
}

START_TEST(random_quantities_never_oversell)
{
    char item[37];
    random_arg args[RANDOM_THREADS];
    int bought = 0;
    int min_refused = 99;
    int errors = 0;
    long long stock;

    make_item("hundred", 1000, 100, item);
    for (int i = 0; i < RANDOM_THREADS; i++)
        args[i] = (random_arg){.item = item, .seed = 1234u + (unsigned)i};
    co_test_race(RANDOM_THREADS, random_worker, args, sizeof args[0]);
    for (int i = 0; i < RANDOM_THREADS; i++) {
        bought += args[i].bought;
        errors += args[i].errors;
        if (args[i].min_refused < min_refused)
            min_refused = args[i].min_refused;
    }
    stock = available("hundred");
    assert_mode("hundred");
    ck_assert_int_eq(errors, 0);
    ck_assert_int_ge(stock, 0);
    /* Every unit is accounted for: sold + left = 100, in the ledger too. */
    ck_assert_int_eq(bought + stock, 100);
    ck_assert_int_eq(co_test_ll(conn,
                                "SELECT -sum(delta) FROM stock_ledger WHERE kind = 'reserve'"),
                     bought);
    ck_assert_int_eq(co_test_audit(conn), 0);
    /* Stock only falls, so a refusal of q means the final stock is below q:
     * nothing was refused that could have been served. */
    ck_assert_int_lt(stock, min_refused);
}
END_TEST

/* ---------------- multi-item carts over shared items in opposite orders */

#define CART_THREADS 32
#define CARTS_PER_THREAD 200
#define CART_ITEMS 5

static char cart_items[CART_ITEMS][37];

typedef struct {
    unsigned seed;
    int ok, oos, deadlocks, other;
    char other_state[6];
} cart_arg;

static void *cart_worker(void *p)
{
    cart_arg *a = p;
    PGconn *c = PQconnectdb(db.url);

    co_test_race_wait();
    for (int i = 0; i < CARTS_PER_THREAD; i++) {
        /* Three distinct items, listed ascending on even threads' odd carts and
         * descending otherwise, so carts name shared items in opposite orders. */
        int first = (int)(rand_r(&a->seed) % (CART_ITEMS - 2));
        bool down = (i + (int)a->seed) % 2 == 0;
        char cart[512];
        size_t len = 0;
        buy_result r;
        char st[6] = "";

        len += (size_t)snprintf(cart + len, sizeof cart - len, "[");
        for (int k = 0; k < 3; k++) {
            int idx = down ? first + 2 - k : first + k;
            len += (size_t)snprintf(cart + len, sizeof cart - len,
                                    "%s{\"item_id\":\"%s\",\"quantity\":%d}", k ? "," : "",
                                    cart_items[idx], 1 + (int)(rand_r(&a->seed) % 3));
        }
        snprintf(cart + len, sizeof cart - len, "]");
        r = buy(c, cart, st);
        a->ok += r == BUY_OK;
        a->oos += r == BUY_OUT_OF_STOCK;
        a->deadlocks += r == BUY_DEADLOCK;
        if (r == BUY_OTHER) {
            a->other++;
            memcpy(a->other_state, st, sizeof st);
        }
    }
    PQfinish(c);
    return NULL;
}

START_TEST(opposite_order_carts_no_deadlock)
{
    cart_arg args[CART_THREADS];
    int ok = 0, oos = 0, deadlocks = 0, other = 0;

    for (int i = 0; i < CART_ITEMS; i++) {
        char sku[32];
        snprintf(sku, sizeof sku, "cart-%d", i);
        /* Less stock than demand, so carts also fail part-way through their lines. */
        make_item(sku, 500, 2000, cart_items[i]);
    }
    for (int i = 0; i < CART_THREADS; i++)
        args[i] = (cart_arg){.seed = 77u + (unsigned)i};
    co_test_race(CART_THREADS, cart_worker, args, sizeof args[0]);
    for (int i = 0; i < CART_THREADS; i++) {
        ok += args[i].ok;
        oos += args[i].oos;
        deadlocks += args[i].deadlocks;
        other += args[i].other;
        ck_assert_msg(args[i].other == 0, "unexpected SQLSTATE %s", args[i].other_state);
    }
    ck_assert_int_eq(deadlocks, 0);
    ck_assert_int_eq(other, 0);
    ck_assert_int_eq(ok + oos, CART_THREADS * CARTS_PER_THREAD);
    ck_assert_int_gt(ok, 0);
    ck_assert_int_gt(oos, 0);
    /* All or nothing: a held order has a reserve row for each line; a refused
     * one has none. */
    ck_assert_int_eq(co_test_ll(conn,
        "SELECT count(*) FROM orders o WHERE "
        "(SELECT count(*) FROM stock_ledger l WHERE l.order_id = o.id AND l.kind = 'reserve') <> "
        "CASE WHEN o.stock_held THEN (SELECT count(*) FROM order_lines WHERE order_id = o.id) "
        "ELSE 0 END"), 0);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders WHERE stock_held"), ok);
    co_test_stock_invariant(conn);
    assert_mode("cart-0");
}
END_TEST

/* ------------------- control: the naive read-then-update loop oversells */

#define NAIVE_THREADS 32

typedef struct {
    int sold;
} naive_arg;

/* What we exist to prevent: the client reads the stock, decides, and writes
 * back the number it computed. The race's barrier (co_test_race_wait) makes
 * every thread read before any writes, which real traffic does by chance.
 * Runs on a scratch table: the real items table is only ever changed by the
 * stock functions. */
static void *naive_worker(void *p)
{
    naive_arg *a = p;
    PGconn *c = PQconnectdb(db.url);

    for (int round = 0; round < 10; round++) {
        PGresult *r = PQexec(c, "SELECT stock FROM naive_items WHERE id = 1");
        long long stock = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        char sql[128];

        PQclear(r);
        co_test_race_wait();
        if (stock >= 1) {
            snprintf(sql, sizeof sql, "UPDATE naive_items SET stock = %lld WHERE id = 1",
                     stock - 1);
            PQclear(PQexec(c, sql));
            a->sold++;
        }
        co_test_race_wait();
    }
    PQfinish(c);
    return NULL;
}

START_TEST(naive_read_then_update_oversells)
{
    naive_arg args[NAIVE_THREADS] = {{0}};
    int sold = 0;

    co_test_exec(conn, "CREATE TABLE naive_items (id int PRIMARY KEY, stock int NOT NULL)");
    co_test_exec(conn, "INSERT INTO naive_items VALUES (1, 100)");
    co_test_race(NAIVE_THREADS, naive_worker, args, sizeof args[0]);
    for (int i = 0; i < NAIVE_THREADS; i++)
        sold += args[i].sold;
    /* 100 units, yet every thread sells in every round: 320 orders recorded. */
    ck_assert_int_gt(sold, 100);
    ck_assert_int_eq(sold, NAIVE_THREADS * 10);
}
END_TEST

/* --------------------------------------------- idempotency and bad input */

static const char *state_of(PGconn *c, const char *sql, int n, const char *const *params)
{
    static char st[6];
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    snprintf(st, sizeof st, "%s", s ? s : "00000");
    PQclear(r);
    return st;
}

/* co_create_order of cart (JSON) for a new shopper, as a new order whose id
 * goes into order; returns its amount (the call must succeed). */
static long long create_order(const char *cart, char order[37])
{
    char user[37];
    const char *p[3] = {order, user, cart};

    co_test_uuid(order);
    co_test_uuid(user);
    return co_test_llp(conn, "SELECT amount FROM co_create_order($1, $2, $3)", 3, p);
}

START_TEST(release_is_idempotent)
{
    char item[37], order[37], cart[128];
    const char *p1[1] = {order};

    make_item("rel", 100, 5, item);
    cart1(cart, sizeof cart, item, 2);
    create_order(cart, order);
    ck_assert_str_eq(state_of(conn, "SELECT co_reserve_order($1)", 1, p1), "00000");
    /* Reserving twice holds the units once. */
    ck_assert_str_eq(state_of(conn, "SELECT co_reserve_order($1)", 1, p1), "00000");
    ck_assert_int_eq(available("rel"), 3);
    ck_assert_int_eq(co_test_llp(conn, "SELECT co_release_order($1)::int", 1, p1), 1);
    ck_assert_int_eq(co_test_llp(conn, "SELECT co_release_order($1)::int", 1, p1), 0);
    ck_assert_int_eq(available("rel"), 5);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_ledger WHERE kind = 'release'"),
                     1);
    ck_assert_int_eq(co_test_audit(conn), 0);
}
END_TEST

START_TEST(restock_is_idempotent_per_event)
{
    char item[37];
    const char *p[3] = {"evt-1", item, "3"};
    PGresult *r;

    make_item("rs", 100, 0, item);
    r = PQexecParams(conn, "SELECT applied, became_available, stock FROM co_restock($1, $2, $3)",
                     3, NULL, p, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "t");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "t");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "3");
    PQclear(r);
    r = PQexecParams(conn, "SELECT applied, became_available, stock FROM co_restock($1, $2, $3)",
                     3, NULL, p, NULL, NULL, 0);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "f");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "3");
    PQclear(r);
    /* Already available: a new event adds stock but is not a "back in stock". */
    p[0] = "evt-2";
    r = PQexecParams(conn, "SELECT applied, became_available, stock FROM co_restock($1, $2, $3)",
                     3, NULL, p, NULL, NULL, 0);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "t");
    ck_assert_str_eq(PQgetvalue(r, 0, 1), "f");
    ck_assert_str_eq(PQgetvalue(r, 0, 2), "6");
    PQclear(r);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_ledger WHERE kind = 'restock'"),
                     2);
    ck_assert_int_eq(co_test_audit(conn), 0);
}
END_TEST

START_TEST(bad_input_changes_nothing)
{
    char item[37], order[37], user[37], cart[256];
    const char *p3[3] = {order, user, cart};
    static const struct {
        const char *cart_fmt; /* %s is a real item id */
        const char *state;
    } cases[] = {
        {"[{\"item_id\":\"%s\",\"quantity\":0}]", "CK400"},
        {"[{\"item_id\":\"%s\",\"quantity\":-1}]", "CK400"},
        {"[{\"item_id\":\"%s\",\"quantity\":1.5}]", "CK400"},
        {"[{\"item_id\":\"%s\",\"quantity\":\"1\"}]", "CK400"},
        {"[{\"item_id\":\"%s\",\"quantity\":1001}]", "CK400"},
        {"[{\"item_id\":\"%s\"}]", "CK400"},
        {"[]", "CK400"},
        {"{}", "CK400"},
        {"[{\"item_id\":\"not-a-uuid\",\"quantity\":1}]", "CK400"},
        {"[{\"item_id\":\"00000000-0000-0000-0000-000000000000\",\"quantity\":1}]", "CK404"},
        {"[{\"item_id\":\"%s\",\"quantity\":1},"
         "{\"item_id\":\"00000000-0000-0000-0000-000000000001\",\"quantity\":1}]", "CK404"},
    };
    const char *rs[3] = {"evt", item, "0"};
    const char *rs_unknown[3] = {"evt2", "00000000-0000-0000-0000-000000000000", "1"};
    const char *release_unknown[1] = {"00000000-0000-0000-0000-000000000000"};

    make_item("bad", 100, 5, item);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        co_test_uuid(order);
        co_test_uuid(user);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(cart, sizeof cart, cases[i].cart_fmt, item);
#pragma GCC diagnostic pop
        ck_assert_msg(strcmp(state_of(conn, "SELECT * FROM co_create_order($1, $2, $3)", 3, p3),
                             cases[i].state) == 0, "case %zu: %s", i, cart);
    }
    ck_assert_str_eq(state_of(conn, "SELECT * FROM co_restock($1, $2, $3)", 3, rs), "CK400");
    rs[2] = "-4";
    ck_assert_str_eq(state_of(conn, "SELECT * FROM co_restock($1, $2, $3)", 3, rs), "CK400");
    ck_assert_str_eq(state_of(conn, "SELECT * FROM co_restock($1, $2, $3)", 3, rs_unknown),
                     "CK404");
    ck_assert_str_eq(state_of(conn, "SELECT co_release_order($1)", 1, release_unknown), "CK410");
    ck_assert_str_eq(state_of(conn, "SELECT co_reserve_order($1)", 1, release_unknown), "CK410");
    /* Nothing changed. */
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders"), 0);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM restock_events"), 0);
    ck_assert_int_eq(available("bad"), 5);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_ledger"), 1);
}
END_TEST

START_TEST(duplicate_lines_are_merged)
{
    char item[37], order[37], cart[256];
    const char *p1[1] = {order};

    make_item("dup", 100, 3, item);
    /* 2 + 2 of a 3-unit item: checked as 4 against 3, never as 2 twice. */
    snprintf(cart, sizeof cart,
             "[{\"item_id\":\"%s\",\"quantity\":2},{\"item_id\":\"%s\",\"quantity\":2}]",
             item, item);
    ck_assert_int_eq(create_order(cart, order), 400);
    ck_assert_int_eq(co_test_llp(conn, "SELECT count(*) FROM order_lines WHERE order_id = $1",
                                 1, p1), 1);
    ck_assert_str_eq(state_of(conn, "SELECT co_reserve_order($1)", 1, p1), "CK409");
    ck_assert_int_eq(available("dup"), 3);
}
END_TEST

/* The suite's tests, in a test case of each mode. */
static void add_race(Suite *s, const char *name, void (*fixture)(void))
{
    TCase *race = co_test_tcase(s, name, 120);

    tcase_add_checked_fixture(race, fixture, teardown);
    tcase_add_test(race, race_for_last_unit);
    tcase_add_test(race, random_quantities_never_oversell);
    tcase_add_test(race, opposite_order_carts_no_deadlock);
    tcase_add_test(race, naive_read_then_update_oversells);
}

static void add_rules(Suite *s, const char *name, void (*fixture)(void))
{
    TCase *rules = co_test_tcase(s, name, 30);

    tcase_add_checked_fixture(rules, fixture, teardown);
    tcase_add_test(rules, release_is_idempotent);
    tcase_add_test(rules, restock_is_idempotent_per_event);
    tcase_add_test(rules, bad_input_changes_nothing);
    tcase_add_test(rules, duplicate_lines_are_merged);
}

static Suite *stock_suite(void)
{
    Suite *s = suite_create("stock");

    add_race(s, "race", setup);
    add_rules(s, "rules", setup);
    add_race(s, "race_hot", setup_hot);
    add_rules(s, "rules_hot", setup_hot);
    return s;
}

int main(void)
{
    return co_test_run(stock_suite());
}

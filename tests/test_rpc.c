/* The stock functions as an RPC surface (sql/0009_rpc_roles.sql): who may
 * execute what (PUBLIC nothing; a Supabase-style anon / authenticated /
 * service_role setup through co_rpc_grants), and reservations made through
 * the functions alone expiring through the recovery sweep. Real roles, real
 * SET ROLE, on the real server. */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static co_test_db db;
static PGconn *conn;
static char role_plain[64], role_anon[64], role_auth[64], role_svc[64];

static void setup(void)
{
    co_test_db_create(&db);
    conn = co_test_connect(&db);
    /* Roles are cluster-wide: names of this test process only. */
    snprintf(role_plain, sizeof role_plain, "co_t_plain_%d", (int)getpid());
    snprintf(role_anon, sizeof role_anon, "co_t_anon_%d", (int)getpid());
    snprintf(role_auth, sizeof role_auth, "co_t_authenticated_%d", (int)getpid());
    snprintf(role_svc, sizeof role_svc, "co_t_service_%d", (int)getpid());
}

/* Drops the database, then the roles (nothing of theirs is left once it is gone). */
static void teardown(void)
{
    const char *roles[] = {role_plain, role_anon, role_auth, role_svc};
    co_test_db admin_db = db;
    PGconn *c;

    PQfinish(conn);
    co_test_db_drop(&db);
    /* Any database will do to drop a role: the template's sibling "postgres". */
    snprintf(admin_db.url, sizeof admin_db.url, "%s", getenv("CO_TEST_ADMIN_URL"));
    c = co_test_connect(&admin_db);
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        char sql[128];

        snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS \"%s\"", roles[i]);
        co_test_exec(c, sql);
    }
    PQfinish(c);
}

/* ---------------------------------------------------------------- helpers */

static char last_error[512];

/* The SQLSTATE of sql ("00000" when it succeeded); its message in last_error. */
static const char *state_of(const char *sql, int n, const char *const *params)
{
    static char st[6];
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    snprintf(st, sizeof st, "%s", s ? s : "00000");
    snprintf(last_error, sizeof last_error, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return st;
}

/* sql is refused for want of EXECUTE on the function fn (not, say, for want of
 * a table privilege inside it: that would be a function anyone may call). */
static void expect_denied(const char *sql, int n, const char *const *params, const char *fn)
{
    char want[128];

    snprintf(want, sizeof want, "permission denied for function %s", fn);
    ck_assert_msg(strcmp(state_of(sql, n, params), "42501") == 0 &&
                      strstr(last_error, want) != NULL,
                  "%s: wanted \"%s\", got %s", sql, want,
                  last_error[0] ? last_error : "success");
}

__attribute__((format(printf, 1, 2)))
static void exec_f(const char *fmt, ...)
{
    char sql[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    co_test_exec(conn, sql);
}

static void as_role(const char *role)
{
    exec_f("SET ROLE \"%s\"", role);
}

static void as_owner(void)
{
    co_test_exec(conn, "RESET ROLE");
}

/* A pending order for one unit of item, made by co_create_order. */
static void rpc_order(const char *item, char order[37])
{
    char user[37], cart[128];
    const char *p[3] = {order, user, cart};

    co_test_uuid(order);
    co_test_uuid(user);
    snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":1}]", item);
    ck_assert_str_eq(state_of("SELECT * FROM co_create_order($1, $2, $3)", 3, p), "00000");
}

static void rpc_reserve(const char *order)
{
    const char *p[1] = {order};

    ck_assert_str_eq(state_of("SELECT co_reserve_order($1)", 1, p), "00000");
}

/* ---------------------------------------------------------------- PUBLIC */

/* Any role may connect to the database: none but the owner may execute a
 * function, co_restock included, nor one the owner creates in a later
 * migration. */
START_TEST(public_executes_nothing)
{
    char item[37], order[37];
    const char *p_item[1] = {item};
    const char *p_order[1] = {order};

    co_test_item(conn, "rpc-pub", 100, 5, item);
    rpc_order(item, order);
    exec_f("CREATE ROLE \"%s\" NOLOGIN", role_plain);
    /* What a later migration adds, created by the same owner. */
    co_test_exec(conn, "CREATE FUNCTION co_t_later() RETURNS int LANGUAGE sql AS 'SELECT 1'");

    as_role(role_plain);
    expect_denied("SELECT * FROM co_restock('evt-pub', $1, 100)", 1, p_item, "co_restock");
    expect_denied("SELECT co_reserve_order($1)", 1, p_order, "co_reserve_order");
    expect_denied("SELECT co_release_order($1)", 1, p_order, "co_release_order");
    expect_denied("SELECT co_item_available($1)", 1, p_item, "co_item_available");
    expect_denied("SELECT co_t_later()", 0, NULL, "co_t_later");
    as_owner();

    ck_assert_int_eq(co_test_ll1(conn,
                                 "SELECT count(*) FROM pg_proc p JOIN pg_namespace n"
                                 "  ON n.oid = p.pronamespace AND n.nspname = 'public'"
                                 " WHERE has_function_privilege($1, p.oid, 'EXECUTE')",
                                 role_plain),
                     0);
    ck_assert_int_eq(co_test_ll(conn, "SELECT stock FROM items WHERE sku = 'rpc-pub'"), 5);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM restock_events"), 0);
}
END_TEST

/* ---------------------------------------------------------------- Supabase-style roles */

/* What Supabase does to every role of its API: EXECUTE on every function and
 * every privilege on every table of public, now and by default later. */
static void supabase_defaults(const char *role)
{
    exec_f("CREATE ROLE \"%s\" NOLOGIN", role);
    exec_f("GRANT ALL ON ALL TABLES IN SCHEMA public TO \"%s\"", role);
    exec_f("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO \"%s\"", role);
    exec_f("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO \"%s\"", role);
    exec_f("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO \"%s\"", role);
    exec_f("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO \"%s\"", role);
}

/* A shopper-side role after co_rpc_grants: reads availability, and nothing else. */
static void check_shopper_role(const char *role, const char *item, const char *order)
{
    const char *p_item[1] = {item};
    const char *p_order[1] = {order};
    char user[37], cart[128], other[37];
    const char *p_create[3] = {other, user, cart};

    co_test_uuid(other);
    co_test_uuid(user);
    snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":1}]", item);
    as_role(role);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT co_item_available($1)", item), 9);
    expect_denied("SELECT * FROM co_restock('evt-shop', $1, 100)", 1, p_item, "co_restock");
    expect_denied("SELECT co_create_item('x', 'x', 1, 'usd', 1000)", 0, NULL, "co_create_item");
    expect_denied("SELECT * FROM co_create_order($1, $2, $3)", 3, p_create, "co_create_order");
    expect_denied("SELECT co_reserve_order($1)", 1, p_order, "co_reserve_order");
    expect_denied("SELECT co_release_order($1)", 1, p_order, "co_release_order");
    expect_denied("SELECT count(*) FROM co_claim_stalled('x', 60, 10)", 0, NULL,
                  "co_claim_stalled");
    expect_denied("SELECT co_t_later2()", 0, NULL, "co_t_later2");
    /* No table either: not the orders of others, not the stock column. */
    ck_assert_str_eq(state_of("SELECT count(*) FROM orders", 0, NULL), "42501");
    ck_assert_str_eq(state_of("UPDATE items SET stock = 1000", 0, NULL), "42501");
    ck_assert_str_eq(state_of("SELECT count(*) FROM co_t_later_table", 0, NULL), "42501");
    as_owner();
}

/* co_rpc_grants on roles set up as Supabase sets them: service_role may
 * restock, create items and orders, reserve and release; authenticated and
 * anon may only read availability, reach no table, and get nothing of what
 * the owner creates later. */
START_TEST(grants_for_supabase_roles)
{
    char item[37], order[37], svc_order[37], user[37], cart[128], applied[256];
    const char *p_args[3] = {role_anon, role_auth, role_svc};
    const char *p_order[1] = {svc_order};
    const char *p_create[3] = {svc_order, user, cart};
    const char *p_item[1] = {item};

    co_test_item(conn, "rpc-roles", 100, 10, item);
    rpc_order(item, order);
    rpc_reserve(order);
    supabase_defaults(role_anon);
    supabase_defaults(role_auth);
    supabase_defaults(role_svc);
    co_test_strp(conn, applied, sizeof applied, "SELECT co_rpc_grants($1, $2, $3)::text", 3,
                 p_args);
    ck_assert_msg(strstr(applied, role_anon) && strstr(applied, role_auth) &&
                      strstr(applied, role_svc),
                  "co_rpc_grants applied to %s", applied);
    /* A later migration's function and table, by the same owner. */
    co_test_exec(conn, "CREATE FUNCTION co_t_later2() RETURNS int LANGUAGE sql AS 'SELECT 2'");
    co_test_exec(conn, "CREATE TABLE co_t_later_table (x int)");

    check_shopper_role(role_anon, item, order);
    check_shopper_role(role_auth, item, order);

    /* service_role: the whole RPC surface, through the functions' own rights. */
    co_test_uuid(svc_order);
    co_test_uuid(user);
    snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":2}]", item);
    as_role(role_svc);
    ck_assert_str_eq(state_of("SELECT co_create_item('rpc-svc', 'Made by service_role', 500,"
                              " 'usd', 3)", 0, NULL), "00000");
    ck_assert_str_eq(state_of("SELECT * FROM co_restock('evt-svc', $1, 4)", 1, p_item), "00000");
    ck_assert_str_eq(state_of("SELECT * FROM co_create_order($1, $2, $3)", 3, p_create), "00000");
    ck_assert_str_eq(state_of("SELECT co_reserve_order($1)", 1, p_order), "00000");
    ck_assert_int_eq(co_test_ll1(conn, "SELECT co_item_available($1)", item), 9 + 4 - 2);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT co_release_order($1)::int", svc_order), 1);
    /* Not the saga's functions: those are checkoutd's alone. */
    expect_denied("SELECT count(*) FROM co_claim_stalled('x', 60, 10)", 0, NULL,
                  "co_claim_stalled");
    as_owner();
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM items WHERE sku = 'rpc-svc'"), 1);
    co_test_stock_invariant(conn);

    /* Idempotent, and a missing role is skipped. */
    p_args[1] = role_svc;
    co_test_strp(conn, applied, sizeof applied,
                 "SELECT co_rpc_grants($1, 'co_t_no_such_role', $2)::text", 2, p_args);
    ck_assert_msg(strstr(applied, "no_such") == NULL && strstr(applied, role_svc), "%s", applied);
}
END_TEST

/* ---------------------------------------------------------------- RPC reservations expire */

/* A reservation made through co_create_order + co_reserve_order gets an
 * expiry; stock_held_overdue flags it once that passed (and any pending
 * reservation without one); the recovery sweep (co_claim_stalled) then
 * releases it and ends the order 'expired', without handing it to the saga. A
 * reservation of an order that ended is refused instead of taking stock. */
START_TEST(rpc_reservation_expires_in_the_sweep)
{
    char item[37], order[3][37], claimed[64];
    const char *p0[1] = {order[0]};

    co_test_item(conn, "rpc-exp", 100, 5, item);
    co_test_exec(conn, "SET checkout.rpc_reservation_ttl_seconds = '600'");
    for (int i = 0; i < 3; i++) {
        rpc_order(item, order[i]);
        rpc_reserve(order[i]);
    }
    ck_assert_int_eq(co_test_ll(conn, "SELECT stock FROM items WHERE sku = 'rpc-exp'"), 2);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT count(*) FROM orders WHERE id = $1 AND"
                                       " reservation_expires_at BETWEEN now() + interval '590 s'"
                                       " AND now() + interval '610 s'", order[0]), 1);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_held_overdue"), 0);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM co_claim_stalled('t', 60, 16)"), 0);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders WHERE status = 'pending'"
                                      " AND stock_held"), 3);

    /* Time passes for two of them; the third had no expiry (made before 0009). */
    co_test_exec(conn, "UPDATE orders SET reservation_expires_at = now() - interval '1 s'");
    exec_f("UPDATE orders SET reservation_expires_at = NULL WHERE id = '%s'", order[2]);
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_held_overdue"), 3);

    /* The expiry on its own ends the oldest, up to its limit... */
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM co_expire_rpc_reservations(1)"), 1);
    ck_assert_int_eq(co_test_ll(conn, "SELECT stock FROM items WHERE sku = 'rpc-exp'"), 3);
    co_test_stock_invariant(conn);
    /* ...and the sweep, which calls it, the other: it returns no order to
     * drive (nothing for the saga). */
    co_test_strp(conn, claimed, sizeof claimed,
                 "SELECT coalesce(string_agg(x::text, ','), '')"
                 "  FROM co_claim_stalled('t', 60, 16) x",
                 0, NULL);
    ck_assert_str_eq(claimed, "");
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM orders WHERE status = 'expired'"
                                      " AND NOT stock_held"), 2);
    ck_assert_int_eq(co_test_ll(conn, "SELECT stock FROM items WHERE sku = 'rpc-exp'"), 4);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT count(*) FROM order_history WHERE order_id = $1"
                                       " AND from_status = 'pending' AND to_status = 'expired'"
                                       " AND reason = 'reservation_expired'", order[0]), 1);
    /* The one without an expiry is flagged, not silently kept. */
    ck_assert_int_eq(co_test_ll(conn, "SELECT count(*) FROM stock_held_overdue"), 1);
    ck_assert_int_eq(co_test_ll1(conn, "SELECT count(*) FROM stock_held_overdue"
                                       " WHERE order_id = $1 AND reservation_expires_at IS NULL",
                                 order[2]), 1);
    co_test_stock_invariant(conn);

    /* An expired order is not reserved again; its units stay with the shop. */
    ck_assert_str_eq(state_of("SELECT co_reserve_order($1)", 1, p0), "CK410");
    ck_assert_int_eq(co_test_ll(conn, "SELECT stock FROM items WHERE sku = 'rpc-exp'"), 4);
    /* A bad TTL setting is refused, naming it. */
    co_test_exec(conn, "SET checkout.rpc_reservation_ttl_seconds = 'soon'");
    rpc_order(item, order[1]);
    {
        const char *p1[1] = {order[1]};

        ck_assert_str_eq(state_of("SELECT co_reserve_order($1)", 1, p1), "CK400");
    }
    co_test_exec(conn, "RESET checkout.rpc_reservation_ttl_seconds");
}
END_TEST

/* End to end: a running checkoutd's recovery thread (RECOVERY_INTERVAL_MS 100
 * in the harness) releases an RPC reservation once it expired. */
START_TEST(running_server_releases_expired_rpc_reservation)
{
    co_test_server s;
    char item[37], order[37], user[37], cart[128];
    const char *p[3] = {order, user, cart};
    PGresult *r;

    co_test_server_start(&s, NULL, NULL);
    co_test_item(s.conn, "rpc-e2e", 100, 1, item);
    co_test_uuid(order);
    co_test_uuid(user);
    snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":1}]", item);
    co_test_exec(s.conn, "SET checkout.rpc_reservation_ttl_seconds = '1'");
    r = PQexecParams(s.conn, "SELECT * FROM co_create_order($1, $2, $3)", 3, NULL, p, NULL, NULL,
                     0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    r = PQexecParams(s.conn, "SELECT co_reserve_order($1)", 1, NULL, p, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    ck_assert_int_eq(co_test_stock(&s, item), 0);
    ck_assert_str_eq(co_test_wait_status(&s, order, "expired", 10000), "expired");
    ck_assert_int_eq(co_test_stock(&s, item), 1);
    co_test_invariants(&s, true);
    co_test_server_stop(&s);
}
END_TEST

static Suite *rpc_suite(void)
{
    Suite *s = suite_create("rpc");
    TCase *roles = co_test_tcase(s, "roles", 30);
    TCase *expiry = co_test_tcase(s, "expiry", 30);
    TCase *server = co_test_tcase(s, "server", 60);

    tcase_add_checked_fixture(roles, setup, teardown);
    tcase_add_test(roles, public_executes_nothing);
    tcase_add_test(roles, grants_for_supabase_roles);
    tcase_add_checked_fixture(expiry, setup, teardown);
    tcase_add_test(expiry, rpc_reservation_expires_in_the_sweep);
    tcase_add_test(server, running_server_releases_expired_rpc_reservation);
    return s;
}

int main(void)
{
    return co_test_run_http(rpc_suite());
}

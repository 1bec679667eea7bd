/* checkoutd audit, run as an operator runs it: $CO_BIN_DIR/checkoutd audit
 * with DATABASE_URL, STRIPE_API_BASE and STRIPE_SECRET_KEY in its
 * environment, against a real checkoutd, mock-stripe, mock-notify and
 * Postgres. A clean run of real checkouts (both flows, a decline, a refund, a
 * restock with subscribers) is all zeros with the right outcome counts; then
 * each anomaly is made on purpose, behind the server's back (SQL, or calls at
 * the mock or the sink), and exactly that one counts 1. */
#include "server.h"

#include "co_sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;

/* Quick notification retries; two attempts before a notification is dead. */
static const char *const notify_env[] = {"NOTIFY_INTERVAL_MS=50", "NOTIFY_BACKOFF_MS=50",
                                         "NOTIFY_MAX_ATTEMPTS=2", NULL};

static const char *const anomalies[] = {
    "oversold_units", "ledger_mismatches", "double_charges",
    "captured_money_without_confirmed_order", "confirmed_without_capture",
    "dangling_authorizations", "non_terminal_orders", "duplicate_webhook_effects",
    "missed_notifications", "duplicated_notifications",
};
#define N_ANOMALIES (sizeof anomalies / sizeof anomalies[0])

/* ------------------------------------------------------------ running it */

static const char *bin_dir(void)
{
    const char *d = getenv("CO_BIN_DIR");

    return d && d[0] ? d : "build/san/bin";
}

/* Runs checkoutd audit with args (NULL-terminated) and env ("K=V" set over
 * the test's own environment, NULL-terminated; the database and provider of
 * srv are set first). Its stdout goes into out (n bytes); returns its exit
 * status (-1 when it did not exit). */
static int run_env(const char *const args[], const char *const env[], char *out, size_t n)
{
    char path[512], db[600], api[300];
    char *argv[16];
    int fd[2], status = 0, argc = 0;
    size_t len = 0;
    pid_t pid;

    snprintf(path, sizeof path, "%s/checkoutd", bin_dir());
    snprintf(db, sizeof db, "DATABASE_URL=%s", srv.db.url);
    snprintf(api, sizeof api, "STRIPE_API_BASE=%s", srv.mock.url);
    argv[argc++] = path;
    argv[argc++] = "audit";
    for (int i = 0; args[i] != NULL && argc < 15; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    ck_assert_int_eq(pipe(fd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        putenv(db);
        putenv(api);
        putenv("STRIPE_SECRET_KEY=sk_test_checkout");
        putenv("LOG_LEVEL=error");
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(path, argv);
        _exit(127);
    }
    close(fd[1]);
    for (;;) {
        ssize_t got = read(fd[0], out + len, n - 1 - len);

        if (got <= 0)
            break;
        len += (size_t)got;
        if (len == n - 1)
            break;
    }
    out[len] = '\0';
    close(fd[0]);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char out[1 << 16];

/* checkoutd audit --json --settled-after 0 [--sink the mock-notify] [more]:
 * the exit status in *rc, the printed object (caller decrefs). */
static json_t *audit_json(bool sink, const char *more, int *rc)
{
    char sink_url[300];
    const char *args[8] = {"--json", "--settled-after", "0", NULL, NULL, NULL, NULL, NULL};
    int n = 3;
    json_t *j;

    if (sink) {
        snprintf(sink_url, sizeof sink_url, "%s", srv.notify.url);
        args[n++] = "--sink";
        args[n++] = sink_url;
    }
    if (more != NULL)
        args[n++] = more;
    *rc = run_env(args, NULL, out, sizeof out);
    j = json_loads(out, 0, NULL);
    ck_assert_msg(j != NULL, "audit printed no JSON (exit %d): %s", *rc, out);
    return j;
}

static long long count_of(json_t *j, const char *anomaly)
{
    json_t *a = json_object_get(json_object_get(j, "anomalies"), anomaly);

    ck_assert_msg(json_is_integer(json_object_get(a, "count")), "no %s in %s", anomaly, out);
    return json_integer_value(json_object_get(a, "count"));
}

/* The anomaly's first example id ("" when none). */
static const char *example_of(json_t *j, const char *anomaly)
{
    json_t *a = json_object_get(json_object_get(j, "anomalies"), anomaly);
    const char *s = json_string_value(json_array_get(json_object_get(a, "examples"), 0));

    return s != NULL ? s : "";
}

/* Runs the audit (with the sink) and asserts that only `only` counts, and
 * counts 1, naming `example` when that is not NULL (only NULL: all zeros,
 * exit 0). */
static void expect_only(const char *only, const char *example)
{
    int rc;
    json_t *j = audit_json(true, NULL, &rc);

    for (size_t i = 0; i < N_ANOMALIES; i++)
        ck_assert_msg(count_of(j, anomalies[i]) == (only && !strcmp(only, anomalies[i]) ? 1 : 0),
                      "%s counts %lld: %s", anomalies[i], count_of(j, anomalies[i]), out);
    if (only != NULL && example != NULL)
        ck_assert_str_eq(example_of(j, only), example);
    ck_assert_msg(rc == (only ? 1 : 0), "exit %d: %s", rc, out);
    json_decref(j);
}

/* ------------------------------------------------------------ the shop's day */

typedef struct {
    char item[37];      /* 5 units at 1000 */
    char paid[37];      /* server flow, confirmed */
    char paid_pi[64];
    char mobile[37];    /* mobile flow, confirmed */
    char refunded[37];  /* server flow, confirmed, then cancelled: refunded */
    char declined[37];  /* server flow, failed */
    char back[37];      /* out of stock, two subscribers, restocked */
} day;

/* A checkout of one unit by a new shopper (user, 37 bytes, may be NULL). */
static void checkout(const char *item, const char *pm, long want, char order[37], char pi[64],
                     char *user_out)
{
    char body[256], user[37], key[37];

    co_test_uuid(user);
    co_test_uuid(key);
    co_test_cart(body, sizeof body, item, 1, pm);
    co_test_checkout_order(&srv, user, key, body, want, order, pi);
    if (user_out != NULL)
        memcpy(user_out, user, 37);
}

static long send_restock(const char *event_id, const char *item, int qty)
{
    char body[256], url[512], hdr[600], sig[CO_SIG_HEADER_MAX];
    const char *headers[3] = {"Content-Type: application/json", hdr, NULL};
    co_http_resp r = {0};
    long status;

    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"item_id\":\"%s\",\"quantity\":%d}",
             event_id, item, qty);
    co_sig_header(CO_TEST_RESTOCK_SECRET, time(NULL), body, strlen(body), sig);
    snprintf(hdr, sizeof hdr, "Restock-Signature: %s", sig);
    snprintf(url, sizeof url, "%s/webhooks/restock", srv.url);
    co_http("POST", url, headers, body, strlen(body), &r);
    status = r.status;
    co_http_resp_free(&r);
    return status;
}

static void subscribe(const char *item)
{
    char path[160], user[37];
    char *tok;
    co_http_resp r = {0};

    co_test_uuid(user);
    tok = co_test_token(user, 600);
    snprintf(path, sizeof path, "/v1/items/%s/back-in-stock", item);
    ck_assert_int_eq(co_test_call(&srv, "POST", path, tok, NULL, &r), 201);
    co_http_resp_free(&r);
    free(tok);
}

static long long q(const char *sql)
{
    return co_test_ll(srv.conn, sql);
}

static void wait_for(const char *sql, long long want)
{
    for (int w = 0; w < 200 && q(sql) != want; w++)
        usleep(50 * 1000);
    ck_assert_int_eq(q(sql), want);
}

static void sink_fail_next(int n)
{
    char url[512], body[64];
    co_http_resp r = {0};

    snprintf(url, sizeof url, "%s/_mock/fail", srv.notify.url);
    snprintf(body, sizeof body, "{\"count\":%d}", n);
    ck_assert(co_http("POST", url, NULL, body, strlen(body), &r));
    ck_assert_int_eq(r.status, 200);
    co_http_resp_free(&r);
}

/* Both flows, a decline, a refund, a restock with two subscribers, all ended. */
static void shop_day(day *d)
{
    char pi[64], user[37];
    co_http_resp r = {0};

    co_test_item(srv.conn, "audit-a", 1000, 5, d->item);
    checkout(d->item, "pm_card_visa", 201, d->paid, d->paid_pi, NULL);
    checkout(d->item, NULL, 202, d->mobile, pi, user);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_msg(co_test_order_post(&srv, user, d->mobile, "confirm", &r) == 200, "confirm: %s",
                  r.body);
    co_http_resp_free(&r);
    checkout(d->item, "pm_card_visa", 201, d->refunded, NULL, user);
    ck_assert_msg(co_test_order_post(&srv, user, d->refunded, "cancel", &r) < 300, "cancel: %s",
                  r.body);
    co_http_resp_free(&r);
    checkout(d->item, "pm_card_visa_chargeDeclined", 402, d->declined, NULL, NULL);
    /* A refusal names its order inside the error: read it from the database. */
    co_test_strp(srv.conn, d->declined, 37, "SELECT id FROM orders WHERE status = 'failed'", 0,
                 NULL);
    ck_assert_int_eq(strlen(d->declined), 36);
    co_test_item(srv.conn, "audit-b", 500, 0, d->back);
    subscribe(d->back);
    subscribe(d->back);
    ck_assert_int_eq(send_restock("audit-rs-1", d->back, 3), 200);
    ck_assert_str_eq(co_test_wait_status(&srv, d->mobile, "confirmed", 10000), "confirmed");
    ck_assert_str_eq(co_test_wait_status(&srv, d->refunded, "refunded", 10000), "refunded");
    ck_assert_str_eq(co_test_wait_status(&srv, d->declined, "failed", 10000), "failed");
    wait_for("SELECT count(*) FROM notification_outbox WHERE status = 'delivered'", 2);
}

/* ------------------------------------------------------------ the tests */

START_TEST(a_clean_day_is_all_zeros_with_its_outcomes_counted)
{
    day d;
    int rc;
    json_t *j, *ck;

    shop_day(&d);
    co_test_invariants(&srv, true);
    j = audit_json(true, NULL, &rc);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    for (size_t i = 0; i < N_ANOMALIES; i++)
        ck_assert_msg(count_of(j, anomalies[i]) == 0, "%s: %s", anomalies[i], out);
    ck = json_object_get(j, "checkouts");
    ck_assert_int_eq(json_integer_value(json_object_get(ck, "total")), 4);
#define AT(a, b, c) json_integer_value(json_object_get(json_object_get(json_object_get(ck, a), \
                                                                       b), c))
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(ck, "by_status"),
                                                        "confirmed")), 2);
    ck_assert_int_eq(AT("by_flow", "server", "confirmed"), 1);
    ck_assert_int_eq(AT("by_flow", "mobile", "confirmed"), 1);
    ck_assert_int_eq(AT("by_flow", "server", "refunded"), 1);
    ck_assert_int_eq(AT("by_flow", "server", "failed"), 1);
    ck_assert_int_eq(AT("by_flow", "server", "total"), 3);
    ck_assert_int_eq(AT("by_flow", "mobile", "total"), 1);
#undef AT
    ck_assert(json_is_true(json_object_get(json_object_get(j, "checked"), "provider")));
    ck_assert(json_is_true(json_object_get(json_object_get(j, "checked"), "sink")));
    json_decref(j);

    /* Without the sink: the outbox alone, and the JSON says so. */
    j = audit_json(false, NULL, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert(json_is_false(json_object_get(json_object_get(j, "checked"), "sink")));
    json_decref(j);

    /* The table: both parts, every anomaly on its line, the outbox named. */
    {
        const char *args[] = {"--settled-after", "0", NULL};

        ck_assert_int_eq(run_env(args, NULL, out, sizeof out), 0);
        ck_assert_ptr_nonnull(strstr(out, "Checkouts by outcome: 4 orders"));
        ck_assert_ptr_nonnull(strstr(out, "from the outbox alone"));
        for (size_t i = 0; i < N_ANOMALIES; i++)
            ck_assert_ptr_nonnull(strstr(out, anomalies[i]));
    }
    /* The sink named by its endpoint rather than its base: the same. */
    {
        char sink[400];
        const char *args[] = {"--json", "--settled-after", "0", "--sink", sink, NULL};

        snprintf(sink, sizeof sink, "%s/_mock/deliveries/", srv.notify.url);
        ck_assert_int_eq(run_env(args, NULL, out, sizeof out), 0);
        ck_assert_ptr_nonnull(strstr(out, "\"sink\":true"));
    }
    /* Created since a moment from now: nothing in scope. */
    j = audit_json(true, "--since=2999-01-01T00:00:00Z", &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "checkouts"),
                                                        "total")), 0);
    json_decref(j);
}
END_TEST

START_TEST(units_held_beyond_the_supply_are_oversold)
{
    day d;
    const char *p[1];

    shop_day(&d);
    /* The paid order now holds one unit more than the item ever had. */
    p[0] = d.paid;
    co_test_llp(srv.conn,
                "WITH u AS (UPDATE order_lines SET quantity = quantity + 1"
                " + co_item_available(item_id) WHERE order_id = $1 RETURNING 1)"
                " SELECT count(*) FROM u", 1, p);
    expect_only("oversold_units", d.item);
}
END_TEST

START_TEST(stock_lowered_behind_the_ledger_is_a_mismatch)
{
    day d;
    const char *p[1];

    shop_day(&d);
    p[0] = d.item;
    co_test_llp(srv.conn, "WITH u AS (UPDATE items SET stock = stock - 1 WHERE id = $1"
                          " RETURNING 1) SELECT count(*) FROM u", 1, p);
    expect_only("ledger_mismatches", d.item);
}
END_TEST

START_TEST(a_deleted_ledger_row_is_a_mismatch)
{
    day d;
    const char *p[1];

    shop_day(&d);
    p[0] = d.declined;
    ck_assert_int_eq(co_test_llp(srv.conn, "WITH x AS (DELETE FROM stock_ledger"
                                           " WHERE order_id = $1 AND kind = 'release'"
                                           " RETURNING 1) SELECT count(*) FROM x", 1, p), 1);
    expect_only("ledger_mismatches", d.item);
}
END_TEST

/* A PaymentIntent made at the mock for order, confirmed with pm_card_visa:
 * captured at once, or left requires_capture when manual. */
static void intent_at_mock(const char *order, long long amount, bool manual)
{
    char body[512];
    co_http_resp r = {0};

    snprintf(body, sizeof body,
             "amount=%lld&currency=usd&confirm=true&payment_method=pm_card_visa"
             "&payment_method_types[0]=card&metadata[order_id]=%s%s",
             amount, order, manual ? "&capture_method=manual" : "");
    ck_assert_msg(co_test_mock(&srv, "POST", "/v1/payment_intents", body, NULL, &r) == 200,
                  "intent: %ld %s", r.status, r.body);
    co_http_resp_free(&r);
}

START_TEST(a_second_capture_for_a_confirmed_order_is_a_double_charge)
{
    day d;

    shop_day(&d);
    intent_at_mock(d.paid, 1000, false);
    expect_only("double_charges", d.paid);
}
END_TEST

START_TEST(money_captured_for_a_failed_order_is_kept_without_a_confirmed_order)
{
    day d;

    shop_day(&d);
    intent_at_mock(d.declined, 1000, false);
    expect_only("captured_money_without_confirmed_order", NULL);
    ck_assert_msg(strncmp(out, "{", 1) == 0 && strstr(out, "\"examples\":[\"pi_") != NULL,
                  "the example is the intent: %s", out);
}
END_TEST

START_TEST(a_confirmed_order_refunded_at_the_provider_has_no_capture)
{
    day d;
    char body[128];
    co_http_resp r = {0};

    shop_day(&d);
    snprintf(body, sizeof body, "payment_intent=%s", d.paid_pi);
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/refunds", body, NULL, &r), 200);
    co_http_resp_free(&r);
    expect_only("confirmed_without_capture", d.paid);
}
END_TEST

START_TEST(an_authorization_for_no_order_dangles)
{
    day d;
    char nobody[37];

    shop_day(&d);
    co_test_uuid(nobody);
    intent_at_mock(nobody, 700, true);
    expect_only("dangling_authorizations", NULL);
}
END_TEST

START_TEST(every_page_of_the_providers_list_is_read)
{
    day d;
    int rc;
    json_t *j;

    shop_day(&d);
    /* 150 authorizations for no order: with the day's intents, two pages of 100. */
    for (int i = 0; i < 150; i++) {
        char nobody[37];

        co_test_uuid(nobody);
        intent_at_mock(nobody, 100 + i, true);
    }
    j = audit_json(true, NULL, &rc);
    ck_assert_int_eq(count_of(j, "dangling_authorizations"), 150);
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(json_object_get(
                         j, "anomalies"), "dangling_authorizations"), "examples")), 5);
    ck_assert_int_eq(rc, 1);
    json_decref(j);
}
END_TEST

START_TEST(an_order_left_reserved_has_not_ended)
{
    day d;
    char left[37], pi[64];

    shop_day(&d);
    checkout(d.item, NULL, 202, left, pi, NULL);
    expect_only("non_terminal_orders", left);
}
END_TEST

START_TEST(a_state_entered_twice_is_a_duplicate_effect)
{
    day d;
    const char *p[1];

    shop_day(&d);
    p[0] = d.mobile;
    co_test_llp(srv.conn,
                "WITH x AS (INSERT INTO order_history (order_id, from_status, to_status, reason)"
                " SELECT order_id, from_status, to_status, reason FROM order_history"
                " WHERE order_id = $1 AND to_status = 'confirmed' RETURNING 1)"
                " SELECT count(*) FROM x", 1, p);
    expect_only("duplicate_webhook_effects", d.mobile);
}
END_TEST

START_TEST(a_notification_the_sink_never_accepted_is_missed)
{
    day d;
    char item[37];
    int rc;
    json_t *j;

    shop_day(&d);
    co_test_item(srv.conn, "audit-c", 500, 0, item);
    subscribe(item);
    sink_fail_next(1000);
    ck_assert_int_eq(send_restock("audit-rs-2", item, 1), 200);
    wait_for("SELECT count(*) FROM notification_outbox WHERE status = 'dead'", 1);
    sink_fail_next(0);
    expect_only("missed_notifications", NULL);
    /* The outbox alone knows it too: the row is dead. */
    j = audit_json(false, NULL, &rc);
    ck_assert_int_eq(count_of(j, "missed_notifications"), 1);
    ck_assert_int_eq(rc, 1);
    json_decref(j);
}
END_TEST

START_TEST(a_notification_accepted_twice_is_duplicated)
{
    day d;
    char url[512], hdr[600], sig[CO_SIG_HEADER_MAX];
    const char *headers[3] = {"Content-Type: application/json", hdr, NULL};
    co_http_resp r = {0};
    json_t *j, *body;
    char *text;
    int rc;

    shop_day(&d);
    /* The first accepted delivery, delivered again (signed, as the notifier signs). */
    snprintf(url, sizeof url, "%s/_mock/deliveries", srv.notify.url);
    co_http("GET", url, NULL, NULL, 0, &r);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    body = json_object_get(json_array_get(json_object_get(j, "data"), 0), "body");
    text = json_dumps(body, JSON_COMPACT);
    co_sig_header(CO_TEST_NOTIFY_SECRET, time(NULL), text, strlen(text), sig);
    snprintf(hdr, sizeof hdr, "Notify-Signature: %s", sig);
    snprintf(url, sizeof url, "%s/notify", srv.notify.url);
    co_http("POST", url, headers, text, strlen(text), &r);
    ck_assert_int_eq(r.status, 200);
    co_http_resp_free(&r);
    expect_only("duplicated_notifications", co_test_jstr(body, "id", NULL));
    free(text);
    json_decref(j);
    /* The outbox alone cannot see what the sink got. */
    j = audit_json(false, NULL, &rc);
    ck_assert_int_eq(count_of(j, "duplicated_notifications"), 0);
    ck_assert_int_eq(rc, 0);
    json_decref(j);
}
END_TEST

START_TEST(what_cannot_be_read_is_exit_2)
{
    char down[64], bad_api[128], bad_db[128];
    const char *json_args[] = {"--json", "--settled-after", "0", NULL};
    const char *no_settle[] = {"--json", NULL};
    const char *bad_args[] = {"--settled-after", "soon", NULL};
    const char *env_api[] = {bad_api, NULL};
    const char *env_db[] = {bad_db, NULL};
    const char *env_server[] = {"STRIPE_WEBHOOK_SECRET=" CO_TEST_WHSEC,
                                "RESTOCK_WEBHOOK_SECRET=x", "AUTH_JWT_SECRET=x",
                                "ADMIN_API_KEY=x", "SAGA_LEASE_SECONDS=7",
                                "RESERVATION_TTL_SECONDS=30", NULL};
    json_t *j;

    snprintf(down, sizeof down, "http://127.0.0.1:%u", co_test_free_port());
    snprintf(bad_api, sizeof bad_api, "STRIPE_API_BASE=%s", down);
    snprintf(bad_db, sizeof bad_db, "DATABASE_URL=postgresql://127.0.0.1:%u/none",
             co_test_free_port());
    ck_assert_int_eq(run_env(json_args, env_api, out, sizeof out), 2);
    ck_assert_int_eq(run_env(json_args, env_db, out, sizeof out), 2);
    ck_assert_str_eq(out, "");
    {
        const char *sink_down[] = {"--settled-after", "0", "--sink", down, NULL};

        ck_assert_int_eq(run_env(sink_down, NULL, out, sizeof out), 2);
    }
    ck_assert_int_eq(run_env(bad_args, NULL, out, sizeof out), 2);
    /* The default settle time is the server's: without its configuration, 2. */
    ck_assert_int_eq(run_env(no_settle, NULL, out, sizeof out), 2);
    /* With it, lease + reservation TTL. */
    ck_assert_int_eq(run_env(no_settle, env_server, out, sizeof out), 0);
    j = json_loads(out, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "settled_after")), 37);
    json_decref(j);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = co_test_tcase(s, "audit", 90);

    co_test_server_fixture(tc, &srv, notify_env, true);
    tcase_add_test(tc, a_clean_day_is_all_zeros_with_its_outcomes_counted);
    tcase_add_test(tc, units_held_beyond_the_supply_are_oversold);
    tcase_add_test(tc, stock_lowered_behind_the_ledger_is_a_mismatch);
    tcase_add_test(tc, a_deleted_ledger_row_is_a_mismatch);
    tcase_add_test(tc, a_second_capture_for_a_confirmed_order_is_a_double_charge);
    tcase_add_test(tc, money_captured_for_a_failed_order_is_kept_without_a_confirmed_order);
    tcase_add_test(tc, a_confirmed_order_refunded_at_the_provider_has_no_capture);
    tcase_add_test(tc, an_authorization_for_no_order_dangles);
    tcase_add_test(tc, every_page_of_the_providers_list_is_read);
    tcase_add_test(tc, an_order_left_reserved_has_not_ended);
    tcase_add_test(tc, a_state_entered_twice_is_a_duplicate_effect);
    tcase_add_test(tc, a_notification_the_sink_never_accepted_is_missed);
    tcase_add_test(tc, a_notification_accepted_twice_is_duplicated);
    tcase_add_test(tc, what_cannot_be_read_is_exit_2);
    return s;
}

int main(void)
{
    return co_test_run_http(suite());
}

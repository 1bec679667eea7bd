/* Reconciliation with the provider (states/reconcile.c): each drift is made on
 * purpose, at the mock (as an operator in the dashboard, or a provider that
 * lost something, would) or in the database (as a crash between a provider
 * call and our commit would), then bin/checkoutd reconcile runs as an
 * operator runs it, and the test checks what it did at the provider, the
 * order's state and history, the log, the exit code and the printed table; a
 * second pass finds nothing and does nothing. The server's own recovery runs
 * only at its start here (RECOVERY_INTERVAL_MS is long), so what repairs a
 * drift is the reconciliation alone; the periodic job is tested with its
 * interval set to 1 s. */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static co_test_server srv;
static char item[37], user[37];

static const char *const env[] = {"RECOVERY_INTERVAL_MS=600000",
                                  "RECONCILE_INTERVAL_SECONDS=0", NULL};

static void start(void)
{
    co_test_server_start(&srv, env, NULL);
    co_test_item(srv.conn, "reconcile", 4000, 20, item);
    co_test_uuid(user);
}

static void stop(void)
{
    if (srv.server.pid != 0 || srv.mock.pid != 0)
        co_test_server_stop(&srv);
}

/* ------------------------------------------------------------ helpers */

static char out[16384];

/* Runs bin/checkoutd reconcile with the server's environment; its stdout
 * into out, its exit code returned (-1 when it did not exit normally). */
static int reconcile(void)
{
    const char *dir = getenv("CO_BIN_DIR");
    char path[512];
    int fds[2], status = 0;
    size_t len = 0;
    ssize_t got;
    pid_t pid;

    snprintf(path, sizeof path, "%s/checkoutd", dir && dir[0] ? dir : "build/san/bin");
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        for (int i = 0; i < srv.nenv; i++)
            putenv(srv.env[i]);
        execl(path, path, "reconcile", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        got = read(fds[0], out + len, sizeof out - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    out[len] = '\0';
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    fprintf(stderr, "--- checkoutd reconcile (exit %d):\n%s", WEXITSTATUS(status), out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The printed table has a line with every one of the words (NULL-terminated). */
static bool printed(const char *first, ...)
{
    va_list ap;

    for (const char *line = out; *line != '\0';) {
        size_t len = strcspn(line, "\n");
        char copy[1024];
        bool all = true;

        snprintf(copy, sizeof copy, "%.*s", (int)len, line);
        va_start(ap, first);
        for (const char *w = first; w != NULL && all; w = va_arg(ap, const char *))
            all = strstr(copy, w) != NULL;
        va_end(ap);
        if (all)
            return true;
        line += len + (line[len] == '\n');
    }
    return false;
}

/* Creates a PaymentIntent at the mock directly, confirmed with a good card
 * and manual capture (so requires_capture), metadata[order_id] order (NULL:
 * none); its id into pi. */
static void authorize_at_mock(const char *order, long long amount, char pi[64])
{
    char body[512];
    co_http_resp r = {0};
    json_t *j;

    snprintf(body, sizeof body,
             "amount=%lld&currency=usd&payment_method=pm_card_visa&confirm=true"
             "&capture_method=manual&payment_method_types%%5B0%%5D=card%s%s",
             amount, order ? "&metadata%5Border_id%5D=" : "", order ? order : "");
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/payment_intents", body, NULL, &r), 200);
    j = co_http_json(&r);
    snprintf(pi, 64, "%s", co_test_jstr(j, "id", NULL));
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "requires_capture");
    json_decref(j);
    co_http_resp_free(&r);
}

static void at_mock(const char *path, const char *body)
{
    co_http_resp r = {0};

    ck_assert_int_eq(co_test_mock(&srv, "POST", path, body, NULL, &r), 200);
    co_http_resp_free(&r);
}

static void capture_at_mock(const char *pi)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/payment_intents/%s/capture", pi);
    at_mock(path, "");
}

static void refund_at_mock(const char *pi)
{
    char body[128];

    snprintf(body, sizeof body, "payment_intent=%s", pi);
    at_mock("/v1/refunds", body);
}

/* The intent's status at the mock (static buffer). */
static const char *pi_status(const char *pi)
{
    static char status[32];
    char path[128];
    co_http_resp r = {0};
    json_t *j;

    snprintf(path, sizeof path, "/v1/payment_intents/%s", pi);
    ck_assert_int_eq(co_test_mock(&srv, "GET", path, NULL, NULL, &r), 200);
    j = co_http_json(&r);
    snprintf(status, sizeof status, "%s", co_test_jstr(j, "status", NULL));
    json_decref(j);
    co_http_resp_free(&r);
    return status;
}

/* A confirmed order (server flow); its id and intent. */
static void confirmed_order(const char *key, char order[37], char pi[64])
{
    char cart[256];

    co_test_cart(cart, sizeof cart, item, 1, "pm_card_visa");
    co_test_checkout_order(&srv, user, key, cart, 201, order, pi);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
}

/* A mobile order awaiting payment; its id and intent. */
static void awaiting_order(const char *key, char order[37], char pi[64])
{
    char cart[256];

    co_test_cart(cart, sizeof cart, item, 1, NULL);
    co_test_checkout_order(&srv, user, key, cart, 202, order, pi);
    ck_assert_str_eq(co_test_status(&srv, order), "awaiting_payment");
}

/* A failed order (declined card); its id. */
static void failed_order(const char *key, char order[37])
{
    char cart[256];
    co_http_resp r = {0};
    const char *p[1] = {key};

    co_test_cart(cart, sizeof cart, item, 1, "pm_card_chargeDeclined");
    ck_assert_int_eq(co_test_checkout(&srv, user, key, cart, &r), 402);
    co_http_resp_free(&r);
    co_test_strp(srv.conn, order, 37,
                 "SELECT order_id FROM checkout_requests WHERE idempotency_key = $1", 1, p);
    ck_assert_str_eq(co_test_status(&srv, order), "failed");
}

/* Moves the order as the saga's own SQL function would (a move whose
 * provider call the provider never saw, or saw otherwise). */
static void move(const char *order, const char *from, const char *path, const char *to_after,
                 bool release)
{
    const char *p[5] = {order, from, path, to_after, release ? "t" : "f"};

    ck_assert_int_eq(co_test_llp(srv.conn,
                                 "SELECT count(*) FROM co_transition(p_order_id => $1,"
                                 " p_from => $2, p_path => $3::text[], p_reason => 'test drift',"
                                 " p_release => $5::boolean, p_take => false,"
                                 " p_payment_intent => NULL, p_client_secret => NULL,"
                                 " p_failure_code => NULL, p_decline_code => NULL,"
                                 " p_compensate_to => $4, p_lease_seconds => NULL,"
                                 " p_owner => NULL, p_response_status => NULL,"
                                 " p_response_body => NULL) AS t(r) WHERE r = 'ok'",
                                 5, p),
                     1);
}

/* The order has not moved for a while (past the minute a pass waits). */
static void idle(const char *order)
{
    const char *p[1] = {order};

    co_test_llp(srv.conn,
                "WITH u AS (UPDATE orders SET updated_at = now() - interval '5 minutes'"
                " WHERE id = $1 RETURNING 1) SELECT count(*) FROM u",
                1, p);
}

static long long history(const char *order, const char *like)
{
    const char *p[2] = {order, like};

    return co_test_llp(srv.conn,
                       "SELECT count(*) FROM order_history WHERE order_id = $1 AND reason LIKE $2",
                       2, p);
}

static long long logged(const char *pi, const char *finding, const char *action)
{
    const char *p[3] = {pi, finding, action};

    return co_test_llp(srv.conn,
                       "SELECT count(*) FROM reconcile_log WHERE payment_intent = $1"
                       " AND finding = $2 AND action = $3 AND NOT failed",
                       3, p);
}

/* ------------------------------------------------------------ the rules */

START_TEST(an_authorization_without_a_live_order_is_cancelled)
{
    char failed[37], ghost[37], pi_failed[64], pi_ghost[64];

    failed_order("rc-failed", failed);
    authorize_at_mock(failed, 4000, pi_failed);
    co_test_uuid(ghost);
    authorize_at_mock(ghost, 4000, pi_ghost);

    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("authorization_for_ended_order", pi_failed, failed, "cancel",
                      "canceled 4000 usd", NULL));
    ck_assert(printed("authorization_without_order", pi_ghost, "cancel", "canceled", NULL));
    ck_assert_str_eq(pi_status(pi_failed), "canceled");
    ck_assert_str_eq(pi_status(pi_ghost), "canceled");
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 2);
    ck_assert_str_eq(co_test_status(&srv, failed), "failed");
    ck_assert_int_eq(history(failed, "reconcile: authorization_for_ended_order: cancel %"), 1);
    ck_assert_int_eq(logged(pi_failed, "authorization_for_ended_order", "cancel"), 1);
    ck_assert_int_eq(logged(pi_ghost, "authorization_without_order", "cancel"), 1);
    co_test_stock_invariant(srv.conn); /* (the ghost's intent has no order by design) */

    /* A second pass finds nothing and acts on nothing. */
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
    ck_assert(!printed(pi_failed, NULL));
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 2);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM reconcile_log"), 2);
    ck_assert_int_eq(history(failed, "reconcile:%"), 1);
}
END_TEST

START_TEST(a_capture_for_a_cancelled_order_is_refunded)
{
    char order[37], pi[64];

    /* The order was cancelled in our books (the void's answer lost, say)
     * while the shopper's payment went through and was captured. */
    awaiting_order("rc-cancelled", order, pi);
    move(order, "awaiting_payment", "{voiding}", "cancelled", false);
    move(order, "voiding", "{cancelled}", NULL, true);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    capture_at_mock(pi);
    ck_assert_str_eq(pi_status(pi), "succeeded");

    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("capture_for_ended_order", pi, order, "refund", "refunded 4000 usd", NULL));
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    ck_assert_str_eq(co_test_status(&srv, order), "cancelled");
    ck_assert_int_eq(history(order, "reconcile: capture_for_ended_order: refund %"), 1);
    ck_assert_int_eq(logged(pi, "capture_for_ended_order", "refund"), 1);
    co_test_invariants(&srv, true); /* no money kept for an order that did not happen */

    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
}
END_TEST

START_TEST(a_refunding_order_whose_refund_was_made_is_finished)
{
    char order[37], pi[64];

    /* The refund went through at the provider, its answer never reached us. */
    confirmed_order("rc-refunding", order, pi);
    refund_at_mock(pi);
    move(order, "confirmed", "{refunding}", "refunded", false);

    /* Not before it has waited a while: its own saga may be about to finish it. */
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
    ck_assert_str_eq(co_test_status(&srv, order), "refunding");

    idle(order);
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("provider_ahead", pi, order, "drive", "order refunding -> refunded", NULL));
    ck_assert_str_eq(co_test_status(&srv, order), "refunded");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1); /* no second refund */
    ck_assert_int_eq(history(order, "reconcile: provider_ahead: drive %"), 1);
    ck_assert_int_eq(history(order, "already_refunded"), 1); /* the saga's own move */
    co_test_invariants(&srv, true); /* the stock is back */

    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
}
END_TEST

START_TEST(a_confirmed_order_refunded_at_the_provider_ends_refunded)
{
    char order[37], pi[64];

    confirmed_order("rc-dashboard", order, pi);
    refund_at_mock(pi); /* in the dashboard; the charge.refunded event was lost */

    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("refunded_at_provider", pi, order, "drive", "order confirmed -> refunded",
                      NULL));
    ck_assert_str_eq(co_test_status(&srv, order), "refunded");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1);
    co_test_invariants(&srv, true);
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
}
END_TEST

START_TEST(an_order_paid_at_the_provider_is_moved_on)
{
    char order[37], pi[64];

    /* The app confirmed the payment; neither the webhook nor the app's
     * confirm reached us. */
    awaiting_order("rc-awaiting", order, pi);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    idle(order);

    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("provider_ahead", pi, order, "drive",
                      "order awaiting_payment -> confirmed", NULL));
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_str_eq(pi_status(pi), "succeeded");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    co_test_invariants(&srv, true);
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
}
END_TEST

START_TEST(disagreements_are_reported_and_nothing_changes)
{
    char a[37], pi_a[64], b[37], pi_b[64], pi_other[64], pi_anon[64];
    const char *p[1] = {a};

    confirmed_order("rc-amount", a, pi_a);
    co_test_llp(srv.conn,
                "WITH u AS (UPDATE orders SET amount = amount + 100 WHERE id = $1 RETURNING 1)"
                " SELECT count(*) FROM u",
                1, p);
    confirmed_order("rc-other", b, pi_b);
    authorize_at_mock(b, 1234, pi_other);  /* names order b, for another amount */
    authorize_at_mock(NULL, 4000, pi_anon); /* names no order at all */

    ck_assert_int_eq(reconcile(), 1);
    ck_assert(printed("amount_mismatch", pi_a, a, "report", "intent succeeded 4000 usd", NULL));
    ck_assert(printed("amount_mismatch", pi_other, b, "report", "intent requires_capture 1234",
                      NULL));
    ck_assert(printed("intent_without_order_id", pi_anon, "report", NULL));
    /* Nothing changed anywhere. */
    ck_assert_str_eq(co_test_status(&srv, a), "confirmed");
    ck_assert_str_eq(co_test_status(&srv, b), "confirmed");
    ck_assert_str_eq(pi_status(pi_other), "requires_capture");
    ck_assert_str_eq(pi_status(pi_anon), "requires_capture");
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 0);
    ck_assert_int_eq(history(a, "reconcile: amount_mismatch: report %"), 1);
    ck_assert_int_eq(logged(pi_a, "amount_mismatch", "report"), 1);

    /* Still unresolved on the next pass, reported again; the order's history
     * says it once. */
    ck_assert_int_eq(reconcile(), 1);
    ck_assert(printed("amount_mismatch", pi_a, "report", NULL));
    ck_assert_int_eq(logged(pi_a, "amount_mismatch", "report"), 2);
    ck_assert_int_eq(history(a, "reconcile:%"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
}
END_TEST

/* ------------------------------------------------------------ one at a time, the watermark */

START_TEST(a_pass_running_elsewhere_is_left_alone)
{
    char ghost[37], pi[64];

    co_test_uuid(ghost);
    authorize_at_mock(ghost, 4000, pi);
    co_test_exec(srv.conn, "UPDATE reconcile_state SET lease_owner = 'elsewhere:1',"
                           " lease_until = now() + interval '1 minute'");
    ck_assert_int_eq(reconcile(), 2);
    ck_assert_str_eq(pi_status(pi), "requires_capture");
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM reconcile_log"), 0);

    /* A lease that lapsed (a crashed pass) is taken over. */
    co_test_exec(srv.conn, "UPDATE reconcile_state SET lease_until = now() - interval '1 second'");
    ck_assert_int_eq(reconcile(), 0);
    ck_assert_str_eq(pi_status(pi), "canceled");
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM reconcile_state"
                                          " WHERE lease_owner IS NULL"), 1);
}
END_TEST

START_TEST(the_watermark_bounds_the_listing)
{
    char ghost[37], pi[64];

    co_test_uuid(ghost);
    authorize_at_mock(ghost, 4000, pi);
    /* Listed are the intents created since the watermark minus the overlap
     * (600 s): a watermark an hour ahead lists none. */
    co_test_exec(srv.conn, "UPDATE reconcile_state"
                           " SET watermark = extract(epoch FROM now())::bigint + 3600");
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("nothing to reconcile", NULL));
    ck_assert_str_eq(pi_status(pi), "requires_capture");

    co_test_exec(srv.conn, "UPDATE reconcile_state SET watermark = 0");
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("authorization_without_order", pi, NULL));
    /* A complete pass moves the watermark to when it started. */
    ck_assert_int_eq(co_test_ll(srv.conn,
                                "SELECT count(*) FROM reconcile_state WHERE watermark"
                                " BETWEEN extract(epoch FROM now())::bigint - 60"
                                " AND extract(epoch FROM now())::bigint"),
                     1);
}
END_TEST

START_TEST(every_page_of_the_list_is_read)
{
    char ghost[37], pi[64];
    co_http_resp r = {0};

    /* The oldest intent is on the second page of 100. */
    co_test_uuid(ghost);
    authorize_at_mock(ghost, 4000, pi);
    for (int i = 0; i < 120; i++) {
        ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/payment_intents",
                                      "amount=500&currency=usd", NULL, &r),
                         200);
        co_http_resp_free(&r);
    }
    ck_assert_int_eq(reconcile(), 0);
    ck_assert(printed("reconcile: 121 intents created since", NULL));
    ck_assert(printed("authorization_without_order", pi, "cancel", NULL));
    ck_assert_str_eq(pi_status(pi), "canceled");
}
END_TEST

START_TEST(the_periodic_job_reconciles_within_its_interval)
{
    const char *every_second[] = {"RECONCILE_INTERVAL_SECONDS=1", NULL};
    char failed[37], pi[64];
    int waited = 0;

    ck_assert(co_test_server_restart(&srv, every_second));
    failed_order("rc-job", failed);
    authorize_at_mock(failed, 4000, pi);
    while (strcmp(pi_status(pi), "canceled") != 0 && waited < 10000) {
        usleep(100 * 1000);
        waited += 100;
    }
    ck_assert_str_eq(pi_status(pi), "canceled");
    ck_assert_int_lt(waited, 10000);
    /* Recorded by the pass that did it (just after its call). */
    for (waited = 0; logged(pi, "authorization_for_ended_order", "cancel") == 0 && waited < 5000;
         waited += 100)
        usleep(100 * 1000);
    ck_assert_int_eq(history(failed, "reconcile: authorization_for_ended_order: cancel %"), 1);
    /* Later passes act on nothing more. */
    sleep(3);
    ck_assert_int_ge(co_test_ll(srv.conn, "SELECT count(DISTINCT run_id) FROM reconcile_log"), 1);
    ck_assert_int_eq(logged(pi, "authorization_for_ended_order", "cancel"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM reconcile_state"
                                          " WHERE last_run_at > now() - interval '3 seconds'"),
                     1);
    co_test_invariants(&srv, true);
}
END_TEST

static Suite *reconcile_suite(void)
{
    Suite *s = suite_create("reconcile");
    TCase *tc = co_test_tcase(s, "reconcile", 60);

    tcase_add_checked_fixture(tc, start, stop);
    tcase_add_test(tc, an_authorization_without_a_live_order_is_cancelled);
    tcase_add_test(tc, a_capture_for_a_cancelled_order_is_refunded);
    tcase_add_test(tc, a_refunding_order_whose_refund_was_made_is_finished);
    tcase_add_test(tc, a_confirmed_order_refunded_at_the_provider_ends_refunded);
    tcase_add_test(tc, an_order_paid_at_the_provider_is_moved_on);
    tcase_add_test(tc, disagreements_are_reported_and_nothing_changes);
    tcase_add_test(tc, a_pass_running_elsewhere_is_left_alone);
    tcase_add_test(tc, the_watermark_bounds_the_listing);
    tcase_add_test(tc, every_page_of_the_list_is_read);
    tcase_add_test(tc, the_periodic_job_reconciles_within_its_interval);
    return s;
}

int main(void)
{
    return co_test_run_http(reconcile_suite());
}

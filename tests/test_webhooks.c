/* POST /webhooks/stripe, POST /webhooks/restock and the back-in-stock
 * notifier, over HTTP against a real checkoutd, mock-stripe, mock-notify and
 * Postgres. Events are built from the mock's own objects (GET the
 * PaymentIntent or charge, wrap it as Stripe does), signed here with co_sig
 * or with the official Node SDK, and POSTed: deterministic, unlike waiting
 * for the mock's deliveries (one test does that too, end to end). */
#include "server.h"

#include "co_sig.h"
#include "race.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;

/* Small backoff and poll period so retries happen within a test; three
 * attempts so that "succeeds on the third try" and "dead after the third"
 * both sit on the boundary. */
static const char *const notify_env[] = {"NOTIFY_INTERVAL_MS=50", "NOTIFY_BACKOFF_MS=100",
                                         "NOTIFY_MAX_ATTEMPTS=3", NULL};

/* ------------------------------------------------------------ helpers */

static long long q1(const char *sql, const char *p1)
{
    return co_test_ll1(srv.conn, sql, p1);
}

static long long history_rows(const char *order)
{
    return q1("SELECT count(*) FROM order_history WHERE order_id = $1", order);
}

/* How many times the order entered status (its history rows that end there). */
static long long times_entered(const char *order, const char *status)
{
    const char *params[2] = {order, status};

    return co_test_llp(srv.conn, "SELECT count(*) FROM order_history"
                                 " WHERE order_id = $1 AND to_status = $2", 2, params);
}

/* POSTs body to path with "name: sig" (no header when sig is NULL). */
static long post_signed(const char *path, const char *name, const char *sig, const char *body,
                        co_http_resp *r)
{
    char url[512], hdr[512];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};

    snprintf(url, sizeof url, "%s%s", srv.url, path);
    if (sig != NULL) {
        snprintf(hdr, sizeof hdr, "%s: %s", name, sig);
        headers[1] = hdr;
    }
    co_http("POST", url, headers, body, strlen(body), r);
    return r->status;
}

/* A payment event signed now with the server's webhook secret. */
static long send_event(const char *body, co_http_resp *r)
{
    char sig[CO_SIG_HEADER_MAX];

    co_sig_header(CO_TEST_WHSEC, time(NULL), body, strlen(body), sig);
    return post_signed("/webhooks/stripe", "Stripe-Signature", sig, body, r);
}

/* The same, and asserts 200; returns the answer's "outcome" (static buffer,
 * "duplicate" for a duplicate). */
static const char *deliver(const char *body)
{
    static char outcome[128];
    co_http_resp r = {0};
    json_t *j;

    ck_assert_msg(send_event(body, &r) == 200, "event refused: %ld %s", r.status, r.body);
    j = co_http_json(&r);
    ck_assert(json_is_true(json_object_get(j, "received")));
    snprintf(outcome, sizeof outcome, "%s",
             json_is_true(json_object_get(j, "duplicate")) ? "duplicate"
                                                           : co_test_jstr(j, "outcome", NULL));
    json_decref(j);
    co_http_resp_free(&r);
    return outcome;
}

static long send_restock(const char *body, co_http_resp *r)
{
    char sig[CO_SIG_HEADER_MAX];

    co_sig_header(CO_TEST_RESTOCK_SECRET, time(NULL), body, strlen(body), sig);
    return post_signed("/webhooks/restock", "Restock-Signature", sig, body, r);
}

/* An object from the mock (GET path) as JSON. */
static json_t *mock_get(const char *path)
{
    co_http_resp r = {0};
    json_t *j;

    ck_assert_int_eq(co_test_mock(&srv, "GET", path, NULL, NULL, &r), 200);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* Wraps obj (stolen) as a Stripe event; malloc'd JSON text. */
static char *event_json(const char *id, const char *type, json_t *obj)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:s, s:{s:o}, s:b, s:i}", "id", id, "object",
                          "event", "api_version", "2024-06-20", "created",
                          (json_int_t)time(NULL), "type", type, "data", "object", obj,
                          "livemode", 0, "pending_webhooks", 1);
    char *s = json_dumps(e, JSON_COMPACT);

    json_decref(e);
    return s;
}

/* The PaymentIntent pi as the mock has it right now. */
static json_t *mock_pi(const char *pi)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/payment_intents/%s", pi);
    return mock_get(path);
}

/* An event about the PaymentIntent pi as the mock has it right now. */
static char *pi_event(const char *id, const char *type, const char *pi)
{
    return event_json(id, type, mock_pi(pi));
}

/* charge.refunded about pi's latest charge as the mock has it now. */
static char *refund_event(const char *id, const char *pi)
{
    char path[128];
    json_t *p = mock_pi(pi);

    snprintf(path, sizeof path, "/v1/charges/%s", co_test_jstr(p, "latest_charge", NULL));
    json_decref(p);
    return event_json(id, "charge.refunded", mock_get(path));
}

/* A checkout of qty units by a new shopper with a new key: paid with pm (201
 * confirmed) or, when pm is NULL, the mobile flow (202 awaiting_payment). */
static void new_order(const char *item, int qty, const char *pm, char order[37], char pi[64])
{
    char body[256], user[37], key[37];

    co_test_uuid(user);
    co_test_uuid(key);
    co_test_cart(body, sizeof body, item, qty, pm);
    co_test_checkout_order(&srv, user, key, body, pm != NULL ? 201 : 202, order, pi);
}

/* A mobile-flow checkout of qty units: 202 awaiting_payment. */
static void mobile_order(const char *item, int qty, char order[37], char pi[64])
{
    new_order(item, qty, NULL, order, pi);
}

/* A server-flow checkout paid with pm_card_visa: 201 confirmed. */
static void paid_order(const char *item, int qty, char order[37], char pi[64])
{
    new_order(item, qty, "pm_card_visa", order, pi);
}

/* What the shopper's app does: confirm the intent at the provider. */
static long confirm_at_mock(const char *pi, const char *pm)
{
    return co_test_confirm_at_mock(&srv, pi, pm);
}

/* A refund made at the provider, as from its dashboard: all of pi, or amount
 * when it is > 0. */
static void refund_at_mock(const char *pi, long long amount)
{
    char body[160];
    co_http_resp r = {0};

    if (amount > 0)
        snprintf(body, sizeof body, "payment_intent=%s&amount=%lld", pi, amount);
    else
        snprintf(body, sizeof body, "payment_intent=%s", pi);
    ck_assert_int_eq(co_test_mock(&srv, "POST", "/v1/refunds", body, NULL, &r), 200);
    co_http_resp_free(&r);
}

static const char *mock_pi_status(const char *pi)
{
    static char status[32];
    json_t *j = mock_pi(pi);

    snprintf(status, sizeof status, "%s", co_test_jstr(j, "status", NULL));
    json_decref(j);
    return status;
}

/* mock-notify's deliveries: {"data":[...],"count":N}. */
static json_t *deliveries(void)
{
    char url[512];
    co_http_resp r = {0};
    json_t *j;

    snprintf(url, sizeof url, "%s/_mock/deliveries", srv.notify.url);
    co_http("GET", url, NULL, NULL, 0, &r);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    return j;
}

static long long delivery_count(void)
{
    json_t *j = deliveries();
    long long n = json_integer_value(json_object_get(j, "count"));

    json_decref(j);
    return n;
}

/* Waits until mock-notify holds n deliveries (up to timeout_ms); returns the count. */
static long long wait_deliveries(long long n, int timeout_ms)
{
    long long have = 0;

    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        have = delivery_count();
        if (have >= n)
            break;
        usleep(50 * 1000);
    }
    return have;
}

static void notify_fail_next(int n)
{
    char url[512], body[64];
    co_http_resp r = {0};

    snprintf(url, sizeof url, "%s/_mock/fail", srv.notify.url);
    snprintf(body, sizeof body, "{\"count\":%d}", n);
    ck_assert(co_http("POST", url, NULL, body, strlen(body), &r));
    ck_assert_int_eq(r.status, 200);
    co_http_resp_free(&r);
}

static void subscribe(const char *item, const char *user, long expect)
{
    char path[160];
    char *tok = co_test_token(user, 600);
    co_http_resp r = {0};

    snprintf(path, sizeof path, "/v1/items/%s/back-in-stock", item);
    ck_assert_int_eq(co_test_call(&srv, "POST", path, tok, NULL, &r), expect);
    co_http_resp_free(&r);
    free(tok);
}

/* A restock that must answer 200; returns the answer (caller decrefs). */
static json_t *restock(const char *event_id, const char *item, int qty)
{
    char body[256];
    co_http_resp r = {0};
    json_t *j;

    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"item_id\":\"%s\",\"quantity\":%d}",
             event_id, item, qty);
    ck_assert_msg(send_restock(body, &r) == 200, "restock: %ld %s", r.status, r.body);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_jstr(j, "event_id", NULL), event_id);
    return j;
}

static void assert_restock(json_t *j, bool applied, bool became, long long stock,
                           long long notified)
{
    ck_assert_msg(json_is_true(json_object_get(j, "applied")) == applied &&
                      json_is_true(json_object_get(j, "became_available")) == became &&
                      json_integer_value(json_object_get(j, "stock")) == stock &&
                      json_integer_value(json_object_get(j, "notified")) == notified,
                  "restock answer: applied %d became %d stock %lld notified %lld",
                  json_is_true(json_object_get(j, "applied")),
                  json_is_true(json_object_get(j, "became_available")),
                  (long long)json_integer_value(json_object_get(j, "stock")),
                  (long long)json_integer_value(json_object_get(j, "notified")));
}

/* Expects a 400/404 with code from a request that must change nothing. */
static void expect_error(long status, const co_http_resp *r, long want, const char *code,
                         const char *what)
{
    json_t *j = co_http_json(r);

    ck_assert_msg(status == want && strcmp(co_test_jstr(j, "error", "code"), code) == 0,
                  "%s: want %ld %s, got %ld %s", what, want, code, status, r->body);
    json_decref(j);
}

/* ------------------------------------------------- payment webhooks */

START_TEST(forged_stale_unsigned_and_bad_json_change_nothing)
{
    char item[37], order[37], pi[64], sig[CO_SIG_HEADER_MAX], good[CO_SIG_HEADER_MAX];
    char forged[CO_SIG_HEADER_MAX], hdr[600], *ev, *tampered;
    co_http_resp r = {0};
    time_t now = time(NULL);
    long long hist;
    static const char *const bad_bodies[][3] = {
        {"not json", "invalid_json", NULL},
        {"{\"id\":\"evt_nodata\",\"type\":\"payment_intent.succeeded\"}", "invalid_request",
         "data.object"},
        {"{\"type\":\"payment_intent.succeeded\",\"data\":{\"object\":{}}}", "invalid_request",
         "id"},
        {"{\"id\":\"evt_notype\",\"data\":{\"object\":{}}}", "invalid_request", "type"},
        {"{\"id\":\"nope\",\"type\":\"x\",\"data\":{\"object\":{}}}", "invalid_request", "id"},
        {"[1,2]", "invalid_request", "body"},
    };

    co_test_item(srv.conn, "sig", 5000, 1, item);
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    ev = pi_event("evt_sig", "payment_intent.amount_capturable_updated", pi);
    hist = history_rows(order);

    /* No header. */
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", NULL, ev, &r), &r, 400,
                 "signature_missing", "no header");
    co_http_resp_free(&r);
    /* Signed with another secret. */
    co_sig_header("whsec_not_ours", now, ev, strlen(ev), forged);
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", forged, ev, &r), &r, 400,
                 "signature_invalid", "forged");
    co_http_resp_free(&r);
    /* Not the scheme. */
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", "garbage", ev, &r), &r, 400,
                 "signature_invalid", "garbage");
    co_http_resp_free(&r);
    snprintf(hdr, sizeof hdr, "t=%lld", (long long)now);
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", hdr, ev, &r), &r, 400,
                 "signature_invalid", "no v1");
    co_http_resp_free(&r);
    /* Correctly signed, but 301 s old, or from the future. */
    co_sig_header(CO_TEST_WHSEC, now - 400, ev, strlen(ev), sig);
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", sig, ev, &r), &r, 400,
                 "signature_expired", "stale");
    co_http_resp_free(&r);
    co_sig_header(CO_TEST_WHSEC, now + 400, ev, strlen(ev), sig);
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", sig, ev, &r), &r, 400,
                 "signature_expired", "future");
    co_http_resp_free(&r);
    /* A valid signature of another body. */
    co_sig_header(CO_TEST_WHSEC, now, ev, strlen(ev), good);
    tampered = strdup(ev);
    tampered[strlen(tampered) - 2] = tampered[strlen(tampered) - 2] == '1' ? '2' : '1';
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", good, tampered, &r), &r, 400,
                 "signature_invalid", "tampered body");
    co_http_resp_free(&r);
    free(tampered);
    /* Well signed, but not an event. */
    for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        json_t *j;

        expect_error(send_event(bad_bodies[i][0], &r), &r, 400, bad_bodies[i][1], bad_bodies[i][0]);
        j = co_http_json(&r);
        if (bad_bodies[i][2] != NULL)
            ck_assert_str_eq(co_test_jstr(j, "error", "param"), bad_bodies[i][2]);
        json_decref(j);
        co_http_resp_free(&r);
    }

    /* Nothing was applied or recorded. */
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events"), 0);
    ck_assert_str_eq(co_test_status(&srv, order), "awaiting_payment");
    ck_assert_int_eq(history_rows(order), hist);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 0);

    /* Secret rotation: several v1 values, one of them right, is accepted. */
    co_sig_header(CO_TEST_WHSEC, now, ev, strlen(ev), good);
    snprintf(hdr, sizeof hdr, "t=%lld,v1=%s,%s,v1=%064d", (long long)now, strchr(forged, ',') + 4,
             strchr(good, ',') + 1, 0);
    ck_assert_int_eq(post_signed("/webhooks/stripe", "Stripe-Signature", hdr, ev, &r), 200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    free(ev);
    co_test_invariants(&srv, true);
}
END_TEST

/* Runs "node tests/sdk/webhook_sign.js ARGS < payload"; returns its exit
 * status, and its first output line in out; quiet drops its stderr. */
static int run_sdk(const char *args, const char *payload, char *out, size_t n, bool quiet)
{
    const char *root = getenv("CO_ROOT") ? getenv("CO_ROOT") : ".";
    char tmp[] = "/tmp/co_whXXXXXX", cmd[2048];
    int fd = mkstemp(tmp), status;
    FILE *p;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, payload, strlen(payload)), (ssize_t)strlen(payload));
    close(fd);
    snprintf(cmd, sizeof cmd, "cd '%s/tests/sdk' && node webhook_sign.js %s < '%s'%s", root, args,
             tmp, quiet ? " 2>/dev/null" : "");
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out[0] = '\0';
    if (fgets(out, (int)n, p) != NULL)
        out[strcspn(out, "\r\n")] = '\0';
    status = pclose(p);
    unlink(tmp);
    return status;
}

/* node_modules as tests/sdk/run.sh installs it; false when node is missing. */
static bool sdk_ready(void)
{
    const char *root = getenv("CO_ROOT") ? getenv("CO_ROOT") : ".";
    char path[1024], cmd[1200];
    struct stat st;

    if (system("command -v node >/dev/null 2>&1") != 0)
        return false;
    snprintf(path, sizeof path, "%s/tests/sdk/node_modules/stripe", root);
    if (stat(path, &st) == 0)
        return true;
    snprintf(cmd, sizeof cmd,
             "cd '%s/tests/sdk' && { if [ -f package-lock.json ]; then npm ci --no-audit"
             " --no-fund --loglevel=error; else npm install --no-audit --no-fund"
             " --loglevel=error; fi; } >&2",
             root);
    ck_assert_msg(system(cmd) == 0, "npm install in tests/sdk failed");
    return true;
}

START_TEST(events_signed_by_the_official_sdk_are_accepted)
{
    char item[37], order[37], pi[64], header[256], ours[CO_SIG_HEADER_MAX], args[512];
    char *ev;
    co_http_resp r = {0};
    time_t now = time(NULL);

    if (!sdk_ready()) {
        fprintf(stderr, "test_webhooks: SKIPPED the SDK case: node is not installed\n");
        return;
    }
    co_test_item(srv.conn, "sdk", 5000, 1, item);
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    ev = pi_event("evt_sdk", "payment_intent.amount_capturable_updated", pi);

    /* The SDK and co_sig sign the same bytes the same way. */
    snprintf(args, sizeof args, "sign '%s' %lld", CO_TEST_WHSEC, (long long)now);
    ck_assert_int_eq(run_sdk(args, ev, header, sizeof header, false), 0);
    co_sig_header(CO_TEST_WHSEC, now, ev, strlen(ev), ours);
    ck_assert_str_eq(header, ours);
    /* The SDK accepts our header (what mock-stripe and the notifier send). */
    snprintf(args, sizeof args, "verify '%s' '%s'", CO_TEST_WHSEC, ours);
    ck_assert_int_eq(run_sdk(args, ev, header, sizeof header, false), 0);
    /* ...and refuses it for another body. */
    ck_assert_int_ne(run_sdk(args, "{}", header, sizeof header, true), 0);

    /* A stale SDK signature is refused, a fresh one applied. */
    snprintf(args, sizeof args, "sign '%s' %lld", CO_TEST_WHSEC, (long long)now - 400);
    ck_assert_int_eq(run_sdk(args, ev, header, sizeof header, false), 0);
    expect_error(post_signed("/webhooks/stripe", "Stripe-Signature", header, ev, &r), &r, 400,
                 "signature_expired", "stale SDK signature");
    co_http_resp_free(&r);
    snprintf(args, sizeof args, "sign '%s'", CO_TEST_WHSEC);
    ck_assert_int_eq(run_sdk(args, ev, header, sizeof header, false), 0);
    ck_assert_int_eq(post_signed("/webhooks/stripe", "Stripe-Signature", header, ev, &r), 200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    free(ev);
}
END_TEST

typedef struct {
    const char *body;
    char outcome[128];
} racer;

static void *race_deliver(void *p)
{
    racer *x = p;

    co_test_race_wait();
    snprintf(x->outcome, sizeof x->outcome, "%s", deliver(x->body));
    return NULL;
}

START_TEST(a_duplicate_event_has_one_effect)
{
    char item[37], order[37], pi[64], *ev;
    long long hist;
    racer rs[8];
    int applied = 0, dup = 0;

    /* Sequential: payment_failed twice. */
    co_test_item(srv.conn, "dup", 5000, 1, item);
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa_chargeDeclinedInsufficientFunds"), 402);
    ev = pi_event("evt_failed_once", "payment_intent.payment_failed", pi);
    ck_assert_str_eq(deliver(ev), "applied: failed");
    ck_assert_str_eq(co_test_status(&srv, order), "failed");
    ck_assert_int_eq(co_test_stock(&srv, item), 1);
    hist = history_rows(order);
    ck_assert_str_eq(deliver(ev), "duplicate");
    ck_assert_str_eq(deliver(ev), "duplicate");
    ck_assert_int_eq(history_rows(order), hist);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 1);
    ck_assert_int_eq(q1("SELECT count(*) FROM payment_events WHERE event_id = $1",
                        "evt_failed_once"), 1);
    free(ev);

    /* Concurrent: the same amount_capturable_updated eight times at once. */
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    ev = pi_event("evt_many", "payment_intent.amount_capturable_updated", pi);
    for (int i = 0; i < 8; i++)
        rs[i] = (racer){.body = ev};
    co_test_race(8, race_deliver, rs, sizeof rs[0]);
    for (int i = 0; i < 8; i++) {
        applied += strncmp(rs[i].outcome, "applied", 7) == 0;
        dup += strcmp(rs[i].outcome, "duplicate") == 0;
    }
    ck_assert_int_eq(applied, 1);
    ck_assert_int_eq(dup, 7);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(times_entered(order, "confirmed"), 1);
    free(ev);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(succeeded_before_amount_capturable_updated)
{
    char item[37], order[37], pi[64], *succeeded, *capturable;

    co_test_item(srv.conn, "ooo", 5000, 2, item);
    mobile_order(item, 2, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    ck_assert_str_eq(mock_pi_status(pi), "requires_capture");
    capturable = pi_event("evt_cap", "payment_intent.amount_capturable_updated", pi);
    succeeded = pi_event("evt_succ", "payment_intent.succeeded", pi);

    /* The later event first: the provider's state decides, not the event's name. */
    ck_assert_str_eq(deliver(succeeded), "applied: confirmed");
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_str_eq(mock_pi_status(pi), "succeeded");
    /* The earlier one, late: ignored from one read, recorded nowhere (the
     * order is past it; a redelivery is ignored the same way). */
    ck_assert_str_eq(deliver(capturable), "ignored: order confirmed");
    ck_assert_str_eq(deliver(capturable), "ignored: order confirmed");
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(times_entered(order, "confirmed"), 1);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    /* A payment_failed arriving now changes nothing either. */
    free(succeeded);
    succeeded = pi_event("evt_fail_late", "payment_intent.payment_failed", pi);
    ck_assert_str_eq(deliver(succeeded), "ignored: order confirmed");
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    free(succeeded);
    free(capturable);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(payment_failed_fails_the_order_and_releases_stock)
{
    char item[37], order[37], pi[64], *ev, path[160];
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "pf", 5000, 3, item);
    mobile_order(item, 3, order, pi);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa_chargeDeclinedInsufficientFunds"), 402);
    ev = pi_event("evt_pf", "payment_intent.payment_failed", pi);
    ck_assert_str_eq(deliver(ev), "applied: failed");
    free(ev);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    ck_assert_str_eq(mock_pi_status(pi), "canceled");
    snprintf(path, sizeof path, "/v1/admin/orders/%s", order);
    ck_assert_int_eq(co_test_call(&srv, "GET", path, CO_TEST_ADMIN_KEY, NULL, &r), 200);
    j = co_http_json(&r);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "failed");
    ck_assert_str_eq(co_test_jstr(j, "failure_code", NULL), "payment_declined");
    ck_assert_str_eq(co_test_jstr(j, "decline_code", NULL), "insufficient_funds");
    ck_assert(json_is_false(json_object_get(j, "stock_held")));
    json_decref(j);
    co_http_resp_free(&r);
    co_test_invariants(&srv, true);
}
END_TEST

/* A stale payment_failed arrives after the shopper paid, and the provider
 * cannot be read just then: not knowing is not "not paid". The event is
 * refused with 503 (the provider sends it again) and the order is untouched;
 * once the provider answers, the same event confirms the order. */
START_TEST(a_failed_report_with_the_provider_unreadable_voids_nothing)
{
    char item[37], order[37], pi[64], *ev;
    co_http_resp r = {0};

    co_test_item(srv.conn, "pf-late", 5000, 1, item);
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    ev = pi_event("evt_pf_late", "payment_intent.payment_failed", pi);
    co_test_fault(&srv, "GET /v1/payment_intents/*", "status_500", 100, 0);
    ck_assert_int_eq(send_event(ev, &r), 503);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "awaiting_payment");
    ck_assert_int_eq(q1("SELECT count(*) FROM payment_events WHERE event_id = $1", "evt_pf_late"),
                     0);
    co_test_mock(&srv, "DELETE", "/_mock/faults", NULL, NULL, &r);
    co_http_resp_free(&r);
    ck_assert_str_eq(mock_pi_status(pi), "requires_capture");
    ck_assert_str_eq(deliver(ev), "applied: confirmed");
    free(ev);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(canceled_at_the_provider_cancels_the_order)
{
    char item[37], order[37], pi[64], *ev, path[128];
    co_http_resp r = {0};

    co_test_item(srv.conn, "pc", 5000, 1, item);
    mobile_order(item, 1, order, pi);
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", pi);
    ck_assert_int_eq(co_test_mock(&srv, "POST", path, "", NULL, &r), 200);
    co_http_resp_free(&r);
    ev = pi_event("evt_pc", "payment_intent.canceled", pi);
    ck_assert_str_eq(deliver(ev), "applied: cancelled");
    free(ev);
    ck_assert_str_eq(co_test_status(&srv, order), "cancelled");
    ck_assert_int_eq(co_test_stock(&srv, item), 1);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(a_dashboard_refund_refunds_the_order)
{
    char item[37], order[37], pi[64], o2[37], pi2[64], *ev;
    long long memo;

    co_test_item(srv.conn, "rf", 5000, 5, item);
    paid_order(item, 2, order, pi);
    ck_assert_int_eq(co_test_stock(&srv, item), 3);
    /* Late and duplicate-looking events about it change nothing; this
     * process confirmed it, so the answer comes from its memo, without a
     * read of the database (states/memo.h). */
    memo = co_test_event_count(&srv, "webhook_settled_from_memo");
    ev = pi_event("evt_rf_succ", "payment_intent.succeeded", pi);
    ck_assert_str_eq(deliver(ev), "ignored: order confirmed");
    free(ev);
    ck_assert_int_eq(co_test_event_count(&srv, "webhook_settled_from_memo"), memo + 1);
    /* Refunded in full from the dashboard. */
    refund_at_mock(pi, 0);
    ev = refund_event("evt_rf", pi);
    ck_assert_str_eq(deliver(ev), "applied: refunded");
    free(ev);
    ck_assert_str_eq(co_test_status(&srv, order), "refunded");
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 1); /* none of our own on top */
    co_test_invariants(&srv, true);
    /* Refunded here: the memo forgot it, the store answers. */
    ev = pi_event("evt_rf_succ2", "payment_intent.succeeded", pi);
    ck_assert_str_eq(deliver(ev), "ignored: order refunded");
    free(ev);
    ck_assert_int_eq(co_test_event_count(&srv, "webhook_settled_from_memo"), memo + 1);

    /* A partial refund is recorded and the order stays confirmed. */
    paid_order(item, 1, o2, pi2);
    refund_at_mock(pi2, 1000);
    ev = refund_event("evt_rf_part", pi2);
    ck_assert_str_eq(deliver(ev), "ignored: partial refund (1000 of 5000)");
    free(ev);
    ck_assert_str_eq(co_test_status(&srv, o2), "confirmed");
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 2);
}
END_TEST

/* A well-signed charge.refunded whose claims the provider does not back: the
 * order stays confirmed and no refund of ours follows. What was refunded is
 * asked of the provider, for the order's own intent. */
START_TEST(a_refund_the_provider_never_made_changes_nothing)
{
    char item[37], order[37], pi[64], path[128], *ev;
    json_t *p, *charge;

    co_test_item(srv.conn, "forged-rf", 5000, 2, item);
    paid_order(item, 2, order, pi);
    p = mock_pi(pi);
    snprintf(path, sizeof path, "/v1/charges/%s", co_test_jstr(p, "latest_charge", NULL));
    json_decref(p);
    charge = mock_get(path);
    json_object_set_new(charge, "amount_refunded", json_integer(10000));
    json_object_set_new(charge, "refunded", json_true());
    ev = event_json("evt_forged_rf", "charge.refunded", charge);
    ck_assert_str_eq(deliver(ev), "ignored: not refunded at the provider");
    free(ev);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"), 0);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    co_test_invariants(&srv, true);
}
END_TEST

START_TEST(unknown_intents_and_types_are_recorded)
{
    char *ev;

    ev = event_json("evt_unknown_pi", "payment_intent.succeeded",
                    json_pack("{s:s, s:s, s:s, s:I}", "id", "pi_notoursatall", "object",
                              "payment_intent", "status", "succeeded", "amount", 100));
    ck_assert_str_eq(deliver(ev), "ignored: unknown payment intent");
    ck_assert_str_eq(deliver(ev), "duplicate");
    free(ev);
    ev = event_json("evt_other_type", "customer.created",
                    json_pack("{s:s, s:s}", "id", "cus_123", "object", "customer"));
    ck_assert_str_eq(deliver(ev), "ignored: event type not handled");
    free(ev);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events"), 2);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events WHERE"
                                          " event_id = 'evt_unknown_pi'"
                                          " AND payment_intent = 'pi_notoursatall'"
                                          " AND type = 'payment_intent.succeeded'"),
                     1);
}
END_TEST

/* Puts an awaiting order into the state the expiry sweep leaves it in, as if
 * the sweep had run just before the shopper's payment went through. */
static void expire_behind_its_back(const char *order)
{
    const char *params[1] = {order};

    ck_assert_int_eq(co_test_llp(srv.conn, "SELECT co_release_order($1)::int", 1, params), 1);
    ck_assert_int_eq(co_test_llp(srv.conn,
                                 "WITH u AS (UPDATE orders SET status = 'expired',"
                                 "   lease_owner = NULL, lease_until = NULL"
                                 " WHERE id = $1 RETURNING 1) SELECT count(*) FROM u",
                                 1, params),
                     1);
}

START_TEST(a_late_authorization_takes_the_stock_again_or_is_voided)
{
    char item[37], order[37], pi[64], o2[37], pi2[64], o3[37], pi3[64], *ev;

    /* The units are still there: confirmed after all. */
    co_test_item(srv.conn, "late", 5000, 1, item);
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    expire_behind_its_back(order);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);
    ev = pi_event("evt_late", "payment_intent.amount_capturable_updated", pi);
    ck_assert_str_eq(deliver(ev), "applied: confirmed");
    free(ev);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);

    /* Someone else bought them meanwhile: the authorization is voided. */
    co_test_item(srv.conn, "late2", 5000, 1, item);
    mobile_order(item, 1, o2, pi2);
    ck_assert_int_eq(confirm_at_mock(pi2, "pm_card_visa"), 200);
    expire_behind_its_back(o2);
    paid_order(item, 1, o3, pi3);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ev = pi_event("evt_late2", "payment_intent.amount_capturable_updated", pi2);
    ck_assert_str_eq(deliver(ev), "voided: late authorization, out of stock");
    ck_assert_str_eq(deliver(ev), "duplicate");
    free(ev);
    ck_assert_str_eq(co_test_status(&srv, o2), "expired");
    ck_assert_str_eq(mock_pi_status(pi2), "canceled");
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 2);
    co_test_invariants(&srv, true);
}
END_TEST

static json_t *mock_webhook_stats(void)
{
    json_t *j = mock_get("/_mock/stats");
    json_t *w = json_incref(json_object_get(j, "webhooks"));

    json_decref(j);
    return w;
}

/* End to end: mock-stripe delivers its own signed events to checkoutd while
 * ordinary checkouts run; the mobile flow is captured by the webhook alone. */
START_TEST(the_mocks_own_webhooks_drive_orders)
{
    char listen[64], hook[128], item[37], order[37], pi[64], o2[37], pi2[64], o3[37], pi3[64];
    const char *env[] = {listen, NULL};
    /* The harness hands the mock its webhook secret in the environment. */
    const char *margs[] = {"--webhook-url", hook, NULL};
    unsigned port = co_test_free_port();
    json_t *w;
    long long pending = -1, delivered = 0, failed = 0;

    snprintf(listen, sizeof listen, "LISTEN_ADDR=127.0.0.1:%u", port);
    snprintf(hook, sizeof hook, "http://127.0.0.1:%u/webhooks/stripe", port);
    co_test_server_start(&srv, env, margs);

    co_test_item(srv.conn, "e2e", 5000, 10, item);
    mobile_order(item, 1, order, pi);
    ck_assert_int_eq(confirm_at_mock(pi, "pm_card_visa"), 200);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "confirmed", 10000), "confirmed");
    for (int i = 0; i < 3; i++)
        paid_order(item, 2, o2, pi2);
    mobile_order(item, 1, o2, pi2);
    ck_assert_int_eq(confirm_at_mock(pi2, "pm_card_visa_chargeDeclinedInsufficientFunds"), 402);
    ck_assert_str_eq(co_test_wait_status(&srv, o2, "failed", 10000), "failed");
    paid_order(item, 1, o3, pi3);
    refund_at_mock(pi3, 0);
    ck_assert_str_eq(co_test_wait_status(&srv, o3, "refunded", 10000), "refunded");

    for (int waited = 0; waited < 15000; waited += 100) {
        w = mock_webhook_stats();
        pending = json_integer_value(json_object_get(w, "pending"));
        delivered = json_integer_value(json_object_get(w, "delivered"));
        failed = json_integer_value(json_object_get(w, "failed"));
        json_decref(w);
        if (pending == 0)
            break;
        usleep(100 * 1000);
    }
    ck_assert_int_eq(pending, 0);
    ck_assert_int_eq(failed, 0);
    ck_assert_int_gt(delivered, 10);
    /* Recorded as applied: the events that moved an order (the mobile
     * capture, the decline, the dashboard refund), each once, with its move.
     * Most others were about orders their own request had settled: answered
     * from one read, with no commit (an event that raced another move of its
     * order is recorded as ignored). */
    ck_assert_int_ge(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events"
                                          " WHERE outcome LIKE 'applied: %'"),
                     3); /* 4 when succeeded overtakes the capture's own record */
    ck_assert_int_lt(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events"), delivered);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM payment_events"
                                          " WHERE outcome NOT LIKE 'applied: %'"
                                          "   AND outcome <> 'ignored: order moved concurrently'"),
                     0);
    ck_assert_int_eq(co_test_stock(&srv, item), 10 - 1 - 6);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 5);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------- restock + notifications */

START_TEST(a_restock_from_zero_notifies_each_waiting_shopper_once)
{
    char item[37], users[3][37];
    json_t *j, *d;
    size_t i;
    int seen[3] = {0, 0, 0};

    co_test_item(srv.conn, "rs", 5000, 0, item);
    for (int u = 0; u < 3; u++) {
        co_test_uuid(users[u]);
        subscribe(item, users[u], 201);
    }
    subscribe(item, users[0], 200); /* twice is once */
    ck_assert_int_eq(q1("SELECT count(*) FROM stock_subscriptions WHERE item_id = $1", item), 3);

    j = restock("rs-1", item, 3);
    assert_restock(j, true, true, 3, 3);
    json_decref(j);
    ck_assert_int_eq(wait_deliveries(3, 10000), 3);
    usleep(400 * 1000); /* several notifier passes: nothing more arrives */
    d = deliveries();
    ck_assert_int_eq(json_integer_value(json_object_get(d, "count")), 3);
    json_array_foreach(json_object_get(d, "data"), i, j) {
        json_t *b = json_object_get(j, "body");
        const char *params[3] = {co_test_jstr(b, "id", NULL), item,
                                 co_test_jstr(b, "user_id", NULL)};

        ck_assert(json_is_true(json_object_get(j, "verified")));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 200);
        {
            /* The receiver dedupes at-least-once deliveries on this key. */
            char want[64];
            snprintf(want, sizeof want, "notification-%s", co_test_jstr(b, "id", NULL));
            ck_assert_str_eq(co_test_jstr(j, "idempotency_key", NULL), want);
        }
        ck_assert_str_eq(co_test_jstr(b, "type", NULL), "item.back_in_stock");
        ck_assert_str_eq(co_test_jstr(b, "item_id", NULL), item);
        ck_assert_str_eq(co_test_jstr(b, "restock_event_id", NULL), "rs-1");
        ck_assert_int_gt(strlen(co_test_jstr(b, "created_at", NULL)), 0);
        for (int u = 0; u < 3; u++)
            seen[u] += strcmp(co_test_jstr(b, "user_id", NULL), users[u]) == 0;
        /* The id names its outbox row, now delivered after one attempt. */
        ck_assert_int_eq(co_test_llp(srv.conn, "SELECT count(*) FROM notification_outbox"
                                               " WHERE id = $1::bigint AND item_id = $2"
                                               " AND user_id = $3 AND status = 'delivered'"
                                               " AND attempts = 1 AND delivered_at IS NOT NULL",
                                     3, params),
                         1);
    }
    json_decref(d);
    ck_assert(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    /* Subscriptions are consumed. */
    ck_assert_int_eq(q1("SELECT count(*) FROM stock_subscriptions WHERE item_id = $1", item), 0);

    /* 3 -> 5 notifies nobody. A shopper cannot wait for an item in stock
     * (409 item_in_stock, nothing stored). */
    subscribe(item, users[1], 409);
    ck_assert_int_eq(q1("SELECT count(*) FROM stock_subscriptions WHERE item_id = $1", item), 0);
    j = restock("rs-2", item, 2);
    assert_restock(j, true, false, 5, 0);
    json_decref(j);
    usleep(400 * 1000);
    ck_assert_int_eq(delivery_count(), 3);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox"), 3);

    /* A replayed event adds nothing. */
    j = restock("rs-1", item, 3);
    assert_restock(j, false, false, 5, 0);
    json_decref(j);
    ck_assert_int_eq(co_test_stock(&srv, item), 5);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM stock_ledger"
                                          " WHERE kind = 'restock'"),
                     2);
    ck_assert_int_eq(co_test_audit(srv.conn), 0);
}
END_TEST

typedef struct {
    const char *body;
    long status;
    bool applied;
} restocker;

static void *race_restock(void *p)
{
    restocker *x = p;
    co_http_resp r = {0};
    json_t *j;

    co_test_race_wait();
    x->status = send_restock(x->body, &r);
    j = co_http_json(&r);
    x->applied = json_is_true(json_object_get(j, "applied"));
    json_decref(j);
    co_http_resp_free(&r);
    return NULL;
}

START_TEST(a_replayed_restock_adds_stock_once)
{
    char item[37], body[200], user[37];
    restocker rs[8];
    int applied = 0;

    co_test_item(srv.conn, "rr", 5000, 0, item);
    co_test_uuid(user);
    subscribe(item, user, 201);
    snprintf(body, sizeof body, "{\"event_id\":\"rr-1\",\"item_id\":\"%s\",\"quantity\":7}", item);
    for (int i = 0; i < 8; i++)
        rs[i] = (restocker){.body = body};
    co_test_race(8, race_restock, rs, sizeof rs[0]);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(rs[i].status, 200);
        applied += rs[i].applied;
    }
    ck_assert_int_eq(applied, 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 7);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox"), 1);
    ck_assert_int_eq(wait_deliveries(1, 10000), 1);
    ck_assert_int_eq(co_test_audit(srv.conn), 0);
}
END_TEST

START_TEST(a_failing_sink_gets_the_notification_on_the_third_try)
{
    char item[37], user[37];
    json_t *j, *d, *x;
    long long at[3];
    size_t i;

    co_test_item(srv.conn, "fs", 5000, 0, item);
    co_test_uuid(user);
    subscribe(item, user, 201);
    notify_fail_next(2);
    j = restock("fs-1", item, 1);
    assert_restock(j, true, true, 1, 1);
    json_decref(j);
    ck_assert_int_eq(wait_deliveries(3, 10000), 3);
    for (int w = 0; w < 100 && co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox"
                                                    " WHERE status = 'delivered'") == 0; w++)
        usleep(50 * 1000);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox WHERE"
                                          " status = 'delivered' AND attempts = 3"),
                     1);
    usleep(300 * 1000);
    d = deliveries();
    ck_assert_int_eq(json_integer_value(json_object_get(d, "count")), 3);
    json_array_foreach(json_object_get(d, "data"), i, x) {
        ck_assert(json_is_true(json_object_get(x, "verified")));
        ck_assert_int_eq(json_integer_value(json_object_get(x, "status")), i < 2 ? 500 : 200);
        ck_assert_str_eq(co_test_jstr(json_object_get(x, "body"), "user_id", NULL), user);
        at[i] = json_integer_value(json_object_get(x, "received_at"));
    }
    json_decref(d);
    /* Exponential backoff from NOTIFY_BACKOFF_MS=100: 100 ms, then 200 ms. */
    ck_assert_msg(at[1] - at[0] >= 90 && at[2] - at[1] >= 190,
                  "retries %lld ms and %lld ms apart", at[1] - at[0], at[2] - at[1]);
}
END_TEST

START_TEST(a_notification_is_dead_after_max_attempts)
{
    char item[37], user[37];
    json_t *j;

    co_test_item(srv.conn, "dl", 5000, 0, item);
    co_test_uuid(user);
    subscribe(item, user, 201);
    notify_fail_next(100);
    j = restock("dl-1", item, 1);
    json_decref(j);
    for (int w = 0; w < 200 && co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox"
                                                    " WHERE status = 'dead'") == 0; w++)
        usleep(50 * 1000);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox WHERE"
                                          " status = 'dead' AND attempts = 3"
                                          " AND last_error = 'HTTP 500' AND delivered_at IS NULL"),
                     1);
    usleep(500 * 1000);
    ck_assert_int_eq(delivery_count(), 3);
}
END_TEST

START_TEST(bad_restocks_change_nothing)
{
    char item[37], user[37], body[512], sig[CO_SIG_HEADER_MAX], id256[257];
    co_http_resp r = {0};
#define EV "{\"event_id\":\"b\","
#define IT "\"item_id\":\"%s\","
    static const struct {
        const char *body; /* %s: the item id */
        long status;
        const char *code, *param;
    } cases[] = {
        {EV IT "\"quantity\":0}", 400, "invalid_request", "quantity"},
        {EV IT "\"quantity\":-1}", 400, "invalid_request", "quantity"},
        {EV IT "\"quantity\":\"1\"}", 400, "invalid_request", "quantity"},
        {EV IT "\"quantity\":1.5}", 400, "invalid_request", "quantity"},
        {EV IT "\"quantity\":1000001}", 400, "invalid_request", "quantity"},
        {EV IT "\"quantity\":null}", 400, "invalid_request", "quantity"},
        {EV "\"item_id\":\"%s\"}", 400, "invalid_request", "quantity"},
        {EV "\"quantity\":1}", 400, "invalid_request", "item_id"},
        {EV "\"item_id\":\"nope\",\"quantity\":1}", 400, "invalid_request", "item_id"},
        {EV "\"item_id\":7,\"quantity\":1}", 400, "invalid_request", "item_id"},
        {"{" IT "\"quantity\":1}", 400, "invalid_request", "event_id"},
        {"{\"event_id\":\"\"," IT "\"quantity\":1}", 400, "invalid_request", "event_id"},
        {"{\"event_id\":5," IT "\"quantity\":1}", 400, "invalid_request", "event_id"},
        {EV IT "\"quantity\":1,\"price\":1}", 400, "invalid_request", "price"},
        {"[]", 400, "invalid_request", "body"},
        {EV, 400, "invalid_json", NULL},
        {EV IT "\"quantity\":99999999999999999999}", 400, "invalid_json", NULL},
        {EV "\"event_id\":\"c\"," IT "\"quantity\":1}", 400, "invalid_json", NULL},
        {EV "\"item_id\":\"00000000-0000-4000-8000-000000000000\",\"quantity\":1}", 404,
         "item_not_found", NULL},
    };
#undef EV
#undef IT

    co_test_item(srv.conn, "bad", 5000, 0, item);
    co_test_uuid(user);
    subscribe(item, user, 201);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(body, sizeof body, cases[i].body, item);
#pragma GCC diagnostic pop
        expect_error(send_restock(body, &r), &r, cases[i].status, cases[i].code, body);
        j = co_http_json(&r);
        if (cases[i].param != NULL)
            ck_assert_msg(strcmp(co_test_jstr(j, "error", "param"), cases[i].param) == 0,
                          "%s: %s", body, r.body);
        json_decref(j);
        co_http_resp_free(&r);
    }
    memset(id256, 'x', 256);
    id256[256] = '\0';
    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"item_id\":\"%s\",\"quantity\":1}", id256,
             item);
    expect_error(send_restock(body, &r), &r, 400, "invalid_request", "event_id of 256");
    co_http_resp_free(&r);

    /* Bytes that are not valid UTF-8 once quoted in the error message: an
     * invalid escape before a multibyte character, a field name cut at 60
     * bytes inside a character. Still a 400 with a well-formed JSON answer. */
    expect_error(send_restock("\"\\\xc3\xa9\"", &r), &r, 400, "invalid_json", "bad escape");
    ck_assert_ptr_nonnull(r.body);
    co_http_resp_free(&r);
    snprintf(body, sizeof body, "{\"%s\xc3\xa9\":1}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    expect_error(send_restock(body, &r), &r, 400, "invalid_request", "field name cut at 60");
    co_http_resp_free(&r);

    /* A good body, badly signed. */
    snprintf(body, sizeof body, "{\"event_id\":\"b\",\"item_id\":\"%s\",\"quantity\":1}", item);
    expect_error(post_signed("/webhooks/restock", "Restock-Signature", NULL, body, &r), &r, 400,
                 "signature_missing", "unsigned restock");
    co_http_resp_free(&r);
    co_sig_header(CO_TEST_WHSEC, time(NULL), body, strlen(body), sig);
    expect_error(post_signed("/webhooks/restock", "Restock-Signature", sig, body, &r), &r, 400,
                 "signature_invalid", "restock signed with the payment secret");
    co_http_resp_free(&r);
    expect_error(post_signed("/webhooks/restock", "Stripe-Signature", sig, body, &r), &r, 400,
                 "signature_missing", "restock with the other header");
    co_http_resp_free(&r);
    co_sig_header(CO_TEST_RESTOCK_SECRET, time(NULL) - 301, body, strlen(body), sig);
    expect_error(post_signed("/webhooks/restock", "Restock-Signature", sig, body, &r), &r, 400,
                 "signature_expired", "stale restock");
    co_http_resp_free(&r);

    /* Nothing happened. */
    usleep(300 * 1000);
    ck_assert_int_eq(co_test_stock(&srv, item), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM restock_events"), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM notification_outbox"), 0);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM stock_subscriptions"), 1);
    ck_assert_int_eq(delivery_count(), 0);
    /* The same body, signed right, then works. */
    ck_assert_int_eq(send_restock(body, &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 1);
}
END_TEST

/* An event id is one restock: another body under it is refused, and a
 * restock past what the stock column holds is a 400, never a 500. */
START_TEST(a_reused_restock_id_or_an_overflow_changes_nothing)
{
    char item[37], other[37], body[256];
    co_http_resp r = {0};

    co_test_item(srv.conn, "reuse", 1000, 0, item);
    co_test_item(srv.conn, "reuse2", 1000, 0, other);
    snprintf(body, sizeof body, "{\"event_id\":\"re-1\",\"item_id\":\"%s\",\"quantity\":4}",
             item);
    ck_assert_int_eq(send_restock(body, &r), 200);
    co_http_resp_free(&r);
    /* A true replay: 200, applied false. */
    ck_assert_int_eq(send_restock(body, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"applied\":false"));
    co_http_resp_free(&r);
    /* Same id, another quantity, then another item: refused. */
    snprintf(body, sizeof body, "{\"event_id\":\"re-1\",\"item_id\":\"%s\",\"quantity\":5}",
             item);
    expect_error(send_restock(body, &r), &r, 422, "event_id_reused", "other quantity");
    co_http_resp_free(&r);
    snprintf(body, sizeof body, "{\"event_id\":\"re-1\",\"item_id\":\"%s\",\"quantity\":4}",
             other);
    expect_error(send_restock(body, &r), &r, 422, "event_id_reused", "other item");
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, item), 4);
    ck_assert_int_eq(co_test_stock(&srv, other), 0);

    /* Near the top of the stock column: the restock that would pass it. */
    co_test_item(srv.conn, "huge", 1000, 2147483000, other);
    snprintf(body, sizeof body, "{\"event_id\":\"re-2\",\"item_id\":\"%s\",\"quantity\":1000}",
             other);
    expect_error(send_restock(body, &r), &r, 400, "invalid_request", "stock overflow");
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_stock(&srv, other), 2147483000);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM restock_events"), 1);
    ck_assert_int_eq(co_test_audit(srv.conn), 0);
}
END_TEST

START_TEST(two_servers_deliver_each_notification_once)
{
    enum { SHOPPERS = 40 };
    char item[37], user[37];
    co_proc second;
    json_t *j, *d, *x;
    size_t i;

    co_test_item(srv.conn, "two", 5000, 0, item);
    for (int u = 0; u < SHOPPERS; u++) {
        co_test_uuid(user);
        subscribe(item, user, 201);
    }
    ck_assert(co_test_server_start_another(&srv, &second));
    j = restock("two-1", item, 1);
    assert_restock(j, true, true, 1, SHOPPERS);
    json_decref(j);
    ck_assert_int_eq(wait_deliveries(SHOPPERS, 15000), SHOPPERS);
    usleep(400 * 1000);
    d = deliveries();
    ck_assert_int_eq(json_integer_value(json_object_get(d, "count")), SHOPPERS);
    json_array_foreach(json_object_get(d, "data"), i, x) {
        const char *params[1] = {co_test_jstr(json_object_get(x, "body"), "id", NULL)};

        ck_assert_int_eq(json_integer_value(json_object_get(x, "status")), 200);
        ck_assert_int_eq(co_test_llp(srv.conn, "SELECT count(*) FROM notification_outbox"
                                               " WHERE id = $1::bigint AND attempts = 1"
                                               " AND status = 'delivered'",
                                     1, params),
                         1);
    }
    json_decref(d);
    co_test_stop_clean(&second, "second checkoutd");
}
END_TEST

static Suite *webhooks_suite(void)
{
    Suite *s = suite_create("webhooks");
    TCase *tc = co_test_tcase(s, "stripe", 60);
    TCase *e2e = co_test_tcase(s, "e2e", 60);
    TCase *rs = co_test_tcase(s, "restock", 60);

    co_test_server_fixture(tc, &srv, notify_env, true);
    tcase_add_test(tc, forged_stale_unsigned_and_bad_json_change_nothing);
    tcase_add_test(tc, events_signed_by_the_official_sdk_are_accepted);
    tcase_add_test(tc, a_duplicate_event_has_one_effect);
    tcase_add_test(tc, succeeded_before_amount_capturable_updated);
    tcase_add_test(tc, payment_failed_fails_the_order_and_releases_stock);
    tcase_add_test(tc, a_failed_report_with_the_provider_unreadable_voids_nothing);
    tcase_add_test(tc, canceled_at_the_provider_cancels_the_order);
    tcase_add_test(tc, a_dashboard_refund_refunds_the_order);
    tcase_add_test(tc, a_refund_the_provider_never_made_changes_nothing);
    tcase_add_test(tc, unknown_intents_and_types_are_recorded);
    tcase_add_test(tc, a_late_authorization_takes_the_stock_again_or_is_voided);

    tcase_add_checked_fixture(e2e, NULL, co_test_server_teardown);
    tcase_add_test(e2e, the_mocks_own_webhooks_drive_orders);

    co_test_server_fixture(rs, &srv, notify_env, true);
    tcase_add_test(rs, a_restock_from_zero_notifies_each_waiting_shopper_once);
    tcase_add_test(rs, a_replayed_restock_adds_stock_once);
    tcase_add_test(rs, a_failing_sink_gets_the_notification_on_the_third_try);
    tcase_add_test(rs, a_notification_is_dead_after_max_attempts);
    tcase_add_test(rs, bad_restocks_change_nothing);
    tcase_add_test(rs, a_reused_restock_id_or_an_overflow_changes_nothing);
    tcase_add_test(rs, two_servers_deliver_each_notification_once);
    return s;
}

int main(void)
{
    return co_test_run_http(webhooks_suite());
}

/* The logs of a whole run at LOG_LEVEL=debug: checkoutd, mock-stripe and
 * mock-notify write their stderr to files (co_proc_stderr_dir) while a test
 * drives every flow (server flow, mobile flow with confirm, decline,
 * payment webhooks, restock with a back-in-stock notification, cancel with
 * refund, bad requests, bad signatures). Then: every line is a JSON object
 * with ts, level, component and msg; each request has its access line with
 * its request id; the client's request id is on the lines its request wrote;
 * and no secret, token, client_secret, signature or card number is anywhere. */
#include "server.h"

#include "co_sig.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;

/* ------------------------------------------------------------ what was sent */

typedef struct {
    char id[80];       /* the X-Request-Id the server answered with */
    char method[8];
    char path[256];    /* without the query string */
    long status;
} sent_req;

static sent_req sent[96];
static int nsent;

/* Every credential the run used: none may appear in a log. */
static char *secrets[128];
static int nsecrets;

static void secret(const char *s)
{
    ck_assert_int_lt(nsecrets, 128);
    ck_assert_msg(s != NULL && strlen(s) >= 6, "a secret to look for is empty");
    secrets[nsecrets++] = strdup(s);
}

/* The v1= part of a signature header (what must not be logged). */
static void signature_secret(const char *header)
{
    const char *v1 = strstr(header, "v1=");

    ck_assert_ptr_nonnull(v1);
    secret(v1 + 3);
}

/* A request to checkoutd: bearer (may be NULL), more headers ("K: V",
 * NULL-terminated, may be NULL), body (may be NULL), the X-Request-Id rid (NULL:
 * one made here, "t-<n>"). Records what the access log must show. */
static long call(const char *method, const char *target, const char *bearer,
                 const char *const extra[], const char *body, const char *rid, co_http_resp *r)
{
    char url[512], auth[2048], idh[128], own[32];
    const char *headers[8];
    int n = 0;
    sent_req *s;

    ck_assert_int_lt(nsent, 96);
    s = &sent[nsent++];
    if (rid == NULL) {
        snprintf(own, sizeof own, "t-%d.%ld", nsent, (long)getpid());
        rid = own;
    }
    snprintf(url, sizeof url, "%s%s", srv.url, target);
    if (body != NULL)
        headers[n++] = "Content-Type: application/json";
    if (bearer != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        headers[n++] = auth;
    }
    snprintf(idh, sizeof idh, "X-Request-Id: %s", rid);
    headers[n++] = idh;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 7; i++)
        headers[n++] = extra[i];
    headers[n] = NULL;
    co_http(method, url, headers, body, body != NULL ? strlen(body) : 0, r);
    ck_assert_msg(r->status > 0, "%s %s: no answer", method, target);
    ck_assert_msg(co_http_header(r, "X-Request-Id", s->id, sizeof s->id), "%s %s: no request id",
                  method, target);
    snprintf(s->method, sizeof s->method, "%s", method);
    snprintf(s->path, sizeof s->path, "%.*s", (int)strcspn(target, "?"), target);
    s->status = r->status;
    return r->status;
}

/* The same, asserting the status; returns the answer's JSON (caller decrefs). */
static json_t *call_ok(const char *method, const char *target, const char *bearer,
                       const char *const extra[], const char *body, long want)
{
    co_http_resp r = {0};
    json_t *j;

    ck_assert_msg(call(method, target, bearer, extra, body, NULL, &r) == want,
                  "%s %s: %ld, not %ld: %s", method, target, r.status, want, r.body);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    return j;
}

static char *token(const char *user)
{
    char *t = co_test_token(user, 600);

    secret(t);
    return t;
}

/* POST /v1/checkout as user: want 201 or 202 (or an error status); the
 * order id into order, the intent into pi (both may be NULL). */
static json_t *checkout(const char *user, const char *item, int qty, const char *pm, long want,
                        const char *rid, char order[37], char pi[64])
{
    char body[256], key[37], idem[64], *tok = token(user);
    const char *extra[] = {idem, NULL};
    co_http_resp r = {0};
    json_t *j;

    co_test_uuid(key);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
    co_test_cart(body, sizeof body, item, qty, pm);
    ck_assert_msg(call("POST", "/v1/checkout", tok, extra, body, rid, &r) == want,
                  "checkout: %ld %s", r.status, r.body);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    free(tok);
    if (order != NULL)
        snprintf(order, 37, "%s", co_test_jstr(j, "order_id", NULL));
    if (pi != NULL)
        snprintf(pi, 64, "%s", co_test_jstr(j, "payment_intent", NULL));
    if (co_test_jstr(j, "client_secret", NULL)[0] != '\0')
        secret(co_test_jstr(j, "client_secret", NULL));
    return j;
}

/* A Stripe event about the mock's PaymentIntent pi, signed with secret. */
static long send_event(const char *evt, const char *type, const char *pi, const char *whsec,
                       co_http_resp *r)
{
    char path[128], sig[CO_SIG_HEADER_MAX], hdr[CO_SIG_HEADER_MAX + 32];
    const char *extra[] = {hdr, NULL};
    co_http_resp m = {0};
    json_t *obj, *e;
    char *body;
    long st;

    snprintf(path, sizeof path, "/v1/payment_intents/%s", pi);
    ck_assert_int_eq(co_test_mock(&srv, "GET", path, NULL, NULL, &m), 200);
    obj = co_http_json(&m);
    co_http_resp_free(&m);
    e = json_pack("{s:s, s:s, s:I, s:s, s:{s:o}}", "id", evt, "object", "event", "created",
                  (json_int_t)time(NULL), "type", type, "data", "object", obj);
    body = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    co_sig_header(whsec, time(NULL), body, strlen(body), sig);
    signature_secret(sig);
    snprintf(hdr, sizeof hdr, "Stripe-Signature: %s", sig);
    st = call("POST", "/webhooks/stripe", NULL, extra, body, NULL, r);
    free(body);
    return st;
}

static long send_restock(const char *evt, const char *item, int qty, const char *secret_key,
                         co_http_resp *r)
{
    char body[256], sig[CO_SIG_HEADER_MAX], hdr[CO_SIG_HEADER_MAX + 32];
    const char *extra[] = {hdr, NULL};

    snprintf(body, sizeof body, "{\"event_id\":\"%s\",\"item_id\":\"%s\",\"quantity\":%d}", evt,
             item, qty);
    co_sig_header(secret_key, time(NULL), body, strlen(body), sig);
    signature_secret(sig);
    snprintf(hdr, sizeof hdr, "Restock-Signature: %s", sig);
    return call("POST", "/webhooks/restock", NULL, extra, body, NULL, r);
}

static long long notify_deliveries(void)
{
    char url[512];
    co_http_resp r = {0};
    json_t *j;
    long long n;

    snprintf(url, sizeof url, "%s/_mock/deliveries", srv.notify.url);
    co_http("GET", url, NULL, NULL, 0, &r);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    n = json_integer_value(json_object_get(j, "count"));
    json_decref(j);
    return n;
}

/* ------------------------------------------------------------ the flows */

#define CLIENT_RID "client-chose-this:id.1"

static char server_order[37], server_pi[64];

static void run_every_flow(void)
{
    char admin[] = CO_TEST_ADMIN_KEY;
    char user[37], other[37], item[37], last[37], order[37], pi[64], path[160], body[512];
    co_http_resp r = {0};
    json_t *j;
    char *tok;

    co_test_uuid(user);
    co_test_uuid(other);
    /* The catalogue, through the admin API. */
    snprintf(body, sizeof body,
             "{\"sku\":\"log-%ld\",\"name\":\"Mug\",\"price\":1500,\"currency\":\"usd\","
             "\"stock\":20}", (long)getpid());
    j = call_ok("POST", "/v1/admin/items", admin, NULL, body, 201);
    snprintf(item, sizeof item, "%s", co_test_jstr(j, "id", NULL));
    json_decref(j);
    snprintf(body, sizeof body,
             "{\"sku\":\"last-%ld\",\"name\":\"Last one\",\"price\":900,\"currency\":\"usd\","
             "\"stock\":1}", (long)getpid());
    j = call_ok("POST", "/v1/admin/items", admin, NULL, body, 201);
    snprintf(last, sizeof last, "%s", co_test_jstr(j, "id", NULL));
    json_decref(j);

    /* Server flow, with the client's own request id. */
    json_decref(checkout(user, item, 2, "pm_card_visa", 201, CLIENT_RID, server_order,
                         server_pi));
    /* Mobile flow: 202 with a client_secret, the app confirms, the shopper confirms. */
    json_decref(checkout(user, item, 1, NULL, 202, NULL, order, pi));
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    tok = token(user);
    snprintf(path, sizeof path, "/v1/orders/%s/confirm", order);
    json_decref(call_ok("POST", path, tok, NULL, NULL, 200));
    /* A late payment_intent.succeeded about it: nothing left to do. */
    ck_assert_int_eq(send_event("evt_log_1", "payment_intent.succeeded", pi, CO_TEST_WHSEC, &r),
                     200);
    co_http_resp_free(&r);
    /* The same event again: a duplicate. */
    ck_assert_int_eq(send_event("evt_log_1", "payment_intent.succeeded", pi, CO_TEST_WHSEC, &r),
                     200);
    co_http_resp_free(&r);
    /* Decline, server flow. */
    json_decref(checkout(other, item, 1, "pm_card_visa_chargeDeclinedInsufficientFunds", 402,
                         NULL, NULL, NULL));
    /* Mobile flow failed by a webhook. */
    json_decref(checkout(other, item, 1, NULL, 202, NULL, order, pi));
    ck_assert_int_eq(
        co_test_confirm_at_mock(&srv, pi, "pm_card_visa_chargeDeclinedInsufficientFunds"), 402);
    ck_assert_int_eq(send_event("evt_log_2", "payment_intent.payment_failed", pi, CO_TEST_WHSEC,
                                &r),
                     200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "failed", 10000), "failed");
    /* The app reads its intent with the client_secret (a query the mock must not log). */
    {
        char q[256];
        json_t *o = checkout(other, item, 1, NULL, 202, NULL, order, pi);

        snprintf(q, sizeof q, "/v1/payment_intents/%s?client_secret=%s", pi,
                 co_test_jstr(o, "client_secret", NULL));
        json_decref(o);
        ck_assert_int_eq(co_test_mock(&srv, "GET", q, NULL, NULL, &r), 200);
        co_http_resp_free(&r);
    }

    /* The last unit sold, a shopper waits for it, a restock brings it back. */
    json_decref(checkout(user, last, 1, "pm_card_visa", 201, NULL, NULL, NULL));
    snprintf(path, sizeof path, "/v1/items/%s/back-in-stock", last);
    json_decref(call_ok("POST", path, tok, NULL, NULL, 201));
    ck_assert_int_eq(send_restock("rs_log_1", last, 3, CO_TEST_RESTOCK_SECRET, &r), 200);
    co_http_resp_free(&r);
    for (int waited = 0; notify_deliveries() < 1 && waited < 10000; waited += 50)
        usleep(50 * 1000);
    ck_assert_int_eq(notify_deliveries(), 1);

    /* Cancel the server-flow order: refunded. */
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", server_order);
    ck_assert_int_lt(call("POST", path, tok, NULL, NULL, NULL, &r), 300);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_wait_status(&srv, server_order, "refunded", 10000), "refunded");

    /* Reads, one with a query string. */
    snprintf(path, sizeof path, "/v1/items/%s", item);
    json_decref(call_ok("GET", path, NULL, NULL, NULL, 200));
    snprintf(path, sizeof path, "/v1/orders/%s", server_order);
    json_decref(call_ok("GET", path, tok, NULL, NULL, 200));
    json_decref(call_ok("GET", "/v1/admin/orders?status=refunded&limit=2", admin, NULL, NULL,
                        200));

    /* Bad requests. */
    {
        const char *idem[] = {"Idempotency-Key: bad-json-1", NULL};

        ck_assert_int_eq(call("POST", "/v1/checkout", tok, idem, "{\"items\":", NULL, &r), 400);
        co_http_resp_free(&r);
        ck_assert_int_eq(call("POST", "/v1/checkout", NULL, idem, "{}", NULL, &r), 401);
        co_http_resp_free(&r);
        ck_assert_int_eq(call("POST", "/v1/checkout", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                              idem, "{}", NULL, &r),
                         401);
        co_http_resp_free(&r);
        ck_assert_int_eq(call("GET", "/v1/admin/orders", "adm_wrong_key_123", NULL, NULL, NULL,
                              &r),
                         401);
        co_http_resp_free(&r);
        ck_assert_int_eq(call("GET", "/v1/nowhere", NULL, NULL, NULL, NULL, &r), 404);
        co_http_resp_free(&r);
        ck_assert_int_eq(call("DELETE", "/v1/checkout", NULL, NULL, NULL, NULL, &r), 405);
        co_http_resp_free(&r);
        ck_assert_int_eq(call("GET", "/v1/items/not-a-uuid", NULL, NULL, NULL, NULL, &r), 404);
        co_http_resp_free(&r);
        /* An id the server will not take: it makes its own. */
        ck_assert_int_eq(call("GET", "/healthz", NULL, NULL, NULL, "bad id with spaces", &r),
                         200);
        co_http_resp_free(&r);
        ck_assert_str_ne(sent[nsent - 1].id, "bad id with spaces");
    }
    /* Bad signatures: forged with another secret, a stale one. */
    ck_assert_int_eq(send_event("evt_log_3", "payment_intent.succeeded", pi, "whsec_not_ours_9",
                                &r),
                     400);
    co_http_resp_free(&r);
    ck_assert_int_eq(send_restock("rs_log_2", last, 1, "restock-forged-secret", &r), 400);
    co_http_resp_free(&r);
    free(tok);
}

/* ------------------------------------------------------------ reading the logs */

typedef struct {
    char name[64];
    json_t *lines;   /* the file's lines, parsed */
    char *text;      /* the whole file */
} log_file;

static log_file logs[3];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text;
    long size;

    ck_assert_msg(f != NULL, "no log file %s", path);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)size + 1);
    ck_assert_int_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return text;
}

/* Every line a JSON object with the four keys as strings. */
static void read_log(log_file *lf, const char *dir, const char *name)
{
    char path[600];
    int n = 0;

    snprintf(lf->name, sizeof lf->name, "%s", name);
    snprintf(path, sizeof path, "%s/%s.log", dir, name);
    lf->text = slurp(path);
    lf->lines = json_array();
    for (char *line = lf->text; *line != '\0';) {
        char *eol = strchr(line, '\n');
        json_error_t err;
        json_t *j;

        ck_assert_msg(eol != NULL, "%s: a line without its newline: %.200s", name, line);
        j = json_loadb(line, (size_t)(eol - line), 0, &err);
        ck_assert_msg(j != NULL && json_is_object(j), "%s line %d is not a JSON object (%s): %.*s",
                      name, n + 1, err.text, (int)(eol - line), line);
        for (int k = 0; k < 4; k++) {
            static const char *const keys[] = {"ts", "level", "component", "msg"};

            ck_assert_msg(json_is_string(json_object_get(j, keys[k])), "%s line %d: no %s: %.*s",
                          name, n + 1, keys[k], (int)(eol - line), line);
        }
        ck_assert_msg(strlen(json_string_value(json_object_get(j, "ts"))) == 24, "%s: ts %s", name,
                      json_string_value(json_object_get(j, "ts")));
        json_array_append_new(lf->lines, j);
        n++;
        line = eol + 1;
    }
    ck_assert_msg(n > 0, "%s wrote nothing", name);
}

static const char *str(json_t *j, const char *k)
{
    const char *v = json_string_value(json_object_get(j, k));

    return v != NULL ? v : "";
}

/* Lines of lf with key == value (and component comp, when not NULL). */
static int count_lines(const log_file *lf, const char *key, const char *value, const char *comp)
{
    size_t i;
    json_t *l;
    int n = 0;

    json_array_foreach(lf->lines, i, l)
        if (strcmp(str(l, key), value) == 0 &&
            (comp == NULL || strcmp(str(l, "component"), comp) == 0))
            n++;
    return n;
}

static bool luhn(const char *d, size_t n)
{
    int sum = 0;

    for (size_t k = 0; k < n; k++) {
        int v = d[n - 1 - k] - '0';

        if (k % 2 == 1)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
    }
    return sum % 10 == 0;
}

/* What no log may hold: the run's secrets, and anything shaped like a JWT, a
 * v1= signature, a client_secret's secret or a card number. */
static void assert_clean(const log_file *lf)
{
    const char *t = lf->text;

    for (int i = 0; i < nsecrets; i++)
        ck_assert_msg(strstr(t, secrets[i]) == NULL, "%s holds a secret: %.40s...", lf->name,
                      secrets[i]);
    ck_assert_msg(strstr(t, "eyJ") == NULL, "%s holds something like a JWT", lf->name);
    for (const char *p = strstr(t, "v1="); p != NULL; p = strstr(p + 3, "v1="))
        ck_assert_msg(strspn(p + 3, "0123456789abcdef") < 16, "%s holds a signature: %.80s",
                      lf->name, p);
    for (const char *p = strstr(t, "_secret_"); p != NULL; p = strstr(p + 8, "_secret_"))
        ck_assert_msg(strncmp(p + 8, "[redacted]", 10) == 0, "%s holds a client secret: %.60s",
                      lf->name, p);
    for (const char *p = t; *p != '\0'; p++) {
        size_t n = strspn(p, "0123456789");

        ck_assert_msg(n < 13 || n > 19 || !luhn(p, n), "%s holds a card number? %.*s", lf->name,
                      (int)n, p);
        if (n > 0)
            p += n - 1;
    }
}

/* ------------------------------------------------------------ the test */

START_TEST(a_whole_run_logs_json_lines_with_request_ids_and_no_secrets)
{
    char dir[] = "/tmp/co_test_logs_XXXXXX";
    const char *const env[] = {"LOG_LEVEL=debug", "NOTIFY_INTERVAL_MS=50", NULL};
    const log_file *co = &logs[0];
    size_t i;
    json_t *l;
    int with_rid = 0;
    bool saw_step = false, saw_provider = false, saw_webhook = false, saw_restock = false,
         saw_access_mock = false, saw_access_notify = false;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    co_proc_stderr_dir(dir);
    setenv("LOG_LEVEL", "debug", 1); /* the mocks take it from the test's environment */
    co_test_server_start_notify(&srv, env, NULL);
    secret(CO_TEST_JWT_SECRET);
    secret(CO_TEST_ADMIN_KEY);
    secret(CO_TEST_WHSEC);
    secret(CO_TEST_RESTOCK_SECRET);
    secret(CO_TEST_NOTIFY_SECRET);
    secret("sk_test_checkout");
    secret("adm_wrong_key_123");
    secret("4242424242424242");
    run_every_flow();
    co_test_server_stop(&srv); /* a clean stop: every line is written */
    co_proc_stderr_dir(NULL);

    read_log(&logs[0], dir, "checkoutd");
    read_log(&logs[1], dir, "mock-stripe");
    read_log(&logs[2], dir, "mock-notify");
    for (int k = 0; k < 3; k++)
        assert_clean(&logs[k]);

    /* One access line per request, with its request id, method, path, status. */
    for (int k = 0; k < nsent; k++) {
        const sent_req *s = &sent[k];
        int found = 0;

        json_array_foreach(co->lines, i, l) {
            if (strcmp(str(l, "component"), "http") != 0 ||
                strcmp(str(l, "request_id"), s->id) != 0 ||
                !json_is_integer(json_object_get(l, "status")))
                continue;
            found++;
            ck_assert_str_eq(str(l, "method"), s->method);
            ck_assert_str_eq(str(l, "path"), s->path);
            ck_assert_int_eq(json_integer_value(json_object_get(l, "status")), s->status);
            ck_assert_msg(json_is_number(json_object_get(l, "duration_ms")), "no duration_ms");
            ck_assert_msg(json_is_integer(json_object_get(l, "bytes_out")) &&
                              json_integer_value(json_object_get(l, "bytes_out")) > 0,
                          "no bytes_out");
            ck_assert_str_eq(str(l, "remote_addr"), "127.0.0.1");
            ck_assert_str_eq(str(l, "level"), "info");
        }
        ck_assert_msg(found == 1, "%s %s (%s): %d access lines", s->method, s->path, s->id, found);
    }

    /* The client's request id is on what its checkout did: the saga's steps
     * and the provider calls, with the order id. */
    json_array_foreach(co->lines, i, l) {
        if (strcmp(str(l, "request_id"), CLIENT_RID) != 0)
            continue;
        with_rid++;
        if (strcmp(str(l, "component"), "saga") == 0 && str(l, "step")[0] != '\0') {
            ck_assert_str_eq(str(l, "order_id"), server_order);
            saw_step = true;
        }
        if (strcmp(str(l, "component"), "stripe") == 0) {
            ck_assert_str_eq(str(l, "order_id"), server_order);
            ck_assert_msg(json_is_integer(json_object_get(l, "attempt")) &&
                              json_is_number(json_object_get(l, "duration_ms")) &&
                              str(l, "endpoint")[0] == '/',
                          "a provider line without endpoint, attempt, duration");
            saw_provider = true;
        }
    }
    ck_assert_msg(with_rid >= 4 && saw_step && saw_provider,
                  "%d lines carry the client's request id (steps %d, provider calls %d)", with_rid,
                  saw_step, saw_provider);
    /* No other request's lines carry it. */
    ck_assert_int_eq(count_lines(co, "request_id", CLIENT_RID, "http"), 1);

    /* Debug lines of the webhooks, with event id, type and outcome. */
    json_array_foreach(co->lines, i, l) {
        if (strcmp(str(l, "component"), "webhook") != 0)
            continue;
        if (strcmp(str(l, "event_id"), "evt_log_2") == 0) {
            ck_assert_str_eq(str(l, "event_type"), "payment_intent.payment_failed");
            ck_assert_str_eq(str(l, "result"), "applied");
            saw_webhook = true;
        }
        if (strcmp(str(l, "event_id"), "rs_log_1") == 0) {
            ck_assert_str_eq(str(l, "result"), "applied");
            ck_assert_int_eq(json_integer_value(json_object_get(l, "notified")), 1);
            saw_restock = true;
        }
    }
    ck_assert_msg(saw_webhook && saw_restock, "webhook lines: payment %d restock %d", saw_webhook,
                  saw_restock);
    ck_assert_int_eq(count_lines(co, "event_id", "evt_log_1", "webhook"), 2);

    /* The mocks' access lines, with the path but not the query. */
    json_array_foreach(logs[1].lines, i, l)
        if (strncmp(str(l, "path"), "/v1/payment_intents/", 20) == 0)
            saw_access_mock = true;
    json_array_foreach(logs[2].lines, i, l)
        if (strcmp(str(l, "path"), "/notify") == 0 && strcmp(str(l, "signature"), "ok") == 0)
            saw_access_notify = true;
    ck_assert_msg(saw_access_mock && saw_access_notify, "mock access lines: stripe %d notify %d",
                  saw_access_mock, saw_access_notify);
    for (int k = 0; k < 3; k++) {
        json_decref(logs[k].lines);
        free(logs[k].text);
    }
    for (int k = 0; k < nsecrets; k++)
        free(secrets[k]);
    /* CO_TEST_KEEP_LOGS=1 keeps the files to read (their folder is printed). */
    if (getenv("CO_TEST_KEEP_LOGS") != NULL) {
        fprintf(stderr, "logs kept in %s\n", dir);
    } else {
        const char *names[] = {"checkoutd", "mock-stripe", "mock-notify"};
        char path[600];

        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s/%s.log", dir, names[k]);
            unlink(path);
        }
        rmdir(dir);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("logs");
    TCase *tc = co_test_tcase(s, "run", 120);

    tcase_add_test(tc, a_whole_run_logs_json_lines_with_request_ids_and_no_secrets);
    return co_test_run_http(s);
}

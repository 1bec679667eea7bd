#include "server.h"

#include "co_jwt.h"
#include "race.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *bin_dir(void)
{
    const char *d = getenv("CO_BIN_DIR");

    return d && d[0] ? d : "build/san/bin";
}

static void add_env(co_test_server *s, const char *kv)
{
    size_t klen = strcspn(kv, "=");

    for (int i = 0; i < s->nenv; i++) {
        if (strncmp(s->env[i], kv, klen) == 0 && s->env[i][klen] == '=') {
            free(s->env[i]);
            s->env[i] = strdup(kv);
            return;
        }
    }
    ck_assert_int_lt(s->nenv, 31);
    s->env[s->nenv++] = strdup(kv);
    s->env[s->nenv] = NULL;
}

static void add_envf(co_test_server *s, const char *k, const char *v)
{
    char buf[1024];

    snprintf(buf, sizeof buf, "%s=%s", k, v);
    add_env(s, buf);
}

bool co_test_server_restart(co_test_server *s, const char *const extra_env[])
{
    char path[512];
    char *argv[2] = {path, NULL};

    for (int i = 0; extra_env && extra_env[i]; i++)
        add_env(s, extra_env[i]);
    snprintf(path, sizeof path, "%s/checkoutd", bin_dir());
    if (s->server.pid != 0)
        co_proc_stop(&s->server, SIGTERM);
    if (!co_proc_start(&s->server, argv, s->env, 20000))
        return false;
    snprintf(s->url, sizeof s->url, "%s", s->server.url);
    return true;
}

/* Starts mock-stripe with s->mock_args, its state in s->mock_dir, on listen
 * (NULL: a free port). Secrets go in the mocks' environment, never on their
 * command lines (ps): a mock given --webhook-url signs its events with
 * CO_TEST_WHSEC. */
static bool start_mock(co_test_server *s, const char *listen)
{
    char *margs[26];
    char *mock_env[] = {"MOCK_STRIPE_WEBHOOK_SECRET=" CO_TEST_WHSEC, NULL};
    int n = 0;

    for (int i = 0; s->mock_args[i] != NULL; i++)
        margs[n++] = s->mock_args[i];
    margs[n++] = "--state-dir";
    margs[n++] = s->mock_dir;
    if (listen != NULL) {
        margs[n++] = "--listen"; /* after the helper's own "--listen 127.0.0.1:0": wins */
        margs[n++] = (char *)listen;
    }
    margs[n] = NULL;
    return co_proc_start_mock_stripe_env(&s->mock, margs, mock_env);
}

void co_test_mock_kill(co_test_server *s)
{
    if (s->mock.pid != 0)
        co_proc_stop(&s->mock, SIGKILL);
}

bool co_test_mock_start_again(co_test_server *s)
{
    const char *hostport = strstr(s->mock_url, "//");

    co_test_mock_kill(s);
    ck_assert_ptr_nonnull(hostport);
    /* The port was ours a moment ago; a few tries ride out a slow release. */
    for (int attempt = 0; attempt < 20; attempt++) {
        if (start_mock(s, hostport + 2)) {
            ck_assert_str_eq(s->mock.url, s->mock_url);
            return true;
        }
        usleep(100 * 1000);
    }
    return false;
}

void co_test_mock_restart(co_test_server *s)
{
    co_test_mock_kill(s);
    ck_assert_msg(co_test_mock_start_again(s), "mock-stripe did not come back on %s",
                  s->mock_url);
}

/* The mock's state dir and what the journal leaves in it. */
static void remove_mock_dir(co_test_server *s)
{
    static const char *const files[] = {"journal", "journal.new", "lock"};
    char path[320];

    if (s->mock_dir[0] == '\0')
        return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", s->mock_dir, files[i]);
        unlink(path);
    }
    rmdir(s->mock_dir);
    s->mock_dir[0] = '\0';
}

static void start(co_test_server *s, const char *const extra_env[],
                  const char *const mock_args[], bool notify)
{
    const char *tmp = getenv("TMPDIR");
    int n = 0;

    memset(s, 0, sizeof *s);
    co_test_db_create(&s->db);
    s->conn = co_test_connect(&s->db);
    for (int i = 0; mock_args && mock_args[i] && n < 19; i++)
        s->mock_args[n++] = strdup(mock_args[i]);
    snprintf(s->mock_dir, sizeof s->mock_dir, "%s/co_mock_stripe_XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s->mock_dir));
    ck_assert_msg(start_mock(s, NULL), "mock-stripe did not start");
    snprintf(s->mock_url, sizeof s->mock_url, "%s", s->mock.url);
    if (notify) {
        char path[512], url[300];
        char *nargs[] = {path, "--listen", "127.0.0.1:0", NULL};
        char *nenv[] = {"MOCK_NOTIFY_SECRET=" CO_TEST_NOTIFY_SECRET, NULL};

        snprintf(path, sizeof path, "%s/mock-notify", bin_dir());
        ck_assert_msg(co_proc_start(&s->notify, nargs, nenv, 10000), "mock-notify did not start");
        snprintf(url, sizeof url, "%s/notify", s->notify.url);
        add_envf(s, "NOTIFY_URL", url);
    }
    add_envf(s, "DATABASE_URL", s->db.url);
    add_envf(s, "LISTEN_ADDR", "127.0.0.1:0");
    add_envf(s, "STRIPE_API_BASE", s->mock.url);
    add_envf(s, "STRIPE_SECRET_KEY", "sk_test_checkout");
    add_envf(s, "STRIPE_WEBHOOK_SECRET", CO_TEST_WHSEC);
    add_envf(s, "RESTOCK_WEBHOOK_SECRET", CO_TEST_RESTOCK_SECRET);
    add_envf(s, "AUTH_JWT_SECRET", CO_TEST_JWT_SECRET);
    add_envf(s, "ADMIN_API_KEY", CO_TEST_ADMIN_KEY);
    add_envf(s, "NOTIFY_SECRET", CO_TEST_NOTIFY_SECRET);
    add_envf(s, "WORKERS", "16");
    add_envf(s, "RECOVERY_INTERVAL_MS", "100");
    add_envf(s, "SAGA_LEASE_SECONDS", "2");
    add_envf(s, "STRIPE_TIMEOUT_MS", "3000");
    add_envf(s, "STRIPE_MAX_RETRIES", "2");
    add_envf(s, "LOG_LEVEL", "warn");
    ck_assert_msg(co_test_server_restart(s, extra_env), "checkoutd did not start");
}

void co_test_server_start(co_test_server *s, const char *const extra_env[],
                          const char *const mock_args[])
{
    start(s, extra_env, mock_args, false);
}

void co_test_server_start_notify(co_test_server *s, const char *const extra_env[],
                                 const char *const mock_args[])
{
    start(s, extra_env, mock_args, true);
}

void co_test_server_stop(co_test_server *s)
{
    int status = 0;

    /* A clean stop exits 0; under ASan a leak or a memory error would not. */
    if (s->server.pid != 0)
        status = co_proc_stop(&s->server, SIGTERM);
    if (s->mock.pid != 0)
        co_proc_stop(&s->mock, SIGTERM);
    remove_mock_dir(s);
    for (int i = 0; s->mock_args[i] != NULL; i++) {
        free(s->mock_args[i]);
        s->mock_args[i] = NULL;
    }
    if (s->notify.pid != 0)
        co_proc_stop(&s->notify, SIGTERM);
    if (s->conn != NULL)
        PQfinish(s->conn);
    s->conn = NULL;
    co_test_db_drop(&s->db);
    for (int i = 0; i < s->nenv; i++)
        free(s->env[i]);
    s->nenv = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "checkoutd did not stop cleanly (wait status %d)", status);
}

char *co_test_token(const char *user, long ttl)
{
    return co_jwt_sign(CO_TEST_JWT_SECRET, user, (long long)time(NULL) + ttl, time(NULL) - 60);
}

long co_test_call(co_test_server *s, const char *method, const char *path, const char *bearer,
                  const char *body, co_http_resp *resp)
{
    char url[512], auth[2048];
    const char *headers[3] = {"Content-Type: application/json", NULL, NULL};

    snprintf(url, sizeof url, "%s%s", s->url, path);
    if (bearer != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        headers[1] = auth;
    }
    co_http(method, url, headers, body, body ? strlen(body) : 0, resp);
    return resp->status;
}

long co_test_checkout(co_test_server *s, const char *user, const char *key, const char *body,
                      co_http_resp *resp)
{
    char url[512], auth[2048], idem[300];
    char *tok = co_test_token(user, 3600);
    const char *headers[4] = {"Content-Type: application/json", auth, idem, NULL};

    snprintf(url, sizeof url, "%s/v1/checkout", s->url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key);
    co_http("POST", url, headers, body, strlen(body), resp);
    free(tok);
    return resp->status;
}

long co_test_mock(co_test_server *s, const char *method, const char *path, const char *body,
                  const char *content_type, co_http_resp *resp)
{
    char url[512], ct[128];
    const char *headers[3] = {"Authorization: Bearer sk_test_checkout", ct, NULL};

    snprintf(url, sizeof url, "%s%s", s->mock_url, path);
    snprintf(ct, sizeof ct, "Content-Type: %s",
             content_type ? content_type : "application/x-www-form-urlencoded");
    co_http(method, url, headers, body, body ? strlen(body) : 0, resp);
    return resp->status;
}

void co_test_fault(co_test_server *s, const char *match, const char *action, int count,
                   int delay_ms)
{
    char body[512];
    co_http_resp r = {0};

    snprintf(body, sizeof body,
             "{\"match\":\"%s\",\"action\":\"%s\",\"count\":%d,\"delay_ms\":%d}", match, action,
             count, delay_ms);
    ck_assert_int_lt(co_test_mock(s, "POST", "/_mock/faults", body, "application/json", &r), 300);
    co_http_resp_free(&r);
}

long long co_test_mock_stat(co_test_server *s, const char *name)
{
    co_http_resp r = {0};
    json_t *j;
    long long v;

    co_test_mock(s, "GET", "/_mock/stats", NULL, NULL, &r);
    j = co_http_json(&r);
    ck_assert_msg(j != NULL, "mock stats: %s", r.body);
    v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    co_http_resp_free(&r);
    return v;
}

long long co_test_event_count(co_test_server *s, const char *name)
{
    co_http_resp r = {0};
    char needle[96];
    const char *at;
    long long v = 0;

    ck_assert_int_eq(co_test_call(s, "GET", "/metrics", NULL, NULL, &r), 200);
    snprintf(needle, sizeof needle, "checkoutd_events_total{event=\"%s\"} ", name);
    at = strstr(r.body, needle);
    if (at != NULL)
        v = atoll(at + strlen(needle));
    co_http_resp_free(&r);
    return v;
}

int co_test_mock_deliveries(co_test_server *s, const char *type, const char *status,
                            long long *attempts)
{
    char path[160];
    co_http_resp r = {0};
    json_t *j, *e;
    size_t i;
    int n = 0;

    snprintf(path, sizeof path, "/_mock/webhooks?type=%s", type);
    ck_assert_int_eq(co_test_mock(s, "GET", path, NULL, NULL, &r), 200);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    ck_assert_ptr_nonnull(j);
    if (attempts != NULL)
        *attempts = 0;
    json_array_foreach(json_object_get(j, "data"), i, e) {
        long long a = json_integer_value(json_object_get(e, "attempts"));

        if (strcmp(co_test_jstr(e, "status", NULL), status) != 0)
            continue;
        n++;
        if (attempts != NULL && a > *attempts)
            *attempts = a;
    }
    json_decref(j);
    return n;
}

int co_test_mock_wait_deliveries(co_test_server *s, const char *type, const char *status,
                                 int want, int timeout_ms)
{
    int n = 0;

    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        n = co_test_mock_deliveries(s, type, status, NULL);
        if (n >= want)
            break;
        usleep(50 * 1000);
    }
    return n;
}

const char *co_test_wait_status(co_test_server *s, const char *order_id, const char *statuses,
                                int timeout_ms)
{
    static char last[32];
    const char *params[1] = {order_id};

    for (int waited = 0;; waited += 50) {
        PGresult *r = PQexecParams(s->conn, "SELECT status FROM orders WHERE id = $1", 1, NULL,
                                   params, NULL, NULL, 0);
        snprintf(last, sizeof last, "%s",
                 PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
        PQclear(r);
        if (last[0] != '\0') {
            const char *p = strstr(statuses, last);
            size_t n = strlen(last);
            if (p != NULL && (p == statuses || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
                return last;
        }
        if (waited >= timeout_ms)
            return last;
        usleep(50 * 1000);
    }
}

/* Every PaymentIntent at the mock, by id: status, amount_received, and the
 * order it belongs to (metadata[order_id]). */
static json_t *mock_intents(co_test_server *s)
{
    json_t *all = json_array();
    char path[256] = "/v1/payment_intents?limit=100";

    for (;;) {
        co_http_resp r = {0};
        json_t *page, *data;
        size_t i;
        json_t *pi;

        co_test_mock(s, "GET", path, NULL, NULL, &r);
        page = co_http_json(&r);
        co_http_resp_free(&r);
        ck_assert_msg(page != NULL, "cannot list payment intents");
        data = json_object_get(page, "data");
        json_array_foreach(data, i, pi) json_array_append(all, pi);
        if (!json_is_true(json_object_get(page, "has_more")) || json_array_size(data) == 0) {
            json_decref(page);
            return all;
        }
        snprintf(path, sizeof path, "/v1/payment_intents?limit=100&starting_after=%s",
                 json_string_value(json_object_get(json_array_get(data, json_array_size(data) - 1),
                                                   "id")));
        json_decref(page);
    }
}

/* Refunded amount of a PaymentIntent at the mock. */
static long long refunded(co_test_server *s, const char *pi)
{
    char path[256];
    co_http_resp r = {0};
    json_t *j, *re;
    size_t i;
    long long sum = 0;

    snprintf(path, sizeof path, "/v1/refunds?payment_intent=%s&limit=100", pi);
    co_test_mock(s, "GET", path, NULL, NULL, &r);
    j = co_http_json(&r);
    co_http_resp_free(&r);
    json_array_foreach(json_object_get(j, "data"), i, re) {
        sum += json_integer_value(json_object_get(re, "amount"));
    }
    json_decref(j);
    return sum;
}

long long co_test_unended(co_test_server *s)
{
    return co_test_ll1(s->conn, "SELECT count(*) FROM orders"
                                " WHERE status <> ALL (string_to_array($1, ' '))",
                       CO_TEST_TERMINAL);
}

void co_test_invariants(co_test_server *s, bool all_terminal)
{
    json_t *intents = mock_intents(s);
    json_t *pi;
    size_t i;
    PGresult *r;

    co_test_stock_invariant(s->conn);
    if (all_terminal)
        ck_assert_int_eq(co_test_unended(s), 0);
    /* Ended orders other than confirmed hold no stock. */
    ck_assert_int_eq(co_test_ll(s->conn,
                                "SELECT count(*) FROM orders WHERE stock_held AND status IN"
                                " ('failed','expired','cancelled','refunded')"), 0);
    json_array_foreach(intents, i, pi) {
        const char *id = json_string_value(json_object_get(pi, "id"));
        const char *st = json_string_value(json_object_get(pi, "status"));
        const char *order = json_string_value(json_object_get(json_object_get(pi, "metadata"),
                                                              "order_id"));
        long long received = json_integer_value(json_object_get(pi, "amount_received"));
        const char *params[1] = {order ? order : ""};
        char ostatus[32] = "";
        long long amount = 0;

        r = PQexecParams(s->conn, "SELECT status, amount FROM orders WHERE id::text = $1", 1, NULL,
                         params, NULL, NULL, 0);
        if (PQntuples(r) == 1) {
            snprintf(ostatus, sizeof ostatus, "%s", PQgetvalue(r, 0, 0));
            amount = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        }
        PQclear(r);
        ck_assert_msg(ostatus[0] != '\0', "payment intent %s leads to no order", id);
        if (strcmp(ostatus, "confirmed") == 0) {
            ck_assert_msg(strcmp(st, "succeeded") == 0 && received == amount &&
                              refunded(s, id) == 0,
                          "confirmed order %s: intent %s is %s, received %lld of %lld", order, id,
                          st, received, amount);
        } else if (all_terminal) {
            /* Ended otherwise: nothing captured and kept, no authorization open. */
            ck_assert_msg(strcmp(st, "requires_capture") != 0,
                          "order %s (%s): authorization %s left open", order, ostatus, id);
            ck_assert_msg(strcmp(st, "succeeded") != 0 || refunded(s, id) == received,
                          "order %s (%s): %s captured %lld, refunded %lld", order, ostatus, id,
                          received, refunded(s, id));
        }
    }
    /* Exactly one captured payment per confirmed order. */
    r = PQexec(s->conn, "SELECT id FROM orders WHERE status = 'confirmed'");
    for (int row = 0; row < PQntuples(r); row++) {
        int captured = 0;
        json_array_foreach(intents, i, pi) {
            const char *order = json_string_value(
                json_object_get(json_object_get(pi, "metadata"), "order_id"));
            if (order && strcmp(order, PQgetvalue(r, row, 0)) == 0 &&
                strcmp(json_string_value(json_object_get(pi, "status")), "succeeded") == 0)
                captured++;
        }
        ck_assert_msg(captured == 1, "order %s has %d captured payments", PQgetvalue(r, row, 0),
                      captured);
    }
    PQclear(r);
    json_decref(intents);
}

void co_test_cart(char *out, size_t n, const char *item, int qty, const char *pm)
{
    if (pm != NULL)
        snprintf(out, n,
                 "{\"items\":[{\"item_id\":\"%s\",\"quantity\":%d}],\"payment_method\":\"%s\"}",
                 item, qty, pm);
    else
        snprintf(out, n, "{\"items\":[{\"item_id\":\"%s\",\"quantity\":%d}]}", item, qty);
}

void co_test_server_start_hooked(co_test_server *s)
{
    char listen[64], hook[128];
    const char *env[] = {listen, NULL};
    const char *margs[] = {"--webhook-url", hook, NULL};
    unsigned port = co_test_free_port();

    snprintf(listen, sizeof listen, "LISTEN_ADDR=127.0.0.1:%u", port);
    snprintf(hook, sizeof hook, "http://127.0.0.1:%u/webhooks/stripe", port);
    co_test_server_start(s, env, margs);
}

bool co_test_server_start_another(co_test_server *s, co_proc *p)
{
    char path[512];
    char *argv[2] = {path, NULL};

    snprintf(path, sizeof path, "%s/checkoutd", bin_dir());
    return co_proc_start(p, argv, s->env, 20000);
}

/* ---------------------------------------------------------------- shared by the suites */

/* What co_test_server_fixture named, for the fixture functions (which take no
 * arguments); set before the runner forks, so each test's child has it. */
static struct {
    co_test_server *s;
    const char *const *env;
    bool notify;
} fixture;

static void fixture_setup(void)
{
    start(fixture.s, fixture.env, NULL, fixture.notify);
}

void co_test_server_teardown(void)
{
    co_test_server_stop(fixture.s);
}

void co_test_server_fixture(TCase *tc, co_test_server *s, const char *const extra_env[],
                            bool notify)
{
    fixture.s = s;
    fixture.env = extra_env;
    fixture.notify = notify;
    tcase_add_checked_fixture(tc, fixture_setup, co_test_server_teardown);
}

const char *co_test_jstr(json_t *j, const char *k1, const char *k2)
{
    json_t *v = json_object_get(j, k1);

    if (k2 != NULL)
        v = json_object_get(v, k2);
    return json_string_value(v) ? json_string_value(v) : "";
}

const char *co_test_status(co_test_server *s, const char *order)
{
    static char st[32];
    const char *p[1] = {order};

    co_test_strp(s->conn, st, sizeof st, "SELECT status FROM orders WHERE id = $1", 1, p);
    return st;
}

long long co_test_stock(co_test_server *s, const char *item)
{
    return co_test_ll1(s->conn, "SELECT co_item_available($1)", item);
}

void co_test_checkout_order(co_test_server *s, const char *user, const char *key,
                            const char *body, long want, char order[37], char pi[64])
{
    co_http_resp r = {0};
    json_t *j;

    ck_assert_int_eq(co_test_checkout(s, user, key, body, &r), want);
    j = co_http_json(&r);
    snprintf(order, 37, "%s", co_test_jstr(j, "order_id", NULL));
    if (pi != NULL)
        snprintf(pi, 64, "%s", co_test_jstr(j, "payment_intent", NULL));
    json_decref(j);
    co_http_resp_free(&r);
}

long co_test_order_post(co_test_server *s, const char *user, const char *order,
                        const char *action, co_http_resp *resp)
{
    char path[160];
    char *tok = co_test_token(user, 600);
    long status;

    snprintf(path, sizeof path, "/v1/orders/%s/%s", order, action);
    status = co_test_call(s, "POST", path, tok, NULL, resp);
    free(tok);
    return status;
}

long co_test_confirm_at_mock(co_test_server *s, const char *pi, const char *pm)
{
    char path[128], body[128];
    co_http_resp r = {0};
    long status;

    snprintf(path, sizeof path, "/v1/payment_intents/%s/confirm", pi);
    snprintf(body, sizeof body, "payment_method=%s", pm);
    status = co_test_mock(s, "POST", path, body, NULL, &r);
    co_http_resp_free(&r);
    return status;
}

void co_test_stop_clean(co_proc *p, const char *what)
{
    int status = co_proc_stop(p, SIGTERM);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s did not stop cleanly (wait status %d)", what, status);
}

int co_test_run_http(Suite *s)
{
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    rc = co_test_run(s);
    curl_global_cleanup();
    return rc;
}

unsigned co_test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void *co_test_race_checkout(void *p)
{
    co_test_racer *r = p;
    char user[37], key[37];
    co_http_resp resp = {0};
    json_t *j;

    co_test_uuid(user);
    co_test_uuid(key);
    co_test_race_wait();
    r->status = co_test_checkout(r->s, user, key, r->body, &resp);
    j = co_http_json(&resp);
    snprintf(r->code, sizeof r->code, "%s", co_test_jstr(j, "error", "code"));
    json_decref(j);
    co_http_resp_free(&resp);
    return NULL;
}

void co_test_race_units(co_test_server *s, const char *item, co_test_racer *rs, int n,
                        int *created, int *out)
{
    char body[256];

    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    for (int i = 0; i < n; i++)
        rs[i] = (co_test_racer){.s = s, .body = body};
    co_test_race(n, co_test_race_checkout, rs, sizeof rs[0]);
    *created = *out = 0;
    for (int i = 0; i < n; i++) {
        *created += rs[i].status == 201;
        *out += rs[i].status == 409 && strcmp(rs[i].code, "out_of_stock") == 0;
    }
}

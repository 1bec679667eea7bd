/* GET /metrics, GET /readyz and GET /healthz against a real checkoutd,
 * mock-stripe and Postgres. Every scrape is read by the Prometheus client's
 * own parser (tests/metrics_check.py, which also checks HELP, TYPE and the
 * histograms' shape), and the tests check that values move as they should
 * when checkouts, provider faults, webhooks and reservations happen. The
 * database is taken away from a running server through a TCP proxy the test
 * owns (closed, then opened again), never by stopping the shared cluster. */
#include "server.h"

#include "co_metrics.h"
#include "co_migrate.h"
#include "co_sig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;

#define CAPTURE "POST /v1/payment_intents/*/capture"
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ------------------------------------------------------------ scraping */

/* Runs the checker on text; returns its samples (caller decrefs). */
static json_t *parse_exposition(const char *text)
{
    const char *root = getenv("CO_ROOT");
    char path[] = "/tmp/co_metrics_XXXXXX";
    char cmd[1024];
    int fd = mkstemp(path);
    FILE *p;
    char *out = NULL;
    size_t cap = 0;
    ssize_t n;
    json_t *j;
    json_error_t e;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/metrics_check.py' '%s'",
             root ? root : ".", path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    n = getdelim(&out, &cap, '\0', p);
    ck_assert_msg(pclose(p) == 0, "metrics_check.py refused the exposition (see stderr)");
    unlink(path);
    ck_assert_int_gt(n, 0);
    j = json_loads(out, 0, &e);
    ck_assert_msg(j != NULL, "checker output: %s", e.text);
    free(out);
    return j;
}

/* GET /metrics: 200 with the exposition format's content type, parsed. */
static json_t *scrape(void)
{
    co_http_resp r = {0};
    char ct[128];
    json_t *j;

    ck_assert_int_eq(co_test_call(&srv, "GET", "/metrics", NULL, NULL, &r), 200);
    ck_assert(co_http_header(&r, "Content-Type", ct, sizeof ct));
    ck_assert_str_eq(ct, CONTENT_TYPE);
    j = parse_exposition(r.body);
    co_http_resp_free(&r);
    return j;
}

/* A sample's value; 0 when it is not there (a histogram series that was
 * never observed is left out). */
static double val(json_t *m, const char *k)
{
    json_t *v = json_object_get(m, k);

    return v != NULL ? json_number_value(v) : 0;
}

/* The change of sample k between two scrapes. */
static double moved(json_t *before, json_t *after, const char *k)
{
    return val(after, k) - val(before, k);
}

#define RESULT(r) "checkoutd_checkout_results_total{result=" r "}"
#define LATENCY(o) "checkoutd_checkout_duration_seconds_count{outcome=" o "}"
#define PROVIDER(e, o) "checkoutd_provider_request_duration_seconds_count{endpoint=" e \
                       ",outcome=" o "}"
#define RETRIES(e) "checkoutd_provider_retries_total{endpoint=" e "}"
#define STEP(s, r) "checkoutd_saga_step_duration_seconds_count{result=" r ",step=" s "}"
#define HOOK(t, o) "checkoutd_webhook_events_total{outcome=" o ",type=" t "}"

/* A checkout by a new shopper of qty units of item with pm (NULL: mobile). */
static long buy(const char *item, int qty, const char *pm, co_http_resp *r)
{
    char body[256], user[37], key[48];

    co_test_uuid(user);
    snprintf(key, sizeof key, "k-%s", user);
    co_test_cart(body, sizeof body, item, qty, pm);
    return co_test_checkout(&srv, user, key, body, r);
}

/* ------------------------------------------------------------ results */

START_TEST(a_checkout_counts_its_result_and_latency)
{
    char item[37], body[256], user[37];
    co_http_resp r = {0};
    json_t *before, *after;

    co_test_item(srv.conn, "m-ok", 1500, 5, item);
    before = scrape();
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    ck_assert_int_eq(co_test_checkout(&srv, user, "same", body, &r), 201);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_checkout(&srv, user, "same", body, &r), 201);
    co_http_resp_free(&r);
    after = scrape();

    ck_assert_double_eq(moved(before, after, RESULT("confirmed")), 1);
    ck_assert_double_eq(moved(before, after, LATENCY("success")), 1);
    ck_assert_double_eq(moved(before, after, "checkoutd_checkout_replays_total"), 1);
    ck_assert_double_gt(moved(before, after, "checkoutd_checkout_duration_seconds_sum"
                                             "{outcome=success}"), 0);
    ck_assert_double_eq(moved(before, after, PROVIDER("create_intent", "ok")), 1);
    ck_assert_double_eq(moved(before, after, PROVIDER("capture", "ok")), 1);
    ck_assert_double_eq(moved(before, after, STEP("reserved", "moved")), 1);
    /* The replay asks co_checkout_begin too (it finds the stored answer). */
    ck_assert_double_eq(moved(before, after, "checkoutd_db_query_duration_seconds_count"
                                             "{outcome=ok,statement=co_checkout_begin}"), 2);
    ck_assert_double_ge(moved(before, after, "checkoutd_db_query_duration_seconds_count"
                                             "{outcome=ok,statement=co_transition}"), 1);
    json_decref(before);
    json_decref(after);
}
END_TEST

START_TEST(declines_and_out_of_stock_have_their_own_codes)
{
    char item[37], body[64];
    co_http_resp r = {0};
    json_t *before, *after;
    const char *key;
    json_t *v;

    co_test_item(srv.conn, "m-one", 900, 1, item);
    before = scrape();
    ck_assert_int_eq(buy(item, 1, "pm_card_visa_chargeDeclinedInsufficientFunds", &r), 402);
    co_http_resp_free(&r);
    ck_assert_int_eq(buy(item, 1, "pm_card_visa", &r), 201);
    co_http_resp_free(&r);
    ck_assert_int_eq(buy(item, 1, "pm_card_visa", &r), 409);
    co_http_resp_free(&r);
    snprintf(body, sizeof body, "{\"items\":[]}");
    ck_assert_int_eq(co_test_checkout(&srv, "00000000-0000-4000-8000-000000000001", "bad", body,
                                      &r), 400);
    co_http_resp_free(&r);
    after = scrape();

    ck_assert_double_eq(moved(before, after, RESULT("payment_declined")), 1);
    ck_assert_double_eq(moved(before, after, RESULT("out_of_stock")), 1);
    ck_assert_double_eq(moved(before, after, RESULT("invalid_request")), 1);
    ck_assert_double_eq(moved(before, after, RESULT("confirmed")), 1);
    ck_assert_double_eq(moved(before, after, LATENCY("client_error")), 3);
    ck_assert_double_eq(moved(before, after, PROVIDER("create_intent", "declined")), 1);
    /* Every stable code is there from the start, and nothing lands in "other". */
    ck_assert_ptr_nonnull(json_object_get(before, RESULT("authentication_required")));
    ck_assert_ptr_nonnull(json_object_get(before, RESULT("awaiting_payment")));
    json_object_foreach(after, key, v) {
        ck_assert_msg(strstr(key, "result=other") == NULL, "%s", key);
        ck_assert_msg(strstr(key, "checkout_other") == NULL, "%s", key);
    }
    json_decref(before);
    json_decref(after);
}
END_TEST

START_TEST(provider_faults_count_retries_and_the_error_outcome)
{
    char item[37];
    co_http_resp r = {0};
    json_t *before, *mid, *after;

    co_test_item(srv.conn, "m-fault", 700, 5, item);
    before = scrape();
    co_test_fault(&srv, CAPTURE, "status_500", 1, 0);
    ck_assert_int_eq(buy(item, 1, "pm_card_visa", &r), 201);
    co_http_resp_free(&r);
    mid = scrape();
    ck_assert_double_eq(moved(before, mid, RETRIES("capture")), 1);
    ck_assert_double_eq(moved(before, mid, PROVIDER("capture", "ok")), 1);
    ck_assert_double_eq(moved(before, mid, RETRIES("create_intent")), 0);

    /* Failing for good: STRIPE_MAX_RETRIES (2) retries, then unavailable. */
    co_test_fault(&srv, CAPTURE, "status_500", 1000, 0);
    ck_assert_int_eq(buy(item, 1, "pm_card_visa", &r), 503);
    co_http_resp_free(&r);
    after = scrape();
    ck_assert_double_eq(moved(mid, after, RETRIES("capture")), 2);
    ck_assert_double_eq(moved(mid, after, PROVIDER("capture", "unavailable")), 1);
    ck_assert_double_eq(moved(mid, after, RESULT("payment_provider_unavailable")), 1);
    ck_assert_double_eq(moved(mid, after, LATENCY("server_error")), 1);
    json_decref(before);
    json_decref(mid);
    json_decref(after);
}
END_TEST

/* ------------------------------------------------------------ webhooks */

static long post_signed(const char *path, const char *name, const char *secret,
                        const char *body, co_http_resp *r)
{
    char url[512], hdr[CO_SIG_HEADER_MAX + 64], sig[CO_SIG_HEADER_MAX];
    const char *headers[3] = {"Content-Type: application/json", hdr, NULL};

    co_sig_header(secret, time(NULL), body, strlen(body), sig);
    snprintf(hdr, sizeof hdr, "%s: %s", name, sig);
    snprintf(url, sizeof url, "%s%s", srv.url, path);
    co_http("POST", url, headers, body, strlen(body), r);
    return r->status;
}

START_TEST(webhooks_count_by_type_and_outcome)
{
    char item[37], order[37], pi[64], cart[256], ev[512], restock[256];
    co_http_resp r = {0};
    json_t *before, *after;
    const char *unknown = "{\"id\":\"evt_m_unknown\",\"type\":\"payment_intent.succeeded\","
                          "\"data\":{\"object\":{\"id\":\"pi_nobody\","
                          "\"object\":\"payment_intent\"}}}";

    co_test_item(srv.conn, "m-hook", 1200, 5, item);
    co_test_cart(cart, sizeof cart, item, 1, NULL);
    co_test_checkout_order(&srv, "00000000-0000-4000-8000-0000000000aa", "hk", cart, 202, order,
                           pi);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    snprintf(ev, sizeof ev,
             "{\"id\":\"evt_m_paid\",\"type\":\"payment_intent.amount_capturable_updated\","
             "\"data\":{\"object\":{\"id\":\"%s\",\"object\":\"payment_intent\","
             "\"metadata\":{\"order_id\":\"%s\"}}}}",
             pi, order);
    snprintf(restock, sizeof restock,
             "{\"event_id\":\"m-restock-1\",\"item_id\":\"%s\",\"quantity\":2}", item);
    before = scrape();

    ck_assert_int_eq(post_signed("/webhooks/stripe", "Stripe-Signature", CO_TEST_WHSEC, ev, &r),
                     200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(post_signed("/webhooks/stripe", "Stripe-Signature", CO_TEST_WHSEC, ev, &r),
                     200);
    co_http_resp_free(&r);
    ck_assert_int_eq(post_signed("/webhooks/stripe", "Stripe-Signature", CO_TEST_WHSEC, unknown,
                                 &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(post_signed("/webhooks/stripe", "Stripe-Signature", "whsec_forged", unknown,
                                 &r), 400);
    co_http_resp_free(&r);
    ck_assert_int_eq(post_signed("/webhooks/restock", "Restock-Signature",
                                 CO_TEST_RESTOCK_SECRET, restock, &r), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(post_signed("/webhooks/restock", "Restock-Signature",
                                 CO_TEST_RESTOCK_SECRET, restock, &r), 200);
    co_http_resp_free(&r);
    after = scrape();

    ck_assert_double_eq(moved(before, after,
                              HOOK("payment_intent.amount_capturable_updated", "applied")), 1);
    ck_assert_double_eq(moved(before, after,
                              HOOK("payment_intent.amount_capturable_updated", "duplicate")), 1);
    ck_assert_double_eq(moved(before, after, HOOK("payment_intent.succeeded", "ignored")), 1);
    ck_assert_double_eq(moved(before, after, HOOK("unverified", "rejected")), 1);
    ck_assert_double_eq(moved(before, after, HOOK("restock", "applied")), 1);
    ck_assert_double_eq(moved(before, after, HOOK("restock", "duplicate")), 1);
    ck_assert_double_eq(moved(before, after, HOOK("payment_intent.succeeded", "applied")), 0);
    json_decref(before);
    json_decref(after);
}
END_TEST

/* ------------------------------------------------------------ gauges */

/* Scrapes once the database's gauges (cached for 1 s) were read afresh. */
static json_t *scrape_fresh(void)
{
    usleep(1100 * 1000);
    return scrape();
}

START_TEST(gauges_show_a_held_reservation_then_its_release)
{
    char item[37], order[37], pi[64], cart[256];
    const char *user = "00000000-0000-4000-8000-0000000000bb";
    co_http_resp r = {0};
    json_t *m;
    long st;

    co_test_item(srv.conn, "m-held", 800, 5, item);
    co_test_cart(cart, sizeof cart, item, 2, NULL);
    co_test_checkout_order(&srv, user, "held", cart, 202, order, pi);
    /* A notification waiting (not due for an hour: the notifier leaves it). */
    co_test_exec(srv.conn, "INSERT INTO restock_events (event_id, item_id, quantity,"
                           " became_available) SELECT 'm-r', id, 1, true FROM items"
                           " WHERE sku = 'm-held'");
    co_test_exec(srv.conn, "INSERT INTO notification_outbox (item_id, user_id, restock_event_id,"
                           " created_at, next_attempt_at) SELECT id, gen_random_uuid(), 'm-r',"
                           " now() - interval '30 seconds', now() + interval '1 hour'"
                           " FROM items WHERE sku = 'm-held'");

    m = scrape_fresh();
    ck_assert_double_eq(val(m, "checkoutd_db_gauges_up"), 1);
    ck_assert_double_eq(val(m, "checkoutd_orders{state=awaiting_payment}"), 1);
    ck_assert_double_eq(val(m, "checkoutd_orders{state=reserved}"), 0);
    ck_assert_double_eq(val(m, "checkoutd_reserved_units"), 2);
    ck_assert_double_eq(val(m, "checkoutd_orders_lease_lapsed"), 0);
    ck_assert_double_eq(val(m, "checkoutd_outbox_pending"), 1);
    ck_assert_double_ge(val(m, "checkoutd_outbox_oldest_age_seconds"), 30);
    /* The pools: WORKERS=16 from the harness, DB_POOL_SIZE's default; the
     * scrape itself is on a worker. */
    ck_assert_double_eq(val(m, "checkoutd_workers"), 16);
    ck_assert_double_ge(val(m, "checkoutd_workers_busy"), 1);
    ck_assert_double_le(val(m, "checkoutd_workers_busy"), 16);
    ck_assert_double_eq(val(m, "checkoutd_db_pool_connections"), 16);
    ck_assert_double_le(val(m, "checkoutd_db_pool_connections_busy"), 16);
    json_decref(m);

    st = co_test_order_post(&srv, user, order, "cancel", &r);
    ck_assert_msg(st == 200 || st == 202, "cancel: %ld %s", st, r.body);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "cancelled", 10000), "cancelled");
    m = scrape_fresh();
    ck_assert_double_eq(val(m, "checkoutd_orders{state=awaiting_payment}"), 0);
    ck_assert_double_eq(val(m, "checkoutd_orders{state=voiding}"), 0);
    ck_assert_double_eq(val(m, "checkoutd_reserved_units"), 0);
    json_decref(m);
}
END_TEST

/* ------------------------------------------------------------ readiness */

/* A TCP proxy to Postgres (PROXY_ADDR:port to 127.0.0.1:upstream) that the
 * test can close (the listener and every connection through it: a closed
 * port for the server) and open again. */
#define PROXY_ADDR "127.0.0.2"

typedef struct {
    unsigned port, upstream;
    int listen_fd;
    int stop[2];
    pthread_t thread;
    pthread_mutex_t lock;
    int fds[128];
    int nfds;
} db_proxy;

typedef struct {
    db_proxy *p;
    int a, b;
} relay_pair;

static void forget(db_proxy *p, int fd)
{
    for (int i = 0; i < p->nfds; i++) {
        if (p->fds[i] == fd) {
            p->fds[i] = p->fds[--p->nfds];
            return;
        }
    }
}

static void *relay(void *arg)
{
    relay_pair *rp = arg;
    struct pollfd pf[2] = {{.fd = rp->a, .events = POLLIN}, {.fd = rp->b, .events = POLLIN}};
    char buf[16384];

    for (;;) {
        bool done = false;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2 && !done; i++) {
            ssize_t n;

            if (pf[i].revents == 0)
                continue;
            n = read(pf[i].fd, buf, sizeof buf);
            if (n <= 0 || write(pf[1 - i].fd, buf, (size_t)n) != n)
                done = true;
        }
        if (done)
            break;
    }
    pthread_mutex_lock(&rp->p->lock);
    forget(rp->p, rp->a);
    forget(rp->p, rp->b);
    pthread_mutex_unlock(&rp->p->lock);
    close(rp->a);
    close(rp->b);
    free(rp);
    return NULL;
}

static void *accept_loop(void *arg)
{
    db_proxy *p = arg;

    for (;;) {
        struct pollfd pf[2] = {{.fd = p->listen_fd, .events = POLLIN},
                               {.fd = p->stop[0], .events = POLLIN}};
        struct sockaddr_in up = {.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)p->upstream)};
        relay_pair *rp;
        pthread_t t;
        int c, u;

        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (pf[1].revents != 0)
            return NULL;
        if (pf[0].revents == 0)
            continue;
        c = accept(p->listen_fd, NULL, NULL);
        if (c < 0)
            continue;
        u = socket(AF_INET, SOCK_STREAM, 0);
        if (u < 0 || connect(u, (struct sockaddr *)&up, sizeof up) != 0) {
            close(c);
            if (u >= 0)
                close(u);
            continue;
        }
        rp = malloc(sizeof *rp);
        *rp = (relay_pair){p, c, u};
        pthread_mutex_lock(&p->lock);
        p->fds[p->nfds++] = c;
        p->fds[p->nfds++] = u;
        pthread_mutex_unlock(&p->lock);
        pthread_create(&t, NULL, relay, rp);
        pthread_detach(t);
    }
}

/* Listens on PROXY_ADDR:p->port and forwards to 127.0.0.1:p->upstream. */
static void proxy_open(db_proxy *p)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    int one = 1;

    inet_pton(AF_INET, PROXY_ADDR, &a.sin_addr);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(p->listen_fd, 0);
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(p->listen_fd, 64), 0);
    ck_assert_int_eq(pipe(p->stop), 0);
    pthread_create(&p->thread, NULL, accept_loop, p);
}

/* Stops listening and cuts every connection through the proxy. */
static void proxy_close(db_proxy *p)
{
    ck_assert_int_eq(write(p->stop[1], "x", 1), 1);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->stop[0]);
    close(p->stop[1]);
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nfds; i++)
        shutdown(p->fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&p->lock);
}

/* url, reached through the proxy: the same host and port for libpq's
 * passfile lookup (its entries name both), but hostaddr PROXY_ADDR, where the
 * proxy listens on that port (Postgres listens on 127.0.0.1 only).
 * *upstream gets the port. */
static void through_proxy(const char *url, char *out, size_t n, unsigned *upstream)
{
    const char *host = strstr(url, "://");
    const char *end, *at;

    ck_assert_ptr_nonnull(host);
    host += 3;
    end = host + strcspn(host, "/?");
    at = strstr(host, "127.0.0.1:");
    ck_assert_msg(at != NULL && at < end, "the proxy needs the database on 127.0.0.1: %s", url);
    *upstream = (unsigned)strtoul(at + strlen("127.0.0.1:"), NULL, 10);
    snprintf(out, n, "%s%shostaddr=" PROXY_ADDR, url, strchr(url, '?') ? "&" : "?");
}

/* GET /readyz; the body into out. */
static long readyz(char *out, size_t n)
{
    co_http_resp r = {0};
    long st = co_test_call(&srv, "GET", "/readyz", NULL, NULL, &r);

    snprintf(out, n, "%s", r.body ? r.body : "");
    co_http_resp_free(&r);
    return st;
}

/* Polls /readyz until it answers want (up to 15 s); returns the last status. */
static long readyz_until(long want, char *out, size_t n)
{
    long st = 0;

    for (int i = 0; i < 150; i++) {
        st = readyz(out, n);
        if (st == want)
            break;
        usleep(100 * 1000);
    }
    return st;
}

#define READY "{\"status\":\"ready\",\"checks\":{\"database\":\"ok\",\"migrations\":\"ok\"}}"

START_TEST(readyz_follows_the_database_and_its_migrations)
{
    static db_proxy proxy = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char url[640], env[700], body[256];
    const char *extra[2] = {env, NULL};
    const char *last = NULL;
    const char *params[1];
    co_http_resp r = {0};
    json_t *m;

    for (const co_migration *mg = co_migrations; mg->name != NULL; mg++)
        last = mg->name;
    params[0] = last;

    /* The server reaches Postgres through the proxy from now on. */
    through_proxy(srv.db.url, url, sizeof url, &proxy.upstream);
    proxy.port = proxy.upstream;
    proxy_open(&proxy);
    snprintf(env, sizeof env, "DATABASE_URL=%s", url);
    ck_assert(co_test_server_restart(&srv, extra));
    ck_assert_int_eq(readyz(body, sizeof body), 200);
    ck_assert_str_eq(body, READY);

    /* A migration the server has compiled in is not applied. */
    PQclear(PQexecParams(srv.conn, "DELETE FROM schema_migrations WHERE name = $1", 1, NULL,
                         params, NULL, NULL, 0));
    ck_assert_int_eq(readyz(body, sizeof body), 503);
    ck_assert_str_eq(body, "{\"status\":\"not_ready\",\"checks\":{\"database\":\"ok\","
                           "\"migrations\":\"pending\"}}");
    PQclear(PQexecParams(srv.conn, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, NULL,
                         params, NULL, NULL, 0));
    ck_assert_int_eq(readyz(body, sizeof body), 200);

    /* The database's port closes under the running server. */
    proxy_close(&proxy);
    ck_assert_int_eq(readyz_until(503, body, sizeof body), 503);
    ck_assert_str_eq(body, "{\"status\":\"not_ready\",\"checks\":{\"database\":"
                           "\"unreachable\",\"migrations\":\"unknown\"}}");
    ck_assert_int_eq(co_test_call(&srv, "GET", "/healthz", NULL, NULL, &r), 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    co_http_resp_free(&r);
    m = scrape_fresh();
    ck_assert_double_eq(val(m, "checkoutd_db_gauges_up"), 0);
    ck_assert_ptr_null(json_object_get(m, "checkoutd_reserved_units"));
    json_decref(m);

    /* And opens again: ready again. */
    proxy_open(&proxy);
    ck_assert_int_eq(readyz_until(200, body, sizeof body), 200);
    ck_assert_str_eq(body, READY);
}
END_TEST

/* ------------------------------------------------------------ statements */

#define DB(st, o) "checkoutd_db_query_duration_seconds_count{outcome=" o ",statement=" st "}"

START_TEST(db_round_trips_are_named_by_what_they_call)
{
    char path[128], restock[256], body[64];
    const char *unknown = "00000000-0000-4000-8000-00000000dead";
    co_http_resp r = {0};
    json_t *before, *after, *item;

    before = scrape();
    /* co_item_json(co_create_item(...)): the inner call names it. */
    ck_assert_int_eq(co_test_call(&srv, "POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  "{\"sku\":\"m-named\",\"name\":\"Named\",\"price\":100,"
                                  "\"currency\":\"eur\",\"stock\":0}", &r), 201);
    item = co_http_json(&r);
    co_http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/items/%s", co_test_jstr(item, "id", NULL));
    ck_assert_int_eq(co_test_call(&srv, "GET", path, NULL, NULL, &r), 200);
    co_http_resp_free(&r);
    json_decref(item);
    /* A restock of an item we do not have: our SQLSTATE CK404, "refused". */
    snprintf(restock, sizeof restock,
             "{\"event_id\":\"m-unknown\",\"item_id\":\"%s\",\"quantity\":1}", unknown);
    ck_assert_int_eq(post_signed("/webhooks/restock", "Restock-Signature",
                                 CO_TEST_RESTOCK_SECRET, restock, &r), 404);
    co_http_resp_free(&r);
    ck_assert_int_eq(readyz(body, sizeof body), 200);
    after = scrape();

    ck_assert_double_eq(moved(before, after, DB("co_create_item", "ok")), 1);
    ck_assert_double_eq(moved(before, after, DB("co_item_json", "ok")), 1);
    ck_assert_double_eq(moved(before, after, DB("co_restock", "refused")), 1);
    /* Named by a leading comment. */
    ck_assert_double_eq(moved(before, after, DB("readyz", "ok")), 1);
    ck_assert_double_ge(val(after, DB("gauges", "ok")), 1);
    json_decref(before);
    json_decref(after);
}
END_TEST

/* ------------------------------------------------------------ the format */

START_TEST(label_values_are_escaped)
{
    co_metrics_text *t = co_metrics_text_new();
    char *text;
    json_t *m;

    co_metrics_family(t, "x_probe", "gauge", "A probe of the escaping.");
    co_metrics_sample(t, "x_probe", "v", "a\"b\\c\nd", 1);
    co_metrics_sample(t, "x_probe", "v", "plain", 2.5);
    text = co_metrics_text_take(t);
    ck_assert_ptr_nonnull(strstr(text, "x_probe{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
    m = parse_exposition(text);
    ck_assert_double_eq(val(m, "x_probe{v=a\"b\\c\nd}"), 1);
    ck_assert_double_eq(val(m, "x_probe{v=plain}"), 2.5);
    json_decref(m);
    free(text);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = co_test_tcase(s, "http", 90);

    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_add_test(tc, a_checkout_counts_its_result_and_latency);
    tcase_add_test(tc, declines_and_out_of_stock_have_their_own_codes);
    tcase_add_test(tc, provider_faults_count_retries_and_the_error_outcome);
    tcase_add_test(tc, webhooks_count_by_type_and_outcome);
    tcase_add_test(tc, gauges_show_a_held_reservation_then_its_release);
    tcase_add_test(tc, readyz_follows_the_database_and_its_migrations);
    tcase_add_test(tc, db_round_trips_are_named_by_what_they_call);
    tc = co_test_tcase(s, "format", 0);
    tcase_add_test(tc, label_values_are_escaped);
    return s;
}

int main(void)
{
    return co_test_run_http(metrics_suite());
}

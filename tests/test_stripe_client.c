/* The payment client (src/co_stripe.c), in two parts:
 *
 * 1. Wire tests against a scripted HTTP server in this file: it answers each
 *    connection with the next canned response and records the raw requests, so
 *    we can check the exact bytes we send (form encoding, headers, that a retry
 *    resends the same key and body) and provider behaviours the mock does not
 *    offer (Stripe-Should-Retry, Retry-After, unreadable answers).
 * 2. Behaviour tests against a real bin/mock-stripe started per test (checked
 *    fixture, so each test has a fresh provider): the Stripe flows, declines,
 *    error mapping, and the fault injection cases (500s, dropped answers, hangs).
 *
 * Backoffs are tiny so the suite stays fast. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "co_log.h"
#include "co_stripe.h"
#include "server.h"

#define KEY "sk_test_co_stripe_client_suite"

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A config with tiny backoffs; callers adjust. */
static co_stripe_config fast_cfg(const char *base)
{
    co_stripe_config c = {
        .api_base = base,
        .secret_key = KEY,
        .connect_timeout_ms = 1000,
        .timeout_ms = 5000,
        .max_retries = 3,
        .backoff_initial_ms = 10,
        .backoff_max_ms = 40,
    };
    return c;
}

/* ======================================================================== */
/* Part 1: the scripted server                                              */

#define SRV_MAX 16
#define SRV_DROP (-1) /* read the request, close without answering */
#define SRV_HANG (-2) /* read the request, answer nothing until the client leaves */

typedef struct {
    int lfd;
    char base[64]; /* http://127.0.0.1:PORT */
    char *script[SRV_MAX]; /* raw responses, owned; NULL with code DROP/HANG */
    int code[SRV_MAX];
    int n_script;
    char *req[SRV_MAX]; /* raw requests received, owned; read them after srv_finish */
    int n_req;
    atomic_int stop;
    pthread_t th;
} srv;

static srv S;

static void srv_add(srv *v, int code, const char *extra_headers, const char *body)
{
    char *r = NULL;
    size_t blen = body ? strlen(body) : 0;
    size_t cap = blen + (extra_headers ? strlen(extra_headers) : 0) + 200;
    int n;

    ck_assert_int_lt(v->n_script, SRV_MAX);
    if (code > 0) {
        r = malloc(cap);
        ck_assert_ptr_nonnull(r);
        n = snprintf(r, cap,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
                     code, blen, extra_headers ? extra_headers : "", body ? body : "");
        ck_assert(n > 0 && (size_t)n < cap);
    }
    v->script[v->n_script] = r;
    v->code[v->n_script] = code;
    v->n_script++;
}

/* Reads one request (head + Content-Length body) from fd; malloc'ed or NULL. */
static char *srv_read_request(int fd)
{
    size_t cap = 65536, len = 0, need = 0;
    char *b = malloc(cap);
    long long deadline = now_ms() + 5000;

    if (b == NULL)
        return NULL;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        char *head_end;
        ssize_t r;

        if (need > 0 && len >= need)
            break;
        if (now_ms() > deadline || poll(&pf, 1, 100) < 0)
            goto fail;
        if (!(pf.revents & (POLLIN | POLLHUP)))
            continue;
        r = read(fd, b + len, cap - 1 - len);
        if (r <= 0)
            goto fail;
        len += (size_t)r;
        b[len] = '\0';
        head_end = strstr(b, "\r\n\r\n");
        if (need == 0 && head_end != NULL) {
            char *cl = strcasestr(b, "\r\nContent-Length:");
            size_t body = 0;

            if (cl != NULL && cl < head_end)
                body = strtoul(cl + 17, NULL, 10);
            need = (size_t)(head_end + 4 - b) + body;
        }
    }
    return b;
fail:
    free(b);
    return NULL;
}

static void *srv_main(void *arg)
{
    srv *v = arg;

    for (int i = 0; i < v->n_script && !atomic_load(&v->stop); i++) {
        struct pollfd pf = {.fd = v->lfd, .events = POLLIN};
        int fd;

        if (poll(&pf, 1, 50) <= 0) {
            i--;
            continue;
        }
        fd = accept(v->lfd, NULL, NULL);
        if (fd < 0) {
            i--;
            continue;
        }
        v->req[v->n_req++] = srv_read_request(fd);
        if (v->code[i] == SRV_HANG) {
            char c;
            struct pollfd cp = {.fd = fd, .events = POLLIN};

            /* Until the client gives up (EOF) or the test ends. */
            while (!atomic_load(&v->stop) && poll(&cp, 1, 50) >= 0)
                if ((cp.revents & (POLLIN | POLLHUP)) && read(fd, &c, 1) <= 0)
                    break;
        } else if (v->code[i] > 0) {
            size_t off = 0, n = strlen(v->script[i]);

            while (off < n) {
                ssize_t w = write(fd, v->script[i] + off, n - off);

                if (w <= 0)
                    break;
                off += (size_t)w;
            }
        }
        close(fd);
    }
    return NULL;
}

/* Binds 127.0.0.1:0; the script is added with srv_add, then srv_go starts it. */
static void srv_init(srv *v)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;

    memset(v, 0, sizeof *v);
    v->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(v->lfd, 0);
    ck_assert_int_eq(bind(v->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(v->lfd, 16), 0);
    ck_assert_int_eq(getsockname(v->lfd, (struct sockaddr *)&a, &al), 0);
    snprintf(v->base, sizeof v->base, "http://127.0.0.1:%d", ntohs(a.sin_port));
}

static void srv_go(srv *v)
{
    ck_assert_int_eq(pthread_create(&v->th, NULL, srv_main, v), 0);
}

/* Stops the thread; after this v->req[0..n_req) may be read. */
static void srv_finish(srv *v)
{
    atomic_store(&v->stop, 1);
    pthread_join(v->th, NULL);
}

static void srv_free(srv *v)
{
    for (int i = 0; i < SRV_MAX; i++) {
        free(v->script[i]);
        free(v->req[i]);
    }
    if (v->lfd >= 0)
        close(v->lfd);
    memset(v, 0, sizeof *v);
    v->lfd = -1;
}

/* Header value of a recorded request ("" when absent); points into a static buffer. */
static const char *req_header(const char *req, const char *name)
{
    static char out[512];
    const char *end = strstr(req, "\r\n\r\n");
    const char *line = strstr(req, "\r\n");
    size_t nl = strlen(name);

    out[0] = '\0';
    while (line != NULL && line < end) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            size_t n;

            while (*v == ' ')
                v++;
            n = strcspn(v, "\r");
            if (n >= sizeof out)
                n = sizeof out - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
        line = strstr(line, "\r\n");
    }
    return out;
}

static const char *req_body(const char *req)
{
    const char *p = strstr(req, "\r\n\r\n");

    return p != NULL ? p + 4 : "";
}

static const char PI_JSON[] =
    "{\"id\":\"pi_123\",\"object\":\"payment_intent\",\"status\":\"requires_capture\","
    "\"amount\":1999,\"amount_capturable\":1999,\"amount_received\":0,\"currency\":\"usd\","
    "\"client_secret\":\"pi_123_secret_abc\",\"latest_charge\":{\"id\":\"ch_1\","
    "\"object\":\"charge\"},\"payment_method\":\"pm_1\",\"metadata\":{\"order_id\":\"o-9\"},"
    "\"next_action\":null}";

static void unit_setup(void)
{
    srv_init(&S);
}

static void unit_teardown(void)
{
    srv_free(&S);
}

/* Reads what was written to stderr between cap_start and cap_end (malloc'ed). */
typedef struct {
    int saved;
    FILE *f;
} capture;

static void cap_start(capture *c)
{
    fflush(stderr);
    c->f = tmpfile();
    ck_assert_ptr_nonnull(c->f);
    c->saved = dup(STDERR_FILENO);
    dup2(fileno(c->f), STDERR_FILENO);
}

static char *cap_end(capture *c)
{
    long n;
    char *s;

    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    n = ftell(c->f);
    s = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(c->f);
    if (n > 0 && fread(s, 1, (size_t)n, c->f) != (size_t)n)
        s[0] = '\0';
    fclose(c->f);
    return s;
}

/* The exchange most wire tests make: starts the script, captures pi_123
 * (amount, -1 for all of it) with key on a new client made from cfg, and stops
 * the scripted server, so S.req may be read after. Fills r and, when ms is not
 * NULL, how long the capture took; returns the capture's status. */
static co_pay_status wire_capture(const co_stripe_config *cfg, long long amount, const char *key,
                                  co_pay_result *r, long long *ms)
{
    co_stripe *s;
    long long t0;

    srv_go(&S);
    s = co_stripe_new(cfg);
    t0 = now_ms();
    co_stripe_capture(s, "pi_123", amount, key, r);
    if (ms != NULL)
        *ms = now_ms() - t0;
    srv_finish(&S);
    co_stripe_free(s);
    return r->status;
}

/* ---- wire tests ---- */

START_TEST(wire_create_form_and_headers)
{
    co_stripe_config cfg = fast_cfg(NULL);
    char base[80];
    co_stripe *s;
    co_pay_result r;
    co_pi_create_params p = {
        .amount = 1999,
        .currency = "usd",
        .payment_method = "pm_card_visa",
        .confirm = true,
        .manual_capture = true,
        .order_id = "ord 1&x=y",
        .description = "caf\xc3\xa9 [2]",
    };

    srv_add(&S, 200, "Request-Id: req_abc\r\n", PI_JSON);
    srv_go(&S);
    /* A trailing slash on the base must not give "//v1". */
    snprintf(base, sizeof base, "%s/", S.base);
    cfg.api_base = base;
    cfg.stripe_version = "2099-01-01"; /* a configured version wins over the pinned one */
    s = co_stripe_new(&cfg);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(co_stripe_create_intent(s, &p, "idem-1", &r), CO_PAY_OK);
    srv_finish(&S);

    ck_assert_int_eq(S.n_req, 1);
    ck_assert(strncmp(S.req[0], "POST /v1/payment_intents HTTP/1.1\r\n", 35) == 0);
    ck_assert_str_eq(req_header(S.req[0], "Authorization"), "Bearer " KEY);
    ck_assert_str_eq(req_header(S.req[0], "Idempotency-Key"), "idem-1");
    ck_assert_str_eq(req_header(S.req[0], "Stripe-Version"), "2099-01-01");
    ck_assert_str_eq(req_header(S.req[0], "Content-Type"),
                     "application/x-www-form-urlencoded");
    ck_assert_str_eq(req_body(S.req[0]),
                     "amount=1999&currency=usd&payment_method_types[0]=card"
                     "&capture_method=manual&payment_method=pm_card_visa&confirm=true"
                     "&description=caf%C3%A9%20%5B2%5D&metadata[order_id]=ord%201%26x%3Dy");

    ck_assert_int_eq(r.status, CO_PAY_OK);
    ck_assert_int_eq(r.http_status, 200);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert(!r.replayed);
    ck_assert_str_eq(r.request_id, "req_abc");
    ck_assert_str_eq(r.pi.id, "pi_123");
    ck_assert_str_eq(r.pi.status, "requires_capture");
    ck_assert_int_eq(r.pi.amount, 1999);
    ck_assert_int_eq(r.pi.amount_capturable, 1999);
    ck_assert_str_eq(r.pi.currency, "usd");
    ck_assert_str_eq(r.pi.client_secret, "pi_123_secret_abc");
    ck_assert_str_eq(r.pi.latest_charge, "ch_1"); /* expanded object -> its id */
    ck_assert_str_eq(r.pi.payment_method, "pm_1");
    ck_assert_str_eq(r.pi.order_id, "o-9");
    ck_assert_str_eq(r.pi.next_action_type, "");
    co_stripe_free(s);
}
END_TEST

/* A POST then a GET on one handle: the GET must carry no body, no key, no
 * Content-Type left over from the POST; ids are escaped into the path. */
START_TEST(wire_get_after_post_has_no_leftovers)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;

    srv_add(&S, 200, NULL, PI_JSON);
    srv_add(&S, 200, NULL, PI_JSON);
    srv_add(&S, 200, NULL, PI_JSON);
    srv_go(&S);
    s = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_capture(s, "pi_123", 500, "cap-1", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_retrieve_intent(s, "pi_a/b?c", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_cancel(s, "pi_123", "cancel-1", &r), CO_PAY_OK);
    srv_finish(&S);

    ck_assert_int_eq(S.n_req, 3);
    ck_assert(strncmp(S.req[0], "POST /v1/payment_intents/pi_123/capture HTTP", 44) == 0);
    ck_assert_str_eq(req_body(S.req[0]), "amount_to_capture=500");
    ck_assert(strncmp(S.req[1], "GET /v1/payment_intents/pi_a%2Fb%3Fc HTTP", 41) == 0);
    ck_assert_str_eq(req_header(S.req[1], "Idempotency-Key"), "");
    ck_assert_str_eq(req_header(S.req[1], "Content-Type"), "");
    ck_assert_str_eq(req_header(S.req[1], "Content-Length"), "");
    ck_assert_str_eq(req_header(S.req[1], "Authorization"), "Bearer " KEY);
    ck_assert_str_eq(req_body(S.req[1]), "");
    ck_assert(strncmp(S.req[2], "POST /v1/payment_intents/pi_123/cancel HTTP", 42) == 0);
    ck_assert_str_eq(req_header(S.req[2], "Idempotency-Key"), "cancel-1");
    ck_assert_str_eq(req_header(S.req[2], "Content-Length"), "0");
    co_stripe_free(s);
}
END_TEST

/* With the default config every call, GET or POST, names the pinned API version: the
 * one stripe-node 16.12.0 pins, so the answers have the fields we read. */
START_TEST(wire_every_call_pins_the_version)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;
    co_pi_create_params p = {.amount = 100, .currency = "usd", .order_id = "o1"};

    ck_assert_str_eq(CO_STRIPE_API_VERSION, "2024-06-20");
    for (int i = 0; i < 6; i++)
        srv_add(&S, 200, NULL, PI_JSON);
    srv_go(&S);
    s = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_create_intent(s, &p, "v-1", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_retrieve_intent(s, "pi_123", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_capture(s, "pi_123", 100, "v-2", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_cancel(s, "pi_123", "v-3", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_retrieve_charge(s, "ch_1", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_refund(s, "pi_123", 100, "v-4", &r), CO_PAY_OK);
    srv_finish(&S);
    ck_assert_int_eq(S.n_req, 6);
    for (int i = 0; i < S.n_req; i++)
        ck_assert_str_eq(req_header(S.req[i], "Stripe-Version"), "2024-06-20");
    co_stripe_free(s);
}
END_TEST

START_TEST(wire_refund_form)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;

    srv_add(&S, 200, NULL,
            "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"succeeded\",\"amount\":300,"
            "\"payment_intent\":\"pi_123\"}");
    srv_go(&S);
    s = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_refund(s, "pi_123", 300, "ref-1", &r), CO_PAY_OK);
    srv_finish(&S);
    ck_assert(strncmp(S.req[0], "POST /v1/refunds HTTP", 21) == 0);
    ck_assert_str_eq(req_body(S.req[0]), "payment_intent=pi_123&amount=300");
    ck_assert_str_eq(req_header(S.req[0], "Idempotency-Key"), "ref-1");
    ck_assert_str_eq(r.refund_id, "re_1");
    ck_assert_str_eq(r.refund_status, "succeeded");
    ck_assert_int_eq(r.refund_amount, 300);
    ck_assert_str_eq(r.pi.id, "pi_123");
    co_stripe_free(s);
}
END_TEST

/* 500, 503, 200: three attempts, each with the same key and body; each retry is
 * logged at warn with method, path and attempt, and the secret never is. */
START_TEST(wire_retry_resends_same_key_and_body)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;
    capture cap;
    char *log;

    srv_add(&S, 500, NULL, "{\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}");
    srv_add(&S, 503, NULL, "{}");
    srv_add(&S, 200, NULL, PI_JSON);
    cap_start(&cap);
    wire_capture(&cfg, -1, "cap-same", &r, NULL);
    log = cap_end(&cap);

    ck_assert_int_eq(r.status, CO_PAY_OK);
    ck_assert_int_eq(r.attempts, 3);
    ck_assert_int_eq(S.n_req, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(strncmp(S.req[i], "POST /v1/payment_intents/pi_123/capture ", 40) == 0);
        ck_assert_str_eq(req_header(S.req[i], "Idempotency-Key"), "cap-same");
        ck_assert_str_eq(req_body(S.req[i]), ""); /* -1: capture all, no amount */
    }
    ck_assert_msg(strstr(log, "POST /v1/payment_intents/pi_123/capture attempt 1/4") != NULL,
                  "log: %s", log);
    ck_assert_msg(strstr(log, "attempt 2/4") != NULL && strstr(log, "HTTP 503") != NULL,
                  "log: %s", log);
    ck_assert_msg(strstr(log, "warn") != NULL, "log: %s", log);
    ck_assert_msg(strstr(log, KEY) == NULL && strstr(log, "secret_abc") == NULL,
                  "secret in log: %s", log);
    free(log);
}
END_TEST

START_TEST(wire_create_retry_same_body)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;
    co_pi_create_params p = {.amount = 5, .currency = "eur", .order_id = "o1"};

    srv_add(&S, SRV_DROP, NULL, NULL);
    srv_add(&S, 429, NULL, "{}");
    srv_add(&S, 200, NULL, PI_JSON);
    srv_go(&S);
    s = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_create_intent(s, &p, "c-1", &r), CO_PAY_OK);
    srv_finish(&S);
    ck_assert_int_eq(r.attempts, 3);
    ck_assert_int_eq(S.n_req, 3);
    ck_assert_str_eq(req_body(S.req[0]),
                     "amount=5&currency=eur&payment_method_types[0]=card&metadata[order_id]=o1");
    for (int i = 1; i < 3; i++) {
        ck_assert_str_eq(req_body(S.req[i]), req_body(S.req[0]));
        ck_assert_str_eq(req_header(S.req[i], "Idempotency-Key"), "c-1");
    }
    co_stripe_free(s);
}
END_TEST

START_TEST(wire_409_is_retried)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;

    srv_add(&S, 409, NULL,
            "{\"error\":{\"type\":\"idempotency_error\",\"code\":\"idempotency_key_in_use\"}}");
    srv_add(&S, 200, "Idempotent-Replayed: true\r\n", PI_JSON);
    srv_go(&S);
    s = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_cancel(s, "pi_123", "k", &r), CO_PAY_OK);
    ck_assert_int_eq(r.attempts, 2);
    ck_assert(r.replayed);
    /* The final answer's fields only: nothing of the 409 may remain. */
    ck_assert_str_eq(r.code, "");
    srv_finish(&S);
    co_stripe_free(s);
}
END_TEST

START_TEST(wire_should_retry_false_stops)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;

    srv_add(&S, 500, "Stripe-Should-Retry: false\r\n", "{\"error\":{\"type\":\"api_error\"}}");
    srv_add(&S, 200, NULL, PI_JSON);
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, NULL), CO_PAY_UNAVAILABLE);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert_int_eq(r.http_status, 500);
    ck_assert_str_eq(r.type, "api_error");
    ck_assert_int_eq(S.n_req, 1);
}
END_TEST

START_TEST(wire_should_retry_true_forces)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;

    srv_add(&S, 400, "stripe-should-retry: true\r\n",
            "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"lock_timeout\"}}");
    srv_add(&S, 200, NULL, PI_JSON);
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, NULL), CO_PAY_OK);
    ck_assert_int_eq(r.attempts, 2);
}
END_TEST

START_TEST(wire_4xx_not_retried)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;

    srv_add(&S, 400, NULL,
            "{\"error\":{\"type\":\"invalid_request_error\","
            "\"code\":\"parameter_invalid_integer\",\"message\":\"Invalid integer\"}}");
    srv_add(&S, 200, NULL, PI_JSON);
    ck_assert_int_eq(wire_capture(&cfg, 5, "k", &r, NULL), CO_PAY_REJECTED);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert_int_eq(r.http_status, 400);
    ck_assert_str_eq(r.code, "parameter_invalid_integer");
    ck_assert_str_eq(r.message, "Invalid integer");
    ck_assert_int_eq(co_pay_status_err(r.status), CO_ERR_payment_provider_error);
    ck_assert_int_eq(S.n_req, 1);
}
END_TEST

/* Retry-After is a floor for the wait (here 1 s against a 10-40 ms backoff)... */
START_TEST(wire_retry_after_honoured)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;
    long long dt;

    cfg.backoff_max_ms = 3000;
    srv_add(&S, 429, "Retry-After: 1\r\n", "{}");
    srv_add(&S, 200, NULL, PI_JSON);
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, &dt), CO_PAY_OK);
    ck_assert_int_eq(r.attempts, 2);
    ck_assert_msg(dt >= 950 && dt < 2500, "took %lld ms", dt);
}
END_TEST

/* ...capped by backoff_max_ms so one header cannot park a worker for a minute. */
START_TEST(wire_retry_after_capped)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;
    long long dt;

    cfg.backoff_max_ms = 150;
    srv_add(&S, 503, "Retry-After: 60\r\n", "{}");
    srv_add(&S, 200, NULL, PI_JSON);
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, &dt), CO_PAY_OK);
    ck_assert_int_eq(r.attempts, 2);
    ck_assert_msg(dt >= 140 && dt < 1000, "took %lld ms", dt);
}
END_TEST

/* Waits grow: 100, 200, 400 (capped at 400) x jitter [0.5,1] -> 350..700 ms over
 * three retries; no backoff at all or no doubling would fall below. */
START_TEST(wire_backoff_doubles_with_jitter)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;
    long long dt;

    cfg.backoff_initial_ms = 100;
    cfg.backoff_max_ms = 400;
    for (int i = 0; i < 4; i++)
        srv_add(&S, 500, NULL, "{}");
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, &dt), CO_PAY_UNAVAILABLE);
    ck_assert_int_eq(r.attempts, 4);
    ck_assert_int_eq(r.http_status, 500);
    ck_assert_msg(dt >= 350 && dt < 1500, "took %lld ms", dt);
    ck_assert_int_eq(S.n_req, 4);
}
END_TEST

START_TEST(wire_max_retries_zero)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;

    cfg.max_retries = 0;
    srv_add(&S, 500, NULL, "{}");
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, NULL), CO_PAY_UNAVAILABLE);
    ck_assert_int_eq(r.attempts, 1);
}
END_TEST

/* A client timeout is retried with the same key; the hung request stays unanswered. */
START_TEST(wire_timeout_retried)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;
    long long dt;

    cfg.timeout_ms = 300;
    srv_add(&S, SRV_HANG, NULL, NULL);
    srv_add(&S, 200, NULL, PI_JSON);
    ck_assert_int_eq(wire_capture(&cfg, -1, "k-t", &r, &dt), CO_PAY_OK);
    ck_assert_int_eq(r.attempts, 2);
    ck_assert_msg(dt >= 290 && dt < 2000, "took %lld ms", dt);
    ck_assert_str_eq(req_header(S.req[1], "Idempotency-Key"), "k-t");
}
END_TEST

/* A 2xx we cannot read leaves the outcome unknown: UNAVAILABLE, not OK or REJECTED. */
START_TEST(wire_unreadable_2xx_is_unavailable)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_pay_result r;

    srv_add(&S, 200, NULL, "<html>proxy</html>");
    ck_assert_int_eq(wire_capture(&cfg, -1, "k", &r, NULL), CO_PAY_UNAVAILABLE);
    ck_assert_int_eq(r.http_status, 200);
    ck_assert_int_eq(r.attempts, 1);
}
END_TEST

/* Decline body parsing, including the embedded PaymentIntent, and truncation of
 * a long UTF-8 message that keeps it valid UTF-8. */
START_TEST(wire_decline_parsed_and_truncated_safely)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;
    co_pi_create_params p = {.amount = 5, .currency = "usd", .order_id = "o", .confirm = true,
                             .payment_method = "pm_x"};
    char body[2048];
    char msg[700];
    json_t *j;

    for (int i = 0; i < 300; i++)
        memcpy(msg + 2 * i, "\xc3\xa9", 2); /* 600 bytes of "é" */
    msg[600] = '\0';
    snprintf(body, sizeof body,
             "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
             "\"decline_code\":\"insufficient_funds\",\"message\":\"xy%s\",\"payment_intent\":"
             "{\"id\":\"pi_9\",\"status\":\"requires_payment_method\",\"amount\":5}}}",
             msg);
    srv_add(&S, 402, NULL, body);
    srv_go(&S);
    s = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_create_intent(s, &p, "k", &r), CO_PAY_DECLINED);
    srv_finish(&S);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert_str_eq(r.type, "card_error");
    ck_assert_str_eq(r.code, "card_declined");
    ck_assert_str_eq(r.decline_code, "insufficient_funds");
    ck_assert_str_eq(r.pi.id, "pi_9");
    ck_assert_str_eq(r.pi.status, "requires_payment_method");
    /* "xy" + 126 x 2 bytes; the 255th byte would split the 127th character. */
    ck_assert_int_eq(strlen(r.message), 254);
    j = json_string(r.message);               /* NULL if not valid UTF-8 */
    ck_assert_ptr_nonnull(j);
    json_decref(j);
    ck_assert_int_eq(co_pay_status_err(r.status), CO_ERR_payment_declined);
    co_stripe_free(s);
}
END_TEST

/* Bad arguments never reach the wire. */
START_TEST(wire_local_rejections)
{
    co_stripe_config cfg = fast_cfg(S.base);
    co_stripe *s;
    co_pay_result r;
    char longkey[300];
    co_pi_create_params p = {.amount = 0, .currency = "usd", .order_id = "o"};

    srv_go(&S);
    s = co_stripe_new(&cfg);
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    ck_assert_int_eq(co_stripe_capture(s, "pi_1", -1, "a\r\nX-Evil: 1", &r), CO_PAY_REJECTED);
    ck_assert_int_eq(r.attempts, 0);
    ck_assert_int_eq(co_stripe_capture(s, "pi_1", -1, longkey, &r), CO_PAY_REJECTED);
    ck_assert_int_eq(co_stripe_capture(s, "", -1, "k", &r), CO_PAY_REJECTED);
    ck_assert_int_eq(co_stripe_retrieve_intent(s, NULL, &r), CO_PAY_REJECTED);
    ck_assert_int_eq(co_stripe_create_intent(s, &p, "k", &r), CO_PAY_REJECTED);
    ck_assert_int_eq(r.attempts, 0);
    srv_finish(&S);
    ck_assert_int_eq(S.n_req, 0);
    co_stripe_free(s);

    ck_assert_ptr_null(co_stripe_new(&(co_stripe_config){.api_base = S.base}));
    ck_assert_ptr_null(co_stripe_new(&(co_stripe_config){.secret_key = KEY}));
}
END_TEST

START_TEST(status_mapping)
{
    ck_assert_int_eq(co_pay_status_err(CO_PAY_OK), CO_OK);
    ck_assert_int_eq(co_pay_status_err(CO_PAY_DECLINED), CO_ERR_payment_declined);
    ck_assert_int_eq(co_pay_status_err(CO_PAY_UNAVAILABLE),
                     CO_ERR_payment_provider_unavailable);
    ck_assert_int_eq(co_pay_status_err(CO_PAY_UNEXPECTED_STATE), CO_ERR_payment_provider_error);
    ck_assert_int_eq(co_pay_status_err(CO_PAY_NOT_FOUND), CO_ERR_payment_provider_error);
    ck_assert_int_eq(co_pay_status_err(CO_PAY_ALREADY_REFUNDED), CO_ERR_payment_provider_error);
    ck_assert_int_eq(co_pay_status_err(CO_PAY_REJECTED), CO_ERR_payment_provider_error);
    ck_assert_str_eq(co_pay_status_name(CO_PAY_OK), "ok");
    ck_assert_str_eq(co_pay_status_name(CO_PAY_DECLINED), "declined");
    ck_assert_str_eq(co_pay_status_name(CO_PAY_UNEXPECTED_STATE), "unexpected_state");
    ck_assert_str_eq(co_pay_status_name(CO_PAY_NOT_FOUND), "not_found");
    ck_assert_str_eq(co_pay_status_name(CO_PAY_ALREADY_REFUNDED), "already_refunded");
    ck_assert_str_eq(co_pay_status_name(CO_PAY_REJECTED), "rejected");
    ck_assert_str_eq(co_pay_status_name(CO_PAY_UNAVAILABLE), "unavailable");
}
END_TEST

/* Nothing listening: every attempt is refused at once; UNAVAILABLE, quickly. */
START_TEST(connection_refused_is_unavailable_quickly)
{
    char base[64];
    co_stripe_config cfg;
    co_stripe *s;
    co_pay_result r;
    long long t0, dt;

    /* A port that was just free: bound, never listened on, closed. */
    snprintf(base, sizeof base, "http://127.0.0.1:%u", co_test_free_port());
    cfg = fast_cfg(base);
    s = co_stripe_new(&cfg);
    t0 = now_ms();
    ck_assert_int_eq(co_stripe_capture(s, "pi_1", -1, "k", &r), CO_PAY_UNAVAILABLE);
    dt = now_ms() - t0;
    ck_assert_int_eq(r.attempts, 4);
    ck_assert_int_eq(r.http_status, 0);
    ck_assert_msg(dt < 1000, "took %lld ms", dt);
    ck_assert_int_eq(co_pay_status_err(r.status), CO_ERR_payment_provider_unavailable);
    co_stripe_free(s);
}
END_TEST

/* ======================================================================== */
/* Part 2: against bin/mock-stripe                                           */

static co_proc M;
static co_stripe *C;

static void mock_setup(void)
{
    co_stripe_config cfg;

    ck_assert_msg(co_proc_start_mock_stripe(&M, NULL), "mock-stripe did not start");
    cfg = fast_cfg(M.url);
    C = co_stripe_new(&cfg);
    ck_assert_ptr_nonnull(C);
}

static void mock_teardown(void)
{
    int st;

    co_stripe_free(C);
    C = NULL;
    st = co_proc_stop(&M, SIGTERM);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mock-stripe exit status %d", st);
}

/* POST/DELETE/GET on the mock's control or API surface; returns the parsed body. */
static json_t *mock_call(const char *method, const char *path, const char *json_body)
{
    char url[512];
    co_http_resp resp;
    const char *hdrs[] = {"Content-Type: application/json", "Authorization: Bearer " KEY, NULL};
    json_t *j;

    snprintf(url, sizeof url, "%s%s", M.url, path);
    ck_assert_msg(co_http(method, url, hdrs, json_body, json_body ? strlen(json_body) : 0,
                          &resp),
                  "%s %s: %s", method, path, resp.body);
    ck_assert_msg(resp.status >= 200 && resp.status < 300, "%s %s: %ld %s", method, path,
                  resp.status, resp.body);
    j = co_http_json(&resp);
    co_http_resp_free(&resp);
    return j;
}

static void mock_fault(const char *match, const char *action, int count, int delay_ms)
{
    char body[512];
    json_t *j;

    snprintf(body, sizeof body,
             "{\"match\":\"%s\",\"action\":\"%s\",\"count\":%d,\"delay_ms\":%d}", match, action,
             count, delay_ms);
    j = mock_call("POST", "/_mock/faults", body);
    json_decref(j);
}

static long long mock_stat(const char *name)
{
    json_t *j = mock_call("GET", "/_mock/stats", NULL);
    json_t *v = json_object_get(j, name);
    long long n;

    ck_assert_msg(json_is_integer(v), "no integer %s in /_mock/stats", name);
    n = json_integer_value(v);
    json_decref(j);
    return n;
}

/* How many PaymentIntents the mock holds (all fit in one page here). */
static size_t mock_pi_count(void)
{
    json_t *j = mock_call("GET", "/v1/payment_intents?limit=100", NULL);
    size_t n;

    ck_assert(json_is_array(json_object_get(j, "data")));
    n = json_array_size(json_object_get(j, "data"));
    json_decref(j);
    return n;
}

/* create + confirm with pm (server flow); asserts the outcome. */
static void create_confirmed(const char *pm, bool manual, long long amount, const char *key,
                             co_pay_status want, co_pay_result *r)
{
    co_pi_create_params p = {.amount = amount, .currency = "usd", .payment_method = pm,
                             .confirm = true, .manual_capture = manual, .order_id = "ord_42"};

    ck_assert_int_eq(co_stripe_create_intent(C, &p, key, r), want);
}

START_TEST(mock_authorize_then_capture)
{
    co_pay_result r, c, g;

    create_confirmed("pm_card_visa", true, 2500, "ord_42-authorize", CO_PAY_OK, &r);
    ck_assert_int_eq(r.http_status, 200);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert(!r.replayed);
    ck_assert(strncmp(r.pi.id, "pi_", 3) == 0);
    ck_assert_str_eq(r.pi.status, "requires_capture");
    ck_assert_int_eq(r.pi.amount, 2500);
    ck_assert_int_eq(r.pi.amount_capturable, 2500);
    ck_assert_int_eq(r.pi.amount_received, 0);
    ck_assert_str_eq(r.pi.currency, "usd");
    ck_assert_str_eq(r.pi.order_id, "ord_42");

    ck_assert_int_eq(co_stripe_capture(C, r.pi.id, -1, "ord_42-capture", &c), CO_PAY_OK);
    ck_assert_str_eq(c.pi.id, r.pi.id);
    ck_assert_str_eq(c.pi.status, "succeeded");
    ck_assert_int_eq(c.pi.amount_received, 2500);
    ck_assert_int_eq(c.pi.amount_capturable, 0);
    ck_assert_int_ne(c.pi.latest_charge[0], '\0');

    ck_assert_int_eq(co_stripe_retrieve_intent(C, r.pi.id, &g), CO_PAY_OK);
    ck_assert_str_eq(g.pi.status, "succeeded");
    ck_assert_int_eq(mock_stat("captured"), 1);
}
END_TEST

START_TEST(mock_cancel_voids)
{
    co_pay_result r, c;

    create_confirmed("pm_card_visa", true, 1200, "a", CO_PAY_OK, &r);
    ck_assert_int_eq(co_stripe_cancel(C, r.pi.id, "ord_42-cancel", &c), CO_PAY_OK);
    ck_assert_str_eq(c.pi.id, r.pi.id);
    ck_assert_str_eq(c.pi.status, "canceled");
    ck_assert_int_eq(c.pi.amount_received, 0);
}
END_TEST

START_TEST(mock_decline_generic)
{
    co_pay_result r;

    create_confirmed("pm_card_visa_chargeDeclined", true, 1000, "a", CO_PAY_DECLINED, &r);
    ck_assert_int_eq(r.http_status, 402);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert_str_eq(r.type, "card_error");
    ck_assert_str_eq(r.code, "card_declined");
    ck_assert_str_eq(r.decline_code, "generic_decline");
    ck_assert_int_ne(r.message[0], '\0');
    ck_assert(strncmp(r.pi.id, "pi_", 3) == 0);
    ck_assert_int_eq(co_pay_status_err(r.status), CO_ERR_payment_declined);
}
END_TEST

START_TEST(mock_decline_insufficient_funds)
{
    co_pay_result r;

    create_confirmed("pm_card_visa_chargeDeclinedInsufficientFunds", true, 1000, "a",
                     CO_PAY_DECLINED, &r);
    ck_assert_int_eq(r.http_status, 402);
    ck_assert_str_eq(r.code, "card_declined");
    ck_assert_str_eq(r.decline_code, "insufficient_funds");
    ck_assert(strncmp(r.pi.id, "pi_", 3) == 0);
}
END_TEST

START_TEST(mock_decline_expired_card)
{
    co_pay_result r;

    create_confirmed("pm_card_chargeDeclinedExpiredCard", true, 1000, "a", CO_PAY_DECLINED,
                     &r);
    ck_assert_int_eq(r.http_status, 402);
    ck_assert_str_eq(r.code, "expired_card");
    ck_assert_int_eq(co_pay_status_err(r.status), CO_ERR_payment_declined);
}
END_TEST

START_TEST(mock_authentication_required)
{
    co_pay_result r;

    create_confirmed("pm_card_authenticationRequired", true, 1000, "a", CO_PAY_OK, &r);
    ck_assert_int_eq(r.http_status, 200);
    ck_assert_str_eq(r.pi.status, "requires_action");
    ck_assert_int_ne(r.pi.next_action_type[0], '\0');
}
END_TEST

/* The mobile flow: create without a method; then the server-side confirm works
 * (payment_method_types[0]=card means no return_url is needed). */
START_TEST(mock_mobile_flow_create)
{
    co_pi_create_params p = {.amount = 700, .currency = "usd", .manual_capture = true,
                             .order_id = "ord_m", .description = "mobile order"};
    co_pay_result r, c;

    ck_assert_int_eq(co_stripe_create_intent(C, &p, "ord_m-create", &r), CO_PAY_OK);
    ck_assert_str_eq(r.pi.status, "requires_payment_method");
    ck_assert_str_eq(r.pi.order_id, "ord_m");
    ck_assert(strncmp(r.pi.client_secret, r.pi.id, strlen(r.pi.id)) == 0);
    ck_assert_ptr_nonnull(strstr(r.pi.client_secret, "_secret_"));

    ck_assert_int_eq(co_stripe_confirm_intent(C, r.pi.id, "pm_card_visa", "ord_m-confirm", &c),
                     CO_PAY_OK);
    ck_assert_str_eq(c.pi.status, "requires_capture");
    ck_assert_int_eq(c.pi.amount_capturable, 700);
}
END_TEST

START_TEST(mock_capture_wrong_state)
{
    co_pi_create_params p = {.amount = 700, .currency = "usd", .manual_capture = true,
                             .order_id = "ord_w"};
    co_pay_result r, c;

    ck_assert_int_eq(co_stripe_create_intent(C, &p, "c", &r), CO_PAY_OK);
    ck_assert_int_eq(co_stripe_capture(C, r.pi.id, -1, "cap", &c), CO_PAY_UNEXPECTED_STATE);
    ck_assert_int_eq(c.http_status, 400);
    ck_assert_int_eq(c.attempts, 1);
    ck_assert_str_eq(c.code, "payment_intent_unexpected_state");
    ck_assert_str_eq(c.pi.id, r.pi.id);
    ck_assert_str_eq(c.pi.status, "requires_payment_method");
    ck_assert_int_eq(co_pay_status_err(c.status), CO_ERR_payment_provider_error);
}
END_TEST

START_TEST(mock_unknown_id)
{
    co_pay_result r;

    ck_assert_int_eq(co_stripe_retrieve_intent(C, "pi_doesnotexist", &r), CO_PAY_NOT_FOUND);
    ck_assert_int_eq(r.http_status, 404);
    ck_assert_int_eq(r.attempts, 1);
    ck_assert_str_eq(r.code, "resource_missing");
    ck_assert_int_eq(co_stripe_capture(C, "pi_doesnotexist", -1, "k", &r), CO_PAY_NOT_FOUND);
    ck_assert_int_eq(r.attempts, 1);
}
END_TEST

START_TEST(mock_refund_full_then_again)
{
    co_pay_result r, f, again, replay;

    create_confirmed("pm_card_visa", false, 1500, "pay", CO_PAY_OK, &r);
    ck_assert_str_eq(r.pi.status, "succeeded");
    ck_assert_int_eq(co_stripe_refund(C, r.pi.id, -1, "ord_42-refund", &f), CO_PAY_OK);
    ck_assert(strncmp(f.refund_id, "re_", 3) == 0);
    ck_assert_str_eq(f.refund_status, "succeeded");
    ck_assert_int_eq(f.refund_amount, 1500);
    ck_assert_str_eq(f.pi.id, r.pi.id);

    /* A second refund under a new key is refused... */
    ck_assert_int_eq(co_stripe_refund(C, r.pi.id, -1, "ord_42-refund-2", &again),
                     CO_PAY_ALREADY_REFUNDED);
    ck_assert_int_eq(again.http_status, 400);
    ck_assert_int_eq(again.attempts, 1);
    ck_assert_str_eq(again.code, "charge_already_refunded");
    /* ...while the first key replays the first answer. */
    ck_assert_int_eq(co_stripe_refund(C, r.pi.id, -1, "ord_42-refund", &replay), CO_PAY_OK);
    ck_assert(replay.replayed);
    ck_assert_str_eq(replay.refund_id, f.refund_id);
}
END_TEST

START_TEST(mock_refund_partial)
{
    co_pay_result r, a, b, c;

    create_confirmed("pm_card_visa", false, 1000, "pay", CO_PAY_OK, &r);
    ck_assert_int_eq(co_stripe_refund(C, r.pi.id, 300, "r1", &a), CO_PAY_OK);
    ck_assert_int_eq(a.refund_amount, 300);
    ck_assert_int_eq(co_stripe_refund(C, r.pi.id, -1, "r2", &b), CO_PAY_OK);
    ck_assert_int_eq(b.refund_amount, 700); /* "all" means all that is left */
    ck_assert_str_ne(a.refund_id, b.refund_id);
    ck_assert_int_eq(co_stripe_refund(C, r.pi.id, -1, "r3", &c), CO_PAY_ALREADY_REFUNDED);
}
END_TEST

START_TEST(mock_wrong_key_rejected_once)
{
    co_stripe_config cfg = fast_cfg(M.url);
    co_stripe *bad;
    co_pay_result r;
    co_pi_create_params p = {.amount = 100, .currency = "usd", .order_id = "o"};

    cfg.secret_key = "sk_live_not_the_right_key";
    bad = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_create_intent(bad, &p, "k", &r), CO_PAY_REJECTED);
    ck_assert_int_eq(r.http_status, 401);
    ck_assert_int_eq(r.attempts, 1);
    co_stripe_free(bad);
    ck_assert_uint_eq(mock_pi_count(), 0);
}
END_TEST

/* The mock answers in the pinned version (its Stripe-Version header) and refuses a
 * version it cannot be, as Stripe refuses an invalid one: 400, nothing created. */
START_TEST(mock_version_pinned_and_checked)
{
    static const char *const bad[] = {"2024-6-20", "latest", "2023-10-16"};
    char url[512];
    co_http_resp resp;
    const char *hdrs[] = {"Authorization: Bearer " KEY, NULL};
    char version[64];
    co_pay_result r;
    co_pi_create_params p = {.amount = 100, .currency = "usd", .order_id = "o"};

    /* No Stripe-Version sent: the mock behaves as, and says it is, the pinned version. */
    snprintf(url, sizeof url, "%s/v1/payment_intents", M.url);
    ck_assert(co_http("GET", url, hdrs, NULL, 0, &resp));
    ck_assert_int_eq(resp.status, 200);
    ck_assert(co_http_header(&resp, "Stripe-Version", version, sizeof version));
    ck_assert_str_eq(version, "2024-06-20");
    co_http_resp_free(&resp);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        co_stripe_config cfg = fast_cfg(M.url);
        co_stripe *other;
        char want[96];

        cfg.stripe_version = bad[i];
        other = co_stripe_new(&cfg);
        ck_assert_int_eq(co_stripe_create_intent(other, &p, "kv", &r), CO_PAY_REJECTED);
        ck_assert_int_eq(r.http_status, 400);
        ck_assert_int_eq(r.attempts, 1);
        snprintf(want, sizeof want, "Invalid Stripe API version: %s", bad[i]);
        ck_assert_msg(strncmp(r.message, want, strlen(want)) == 0, "%s", r.message);
        co_stripe_free(other);
    }
    ck_assert_uint_eq(mock_pi_count(), 0);
}
END_TEST

START_TEST(mock_500_once_then_ok)
{
    co_pay_result r, c;

    create_confirmed("pm_card_visa", true, 900, "a", CO_PAY_OK, &r);
    mock_fault("POST /v1/payment_intents/*/capture", "status_500", 1, 0);
    ck_assert_int_eq(co_stripe_capture(C, r.pi.id, -1, "cap", &c), CO_PAY_OK);
    ck_assert_int_eq(c.attempts, 2);
    ck_assert_str_eq(c.pi.status, "succeeded");
    ck_assert_int_eq(mock_stat("captured"), 1);
}
END_TEST

START_TEST(mock_500_always_unavailable)
{
    co_pay_result r, c;

    create_confirmed("pm_card_visa", true, 900, "a", CO_PAY_OK, &r);
    mock_fault("POST /v1/payment_intents/*/capture", "status_500", 10, 0);
    ck_assert_int_eq(co_stripe_capture(C, r.pi.id, -1, "cap", &c), CO_PAY_UNAVAILABLE);
    ck_assert_int_eq(c.attempts, 4); /* max_retries 3 + 1 */
    ck_assert_int_eq(c.http_status, 500);
    ck_assert_int_eq(co_pay_status_err(c.status), CO_ERR_payment_provider_unavailable);
    ck_assert_int_eq(mock_stat("captured"), 0);
    /* Once the provider heals, the same key goes through, once. */
    json_decref(mock_call("DELETE", "/_mock/faults", NULL));
    ck_assert_int_eq(co_stripe_capture(C, r.pi.id, -1, "cap", &c), CO_PAY_OK);
    ck_assert_int_eq(mock_stat("captured"), 1);
}
END_TEST

/* The lost answer: the capture happens, the connection drops. The retry with the
 * same key gets the replayed answer, and the money moved once. A fresh handle does
 * the capture so the drop hits a new connection (on a reused one libcurl itself
 * resends once, which would hide our own retry from `attempts`). */
START_TEST(mock_drop_response_captures_once)
{
    co_stripe_config cfg = fast_cfg(M.url);
    co_stripe *fresh;
    co_pay_result r, c;

    create_confirmed("pm_card_visa", true, 900, "a", CO_PAY_OK, &r);
    mock_fault("POST /v1/payment_intents/*/capture", "drop_response", 1, 0);
    fresh = co_stripe_new(&cfg);
    ck_assert_int_eq(co_stripe_capture(fresh, r.pi.id, -1, "ord_42-capture", &c), CO_PAY_OK);
    co_stripe_free(fresh);
    ck_assert_int_eq(c.attempts, 2);
    ck_assert(c.replayed);
    ck_assert_str_eq(c.pi.status, "succeeded");
    ck_assert_int_eq(c.pi.amount_received, 900);
    ck_assert_int_eq(mock_stat("captured"), 1);
}
END_TEST

/* The provider hangs on create; our 500 ms timeout fires, the retry with the same
 * key succeeds, and exactly one PaymentIntent exists. */
START_TEST(mock_hang_on_create_timeout_retry)
{
    co_stripe_config cfg = fast_cfg(M.url);
    co_stripe *shorty;
    co_pay_result r;
    co_pi_create_params p = {.amount = 100, .currency = "usd", .payment_method = "pm_card_visa",
                             .confirm = true, .manual_capture = true, .order_id = "ord_h"};
    long long t0, dt;

    cfg.timeout_ms = 500;
    shorty = co_stripe_new(&cfg);
    /* The mock holds the connection 3 s, then closes it; nothing is applied. */
    mock_fault("POST /v1/payment_intents", "hang", 1, 3000);
    t0 = now_ms();
    ck_assert_int_eq(co_stripe_create_intent(shorty, &p, "ord_h-create", &r), CO_PAY_OK);
    dt = now_ms() - t0;
    co_stripe_free(shorty);
    ck_assert_int_ge(r.attempts, 2);
    ck_assert_msg(dt >= 490, "took %lld ms", dt);
    ck_assert_str_eq(r.pi.status, "requires_capture");
    ck_assert_uint_eq(mock_pi_count(), 1);
}
END_TEST

START_TEST(mock_idempotent_replay)
{
    co_pay_result a, b, c;
    co_pi_create_params p = {.amount = 100, .currency = "usd", .payment_method = "pm_card_visa",
                             .confirm = true, .manual_capture = true, .order_id = "ord_r"};

    ck_assert_int_eq(co_stripe_create_intent(C, &p, "same-key", &a), CO_PAY_OK);
    ck_assert(!a.replayed);
    ck_assert_int_eq(co_stripe_create_intent(C, &p, "same-key", &b), CO_PAY_OK);
    ck_assert(b.replayed);
    ck_assert_str_eq(b.pi.id, a.pi.id);
    ck_assert_uint_eq(mock_pi_count(), 1);
    /* The same key with other parameters is a definite refusal, not retried. */
    p.amount = 101;
    ck_assert_int_eq(co_stripe_create_intent(C, &p, "same-key", &c), CO_PAY_REJECTED);
    ck_assert_int_eq(c.http_status, 400);
    ck_assert_int_eq(c.attempts, 1);
    ck_assert_str_eq(c.type, "idempotency_error");
}
END_TEST

/* Two workers race on one step (a request and the recovery loop, say): the second
 * gets 409 idempotency_key_in_use while the first is in flight, backs off, and then
 * receives the first one's answer as a replay. One PaymentIntent exists. */
typedef struct {
    co_pay_result r;
    co_pi_create_params p;
} race_arg;

static void *race_first(void *arg)
{
    race_arg *a = arg;
    co_stripe_config cfg = fast_cfg(M.url);
    co_stripe *s = co_stripe_new(&cfg);

    co_stripe_create_intent(s, &a->p, "ord_race-create", &a->r);
    co_stripe_free(s);
    return NULL;
}

START_TEST(mock_in_flight_409_then_replay)
{
    co_stripe_config cfg = fast_cfg(M.url);
    co_stripe *second;
    race_arg first = {.p = {.amount = 300, .currency = "usd", .payment_method = "pm_card_visa",
                            .confirm = true, .manual_capture = true, .order_id = "ord_race"}};
    co_pay_result r;
    pthread_t th;
    struct timespec pause = {.tv_nsec = 150 * 1000000L};

    /* The first create sits 600 ms inside the mock's in-flight window. */
    mock_fault("POST /v1/payment_intents", "delay", 1, 600);
    ck_assert_int_eq(pthread_create(&th, NULL, race_first, &first), 0);
    nanosleep(&pause, NULL);
    cfg.backoff_initial_ms = 200;
    cfg.backoff_max_ms = 400;
    cfg.max_retries = 6;
    second = co_stripe_new(&cfg);
    co_stripe_create_intent(second, &first.p, "ord_race-create", &r);
    co_stripe_free(second);
    pthread_join(th, NULL);

    ck_assert_int_eq(first.r.status, CO_PAY_OK);
    ck_assert(!first.r.replayed);
    ck_assert_int_eq(r.status, CO_PAY_OK);
    ck_assert_int_ge(r.attempts, 2); /* at least one 409 first */
    ck_assert(r.replayed);
    ck_assert_str_eq(r.pi.id, first.r.pi.id);
    ck_assert_uint_eq(mock_pi_count(), 1);
}
END_TEST

/* ======================================================================== */

static Suite *stripe_suite(void)
{
    Suite *s = suite_create("stripe_client");
    TCase *wire = co_test_tcase(s, "wire", 10);
    TCase *mock = co_test_tcase(s, "mock", 20);

    tcase_add_checked_fixture(wire, unit_setup, unit_teardown);
    tcase_add_test(wire, wire_create_form_and_headers);
    tcase_add_test(wire, wire_get_after_post_has_no_leftovers);
    tcase_add_test(wire, wire_every_call_pins_the_version);
    tcase_add_test(wire, wire_refund_form);
    tcase_add_test(wire, wire_retry_resends_same_key_and_body);
    tcase_add_test(wire, wire_create_retry_same_body);
    tcase_add_test(wire, wire_409_is_retried);
    tcase_add_test(wire, wire_should_retry_false_stops);
    tcase_add_test(wire, wire_should_retry_true_forces);
    tcase_add_test(wire, wire_4xx_not_retried);
    tcase_add_test(wire, wire_retry_after_honoured);
    tcase_add_test(wire, wire_retry_after_capped);
    tcase_add_test(wire, wire_backoff_doubles_with_jitter);
    tcase_add_test(wire, wire_max_retries_zero);
    tcase_add_test(wire, wire_timeout_retried);
    tcase_add_test(wire, wire_unreadable_2xx_is_unavailable);
    tcase_add_test(wire, wire_decline_parsed_and_truncated_safely);
    tcase_add_test(wire, wire_local_rejections);
    tcase_add_test(wire, status_mapping);
    tcase_add_test(wire, connection_refused_is_unavailable_quickly);

    tcase_add_checked_fixture(mock, mock_setup, mock_teardown);
    tcase_add_test(mock, mock_authorize_then_capture);
    tcase_add_test(mock, mock_cancel_voids);
    tcase_add_test(mock, mock_decline_generic);
    tcase_add_test(mock, mock_decline_insufficient_funds);
    tcase_add_test(mock, mock_decline_expired_card);
    tcase_add_test(mock, mock_authentication_required);
    tcase_add_test(mock, mock_mobile_flow_create);
    tcase_add_test(mock, mock_capture_wrong_state);
    tcase_add_test(mock, mock_unknown_id);
    tcase_add_test(mock, mock_refund_full_then_again);
    tcase_add_test(mock, mock_refund_partial);
    tcase_add_test(mock, mock_wrong_key_rejected_once);
    tcase_add_test(mock, mock_version_pinned_and_checked);
    tcase_add_test(mock, mock_500_once_then_ok);
    tcase_add_test(mock, mock_500_always_unavailable);
    tcase_add_test(mock, mock_drop_response_captures_once);
    tcase_add_test(mock, mock_hang_on_create_timeout_retry);
    tcase_add_test(mock, mock_idempotent_replay);
    tcase_add_test(mock, mock_in_flight_409_then_replay);
    return s;
}

int main(void)
{
    co_log_init();
    /* curl_global_init before any thread (the scripted server, proc's drain threads). */
    return co_test_run_http(stripe_suite());
}

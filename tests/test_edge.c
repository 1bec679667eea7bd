/* The HTTP edge (src/co_edge.c, src/co_http.c) against hostile clients, over
 * raw sockets to a real checkoutd: connection limits per address, deadlines for
 * a whole header and a body, answers delivered to clients that are still
 * sending, the body cap under any framing, strict framing (RFC 9112 section
 * 6.3), and our JSON error shape on every refusal. Attack traffic goes to
 * 127.0.0.1 only (127.0.0.2 is the second client address), bounded in count and
 * time; no assertion is about how long something took, only that it happened. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static co_test_server srv;

/* ------------------------------------------------------------ raw sockets */

static unsigned server_port(void)
{
    const char *colon = strrchr(srv.url, ':');

    ck_assert_ptr_nonnull(colon);
    return (unsigned)strtoul(colon + 1, NULL, 10);
}

/* A TCP connection from src (an address of 127.0.0.0/8) to the server; -1 when
 * the connect fails. */
static int raw_connect_from(const char *src)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port())};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    inet_pton(AF_INET, src, &a.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_connect(void)
{
    int fd = raw_connect_from("127.0.0.1");

    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Sends all n bytes (blocking); false when the server closed or reset. */
static bool raw_send(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static bool raw_sends(int fd, const char *s)
{
    return raw_send(fd, s, strlen(s));
}

/* Content-Length of the answer whose head ends at hend in buf, or -1. */
static long answer_body_len(const char *buf, const char *hend)
{
    const char *p = buf;

    while (p != NULL && p < hend) {
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            return strtol(p + 15, NULL, 10);
        p = strstr(p, "\r\n");
        if (p != NULL)
            p += 2;
    }
    return -1;
}

/* Reads one answer into buf (NUL-terminated): until its Content-Length is in,
 * or the server closes, or wait_ms pass without a byte. Returns the bytes read;
 * *closed (may be NULL) says whether the server closed. */
static size_t raw_answer(int fd, char *buf, size_t cap, int wait_ms, bool *closed)
{
    size_t len = 0;

    if (closed != NULL)
        *closed = false;
    buf[0] = '\0';
    while (len + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        const char *hend = strstr(buf, "\r\n\r\n");
        ssize_t r;

        if (hend != NULL) {
            long bl = answer_body_len(buf, hend);
            if (bl >= 0 && (size_t)(hend + 4 - buf) + (size_t)bl <= len)
                break;
        }
        if (poll(&p, 1, wait_ms) <= 0)
            break;
        r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) {
            if (closed != NULL)
                *closed = true;
            break;
        }
        len += (size_t)r;
        buf[len] = '\0';
    }
    return len;
}

/* Waits up to wait_ms for the server to close fd (EOF or reset), discarding
 * whatever it sends before; true when it did. */
static bool raw_closed_within(int fd, int wait_ms)
{
    char b[4096];
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long spent;

        clock_gettime(CLOCK_MONOTONIC, &t);
        spent = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent >= wait_ms)
            return false;
        if (poll(&p, 1, (int)(wait_ms - spent)) <= 0)
            return false;
        if (recv(fd, b, sizeof b, 0) <= 0)
            return true;
    }
}

/* Whether the server has closed fd by now (no waiting). */
static bool raw_is_closed(int fd)
{
    char b[256];
    ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT | MSG_PEEK);

    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Sends req on a new connection and reads the answer (wait_ms per byte). */
static size_t raw_exchange(const char *req, size_t req_len, char *buf, size_t cap, bool *closed)
{
    int fd = raw_connect();
    size_t n;

    raw_send(fd, req, req_len);
    n = raw_answer(fd, buf, cap, 5000, closed);
    if (closed != NULL && !*closed)
        *closed = raw_closed_within(fd, 2000);
    close(fd);
    return n;
}

/* The error code of a JSON error answer ("" when it is not one). */
static const char *answer_code(const char *answer, char *out, size_t n)
{
    const char *body = strstr(answer, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;

    snprintf(out, n, "%s", co_test_jstr(j, "error", "code"));
    json_decref(j);
    return out;
}

/* How many status lines ("HTTP/1.x NNN") answer holds. */
static int status_lines(const char *answer)
{
    int n = 0;

    for (const char *p = strstr(answer, "HTTP/1."); p != NULL; p = strstr(p + 1, "HTTP/1."))
        if (p[7] != '\0' && p[8] == ' ' && p[9] >= '1' && p[9] <= '5')
            n++;
    return n;
}

/* Whether answer is exactly one answer of status with our JSON error code, on
 * a connection the server then closed; when not, why, in why (n bytes). */
static bool refused_as(const char *what, const char *answer, bool closed, const char *status,
                       const char *code, char *why, size_t n)
{
    char got[64];

    if (strncmp(answer, status, strlen(status)) != 0)
        snprintf(why, n, "%s: answer %.300s", what, answer);
    else if (strcmp(answer_code(answer, got, sizeof got), code) != 0)
        snprintf(why, n, "%s: code '%s', want %s: %.300s", what, got, code, answer);
    else if (status_lines(answer) != 1)
        snprintf(why, n, "%s: more than one status line: %.600s", what, answer);
    else if (!closed)
        snprintf(why, n, "%s: the connection stayed open", what);
    else
        return true;
    return false;
}

static void assert_refused(const char *what, const char *answer, bool closed, const char *status,
                           const char *code)
{
    char why[1024];

    ck_assert_msg(refused_as(what, answer, closed, status, code, why, sizeof why), "%s", why);
}

/* Raises this process's open-file limit (the server inherits it) to at least
 * want; false when the hard limit is lower. */
static bool raise_nofile(rlim_t want)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= want)
        return true;
    if (rl.rlim_max < want)
        return false;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

#define HEALTHZ "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n"

/* ------------------------------------------------- one client, every slot */

#define HOGS 4100

/* 4,100 connections from 127.0.0.1 that each send part of a header took every
 * slot (a global limit of 4,000, none per address): with the per-address limit
 * (512 by default) a request from 127.0.0.2 still gets its answer. */
START_TEST(one_address_cannot_take_every_slot)
{
    static int fds[HOGS];
    char buf[4096];
    int open_ = 0, fd;
    bool closed;

    ck_assert_msg(raise_nofile(HOGS + 1024), "need an open-file limit over %d", HOGS + 1024);
    co_test_server_start(&srv, NULL, NULL);
    for (int i = 0; i < HOGS; i++) {
        fds[i] = raw_connect_from("127.0.0.1");
        if (fds[i] >= 0)
            raw_sends(fds[i], "GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Slow: ");
    }
    fd = raw_connect_from("127.0.0.2");
    ck_assert_int_ge(fd, 0);
    raw_sends(fd, HEALTHZ);
    raw_answer(fd, buf, sizeof buf, 10000, &closed);
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0,
                  "127.0.0.2 got no answer while 127.0.0.1 held the slots: '%.200s'", buf);
    for (int i = 0; i < HOGS; i++) {
        if (fds[i] >= 0 && !raw_is_closed(fds[i]))
            open_++;
        if (fds[i] >= 0)
            close(fds[i]);
    }
    ck_assert_msg(open_ <= 512, "%d connections from one address stayed open", open_);
}
END_TEST

/* The limit is HTTP_CONNECTIONS_PER_IP; other addresses are not affected, and
 * a slot freed is a slot the address may use again. */
START_TEST(the_per_address_limit_is_configurable)
{
    static const char *const env[] = {"HTTP_CONNECTIONS_PER_IP=8", NULL};
    int fds[20], open_ = 0, fd;
    char buf[4096];

    co_test_server_start(&srv, env, NULL);
    for (int i = 0; i < 20; i++) {
        fds[i] = raw_connect();
        raw_sends(fds[i], "GET /healthz HTTP/1.1\r\nHost: edge\r\n");
    }
    for (int i = 0; i < 20; i++)
        if (!raw_closed_within(fds[i], 200))
            open_++;
    ck_assert_int_eq(open_, 8);
    fd = raw_connect_from("127.0.0.2");
    raw_sends(fd, HEALTHZ);
    raw_answer(fd, buf, sizeof buf, 5000, NULL);
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "127.0.0.2: %.200s", buf);
    for (int i = 0; i < 20; i++)
        close(fds[i]);
    /* The server frees the slots as it sees the closes: bounded retries. */
    for (int tries = 0; tries < 50; tries++) {
        fd = raw_connect();
        raw_sends(fd, HEALTHZ);
        raw_answer(fd, buf, sizeof buf, 2000, NULL);
        close(fd);
        if (strncmp(buf, "HTTP/1.1 200", 12) == 0)
            break;
        usleep(100 * 1000);
    }
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "127.0.0.1 after closing: %.200s", buf);
}
END_TEST

/* ------------------------------------------------------------ deadlines */

/* Sends what, one byte every 300 ms, until the server closes the connection or
 * the bytes run out; true when it closed. */
static bool trickle_until_closed(int fd, const char *what)
{
    for (size_t i = 0; what[i] != '\0'; i++) {
        if (!raw_send(fd, what + i, 1))
            return true;
        if (raw_closed_within(fd, 300))
            return true;
    }
    return false;
}

/* 60 bytes at one per 300 ms: 18 s at most, far past the deadlines set here
 * (1.5 s) and far below the 30 s idle timeout that every byte restarts. */
#define PAD "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"

static const char *const deadline_env[] = {"HTTP_HEADER_TIMEOUT_MS=1500",
                                           "HTTP_BODY_TIMEOUT_MS=1500", NULL};

/* One byte at a time restarts the idle timeout: the header has a deadline of
 * its own, from accept. */
START_TEST(a_trickling_header_is_closed)
{
    int fd;

    co_test_server_start(&srv, deadline_env, NULL);
    fd = raw_connect();
    raw_sends(fd, "GET /healthz HTTP/1.1\r\nHost: edge\r\n");
    ck_assert_msg(trickle_until_closed(fd, PAD), "a header sent one byte at a time stayed open");
    close(fd);
}
END_TEST

START_TEST(a_trickling_body_is_closed)
{
    int fd;

    co_test_server_start(&srv, deadline_env, NULL);
    fd = raw_connect();
    raw_sends(fd, "POST /v1/checkout HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
                  "Content-Length: 1000\r\n\r\n");
    ck_assert_msg(trickle_until_closed(fd, PAD), "a body sent one byte at a time stayed open");
    close(fd);
}
END_TEST

/* A keep-alive connection answers request after request; the next header
 * must still come whole within the deadline. */
START_TEST(a_keep_alive_connection_has_a_deadline_for_its_next_header)
{
    char buf[4096];
    int fd;

    co_test_server_start(&srv, deadline_env, NULL);
    fd = raw_connect();
    for (int i = 0; i < 3; i++) {
        /* A 404 keeps the connection too. */
        const char *want = i == 1 ? "HTTP/1.1 404" : "HTTP/1.1 200";
        bool closed;

        raw_sends(fd, i == 1 ? "GET /nope HTTP/1.1\r\nHost: edge\r\n\r\n" : HEALTHZ);
        raw_answer(fd, buf, sizeof buf, 5000, &closed);
        ck_assert_msg(strncmp(buf, want, 12) == 0 && !closed, "request %d: %.200s", i, buf);
    }
    raw_sends(fd, "GET /healthz HTTP/1.1\r\nHost: edge\r\n");
    ck_assert_msg(trickle_until_closed(fd, PAD), "the next header, trickled, stayed open");
    close(fd);
}
END_TEST

/* ------------------------------------------------------------ bodies */

#define MB 1000000

/* What urllib does: the whole body, then read. MHD answered 413 and closed
 * without reading: the client got a broken pipe, not the answer. Three
 * clients, on a fresh connection and after a first request on one. */
START_TEST(a_client_that_sends_1_mb_before_reading_gets_the_413)
{
    char *body = malloc(MB);
    char head[256], buf[4096];

    co_test_server_start(&srv, NULL, NULL);
    memset(body, 'x', MB);
    snprintf(head, sizeof head,
             "POST /v1/checkout HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n\r\n", MB);
    for (int i = 0; i < 3; i++) {
        int fd = raw_connect();
        bool sent, closed;

        if (i == 2) {
            raw_sends(fd, HEALTHZ);
            raw_answer(fd, buf, sizeof buf, 5000, NULL);
            ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "first request: %.200s", buf);
        }
        sent = raw_sends(fd, head) && raw_send(fd, body, MB);
        raw_answer(fd, buf, sizeof buf, 10000, &closed);
        if (!closed)
            closed = raw_closed_within(fd, 2000);
        close(fd);
        ck_assert_msg(sent, "client %d: the server reset the connection before the body was sent",
                      i);
        assert_refused("1 MB body", buf, closed, "HTTP/1.1 413", "payload_too_large");
    }
    free(body);
}
END_TEST

#define CHUNK (64 * 1024)
#define CHUNKED_TOTAL (64 * 1024 * 1024)

/* A chunked body past the 64 KiB cap was read to the end before the 413: the
 * cap now holds while reading. The client offers 64 MiB (bounded) and watches
 * for the answer between chunks; the server must answer, or close, before the
 * client could send it all. */
START_TEST(a_chunked_body_past_the_cap_is_cut_off)
{
    static char chunk[CHUNK + 32];
    char buf[4096];
    size_t sent = 0;
    int fd, hl;
    bool closed;

    co_test_server_start(&srv, NULL, NULL);
    hl = snprintf(chunk, sizeof chunk, "%x\r\n", CHUNK);
    memset(chunk + hl, 'x', CHUNK);
    memcpy(chunk + hl + CHUNK, "\r\n", 2);
    fd = raw_connect();
    raw_sends(fd, "POST /v1/checkout HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n");
    while (sent < CHUNKED_TOTAL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) > 0)
            break; /* the server answered (or closed) */
        if (!raw_send(fd, chunk, (size_t)hl + CHUNK + 2))
            break;
        sent += CHUNK;
    }
    raw_answer(fd, buf, sizeof buf, 5000, &closed);
    if (!closed)
        closed = raw_closed_within(fd, 2000);
    close(fd);
    ck_assert_msg(sent < CHUNKED_TOTAL, "the server read all %d bytes of a chunked body",
                  CHUNKED_TOTAL);
    assert_refused("chunked past the cap", buf, closed, "HTTP/1.1 413", "payload_too_large");
}
END_TEST

/* Chunked bodies under the cap still work. */
START_TEST(a_small_chunked_body_is_served)
{
    static const char *const pieces[] = {"{\"sku\":\"chunk-1\",", "\"name\":\"Chunked\",",
                                         "\"price\":100,\"currency\":\"eur\",\"stock\":3}", NULL};
    char req[1024], buf[4096];
    int len = snprintf(req, sizeof req, "POST /v1/admin/items HTTP/1.1\r\nHost: edge\r\n"
                                        "Authorization: Bearer " CO_TEST_ADMIN_KEY "\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Transfer-Encoding: chunked\r\n\r\n");

    for (int i = 0; pieces[i] != NULL; i++)
        len += snprintf(req + len, sizeof req - (size_t)len, "%zx\r\n%s\r\n", strlen(pieces[i]),
                        pieces[i]);
    len += snprintf(req + len, sizeof req - (size_t)len, "0\r\n\r\n");
    co_test_server_start(&srv, NULL, NULL);
    raw_exchange(req, (size_t)len, buf, sizeof buf, NULL);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 201", 12) == 0, "%.400s", buf);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM items WHERE sku = 'chunk-1'"), 1);
}
END_TEST

/* ------------------------------------------------------------ framing */

/* Each request is sent alone on a new connection, and then again after a
 * first request on one connection (MHD parses that one; the handler checks
 * it). */
typedef struct {
    const char *name;
    const char *req;
    bool again; /* also as a second request */
} bad_case;

#define ITEM_HEAD                                                                     \
    "POST /v1/admin/items HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer " CO_TEST_ADMIN_KEY \
    "\r\nContent-Type: application/json\r\n"
#define ITEM_BODY \
    "{\"sku\":\"smuggled\",\"name\":\"S\",\"price\":1,\"currency\":\"eur\",\"stock\":1}"

static const bad_case bad_framing[] = {
    {"two different Content-Lengths",
     ITEM_HEAD "Content-Length: 66\r\nContent-Length: 2\r\n\r\n" ITEM_BODY, true},
    {"Content-Length with Transfer-Encoding",
     ITEM_HEAD "Content-Length: 66\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
    {"Transfer-Encoding other than chunked",
     ITEM_HEAD "Transfer-Encoding: gzip\r\n\r\n" ITEM_BODY, true},
    {"whitespace before the colon", "GET /healthz HTTP/1.1\r\nHost : edge\r\n\r\n", true},
    {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", true},
    {"two Hosts", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", true},
    {"a malformed Content-Length",
     "POST /v1/admin/items HTTP/1.1\r\nHost: edge\r\nContent-Length: 1x\r\n\r\n", false},
    {"a Content-Length list",
     ITEM_HEAD "Content-Length: 66, 66\r\n\r\n" ITEM_BODY, false},
    {"a folded header line", "GET /healthz HTTP/1.1\r\nHost: edge\r\nX-A: a\r\n b\r\n\r\n", false},
    {"a control character in a value", "GET /healthz HTTP/1.1\r\nHost: ed\x01ge\r\n\r\n", true},
    {"a space in the target", "GET /heal thz HTTP/1.1\r\nHost: edge\r\n\r\n", false},
    {"an unknown version", "GET /healthz HTTP/1.7\r\nHost: edge\r\n\r\n", false},
};

/* Two different Content-Lengths (MHD took the first), Content-Length beside
 * Transfer-Encoding, whitespace before the colon, HTTP/1.1 without Host were
 * accepted; a malformed Content-Length got the status line and headers twice.
 * Each is one JSON 400 now, the connection closed, nothing applied. */
START_TEST(bad_framing_is_one_json_400)
{
    char buf[8192], what[128], why[1024];
    int failed = 0;
    bool closed;

    /* Every case runs; each failure is printed, then the test fails. */
    for (size_t i = 0; i < sizeof bad_framing / sizeof bad_framing[0]; i++) {
        const bad_case *c = &bad_framing[i];

        raw_exchange(c->req, strlen(c->req), buf, sizeof buf, &closed);
        snprintf(what, sizeof what, "%s, alone", c->name);
        if (!refused_as(what, buf, closed, "HTTP/1.1 400", "invalid_request", why, sizeof why)) {
            fprintf(stderr, "FAILED %s\n", why);
            failed++;
        }
        if (c->again) {
            int fd = raw_connect();
            raw_sends(fd, HEALTHZ);
            raw_answer(fd, buf, sizeof buf, 5000, NULL);
            ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s: %.200s", c->name, buf);
            raw_sends(fd, c->req);
            raw_answer(fd, buf, sizeof buf, 5000, &closed);
            if (!closed)
                closed = raw_closed_within(fd, 2000);
            close(fd);
            snprintf(what, sizeof what, "%s, second on a connection", c->name);
            if (!refused_as(what, buf, closed, "HTTP/1.1 400", "invalid_request", why,
                            sizeof why)) {
                fprintf(stderr, "FAILED %s\n", why);
                failed++;
            }
        }
    }
    ck_assert_msg(failed == 0, "%d framing cases were not refused (see FAILED above)", failed);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM items WHERE sku = 'smuggled'"), 0);
}
END_TEST

/* A Content-Length MHD did not see (whitespace before the colon) hid a second
 * request in the body, and MHD served it on the same connection. */
START_TEST(a_request_hidden_in_a_body_is_not_served)
{
    const char *req = "POST /healthz HTTP/1.1\r\nHost: edge\r\nContent-Length : 37\r\n\r\n"
                      "GET /metrics HTTP/1.1\r\nHost: edge\r\n\r\n";
    char buf[8192];
    bool closed;

    raw_exchange(req, strlen(req), buf, sizeof buf, &closed);
    assert_refused("hidden request", buf, closed, "HTTP/1.1 400", "invalid_request");
    ck_assert_msg(strstr(buf, "checkoutd_") == NULL, "the hidden request was served: %.600s", buf);
}
END_TEST

/* A header value is read whole: an admin key followed by a NUL and junk was
 * accepted (values were read as C strings). */
START_TEST(a_nul_in_a_header_value_is_refused)
{
    static const char req[] = "GET /v1/admin/orders HTTP/1.1\r\nHost: edge\r\n"
                              "Authorization: Bearer " CO_TEST_ADMIN_KEY "\0junk\r\n\r\n";
    const char *good = "GET /v1/admin/orders HTTP/1.1\r\nHost: edge\r\n"
                       "Authorization: Bearer " CO_TEST_ADMIN_KEY "\r\n\r\n";
    char buf[8192];
    bool closed;

    raw_exchange(req, sizeof req - 1, buf, sizeof buf, &closed);
    assert_refused("NUL in Authorization", buf, closed, "HTTP/1.1 400", "invalid_request");
    raw_exchange(good, strlen(good), buf, sizeof buf, &closed);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "the right key: %.200s", buf);
}
END_TEST

/* ------------------------------------------------------------ answers */

/* URI and header too large were MHD's own HTML; now our JSON shape. */
START_TEST(uri_and_header_too_large_are_json)
{
    size_t n = 70000;
    char *req = malloc(n + 256);
    char buf[8192];
    bool closed;
    int len;

    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', n);
    len = 5 + (int)n + snprintf(req + 5 + n, 200, " HTTP/1.1\r\nHost: edge\r\n\r\n");
    raw_exchange(req, (size_t)len, buf, sizeof buf, &closed);
    assert_refused("long URI", buf, closed, "HTTP/1.1 414", "uri_too_long");

    len = snprintf(req, 100, "GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Big: ");
    memset(req + len, 'a', n);
    len += (int)n + snprintf(req + len + n, 100, "\r\n\r\n");
    raw_exchange(req, (size_t)len, buf, sizeof buf, &closed);
    assert_refused("big header", buf, closed, "HTTP/1.1 431", "header_too_large");
    free(req);
}
END_TEST

static long post_typed(const char *path, const char *content_type, const char *body,
                       co_http_resp *r)
{
    char url[512], ct[128];
    const char *h[2] = {ct, NULL};

    snprintf(url, sizeof url, "%s%s", srv.url, path);
    snprintf(ct, sizeof ct, "Content-Type:%s%s", content_type[0] ? " " : "", content_type);
    co_http("POST", url, h, body, strlen(body), r);
    return r->status;
}

/* A JSON endpoint took any Content-Type; the 415 code existed, never sent. */
START_TEST(a_body_that_is_not_json_is_415)
{
    static const char *const refused[] = {"text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "", NULL};
    static const char *const accepted[] = {"application/json", "application/json; charset=utf-8",
                                           "Application/JSON;charset=UTF-8", NULL};
    co_http_resp r = {0};
    json_t *j;

    for (int i = 0; refused[i] != NULL; i++) {
        ck_assert_msg(post_typed("/v1/checkout", refused[i], "{}", &r) == 415, "'%s': %ld %s",
                      refused[i], r.status, r.body);
        j = co_http_json(&r);
        ck_assert_str_eq(co_test_jstr(j, "error", "code"), "unsupported_media_type");
        json_decref(j);
        co_http_resp_free(&r);
    }
    for (int i = 0; accepted[i] != NULL; i++) {
        /* No bearer: the handler runs and refuses with 401, not the edge. */
        ck_assert_msg(post_typed("/v1/checkout", accepted[i], "{}", &r) == 401, "'%s': %ld %s",
                      accepted[i], r.status, r.body);
        co_http_resp_free(&r);
    }
    /* A POST without a body needs no type. */
    ck_assert_int_eq(post_typed("/v1/orders/x/cancel", "text/plain", "", &r), 401);
    co_http_resp_free(&r);
}
END_TEST

/* 405 answers carry Allow. */
START_TEST(a_405_names_the_allowed_methods)
{
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"DELETE", "/v1/checkout", "POST"},
        {"GET", "/v1/orders/o1/cancel", "POST"},
        {"DELETE", "/v1/orders/o1", "GET"},
        {"PUT", "/v1/admin/items", "POST"},
    };
    char url[512], allow[64];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        co_http_resp r = {0};

        snprintf(url, sizeof url, "%s%s", srv.url, cases[i].path);
        co_http(cases[i].method, url, NULL, NULL, 0, &r);
        ck_assert_msg(r.status == 405, "%s %s: %ld", cases[i].method, cases[i].path, r.status);
        ck_assert_msg(co_http_header(&r, "Allow", allow, sizeof allow), "%s %s: no Allow",
                      cases[i].method, cases[i].path);
        ck_assert_str_eq(allow, cases[i].allow);
        co_http_resp_free(&r);
    }
}
END_TEST

/* ------------------------------------------------------------ the log */

/* Starts the server with its stderr in a file; returns the file's fd. */
static int start_logging_to_file(const char *const env[], char path[64])
{
    int saved = dup(2), fd;

    snprintf(path, 64, "/tmp/co_test_edge_log_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    co_test_server_start(&srv, env, NULL);
    dup2(saved, 2);
    close(saved);
    return fd;
}

static int count_lines_with(int fd, const char *what)
{
    char *text;
    off_t size = lseek(fd, 0, SEEK_END);
    int n = 0;

    text = calloc(1, (size_t)size + 1);
    ck_assert_int_eq(pread(fd, text, (size_t)size, 0), size);
    for (char *line = text; *line != '\0';) {
        char *eol = strchr(line, '\n');
        if (eol != NULL)
            *eol = '\0';
        if (strstr(line, what) != NULL)
            n++;
        if (eol == NULL)
            break;
        line = eol + 1;
    }
    free(text);
    return n;
}

/* Every aborted connection logged a warning (4,000 lines from one probe). 300
 * connections abandoned mid-header and mid-body now log a handful at most. */
START_TEST(aborted_connections_do_not_flood_the_log)
{
    static const char *const env[] = {"LOG_LEVEL=info", NULL};
    char path[64];
    int log = start_logging_to_file(env, path);
    int fds[50];

    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 50; i++) {
            fds[i] = raw_connect();
            raw_sends(fds[i], round % 2 ? "POST /v1/checkout HTTP/1.1\r\nHost: edge\r\n"
                                          "Content-Type: application/json\r\n"
                                          "Content-Length: 100\r\n\r\n{"
                                        : "GET /healthz HTTP/1.1\r\nHost: ed");
        }
        usleep(200 * 1000);
        for (int i = 0; i < 50; i++)
            close(fds[i]);
    }
    /* The server is still fine, and has seen every close by then. */
    {
        char buf[4096];
        raw_exchange(HEALTHZ, strlen(HEALTHZ), buf, sizeof buf, NULL);
        ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%.200s", buf);
    }
    usleep(300 * 1000);
    ck_assert_msg(count_lines_with(log, "\"level\":\"warn\"") <= 10,
                  "%d warnings for 300 aborted connections",
                  count_lines_with(log, "\"level\":\"warn\""));
    close(log);
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

typedef struct {
    char item[37];
    long status;
} slow_buy;

static void *buy_slowly(void *p)
{
    slow_buy *b = p;
    char body[256], user[37];
    co_http_resp r = {0};

    co_test_uuid(user);
    co_test_cart(body, sizeof body, b->item, 1, "pm_card_visa");
    b->status = co_test_checkout(&srv, user, "slow-1", body, &r);
    co_http_resp_free(&r);
    return NULL;
}

/* A checkout waiting on the provider (its connection suspended) when SIGTERM
 * comes gets its answer, and the server stops cleanly: shutdown resumes every
 * connection it suspended, with the edge and its deadlines in place. */
START_TEST(shutdown_answers_the_suspended_checkout)
{
    pthread_t t;
    slow_buy b = {.status = 0};
    int status;

    co_test_server_start(&srv, NULL, NULL);
    co_test_item(srv.conn, "slow", 500, 1, b.item);
    co_test_fault(&srv, "POST /v1/payment_intents", "delay", 1, 1500);
    pthread_create(&t, NULL, buy_slowly, &b);
    /* The checkout is in flight once the order exists. */
    for (int i = 0; i < 100 && co_test_ll(srv.conn, "SELECT count(*) FROM orders") == 0; i++)
        usleep(20 * 1000);
    ck_assert_int_eq(co_test_ll(srv.conn, "SELECT count(*) FROM orders"), 1);
    kill(srv.server.pid, SIGTERM);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.status, 201);
    status = co_proc_stop(&srv.server, SIGTERM);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status %d", status);
}
END_TEST

/* ------------------------------------------------------------ the suite */

static Suite *edge_suite(void)
{
    Suite *s = suite_create("edge");
    TCase *limits = co_test_tcase(s, "limits", 90);
    TCase *deadlines = co_test_tcase(s, "deadlines", 60);
    TCase *bodies = co_test_tcase(s, "bodies", 60);
    TCase *framing = co_test_tcase(s, "framing", 60);
    TCase *logs = co_test_tcase(s, "log", 60);

    tcase_add_checked_fixture(limits, NULL, co_test_server_teardown);
    tcase_add_test(limits, one_address_cannot_take_every_slot);
    tcase_add_test(limits, the_per_address_limit_is_configurable);

    tcase_add_checked_fixture(deadlines, NULL, co_test_server_teardown);
    tcase_add_test(deadlines, a_trickling_header_is_closed);
    tcase_add_test(deadlines, a_trickling_body_is_closed);
    tcase_add_test(deadlines, a_keep_alive_connection_has_a_deadline_for_its_next_header);

    tcase_add_checked_fixture(bodies, NULL, co_test_server_teardown);
    tcase_add_test(bodies, a_client_that_sends_1_mb_before_reading_gets_the_413);
    tcase_add_test(bodies, a_chunked_body_past_the_cap_is_cut_off);
    tcase_add_test(bodies, a_small_chunked_body_is_served);
    tcase_add_test(bodies, shutdown_answers_the_suspended_checkout);

    co_test_server_fixture(framing, &srv, NULL, false);
    tcase_add_test(framing, bad_framing_is_one_json_400);
    tcase_add_test(framing, a_request_hidden_in_a_body_is_not_served);
    tcase_add_test(framing, a_nul_in_a_header_value_is_refused);
    tcase_add_test(framing, uri_and_header_too_large_are_json);
    tcase_add_test(framing, a_body_that_is_not_json_is_415);
    tcase_add_test(framing, a_405_names_the_allowed_methods);

    tcase_add_checked_fixture(logs, NULL, co_test_server_teardown);
    tcase_add_test(logs, aborted_connections_do_not_flood_the_log);
    return s;
}

int main(void)
{
    return co_test_run_http(edge_suite());
}

/* The edge: see co_edge.h for why it exists and what it does. */
#include "co_edge.h"

#include "co_log.h"
#include "co_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* The edge thread wakes at least this often to enforce deadlines. */
#define TICK_MS 100
/* A first head that needs more reads than this to arrive is not a client. */
#define PEEKS_MAX 64
/* After EMFILE and the like, accepting pauses this long. */
#define ACCEPT_PAUSE_MS 100

/* ------------------------------------------------------------ the types */

typedef enum {
    AT_HEAD,    /* the edge peeks at the first head (in the edge's epoll) */
    AT_HANDING, /* given to MHD, not yet started there */
    AT_MHD,     /* MHD's; the edge only keeps its deadline */
    AT_LINGER   /* answered; the edge drains it (a dup of MHD's fd, or its own) */
} where_t;

struct co_edge_conn {
    int fd;
    struct sockaddr_in addr;
    where_t where;
    co_edge_phase phase;   /* AT_MHD: set by the access handler */
    long long deadline;    /* monotonic ms; 0: none */
    unsigned peeks;        /* AT_HEAD */
    size_t drained;        /* AT_LINGER */
    bool killed;           /* its deadline shut it down */
    co_edge_conn *prev, *next;
};

typedef struct {
    uint32_t ip;
    unsigned n;            /* 0: free slot */
} ip_slot;

struct co_edge {
    co_edge_config cfg;
    int listen_fd, ep, wake_fd;
    unsigned port;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;  /* everything below */
    co_edge_conn *conns;   /* every record */
    co_edge_conn **by_fd;  /* records by fd (fds are below the open-file limit) */
    size_t by_fd_len;
    unsigned total;
    ip_slot *ips;          /* open addressing, linear probing */
    size_t ips_mask;
    bool quiesced, halted;
    bool accept_paused;
    long long accept_resume;
    char scratch[CO_EDGE_HEAD_MAX + 1]; /* the edge thread's peek and drain buffer */
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *addr_text(const co_edge_conn *c, char out[INET_ADDRSTRLEN])
{
    if (inet_ntop(AF_INET, &c->addr.sin_addr, out, INET_ADDRSTRLEN) == NULL)
        snprintf(out, INET_ADDRSTRLEN, "?");
    return out;
}

/* ------------------------------------------------ connections per address */

static size_t ip_home(const co_edge *e, uint32_t ip)
{
    return (size_t)((ip * 2654435761u) >> 7) & e->ips_mask;
}

static ip_slot *ip_find(co_edge *e, uint32_t ip)
{
    size_t i = ip_home(e, ip);

    while (e->ips[i].n != 0 && e->ips[i].ip != ip)
        i = (i + 1) & e->ips_mask;
    return &e->ips[i];
}

static unsigned ip_count(co_edge *e, uint32_t ip)
{
    return ip_find(e, ip)->n;
}

static void ip_add(co_edge *e, uint32_t ip)
{
    ip_slot *s = ip_find(e, ip);

    s->ip = ip;
    s->n++;
}

/* Drops one; a slot that reaches zero is freed by shifting back the entries
 * of its probe run (no tombstones). */
static void ip_del(co_edge *e, uint32_t ip)
{
    ip_slot *s = ip_find(e, ip);
    size_t i, j;

    if (s->n == 0 || --s->n > 0)
        return;
    i = (size_t)(s - e->ips);
    j = i;
    for (;;) {
        size_t k;

        j = (j + 1) & e->ips_mask;
        if (e->ips[j].n == 0)
            break;
        k = ip_home(e, e->ips[j].ip);
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        e->ips[i] = e->ips[j];
        i = j;
    }
    e->ips[i].n = 0;
}

/* ------------------------------------------------------------ records */

static void conn_link(co_edge *e, co_edge_conn *c)
{
    c->next = e->conns;
    if (e->conns != NULL)
        e->conns->prev = c;
    e->conns = c;
    e->by_fd[c->fd] = c;
    e->total++;
    ip_add(e, c->addr.sin_addr.s_addr);
}

/* Unlinks and frees c; closes its fd when close_fd (the edge's own). */
static void conn_free(co_edge *e, co_edge_conn *c, bool close_fd)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        e->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->fd >= 0 && (size_t)c->fd < e->by_fd_len && e->by_fd[c->fd] == c)
        e->by_fd[c->fd] = NULL;
    e->total--;
    ip_del(e, c->addr.sin_addr.s_addr);
    /* Leave the epoll set explicitly: close() alone does not while another
     * fd shares the socket (MHD's, until MHD closes it after a dup). */
    if ((c->where == AT_HEAD || c->where == AT_LINGER) && c->fd >= 0)
        epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (close_fd && c->fd >= 0)
        close(c->fd);
    free(c);
}

/* ------------------------------------------------------------ answers */

/* A whole answer, close-delimited, in our JSON shape; one non-blocking send
 * (it is small and the socket's send buffer is empty). */
static void answer(int fd, co_err err, const char *message, json_t *extra)
{
    const co_err_info *info = co_err_get(err);
    char *body = co_error_body(err, message, extra);
    char head[512], date[64];
    struct tm tm;
    time_t t = time(NULL);
    int hl;

    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    hl = snprintf(head, sizeof head,
                  "HTTP/1.1 %u %s\r\nDate: %s\r\nConnection: close\r\n"
                  "Content-Type: application/json; charset=utf-8\r\nContent-Length: %zu\r\n\r\n",
                  info->status, MHD_get_reason_phrase_for(info->status), date,
                  body ? strlen(body) : 0);
    co_metric_add(info->code, 1);
    if (hl > 0 && (size_t)hl < sizeof head) {
        struct iovec iov[2] = {{head, (size_t)hl}, {body, body ? strlen(body) : 0}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        (void)sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    free(body);
}

/* Reads and drops what c's client still sends; frees c at its end, when the
 * client closes, or past CO_EDGE_LINGER_BYTES. Under the lock. */
static void linger_drain(co_edge *e, co_edge_conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, e->scratch, sizeof e->scratch, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_free(e, c, true);
            return;
        }
        c->drained += (size_t)n;
        if (c->drained > CO_EDGE_LINGER_BYTES) {
            conn_free(e, c, true);
            return;
        }
    }
}

/* Answers on a connection the edge holds and lingers on it. */
static void refuse_head(co_edge *e, co_edge_conn *c, co_err err, const char *message,
                        const char *field)
{
    char ip[INET_ADDRSTRLEN];
    json_t *extra = field ? json_pack("{s:s}", "header", field) : NULL;

    CO_DEBUG("edge", "%s: %u %s", addr_text(c, ip), co_err_get(err)->status,
             message ? message : co_err_get(err)->code);
    answer(c->fd, err, message, extra);
    shutdown(c->fd, SHUT_WR);
    c->where = AT_LINGER;
    c->deadline = now_ms() + CO_EDGE_LINGER_MS;
    c->drained = 0;
    linger_drain(e, c);
}

/* ------------------------------------------------------------ heads */

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

void co_head_fact(co_head_facts *f, const char *name, size_t name_len, const char *value,
                  size_t value_len)
{
    f->fields++;
    if (name_len == 0)
        f->name_bad = true;
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar((unsigned char)name[i]))
            f->name_bad = true;
    for (size_t i = 0; i < value_len; i++) {
        unsigned char ch = (unsigned char)value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            if (!f->control)
                snprintf(f->control_in, sizeof f->control_in, "%.*s",
                         (int)(name_len < 39 ? name_len : 39), name);
            f->control = true;
            break;
        }
    }
    if (name_is(name, name_len, "Content-Length")) {
        unsigned long long v = 0;
        bool digits = value_len > 0;

        for (size_t i = 0; i < value_len && digits; i++) {
            digits = value[i] >= '0' && value[i] <= '9';
            /* Saturates: a value past 64 bits is simply too large (413). */
            v = v > (~0ULL - 9) / 10 ? ~0ULL : v * 10 + (unsigned)(value[i] - '0');
        }
        /* Repeats must be the same digits (RFC 9112 6.3 lets a recipient take
         * identical ones); a value too long to keep is refused when repeated. */
        if (!digits || (f->content_length_n > 0 &&
                        (value_len >= sizeof f->content_length_first ||
                         value_len != strlen(f->content_length_first) ||
                         memcmp(value, f->content_length_first, value_len) != 0)))
            f->content_length_bad = true;
        if (f->content_length_n == 0) {
            f->content_length = v;
            if (value_len < sizeof f->content_length_first)
                memcpy(f->content_length_first, value, value_len);
        }
        f->content_length_n++;
    } else if (name_is(name, name_len, "Transfer-Encoding")) {
        f->transfer_encoding_n++;
        if (!name_is(value, value_len, "chunked"))
            f->transfer_encoding_bad = true;
    } else if (name_is(name, name_len, "Host")) {
        f->host_n++;
    }
}

co_err co_head_verdict(const co_head_facts *f, int http_minor, char *msg, size_t n,
                       const char **field)
{
    *field = NULL;
    if (f->control) {
        snprintf(msg, n, "A header value contains a control character (NUL, CR, ...).");
        *field = f->control_in[0] != '\0' ? f->control_in : NULL;
        return CO_ERR_invalid_request;
    }
    if (f->name_bad) {
        snprintf(msg, n, "A header name is not a token (whitespace before the colon?).");
        return CO_ERR_invalid_request;
    }
    if (f->transfer_encoding_n > 0 && (f->transfer_encoding_n > 1 || f->transfer_encoding_bad)) {
        snprintf(msg, n, "Only Transfer-Encoding: chunked is supported.");
        *field = "Transfer-Encoding";
        return CO_ERR_invalid_request;
    }
    if (f->transfer_encoding_n > 0 && f->content_length_n > 0) {
        snprintf(msg, n, "Content-Length and Transfer-Encoding together (RFC 9112, 6.3).");
        *field = "Content-Length";
        return CO_ERR_invalid_request;
    }
    if (f->content_length_bad) {
        snprintf(msg, n, "Content-Length must be one decimal number; repeats must agree.");
        *field = "Content-Length";
        return CO_ERR_invalid_request;
    }
    if (http_minor == 0 && f->transfer_encoding_n > 0) {
        snprintf(msg, n, "Transfer-Encoding in an HTTP/1.0 request.");
        *field = "Transfer-Encoding";
        return CO_ERR_invalid_request;
    }
    if (http_minor >= 1 && f->host_n != 1) {
        snprintf(msg, n, "An HTTP/1.1 request needs exactly one Host header.");
        *field = "Host";
        return CO_ERR_invalid_request;
    }
    return CO_OK;
}

typedef enum { HEAD_MORE, HEAD_OK, HEAD_BAD } head_result;

typedef struct {
    co_err err;
    char msg[160];   /* "" for the registry's hint */
    char field[40];  /* the header the answer names, "" for none */
} head_refusal;

static head_result head_bad(head_refusal *r, co_err err, const char *msg, const char *field)
{
    r->err = err;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    snprintf(r->field, sizeof r->field, "%s", field ? field : "");
    return HEAD_BAD;
}

/* "METHOD SP target SP HTTP/1.x"; *minor gets x. */
static head_result request_line(const char *l, size_t len, int *minor, head_refusal *r)
{
    size_t i = 0, t;

    while (i < len && is_tchar((unsigned char)l[i]))
        i++;
    if (i == 0 || i >= len || l[i] != ' ')
        return head_bad(r, CO_ERR_invalid_request, "The request line is malformed.", NULL);
    t = ++i;
    while (i < len && (unsigned char)l[i] > 0x20 && (unsigned char)l[i] != 0x7f)
        i++;
    if (i - t > CO_EDGE_URI_MAX)
        return head_bad(r, CO_ERR_uri_too_long, NULL, NULL);
    if (i == t || i >= len || l[i] != ' ' || len - i - 1 != 8 ||
        memcmp(l + i + 1, "HTTP/1.", 7) != 0 || (l[len - 1] != '0' && l[len - 1] != '1'))
        return head_bad(r, CO_ERR_invalid_request,
                        "The request line is malformed (METHOD SP target SP HTTP/1.1).", NULL);
    *minor = l[len - 1] - '0';
    return HEAD_OK;
}

/* Checks the first head in b[0..n): HEAD_MORE until its blank line is in;
 * then the head's verdict. *declared gets its Content-Length (0 if none). */
static head_result head_check(const char *b, size_t n, head_refusal *r,
                              unsigned long long *declared)
{
    co_head_facts f;
    size_t pos = 0;
    bool first = true;
    int minor = 1;

    memset(&f, 0, sizeof f);
    /* RFC 9112 2.2: empty lines before the request line are ignored. */
    while (pos < 8 && pos < n && (b[pos] == '\n' || (b[pos] == '\r' && pos + 1 < n &&
                                                    b[pos + 1] == '\n')))
        pos += b[pos] == '\r' ? 2 : 1;
    for (;;) {
        const char *nl = memchr(b + pos, '\n', n - pos);
        size_t end, len;
        const char *line = b + pos;

        if (nl == NULL) {
            if (first && n - pos > CO_EDGE_URI_MAX + 64)
                return head_bad(r, CO_ERR_uri_too_long, NULL, NULL);
            if (n > CO_EDGE_HEAD_MAX)
                return head_bad(r, CO_ERR_header_too_large, NULL, NULL);
            return HEAD_MORE;
        }
        end = (size_t)(nl - b);
        if (end >= CO_EDGE_HEAD_MAX)
            return head_bad(r, first ? CO_ERR_uri_too_long : CO_ERR_header_too_large, NULL, NULL);
        len = end - pos;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        pos = end + 1;
        if (first) {
            if (request_line(line, len, &minor, r) != HEAD_OK)
                return HEAD_BAD;
            first = false;
            continue;
        }
        if (len == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t')
            return head_bad(r, CO_ERR_invalid_request,
                            "A folded header line (obs-fold) is not accepted.", NULL);
        if (f.fields >= CO_EDGE_HEADERS_MAX)
            return head_bad(r, CO_ERR_header_too_large, "Too many header fields.", NULL);
        {
            const char *colon = memchr(line, ':', len);
            const char *v;
            size_t vlen;

            if (colon == NULL)
                return head_bad(r, CO_ERR_invalid_request, "A header line has no colon.", NULL);
            v = colon + 1;
            while (v < line + len && (*v == ' ' || *v == '\t'))
                v++;
            vlen = (size_t)(line + len - v);
            co_head_fact(&f, line, (size_t)(colon - line), v, vlen);
        }
    }
    {
        char msg[160];
        const char *field;
        co_err err = co_head_verdict(&f, minor, msg, sizeof msg, &field);

        if (err != CO_OK)
            return head_bad(r, err, msg, field);
    }
    *declared = f.content_length_n > 0 ? f.content_length : 0;
    return HEAD_OK;
}

/* ------------------------------------------------------------ the edge thread */

/* A first head grew on c: peek at it; hand it over, refuse it, or wait. */
static void head_event(co_edge *e, co_edge_conn *c, uint32_t events)
{
    head_refusal r = {CO_OK, "", ""};
    unsigned long long declared = 0;
    ssize_t n = recv(c->fd, e->scratch, sizeof e->scratch, MSG_PEEK);
    head_result res;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(e, c, true); /* closed before a whole head: nothing to answer */
        return;
    }
    res = head_check(e->scratch, (size_t)n, &r, &declared);
    if (res == HEAD_MORE) {
        if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0 || ++c->peeks > PEEKS_MAX)
            conn_free(e, c, true);
        return;
    }
    if (res == HEAD_OK && declared > e->cfg.body_max) {
        res = HEAD_BAD;
        r.err = CO_ERR_payload_too_large;
        snprintf(r.msg, sizeof r.msg, "Bodies are limited to %zu bytes.", e->cfg.body_max);
    }
    if (res == HEAD_BAD) {
        co_metric_add("http_refused_heads", 1);
        refuse_head(e, c, r.err, r.msg[0] ? r.msg : NULL, r.field[0] ? r.field : NULL);
        return;
    }
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->where = AT_HANDING; /* its header deadline runs on at MHD (co_edge_adopt) */
    if (!e->cfg.hand_over(e->cfg.cls, c->fd, (struct sockaddr *)&c->addr, sizeof c->addr))
        conn_free(e, c, false); /* MHD closed it, and never saw it start */
}

static void accept_pause(co_edge *e, long long now)
{
    struct epoll_event ev = {.events = 0, .data.ptr = &e->listen_fd};

    epoll_ctl(e->ep, EPOLL_CTL_MOD, e->listen_fd, &ev);
    e->accept_paused = true;
    e->accept_resume = now + ACCEPT_PAUSE_MS;
}

static void accept_some(co_edge *e)
{
    long long now = now_ms();

    for (int k = 0; k < 64 && !e->quiesced; k++) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        int fd = accept4(e->listen_fd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
        co_edge_conn *c;
        struct epoll_event ev;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                CO_WARN("edge", "accept: %s; pausing %d ms", strerror(errno), ACCEPT_PAUSE_MS);
                accept_pause(e, now);
            }
            return;
        }
        if (e->total >= e->cfg.max_connections || (size_t)fd >= e->by_fd_len ||
            ip_count(e, a.sin_addr.s_addr) >= e->cfg.per_ip) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
            CO_DEBUG("edge", "%s: refused, %u connections open (%u from it)", ip, e->total,
                     ip_count(e, a.sin_addr.s_addr));
            co_metric_add("http_refused_connections", 1);
            close(fd);
            continue;
        }
        c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->addr = a;
        c->where = AT_HEAD;
        c->phase = CO_EDGE_HEADER;
        c->deadline = now + e->cfg.header_timeout_ms;
        conn_link(e, c);
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = c;
        if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            conn_free(e, c, true);
    }
}

/* Deadlines: heads the edge holds are closed; connections MHD holds are shut
 * down (MHD reads the end and closes them itself); lingering ends. */
static void sweep(co_edge *e, long long now)
{
    co_edge_conn *c = e->conns;

    if (e->accept_paused && now >= e->accept_resume && !e->quiesced) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &e->listen_fd};
        epoll_ctl(e->ep, EPOLL_CTL_MOD, e->listen_fd, &ev);
        e->accept_paused = false;
    }
    while (c != NULL) {
        co_edge_conn *next = c->next;
        char ip[INET_ADDRSTRLEN];

        if (c->deadline != 0 && now >= c->deadline) {
            switch (c->where) {
            case AT_HEAD:
                CO_DEBUG("edge", "%s: no whole head within %u ms", addr_text(c, ip),
                         e->cfg.header_timeout_ms);
                co_metric_add("http_header_timeouts", 1);
                conn_free(e, c, true);
                break;
            case AT_LINGER:
                conn_free(e, c, true);
                break;
            case AT_MHD:
                if (c->phase == CO_EDGE_HEADER || c->phase == CO_EDGE_BODY) {
                    bool body = c->phase == CO_EDGE_BODY;
                    CO_DEBUG("edge", "%s: no whole %s within %u ms", addr_text(c, ip),
                             body ? "body" : "head",
                             body ? e->cfg.body_timeout_ms : e->cfg.header_timeout_ms);
                    co_metric_add(body ? "http_body_timeouts" : "http_header_timeouts", 1);
                    shutdown(c->fd, SHUT_RDWR);
                    c->killed = true;
                }
                c->deadline = 0;
                break;
            case AT_HANDING:
                break;
            }
        }
        c = next;
    }
}

static void *edge_main(void *p)
{
    co_edge *e = p;
    struct epoll_event ev[64];

    for (;;) {
        int n = epoll_wait(e->ep, ev, 64, TICK_MS);

        pthread_mutex_lock(&e->lock);
        if (e->halted) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = ev[i].data.ptr;

            if (ptr == &e->listen_fd) {
                accept_some(e);
            } else if (ptr == &e->wake_fd) {
                uint64_t v;
                ssize_t r = read(e->wake_fd, &v, sizeof v);
                (void)r;
            } else {
                co_edge_conn *c = ptr;
                if (c->where == AT_HEAD)
                    head_event(e, c, ev[i].events);
                else if (c->where == AT_LINGER)
                    linger_drain(e, c);
            }
        }
        if (e->quiesced && e->listen_fd >= 0) {
            close(e->listen_fd);
            e->listen_fd = -1;
        }
        sweep(e, now_ms());
        pthread_mutex_unlock(&e->lock);
    }
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

/* The open-file limit must allow every connection (and a dup of each while it
 * lingers) plus what the rest of the process opens. Returns the limit. */
static size_t raise_nofile(unsigned max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections * 2 + 512;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < want) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = cur;
    }
    if (rl.rlim_cur < (rlim_t)max_connections + 256)
        CO_WARN("edge", "the open-file limit (%llu) is too low for HTTP_MAX_CONNECTIONS=%u",
                (unsigned long long)rl.rlim_cur, max_connections);
    return rl.rlim_cur > (rlim_t)1 << 22 ? (size_t)1 << 22 : (size_t)rl.rlim_cur;
}

co_edge *co_edge_start(const co_edge_config *cfg)
{
    co_edge *e = calloc(1, sizeof *e);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    socklen_t al = sizeof a;
    struct epoll_event ev;
    size_t slots = 64;
    int one = 1;

    if (e == NULL)
        return NULL;
    e->cfg = *cfg;
    e->listen_fd = e->ep = e->wake_fd = -1;
    pthread_mutex_init(&e->lock, NULL);
    e->by_fd_len = raise_nofile(cfg->max_connections);
    e->by_fd = calloc(e->by_fd_len, sizeof *e->by_fd);
    while (slots < (size_t)cfg->max_connections * 2)
        slots *= 2;
    e->ips = calloc(slots, sizeof *e->ips);
    e->ips_mask = slots - 1;
    if (e->by_fd == NULL || e->ips == NULL)
        goto fail;
    if (inet_pton(AF_INET, cfg->host, &a.sin_addr) != 1) {
        CO_ERROR("http", "LISTEN_ADDR host must be an IPv4 address, got %s", cfg->host);
        goto fail;
    }
    e->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (e->listen_fd < 0)
        goto fail;
    setsockopt(e->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(e->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(e->listen_fd, 1024) != 0 ||
        getsockname(e->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        CO_ERROR("http", "cannot listen on %s:%u: %s", cfg->host, cfg->port, strerror(errno));
        goto fail;
    }
    e->port = ntohs(a.sin_port);
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->ep < 0 || e->wake_fd < 0)
        goto fail;
    ev.events = EPOLLIN;
    ev.data.ptr = &e->listen_fd;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->listen_fd, &ev) != 0)
        goto fail;
    ev.data.ptr = &e->wake_fd;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->wake_fd, &ev) != 0)
        goto fail;
    if (pthread_create(&e->thread, NULL, edge_main, e) != 0)
        goto fail;
    e->thread_started = true;
    return e;

fail:
    co_edge_halt(e);
    co_edge_free(e);
    return NULL;
}

unsigned co_edge_port(const co_edge *e)
{
    return e->port;
}

static void wake(co_edge *e)
{
    uint64_t one = 1;
    ssize_t r = write(e->wake_fd, &one, sizeof one);

    (void)r;
}

void co_edge_quiesce(co_edge *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    e->quiesced = true;
    pthread_mutex_unlock(&e->lock);
    wake(e);
}

void co_edge_halt(co_edge *e)
{
    co_edge_conn *c;

    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    e->halted = true;
    pthread_mutex_unlock(&e->lock);
    if (e->thread_started) {
        wake(e);
        pthread_join(e->thread, NULL);
        e->thread_started = false;
    }
    pthread_mutex_lock(&e->lock);
    c = e->conns;
    while (c != NULL) {
        co_edge_conn *next = c->next;
        if (c->where == AT_HEAD || c->where == AT_LINGER)
            conn_free(e, c, true);
        c = next;
    }
    pthread_mutex_unlock(&e->lock);
}

void co_edge_free(co_edge *e)
{
    if (e == NULL)
        return;
    /* What is left was handed to MHD and never started there (MHD closed
     * those sockets itself when it stopped). */
    while (e->conns != NULL)
        conn_free(e, e->conns, false);
    if (e->listen_fd >= 0)
        close(e->listen_fd);
    if (e->ep >= 0)
        close(e->ep);
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    pthread_mutex_destroy(&e->lock);
    free(e->by_fd);
    free(e->ips);
    free(e);
}

/* ------------------------------------------------------------ hooks */

co_edge_conn *co_edge_adopt(co_edge *e, int fd)
{
    co_edge_conn *c = NULL;

    if (e == NULL || fd < 0)
        return NULL;
    pthread_mutex_lock(&e->lock);
    if ((size_t)fd < e->by_fd_len && e->by_fd[fd] != NULL && e->by_fd[fd]->where == AT_HANDING) {
        c = e->by_fd[fd];
        c->where = AT_MHD;
    }
    pthread_mutex_unlock(&e->lock);
    return c;
}

void co_edge_release(co_edge *e, co_edge_conn *c, int fd)
{
    int keep;

    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    if (c == NULL && fd >= 0 && (size_t)fd < e->by_fd_len && e->by_fd[fd] != NULL &&
        (e->by_fd[fd]->where == AT_MHD || e->by_fd[fd]->where == AT_HANDING))
        c = e->by_fd[fd];
    if (c == NULL) {
        pthread_mutex_unlock(&e->lock);
        return;
    }
    /* Linger when an answer went out before the request was read (or MHD
     * closed mid-body, maybe with an answer of its own): MHD has shut down
     * its side for writing; our dup keeps the socket open once MHD closes
     * its fd, so unread bytes do not turn into a reset. */
    keep = -1;
    if (!e->halted && !c->killed && c->where == AT_MHD &&
        (c->phase == CO_EDGE_EARLY || c->phase == CO_EDGE_BODY))
        keep = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
    if (keep >= 0 && (size_t)keep < e->by_fd_len) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};

        e->by_fd[c->fd] = NULL;
        c->fd = keep;
        e->by_fd[keep] = c;
        c->where = AT_LINGER;
        c->deadline = now_ms() + CO_EDGE_LINGER_MS;
        c->drained = 0;
        co_metric_add("http_lingering_closes", 1);
        if (epoll_ctl(e->ep, EPOLL_CTL_ADD, keep, &ev) != 0)
            conn_free(e, c, true);
    } else {
        if (keep >= 0)
            close(keep);
        conn_free(e, c, false); /* MHD closes the fd */
    }
    pthread_mutex_unlock(&e->lock);
}

void co_edge_set_phase(co_edge *e, co_edge_conn *c, co_edge_phase p)
{
    if (e == NULL || c == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    if (c->phase != CO_EDGE_EARLY) {
        c->phase = p;
        c->deadline = p == CO_EDGE_BODY     ? now_ms() + e->cfg.body_timeout_ms
                      : p == CO_EDGE_HEADER ? now_ms() + e->cfg.header_timeout_ms
                                            : 0;
    }
    pthread_mutex_unlock(&e->lock);
}

void co_edge_request_done(co_edge *e, co_edge_conn *c)
{
    if (e == NULL || c == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    if (c->phase == CO_EDGE_BUSY) {
        c->phase = CO_EDGE_HEADER;
        c->deadline = now_ms() + e->cfg.header_timeout_ms;
    }
    pthread_mutex_unlock(&e->lock);
}

void co_edge_answer_now(co_edge *e, co_edge_conn *c, co_err err, const char *message)
{
    if (e == NULL || c == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    c->phase = CO_EDGE_EARLY;
    c->deadline = 0;
    answer(c->fd, err, message, NULL);
    pthread_mutex_unlock(&e->lock);
}

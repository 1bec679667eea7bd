#include "pgproxy.h"

#include <check.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINKS 128
#define NEEDLE_MAX 64

/* One client connection and its server connection. */
typedef struct {
    co_pgproxy *proxy;
    int client, server;
    bool armed;             /* the answer now coming is the one to lose */
    char tail[NEEDLE_MAX];  /* the end of the last chunk: a needle may straddle two */
    size_t tail_len;
    unsigned char head[5];  /* the server message being read: its type and length */
    size_t head_len;
    unsigned long body_left;
} link_t;

struct co_pgproxy {
    int listener;
    unsigned port;
    char host[128], service[16];
    pthread_t acceptor;
    pthread_mutex_t mu;
    char needle[NEEDLE_MAX];
    int skip;               /* matches still to let through; -1: nothing to lose */
    int lost;
    int active;             /* pumps running: each frees its own link */
    _Atomic bool stopping;
};

static int dial(const co_pgproxy *p)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    int fd;

    if (getaddrinfo(p->host, p->service, &hints, &ai) != 0)
        return -1;
    fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static bool send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

        if (w <= 0)
            return false;
        buf += w;
        n -= (size_t)w;
    }
    return true;
}

/* Client bytes: does this statement carry the needle, and is it the one? */
static void watch_client(link_t *l, const char *buf, size_t n)
{
    co_pgproxy *p = l->proxy;
    char win[NEEDLE_MAX * 2 + 4096];
    size_t take = n < 4096 ? n : 4096, len;

    memcpy(win, l->tail, l->tail_len);
    memcpy(win + l->tail_len, buf, take);
    len = l->tail_len + take;
    win[len] = '\0';
    pthread_mutex_lock(&p->mu);
    if (p->skip >= 0 && memmem(win, len, p->needle, strlen(p->needle)) != NULL) {
        if (p->skip == 0) {
            l->armed = true;
            p->skip = -1;
        } else {
            p->skip--;
        }
    }
    pthread_mutex_unlock(&p->mu);
    l->tail_len = len < NEEDLE_MAX ? len : NEEDLE_MAX;
    memmove(l->tail, win + len - l->tail_len, l->tail_len);
}

/* Server bytes, message by message: true when a ReadyForQuery ended in buf. */
static bool ready_seen(link_t *l, const unsigned char *buf, size_t n)
{
    bool ready = false;

    while (n > 0) {
        if (l->head_len < 5) {
            l->head[l->head_len++] = *buf++;
            n--;
            if (l->head_len == 5) {
                unsigned long len = (unsigned long)l->head[1] << 24 | l->head[2] << 16 |
                                    l->head[3] << 8 | l->head[4];

                l->body_left = len >= 4 ? len - 4 : 0;
                if (l->head[0] == 'Z')
                    ready = true; /* its one status byte follows; the answer is over */
            }
        } else {
            size_t take = n < l->body_left ? n : l->body_left;

            buf += take;
            n -= take;
            l->body_left -= take;
        }
        if (l->head_len == 5 && l->body_left == 0)
            l->head_len = 0;
    }
    return ready;
}

static void *pump(void *arg)
{
    link_t *l = arg;
    char buf[65536];

    for (;;) {
        struct pollfd fds[2] = {{.fd = l->client, .events = POLLIN},
                                {.fd = l->server, .events = POLLIN}};
        ssize_t n;

        if (poll(fds, 2, 200) < 0 || l->proxy->stopping)
            break;
        if (fds[0].revents) {
            n = recv(l->client, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            watch_client(l, buf, (size_t)n);
            if (!send_all(l->server, buf, (size_t)n))
                break;
        }
        if (fds[1].revents) {
            n = recv(l->server, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            if (ready_seen(l, (unsigned char *)buf, (size_t)n) && l->armed) {
                pthread_mutex_lock(&l->proxy->mu);
                l->proxy->lost++;
                pthread_mutex_unlock(&l->proxy->mu);
                break; /* committed on the server; the client never hears of it */
            }
            if (!l->armed && !send_all(l->client, buf, (size_t)n))
                break;
        }
    }
    shutdown(l->client, SHUT_RDWR);
    shutdown(l->server, SHUT_RDWR);
    close(l->client);
    close(l->server);
    pthread_mutex_lock(&l->proxy->mu);
    l->proxy->active--;
    pthread_mutex_unlock(&l->proxy->mu);
    free(l);
    return NULL;
}

static void *accept_loop(void *arg)
{
    co_pgproxy *p = arg;

    for (;;) {
        int c = accept(p->listener, NULL, NULL);
        link_t *l;
        pthread_t t;

        if (c < 0)
            return NULL; /* closed by co_pgproxy_stop */
        l = calloc(1, sizeof *l);
        l->proxy = p;
        l->client = c;
        l->server = dial(p);
        pthread_mutex_lock(&p->mu);
        if (l->server < 0 || p->active == MAX_LINKS) {
            pthread_mutex_unlock(&p->mu);
            close(c);
            if (l->server >= 0)
                close(l->server);
            free(l);
            continue;
        }
        p->active++;
        pthread_mutex_unlock(&p->mu);
        pthread_create(&t, NULL, pump, l);
        pthread_detach(t);
    }
}

co_pgproxy *co_pgproxy_start(const char *host, const char *port)
{
    co_pgproxy *p = calloc(1, sizeof *p);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int one = 1;

    ck_assert_ptr_nonnull(p);
    snprintf(p->host, sizeof p->host, "%s", host);
    snprintf(p->service, sizeof p->service, "%s", port);
    p->skip = -1;
    pthread_mutex_init(&p->mu, NULL);
    p->listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(p->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ck_assert_int_eq(bind(p->listener, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(p->listener, 64), 0);
    getsockname(p->listener, (struct sockaddr *)&a, &alen);
    p->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&p->acceptor, NULL, accept_loop, p), 0);
    return p;
}

unsigned co_pgproxy_port(const co_pgproxy *p)
{
    return p->port;
}

void co_pgproxy_lose_answer(co_pgproxy *p, const char *needle, int skip)
{
    pthread_mutex_lock(&p->mu);
    snprintf(p->needle, sizeof p->needle, "%s", needle);
    p->skip = skip;
    pthread_mutex_unlock(&p->mu);
}

int co_pgproxy_lost(co_pgproxy *p)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->lost;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void co_pgproxy_conninfo(const co_pgproxy *p, const void *pgconn, const char *db, char *out,
                         unsigned n)
{
    const PGconn *c = pgconn;

    snprintf(out, n,
             "host=127.0.0.1 port=%u dbname=%s user=%s password=%s sslmode=disable"
             " gssencmode=disable connect_timeout=5",
             p->port, db, PQuser(c), PQpass(c) ? PQpass(c) : "");
}

static int co_pgproxy_active(co_pgproxy *p)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->active;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void co_pgproxy_stop(co_pgproxy *p)
{
    p->stopping = true;
    shutdown(p->listener, SHUT_RDWR);
    close(p->listener);
    pthread_join(p->acceptor, NULL);
    while (co_pgproxy_active(p) > 0)
        usleep(20 * 1000); /* each pump notices within one poll */
    pthread_mutex_destroy(&p->mu);
    free(p);
}

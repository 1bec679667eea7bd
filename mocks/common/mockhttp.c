/* mockhttp: the plumbing the mock servers share (see mockhttp.h). */
#include "mockhttp.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_name = "mock";

/* ================================================================ process */

void mh_init(const char *name)
{
    g_name = name;
    co_log_init();
}

_Noreturn void mh_oom(void)
{
    CO_ERROR(g_name, "out of memory");
    abort();
}

void *mh_xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);

    if (p == NULL)
        mh_oom();
    return p;
}

void *mh_xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n > 0 ? n : 1);

    if (p == NULL)
        mh_oom();
    return p;
}

const char *mh_env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : def;
}

void mh_warn_secret_flag(const char *flag, const char *env)
{
    CO_WARN(g_name,
            "%s puts the secret on the command line, where every local user can read it (ps, "
            "/proc/PID/cmdline); set %s instead",
            flag, env);
}

void mh_block_signals(sigset_t *sigs)
{
    sigemptyset(sigs);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void mh_wait_signal(const sigset_t *sigs)
{
    int sig;

    while (sigwait(sigs, &sig) != 0)
        ;
}

/* ================================================================ listening */

bool mh_parse_listen(const char *s, mh_listen *out)
{
    char host[256], port[16];
    const char *colon;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');

        if (end == NULL || end[1] != ':')
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(end - s - 1), s + 1);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof host)
            goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
    }
    snprintf(port, sizeof port, "%s", colon + 1);
    if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) || host[0] == '\0')
        goto bad;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot resolve %s: %s\n", g_name, host, gai_strerror(rc));
        return false;
    }
    memset(&out->addr, 0, sizeof out->addr);
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    snprintf(out->host, sizeof out->host, out->v6 ? "[%s]" : "%s", host);
    return true;
bad:
    fprintf(stderr, "%s: --listen wants HOST:PORT, got '%s'\n", g_name, s);
    return false;
}

void mh_announce(struct MHD_Daemon *d, const mh_listen *l)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);

    printf("%s listening on http://%s:%u\n", g_name, l->host,
           info != NULL ? (unsigned)info->port : 0U);
    fflush(stdout);
}

/* ================================================================ requests */

mh_step mh_feed(void **con_cls, const char *upload_data, size_t *upload_data_size, size_t max,
                mh_conn **cx)
{
    mh_conn *c = *con_cls;
    size_t n = *upload_data_size;

    *cx = NULL;
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return MH_FAILED;
        *con_cls = c;
        *cx = c;
        return MH_STARTED;
    }
    *cx = c;
    if (n == 0)
        return c->answered ? MH_CONTINUE : MH_COMPLETE;
    *upload_data_size = 0;
    if (c->answered)
        return MH_CONTINUE;
    /* Past max: too_big, and the rest is read and dropped. */
    if (!co_buf_append(&c->in, upload_data, n, max))
        mh_oom();
    return MH_CONTINUE;
}

void mh_drop_body(mh_conn *cx)
{
    co_buf_free(&cx->in);
}

void mh_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    mh_conn *cx = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (cx != NULL) {
        co_buf_free(&cx->in);
        free(cx);
        *con_cls = NULL;
    }
}

/* ================================================================ the daemon's callbacks */

enum MHD_Result mh_on_request(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
    const mh_handler *h = cls;
    mh_conn *cx;

    (void)version;
    switch (mh_feed(con_cls, upload_data, upload_data_size, h->body_max, &cx)) {
    case MH_STARTED:
        return h->headers != NULL ? h->headers(c, url, method, cx) : MHD_YES;
    case MH_CONTINUE:
        if (cx->in.too_big && h->drop_too_big)
            mh_drop_body(cx);
        return MHD_YES;
    case MH_COMPLETE:
        return h->complete(c, url, method, cx);
    case MH_FAILED:
        break;
    }
    return MHD_NO;
}

void mh_log(void *cls, const char *fmt, va_list ap)
{
    const char *drop = cls;
    char msg[512];

    vsnprintf(msg, sizeof msg, fmt, ap);
    if (drop == NULL || strstr(msg, drop) == NULL)
        CO_WARN(g_name, "libmicrohttpd: %s", msg);
}

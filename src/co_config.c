#include "co_config.h"

#include "co_batch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0')
        v = def;
    return v ? strdup(v) : NULL;
}

/* What is wrong with the environment, every problem in one message ("A is required;
 * B must be ..."), so an operator fixes them all in one go rather than one per start. */
typedef struct {
    char *buf;
    unsigned cap;
    size_t len;
    int count;
} problems;

__attribute__((format(printf, 2, 3)))
static void problem(problems *p, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (p->cap == 0)
        return;
    if (p->count > 0 && p->len + 2 < p->cap) {
        memcpy(p->buf + p->len, "; ", 3);
        p->len += 2;
    }
    p->count++;
    if (p->len + 1 >= p->cap)
        return; /* full: the message keeps what fitted */
    va_start(ap, fmt);
    w = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        p->len = p->len + (size_t)w < p->cap ? p->len + (size_t)w : p->cap - 1;
}

static void env_int(const char *name, int def, int lo, int hi, int *out, problems *p)
{
    const char *v = getenv(name);
    char *end = NULL;
    long x;

    *out = def;
    if (v == NULL || v[0] == '\0')
        return;
    errno = 0;
    x = strtol(v, &end, 10);
    if (*end != '\0' || errno != 0 || x < lo || x > hi) {
        problem(p, "%s must be an integer from %d to %d", name, lo, hi);
        return;
    }
    *out = (int)x;
}

/* host:port into cfg (the host part NUL-terminated at the colon); false if malformed. */
static bool parse_listen(co_config *cfg, char *listen)
{
    char *colon = strrchr(listen, ':');
    char *end = NULL;
    long port;

    if (colon == NULL || colon[1] == '\0')
        return false;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return false;
    *colon = '\0';
    cfg->listen_host = listen;
    cfg->listen_port = (unsigned)port;
    return true;
}

bool co_config_load(co_config *cfg, char *err, unsigned n)
{
    static const char *required[] = {"STRIPE_WEBHOOK_SECRET", "RESTOCK_WEBHOOK_SECRET",
                                     "AUTH_JWT_SECRET", "ADMIN_API_KEY", "DATABASE_URL"};
    problems p = {.buf = err, .cap = n};
    char *listen;
    int timeout_ms = 0;

    memset(cfg, 0, sizeof *cfg);
    if (n > 0)
        err[0] = '\0';
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const char *v = getenv(required[i]);
        if (v == NULL || v[0] == '\0')
            problem(&p, "%s is required", required[i]);
    }
    cfg->database_url = env_or("DATABASE_URL", NULL);
    cfg->stripe_api_base = env_or("STRIPE_API_BASE", "http://127.0.0.1:12111");
    cfg->stripe_secret_key = env_or("STRIPE_SECRET_KEY", "sk_test_checkout_local");
    cfg->stripe_webhook_secret = env_or("STRIPE_WEBHOOK_SECRET", NULL);
    cfg->restock_webhook_secret = env_or("RESTOCK_WEBHOOK_SECRET", NULL);
    cfg->auth_jwt_secret = env_or("AUTH_JWT_SECRET", NULL);
    cfg->admin_api_key = env_or("ADMIN_API_KEY", NULL);
    cfg->notify_url = env_or("NOTIFY_URL", "http://127.0.0.1:12112/notify");
    cfg->notify_secret = env_or("NOTIFY_SECRET", cfg->restock_webhook_secret);
    cfg->crash_at = env_or("CHECKOUTD_CRASH_AT", NULL);
    if (cfg->stripe_webhook_secret != NULL &&
        strncmp(cfg->stripe_webhook_secret, "whsec_", 6) != 0)
        problem(&p, "STRIPE_WEBHOOK_SECRET must start with whsec_");

    listen = env_or("LISTEN_ADDR", "127.0.0.1:8080");
    if (listen != NULL && !parse_listen(cfg, listen)) {
        problem(&p, "LISTEN_ADDR must be host:port");
        free(listen);
    }

    env_int("RESERVATION_TTL_SECONDS", 900, 1, 7 * 86400, &cfg->reservation_ttl_seconds, &p);
    env_int("WORKERS", 256, 1, 1024, &cfg->workers, &p);
    env_int("DB_POOL_SIZE", 16, 1, 256, &cfg->db_pool_size, &p);
    env_int("CHECKOUT_BATCH_MAX", 32, 1, CO_BATCH_MAX, &cfg->batch_max, &p);
    env_int("CHECKOUT_BATCH_INFLIGHT", 4, 1, CO_BATCH_INFLIGHT, &cfg->batch_inflight, &p);
    env_int("CHECKOUT_RATE_PER_SECOND", 20, 0, 1000000, &cfg->checkout_rate, &p);
    env_int("CHECKOUT_RATE_BURST", 40, 1, 1000000, &cfg->checkout_burst, &p);
    env_int("MAX_UNPAID_UNITS", 20, 0, 1000000, &cfg->max_unpaid_units, &p);
    env_int("SAGA_LEASE_SECONDS", 60, 1, 3600, &cfg->lease_seconds, &p);
    env_int("RECOVERY_INTERVAL_MS", 1000, 10, 600000, &cfg->recovery_interval_ms, &p);
    env_int("RECONCILE_INTERVAL_SECONDS", 300, 0, 86400, &cfg->reconcile_interval_seconds, &p);
    env_int("STRIPE_TIMEOUT_MS", 10000, 100, 600000, &timeout_ms, &p);
    env_int("STRIPE_MAX_RETRIES", 3, 0, 10, &cfg->stripe_max_retries, &p);
    env_int("NOTIFY_MAX_ATTEMPTS", 8, 1, 100, &cfg->notify_max_attempts, &p);
    env_int("NOTIFY_INTERVAL_MS", 200, 10, 600000, &cfg->notify_interval_ms, &p);
    env_int("NOTIFY_BACKOFF_MS", 500, 1, 60000, &cfg->notify_backoff_ms, &p);
    env_int("NOTIFY_TIMEOUT_MS", 5000, 100, 120000, &cfg->notify_timeout_ms, &p);
    env_int("HTTP_MAX_CONNECTIONS", 4000, 16, 1000000, &cfg->http_max_connections, &p);
    env_int("HTTP_CONNECTIONS_PER_IP", 512, 1, 1000000, &cfg->http_per_ip, &p);
    env_int("HTTP_HEADER_TIMEOUT_MS", 10000, 100, 600000, &cfg->http_header_timeout_ms, &p);
    env_int("HTTP_BODY_TIMEOUT_MS", 10000, 100, 600000, &cfg->http_body_timeout_ms, &p);
    if (p.count > 0) {
        problem(&p, "see README, Configuration");
        return false;
    }
    cfg->stripe_timeout_ms = timeout_ms;
    /* A step makes up to three provider calls (voiding: create, retrieve,
     * cancel), each up to (retries + 1) attempts plus backoff (2 s at most
     * between attempts). The lease must outlast that, or recovery takes over
     * an order that is still being driven (harmless, thanks to the keys and
     * the from-state checks, but wasteful). An explicit value wins. */
    if (getenv("SAGA_LEASE_SECONDS") == NULL || getenv("SAGA_LEASE_SECONDS")[0] == '\0') {
        long call_ms = cfg->stripe_timeout_ms * (cfg->stripe_max_retries + 1) +
                       2000L * cfg->stripe_max_retries;
        long lease = 3 * call_ms / 1000 + 10;
        cfg->lease_seconds = lease > 60 ? (int)lease : 60;
    }
    return true;
}

void co_config_free(co_config *cfg)
{
    free(cfg->database_url);
    free(cfg->listen_host);
    free(cfg->stripe_api_base);
    free(cfg->stripe_secret_key);
    free(cfg->stripe_webhook_secret);
    free(cfg->restock_webhook_secret);
    free(cfg->auth_jwt_secret);
    free(cfg->admin_api_key);
    free(cfg->notify_url);
    free(cfg->notify_secret);
    free(cfg->crash_at);
    memset(cfg, 0, sizeof *cfg);
}

#include "co_config.h"

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

static bool env_int(const char *name, int def, int lo, int hi, int *out, char *err, unsigned n)
{
    const char *v = getenv(name);
    char *end = NULL;
    long x;

    if (v == NULL || v[0] == '\0') {
        *out = def;
        return true;
    }
    x = strtol(v, &end, 10);
    if (*end != '\0' || x < lo || x > hi) {
        snprintf(err, n, "%s must be an integer from %d to %d", name, lo, hi);
        return false;
    }
    *out = (int)x;
    return true;
}

bool co_config_load(co_config *cfg, char *err, unsigned n)
{
    static const char *required[] = {"STRIPE_WEBHOOK_SECRET", "RESTOCK_WEBHOOK_SECRET",
                                     "AUTH_JWT_SECRET", "ADMIN_API_KEY", "DATABASE_URL"};
    char *listen;
    char *colon;
    char *end = NULL;
    long port;
    int timeout_ms = 0;

    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const char *v = getenv(required[i]);
        if (v == NULL || v[0] == '\0') {
            snprintf(err, n, "%s is required (see README, Configuration)", required[i]);
            return false;
        }
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

    listen = env_or("LISTEN_ADDR", "127.0.0.1:8080");
    colon = strrchr(listen, ':');
    if (colon == NULL) {
        snprintf(err, n, "LISTEN_ADDR must be host:port");
        free(listen);
        return false;
    }
    *colon = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535) {
        snprintf(err, n, "LISTEN_ADDR must be host:port");
        free(listen);
        return false;
    }
    cfg->listen_host = listen; /* the host part, NUL-terminated at the colon */
    cfg->listen_port = (unsigned)port;

    if (!env_int("RESERVATION_TTL_SECONDS", 900, 1, 7 * 86400, &cfg->reservation_ttl_seconds,
                 err, n) ||
        !env_int("WORKERS", 256, 1, 1024, &cfg->workers, err, n) ||
        !env_int("DB_POOL_SIZE", 16, 1, 256, &cfg->db_pool_size, err, n) ||
        !env_int("CHECKOUT_RATE_PER_SECOND", 20, 0, 1000000, &cfg->checkout_rate, err, n) ||
        !env_int("CHECKOUT_RATE_BURST", 40, 1, 1000000, &cfg->checkout_burst, err, n) ||
        !env_int("MAX_UNPAID_UNITS", 20, 0, 1000000, &cfg->max_unpaid_units, err, n) ||
        !env_int("SAGA_LEASE_SECONDS", 60, 1, 3600, &cfg->lease_seconds, err, n) ||
        !env_int("RECOVERY_INTERVAL_MS", 1000, 10, 600000, &cfg->recovery_interval_ms, err, n) ||
        !env_int("RECONCILE_INTERVAL_SECONDS", 300, 0, 86400, &cfg->reconcile_interval_seconds,
                 err, n) ||
        !env_int("STRIPE_TIMEOUT_MS", 10000, 100, 600000, &timeout_ms, err, n) ||
        !env_int("STRIPE_MAX_RETRIES", 3, 0, 10, &cfg->stripe_max_retries, err, n) ||
        !env_int("NOTIFY_MAX_ATTEMPTS", 8, 1, 100, &cfg->notify_max_attempts, err, n) ||
        !env_int("NOTIFY_INTERVAL_MS", 200, 10, 600000, &cfg->notify_interval_ms, err, n) ||
        !env_int("NOTIFY_BACKOFF_MS", 500, 1, 60000, &cfg->notify_backoff_ms, err, n) ||
        !env_int("NOTIFY_TIMEOUT_MS", 5000, 100, 120000, &cfg->notify_timeout_ms, err, n) ||
        !env_int("HTTP_MAX_CONNECTIONS", 4000, 16, 1000000, &cfg->http_max_connections, err,
                 n) ||
        !env_int("HTTP_CONNECTIONS_PER_IP", 512, 1, 1000000, &cfg->http_per_ip, err, n) ||
        !env_int("HTTP_HEADER_TIMEOUT_MS", 10000, 100, 600000, &cfg->http_header_timeout_ms,
                 err, n) ||
        !env_int("HTTP_BODY_TIMEOUT_MS", 10000, 100, 600000, &cfg->http_body_timeout_ms, err,
                 n))
        return false;
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
    if (strncmp(cfg->stripe_webhook_secret, "whsec_", 6) != 0) {
        snprintf(err, n, "STRIPE_WEBHOOK_SECRET must start with whsec_");
        return false;
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

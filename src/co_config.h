/* Configuration from the environment (SPEC section 4). */
#ifndef CO_CONFIG_H
#define CO_CONFIG_H

#include <stdbool.h>

typedef struct {
    char *database_url;
    char *listen_host;
    unsigned listen_port;
    char *stripe_api_base;
    char *stripe_secret_key;
    char *stripe_webhook_secret;
    char *restock_webhook_secret;
    char *auth_jwt_secret;
    char *admin_api_key;
    char *notify_url;
    int reservation_ttl_seconds;
    int workers;               /* WORKERS: request threads (sagas in flight), default 256 */
    int checkout_rate;         /* CHECKOUT_RATE_PER_SECOND: a shopper's checkout attempts per
                                * second in one instance, 0 = no limit; default 20 */
    int checkout_burst;        /* CHECKOUT_RATE_BURST: attempts allowed at once, default 40 */
    int max_unpaid_units;      /* MAX_UNPAID_UNITS: units one shopper may hold in unpaid (mobile)
                                * reservations, 0 = no limit; default 20 */
    int db_pool_size;          /* DB_POOL_SIZE: Postgres connections of this process, shared
                                * by every thread, default 16 */
    int batch_max;             /* CHECKOUT_BATCH_MAX: most checkouts in one first commit
                                * (group commit), 1 = each alone; default 32 */
    int batch_inflight;        /* CHECKOUT_BATCH_INFLIGHT: such batches in flight at once,
                                * default 4 */
    int lease_seconds;         /* SAGA_LEASE_SECONDS: a saga's owner lease; derived by default:
                                * longer than a step's provider call with all its retries */
    int recovery_interval_ms;  /* RECOVERY_INTERVAL_MS: recovery/expiry sweep period,
                                * default 1000 */
    int reconcile_interval_seconds; /* RECONCILE_INTERVAL_SECONDS: period of the reconciliation
                                     * with the provider, 0 = off; default 300 */
    long stripe_timeout_ms;    /* STRIPE_TIMEOUT_MS, default 10000 */
    int stripe_max_retries;    /* STRIPE_MAX_RETRIES, default 3 */
    int notify_max_attempts;   /* NOTIFY_MAX_ATTEMPTS before dead-letter, default 8 */
    char *notify_secret;       /* NOTIFY_SECRET: HMAC key of Notify-Signature; defaults to
                                * RESTOCK_WEBHOOK_SECRET */
    int notify_interval_ms;    /* NOTIFY_INTERVAL_MS: outbox poll period, default 200 */
    int notify_backoff_ms;     /* NOTIFY_BACKOFF_MS: first retry delay, doubled per attempt,
                                * capped at 60 s; default 500 */
    int notify_timeout_ms;     /* NOTIFY_TIMEOUT_MS: one delivery's HTTP timeout, default 5000 */
    int http_max_connections;  /* HTTP_MAX_CONNECTIONS: open connections, all clients, 4000 */
    int http_per_ip;           /* HTTP_CONNECTIONS_PER_IP: open connections of one client
                                * address, default 512 */
    int http_header_timeout_ms; /* HTTP_HEADER_TIMEOUT_MS: a whole request head, from accept
                                 * or the previous answer, default 10000 */
    int http_body_timeout_ms;  /* HTTP_BODY_TIMEOUT_MS: a whole body, from its head, 10000 */
    char *crash_at;            /* CHECKOUTD_CRASH_AT: test-only, abort at this saga step */
} co_config;

/* Reads the environment. When required settings are missing or values are bad,
 * writes one message naming every one of them to err ("A is required; B must be
 * ..."; never a secret's value) and returns false; co_config_free still applies. */
bool co_config_load(co_config *cfg, char *err, unsigned err_len);
void co_config_free(co_config *cfg);

#endif

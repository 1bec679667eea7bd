/* bin/checkoutd: the checkout saga server.
 *
 *   checkoutd                 apply migrations, then serve (SPEC section 5)
 *   checkoutd migrate         apply migrations and exit
 *   checkoutd token SUB [TTL] print a shopper JWT for user SUB (AUTH_JWT_SECRET)
 *   checkoutd audit [...]     check SPEC section 8 on a live system (src/audit.c)
 *   checkoutd reconcile       one reconciliation pass with the provider (README)
 *   checkoutd --help          the usage, on stdout; --version the release
 * Anything else is a usage error: the usage on stderr, exit status 2.
 */
#include "audit.h"
#include "co_app.h"
#include "co_db.h"
#include "co_jwt.h"
#include "co_log.h"
#include "co_migrate.h"
#include "co_notify.h"
#include "co_reconcile.h"
#include "co_recovery.h"
#include "co_stripe.h"
#include "co_version.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int migrate_url(const char *url)
{
    co_db *db = co_db_open(url);
    int n;

    if (db == NULL)
        return -1;
    n = co_migrate(db);
    co_db_close(db);
    if (n >= 0)
        CO_INFO("migrate", "%d migration(s) applied", n);
    return n;
}

static int cmd_migrate(void)
{
    const char *url = getenv("DATABASE_URL");

    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "checkoutd: DATABASE_URL is required\n");
        return 2;
    }
    return migrate_url(url) < 0 ? 1 : 0;
}

static int cmd_token(int argc, char **argv)
{
    const char *secret = getenv("AUTH_JWT_SECRET");
    long ttl = argc > 3 ? strtol(argv[3], NULL, 10) : 86400;
    char *tok;

    if (argc < 3 || secret == NULL || secret[0] == '\0') {
        fprintf(stderr, "usage: AUTH_JWT_SECRET=... checkoutd token USER_UUID [TTL_SECONDS]\n");
        return 2;
    }
    tok = co_jwt_sign(secret, argv[2], (long long)time(NULL) + ttl, time(NULL));
    if (tok == NULL) {
        fprintf(stderr, "checkoutd: cannot sign (is USER_UUID a uuid?)\n");
        return 1;
    }
    printf("%s\n", tok);
    free(tok);
    return 0;
}

/* The password of a libpq connection string or URI, as a secret of the log. */
static void mask_db_password(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = conninfo != NULL ? PQconninfoParse(conninfo, &err) : NULL;

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
            co_log_secret(o->val);
    PQconninfoFree(opts);
    PQfreemem(err);
}

static int serve(void)
{
    static co_app app; /* its memo is a table of 1.6 MiB: not on the stack */
    char err[2048];
    sigset_t sigs;
    int sig = 0;
    co_http *http;
    co_recovery rec;
    co_notifier notifier;
    co_reconciler reconciler;
    char host[64] = "localhost";
    co_http_config hc;

    memset(&app, 0, sizeof app);
    pthread_mutex_init(&app.memo.mu, NULL);
    if (!co_config_load(&app.cfg, err, sizeof err)) {
        CO_ERROR("main", "%s", err);
        co_config_free(&app.cfg);
        return 2;
    }
    /* Masked in every line, should one ever be passed to the log. */
    co_log_secret(app.cfg.stripe_secret_key);
    co_log_secret(app.cfg.stripe_webhook_secret);
    co_log_secret(app.cfg.restock_webhook_secret);
    co_log_secret(app.cfg.auth_jwt_secret);
    co_log_secret(app.cfg.admin_api_key);
    co_log_secret(app.cfg.notify_secret);
    mask_db_password(app.cfg.database_url);
    gethostname(host, sizeof host - 1);
    snprintf(app.owner, sizeof app.owner, "%s:%d", host, (int)getpid());

    /* Signals are taken by sigwait below: block them before any thread starts. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (migrate_url(app.cfg.database_url) < 0) {
        CO_ERROR("main", "cannot apply migrations (is DATABASE_URL reachable?)");
        goto fail;
    }
    app.db = co_db_open_pool(app.cfg.database_url, app.cfg.db_pool_size);
    co_store_batching(app.cfg.batch_max, app.cfg.batch_inflight);
    app.memo.driving_ms = app.cfg.lease_seconds * 500; /* half the saga lease */
    app.checkout_rate = co_ratelimit_new(app.cfg.checkout_rate, app.cfg.checkout_burst);
    if (app.db == NULL || (app.cfg.checkout_rate > 0 && app.checkout_rate == NULL))
        goto fail;
    hc = (co_http_config){
        .host = app.cfg.listen_host, .port = app.cfg.listen_port, .routes = co_routes,
        .workers = app.cfg.workers, .worker_new = co_worker_new,
        .worker_free = co_worker_free, .app = &app,
        .max_connections = (unsigned)app.cfg.http_max_connections,
        .per_ip = (unsigned)app.cfg.http_per_ip,
        .header_timeout_ms = (unsigned)app.cfg.http_header_timeout_ms,
        .body_timeout_ms = (unsigned)app.cfg.http_body_timeout_ms,
    };
    http = co_http_start(&hc);
    if (http == NULL)
        goto fail;
    co_recovery_start(&rec, &app);
    co_notify_start(&notifier, &app);
    co_reconcile_start(&reconciler, &app);
    printf("checkoutd listening on http://%s:%u\n", app.cfg.listen_host, co_http_port(http));
    fflush(stdout);

    sigwait(&sigs, &sig);
    CO_INFO("main", "signal %d: stopping", sig);
    /* Sweeps stop between orders; an order left claimed is picked up again
     * when its lease lapses. */
    atomic_store(&app.stopping, true);
    co_recovery_stop(&rec);
    co_reconcile_stop(&reconciler);
    co_notify_stop(&notifier);
    co_http_stop(http);
    co_ratelimit_free(app.checkout_rate);
    co_db_close(app.db);
    co_config_free(&app.cfg);
    curl_global_cleanup();
    co_log_flush();
    return 0;

fail:
    co_ratelimit_free(app.checkout_rate);
    co_db_close(app.db);
    co_config_free(&app.cfg);
    curl_global_cleanup();
    return 1;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: checkoutd                     apply migrations, then serve\n"
            "       checkoutd migrate             apply migrations and exit\n"
            "       checkoutd token USER_UUID [TTL_SECONDS]\n"
            "                                     print a shopper JWT (AUTH_JWT_SECRET)\n"
            "       checkoutd audit [--since RFC3339] [--sink URL] [--settled-after S] [--json]\n"
            "                                     check money, stock and notifications agree\n"
            "       checkoutd reconcile           one reconciliation pass with the provider\n"
            "       checkoutd --help | --version\n"
            "\n"
            "Settings come from the environment (README, Configuration). Required:\n"
            "DATABASE_URL, STRIPE_WEBHOOK_SECRET (whsec_...), RESTOCK_WEBHOOK_SECRET,\n"
            "AUTH_JWT_SECRET, ADMIN_API_KEY. Usual: LISTEN_ADDR (127.0.0.1:8080),\n"
            "STRIPE_API_BASE, STRIPE_SECRET_KEY, NOTIFY_URL, LOG_LEVEL.\n"
            "Provider calls are made in Stripe API version %s (Stripe-Version).\n",
            CO_STRIPE_API_VERSION);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("checkoutd %s (Stripe API %s)\n", CO_VERSION, CO_STRIPE_API_VERSION);
        return 0;
    }
    co_log_init();
    if (argc > 1 && strcmp(argv[1], "migrate") == 0)
        return cmd_migrate();
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc, argv);
    if (argc > 1 && strcmp(argv[1], "audit") == 0)
        return co_audit_main(argc - 1, argv + 1);
    if (argc == 2 && strcmp(argv[1], "reconcile") == 0)
        return co_reconcile_cli();
    if (argc > 1) {
        fprintf(stderr, "checkoutd: unknown argument '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    return serve();
}

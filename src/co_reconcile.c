/* bin/checkoutd reconcile and the periodic reconciliation job: the pass
 * itself, its rules and records are the saga's (states/reconcile.c); this
 * sets it up, prints or logs what it found, and turns it into an exit code. */
#include "co_reconcile.h"

#include "co_log.h"
#include "co_metrics.h"
#include "pay_stripe.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ the command */

static const char *env_str(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : dflt;
}

static bool env_num(const char *name, long dflt, long min, long max, long *out)
{
    const char *v = getenv(name);
    char *end = NULL;

    *out = dflt;
    if (v == NULL || v[0] == '\0')
        return true;
    errno = 0;
    *out = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || *out < min || *out > max) {
        fprintf(stderr, "checkoutd: %s must be an integer from %ld to %ld\n", name, min, max);
        return false;
    }
    return true;
}

static void print_row(void *arg, const co_recon_row *row)
{
    int *rows = arg;

    if ((*rows)++ == 0)
        printf("%-30s %-28s %-36s %-6s %s\n", "FINDING", "INTENT", "ORDER", "ACTION", "RESULT");
    printf("%-30s %-28s %-36s %-6s %s%s\n", row->finding, row->intent[0] ? row->intent : "-",
           row->order_id[0] ? row->order_id : "-", co_recon_action_name(row->action),
           row->failed ? "FAILED: " : "", row->result);
    fflush(stdout);
}

int co_reconcile_cli(void)
{
    const char *url = env_str("DATABASE_URL", NULL);
    co_stripe_config sc = {
        .api_base = env_str("STRIPE_API_BASE", "http://127.0.0.1:12111"),
        .secret_key = env_str("STRIPE_SECRET_KEY", "sk_test_checkout_local"),
    };
    co_recon_params params = CO_RECON_PARAMS_DEFAULT;
    co_recon_summary sum;
    co_recon_status st;
    long timeout_ms, retries, lease;
    char host[64] = "localhost", owner[96];
    co_db *db;
    co_stripe *stripe;
    co_saga saga;
    int rows = 0, code;

    if (url == NULL) {
        fprintf(stderr, "checkoutd: DATABASE_URL is required\n");
        return 2;
    }
    if (!env_num("STRIPE_TIMEOUT_MS", 10000, 100, 600000, &timeout_ms) ||
        !env_num("STRIPE_MAX_RETRIES", 3, 0, 10, &retries) ||
        !env_num("SAGA_LEASE_SECONDS", 60, 1, 3600, &lease))
        return 2;
    sc.timeout_ms = timeout_ms;
    sc.max_retries = (int)retries;
    gethostname(host, sizeof host - 1);
    snprintf(owner, sizeof owner, "%s:%d:reconcile", host, (int)getpid());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    db = co_db_open_pool(url, 2);
    stripe = co_stripe_new(&sc);
    if (db == NULL || stripe == NULL) {
        fprintf(stderr, "checkoutd: out of memory\n");
        co_stripe_free(stripe);
        co_db_close(db);
        curl_global_cleanup();
        return 2;
    }
    saga = (co_saga){.store = co_store_port_pg(db), .pay = co_pay_port_stripe(stripe),
                     .owner = owner, .lease_seconds = (int)lease};
    st = co_saga_reconcile(&saga, &params, print_row, &rows, &sum);
    co_stripe_free(stripe);
    co_db_close(db);
    curl_global_cleanup();
    if (st == CO_RECON_BUSY) {
        fprintf(stderr, "checkoutd: another reconciliation is running (%s); nothing done\n",
                sum.holder);
        return 2;
    }
    if (rows == 0 && st == CO_RECON_DONE)
        printf("nothing to reconcile\n");
    printf("reconcile: %d intents created since %lld and %d waiting orders examined: "
           "%d acted, %d reported, %d failed%s\n",
           sum.intents, sum.listed_since, sum.orders, sum.acted, sum.reported, sum.failed,
           st == CO_RECON_ERROR ? "; INCOMPLETE (database or provider unreachable)" : "");
    code = st == CO_RECON_ERROR || sum.failed > 0 ? 2 : sum.reported > 0 ? 1 : 0;
    if (st == CO_RECON_ERROR)
        fprintf(stderr, "checkoutd: reconciliation incomplete (see the log); run it again\n");
    return code;
}

/* ------------------------------------------------------------ the job */

typedef struct {
    co_worker *w;
    bool started;           /* the ticker's first call (at start) has been skipped */
} job;

static void *job_setup(co_ticker *t)
{
    co_reconciler *r = t->arg;
    job *j = calloc(1, sizeof *j);

    if (j == NULL)
        return NULL;
    j->w = co_worker_new(r->app);
    if (j->w == NULL) {
        free(j);
        return NULL;
    }
    return j;
}

static bool job_sweep(void *state)
{
    job *j = state;
    co_recon_params params = CO_RECON_PARAMS_DEFAULT;
    co_recon_summary sum;
    co_recon_status st;

    /* The first pass comes one interval after the start: recovery finishes
     * what the last run of the server left first, and the sagas it resumes
     * are not second-guessed while they run. */
    if (!j->started) {
        j->started = true;
        return false;
    }
    params.stop = &j->w->app->stopping;
    st = co_saga_reconcile(&j->w->saga, &params, NULL, NULL, &sum);
    if (atomic_load(&j->w->app->stopping))
        return false; /* cut short by shutdown: the next run's pass lists again */

    if (st == CO_RECON_BUSY)
        return false; /* another instance is on it */
    co_metric_add("reconcile_passes", 1);
    co_metric_add("reconcile_actions", sum.acted);
    co_metric_add("reconcile_reports", sum.reported);
    co_metric_add("reconcile_failures", sum.failed);
    if (st == CO_RECON_ERROR)
        CO_WARN("reconcile", "pass %s incomplete: %d acted, %d reported, %d failed", sum.run_id,
                sum.acted, sum.reported, sum.failed);
    else if (sum.acted + sum.reported + sum.failed > 0)
        CO_INFO("reconcile", "pass %s: %d intents, %d orders: %d acted, %d reported, %d failed",
                sum.run_id, sum.intents, sum.orders, sum.acted, sum.reported, sum.failed);
    return false;
}

static void job_teardown(void *state)
{
    job *j = state;

    co_worker_free(j->w);
    free(j);
}

bool co_reconcile_start(co_reconciler *r, co_app *app)
{
    memset(r, 0, sizeof *r);
    r->app = app;
    if (app->cfg.reconcile_interval_seconds == 0)
        return true;
    r->ticker = (co_ticker){.name = "reconcile",
                            .interval_ms = app->cfg.reconcile_interval_seconds * 1000,
                            .setup = job_setup, .sweep = job_sweep,
                            .teardown = job_teardown, .arg = r};
    return co_ticker_start(&r->ticker);
}

void co_reconcile_stop(co_reconciler *r)
{
    co_ticker_stop(&r->ticker);
}

#include "co_recovery.h"


/* Small batches: every claimed order shares one lease, and they are driven one
 * after another, so a large batch behind a slow provider would outlive it. */
#define SWEEP_BATCH 4

int co_recovery_sweep(co_worker *w)
{
    return co_saga_recover(&w->saga, SWEEP_BATCH, &w->app->stopping);
}

static void *recovery_setup(co_ticker *t)
{
    co_recovery *r = t->arg;

    return co_worker_new(r->app);
}

static bool recovery_sweep(void *state)
{
    return co_recovery_sweep(state) == SWEEP_BATCH; /* a full batch: more may be waiting */
}

static void recovery_teardown(void *state)
{
    co_worker_free(state);
}

bool co_recovery_start(co_recovery *r, co_app *app)
{
    r->app = app;
    r->ticker = (co_ticker){.name = "recovery", .interval_ms = app->cfg.recovery_interval_ms,
                            .setup = recovery_setup, .sweep = recovery_sweep,
                            .teardown = recovery_teardown, .arg = r};
    return co_ticker_start(&r->ticker);
}

void co_recovery_stop(co_recovery *r)
{
    co_ticker_stop(&r->ticker);
}

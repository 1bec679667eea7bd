#include "co_recovery.h"

#include "co_log.h"
#include "co_store.h"

#include <string.h>

/* Small batches: every claimed order shares one lease, and they are driven one
 * after another, so a large batch behind a slow provider would outlive it. */
#define SWEEP_BATCH 4

int co_recovery_sweep(co_worker *w)
{
    char ids[SWEEP_BATCH][37];
    int n = 0;
    int driven = 0;

    if (co_store_claim_stalled(w->db, w->app->owner, w->app->cfg.lease_seconds, SWEEP_BATCH, ids,
                               &n) < 0)
        return 0;
    for (int i = 0; i < n && !atomic_load(&w->app->stopping); i++) {
        co_order o;
        co_step step;

        if (co_store_load_order(w->db, ids[i], &o) != CO_DB_ROWS)
            continue;
        co_saga_reset(&w->saga);
        CO_INFO("recovery", "order %s: resuming from %s", o.id, co_state_name(o.status));
        step = co_saga_drive(&w->saga, &o, CO_DRIVE_FORWARD);
        co_metric_add("recovery_driven", 1);
        if (step == CO_STEP_RETRY)
            CO_WARN("recovery", "order %s: still %s, will retry", o.id, co_state_name(o.status));
        driven++;
    }
    return driven;
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

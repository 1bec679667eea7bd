#include "co_recovery.h"

#include "co_log.h"
#include "co_store.h"

#include <errno.h>
#include <string.h>
#include <time.h>

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

static void *recovery_main(void *p)
{
    co_recovery *r = p;
    co_worker *w = co_worker_new(r->app);

    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec until;
        int driven = 0;

        pthread_mutex_unlock(&r->lock);
        if (w != NULL)
            driven = co_recovery_sweep(w);
        pthread_mutex_lock(&r->lock);
        if (driven == SWEEP_BATCH)
            continue; /* more may be waiting */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += r->app->cfg.recovery_interval_ms / 1000;
        until.tv_nsec += (long)(r->app->cfg.recovery_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&r->lock);
    co_worker_free(w);
    return NULL;
}

bool co_recovery_start(co_recovery *r, co_app *app)
{
    memset(r, 0, sizeof *r);
    r->app = app;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    r->started = pthread_create(&r->thread, NULL, recovery_main, r) == 0;
    return r->started;
}

void co_recovery_stop(co_recovery *r)
{
    if (!r->started)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    r->started = false;
}

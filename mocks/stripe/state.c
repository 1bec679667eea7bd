/* mock-stripe's shared state (declared in stripe.h): the configuration, the counters,
 * every object and the lists that order them, the lock /_mock/reset takes, and the sleep
 * that shutdown cuts short. The idempotency store, the faults and the webhook queue keep
 * their state in their own files; reset, init and free reach them from here. */
#include "stripe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ configuration */

ms_config g_cfg = {
    .listen = "127.0.0.1:12111",
    .wh_max_attempts = 8,
    .wh_threads = 8,
    .wh_history = 10000,
    .idem_max = 50000,
};

atomic_llong st_pis, st_captured, st_canceled, st_refunds, st_requests;
atomic_llong st_declines, st_replays;

/* ================================================================ objects */

ms_map g_objs;
struct ms_pis g_pis;
struct ms_refunds g_refunds;
pthread_rwlock_t g_state;

ms_pi *ms_pi_find(const char *id)
{
    if (strncmp(id, "pi_", 3) != 0)
        return NULL;
    return ms_map_get(&g_objs, id);
}

ms_pi *ms_charge_find(const char *id)
{
    if (strncmp(id, "ch_", 3) != 0)
        return NULL;
    return ms_map_get(&g_objs, id);
}

void ms_pi_free(ms_pi *pi)
{
    ms_refund *rf = pi->refunds;

    while (rf != NULL) {
        ms_refund *next = rf->next_for_pi;

        ms_meta_free(&rf->meta);
        free(rf);
        rf = next;
    }
    free(pi->pm);
    free(pi->description);
    free(pi->receipt_email);
    free(pi->ch_pm);
    free(pi->err.pm);
    ms_meta_free(&pi->meta);
    for (size_t i = 0; i < pi->n_pm_types; i++)
        free(pi->pm_types[i]);
    free(pi->pm_types);
    pthread_mutex_destroy(&pi->mu);
    free(pi);
}

/* ================================================================ sleeping */

/* Shutdown wakes every sleeping request (latency, delay and hang faults) so that
 * MHD_stop_daemon, which joins the connection threads, returns promptly. */
static pthread_mutex_t g_stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_stop_cv;
static atomic_bool g_stopping;

void ms_sleep_ms(long long ms)
{
    struct timespec dl;

    if (ms <= 0)
        return;
    ms_deadline_after(&dl, ms);
    pthread_mutex_lock(&g_stop_mu);
    while (!atomic_load(&g_stopping)) {
        if (pthread_cond_timedwait(&g_stop_cv, &g_stop_mu, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&g_stop_mu);
}

void ms_wake_sleepers_for_stop(void)
{
    pthread_mutex_lock(&g_stop_mu);
    atomic_store(&g_stopping, true);
    pthread_cond_broadcast(&g_stop_cv);
    pthread_mutex_unlock(&g_stop_mu);
}

/* ================================================================ reset, init, free */

/* POST /_mock/reset: forgets every object, idempotency key, counter, fault and finished
 * webhook event, in memory and in the journal; events still pending keep being
 * delivered. */
void ms_reset_state(void)
{
    pthread_rwlock_wrlock(&g_state);
    ms_map_clear(&g_objs, NULL);
    for (size_t i = 0; i < g_pis.n; i++)
        ms_pi_free(g_pis.v[i]);     /* frees each PI's refunds too */
    free(g_pis.v);
    g_pis.v = NULL;
    g_pis.n = g_pis.cap = 0;
    free(g_refunds.v);
    g_refunds.v = NULL;
    g_refunds.n = g_refunds.cap = 0;
    ms_idem_reset();
    atomic_store(&st_pis, 0);
    atomic_store(&st_captured, 0);
    atomic_store(&st_canceled, 0);
    atomic_store(&st_refunds, 0);
    atomic_store(&st_requests, 0);
    atomic_store(&st_declines, 0);
    atomic_store(&st_replays, 0);
    ms_journal_reset();
    pthread_rwlock_unlock(&g_state);
    ms_faults_clear();
    ms_wh_clear_done();
}

void ms_state_init(void)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
    /* Writer preference: /_mock/reset must not starve under a benchmark's load. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&g_state, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&g_pis.mu, NULL);
    pthread_mutex_init(&g_refunds.mu, NULL);
    ms_map_init(&g_objs);
    ms_idem_init();
    ms_cond_init_mono(&g_stop_cv);
    ms_wh_init();
}

void ms_state_free(void)
{
    ms_map_destroy(&g_objs, NULL);
    for (size_t i = 0; i < g_pis.n; i++)
        ms_pi_free(g_pis.v[i]);
    free(g_pis.v);
    free(g_refunds.v);
    ms_idem_free();
    ms_faults_clear();
    pthread_mutex_destroy(&g_pis.mu);
    pthread_mutex_destroy(&g_refunds.mu);
    pthread_rwlock_destroy(&g_state);
    pthread_cond_destroy(&g_stop_cv);
}

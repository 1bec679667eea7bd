/* A background thread that sweeps now and then: at start, then every
 * interval_ms, and again at once while a sweep says more is waiting. Stop
 * wakes it, lets the sweep in progress end, and joins it. Recovery and the
 * outbox notifier are tickers. */
#ifndef CO_TICKER_H
#define CO_TICKER_H

#include <pthread.h>
#include <stdbool.h>

typedef struct co_ticker {
    /* Filled by the caller before co_ticker_start. */
    const char *name;                        /* for log lines */
    int interval_ms;
    void *(*setup)(struct co_ticker *t);     /* on the thread: its state; NULL = cannot run */
    bool (*sweep)(void *state);              /* true: more is waiting, sweep again now */
    void (*teardown)(void *state);           /* on the thread, after the last sweep */
    void *arg;                               /* for setup */
    /* Internal. */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool started;
} co_ticker;

bool co_ticker_start(co_ticker *t);
void co_ticker_stop(co_ticker *t);
/* True once co_ticker_stop was called: long sweeps check it between items. */
bool co_ticker_stopping(co_ticker *t);

#endif

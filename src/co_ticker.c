#include "co_ticker.h"

#include "co_log.h"

#include <errno.h>
#include <time.h>

static void deadline(struct timespec *until, int ms)
{
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += ms / 1000;
    until->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

static void *ticker_main(void *p)
{
    co_ticker *t = p;
    void *state = t->setup(t);

    if (state == NULL)
        CO_ERROR(t->name, "cannot start (out of memory)");
    pthread_mutex_lock(&t->lock);
    while (state != NULL && !t->stop) {
        struct timespec until;
        bool more;

        pthread_mutex_unlock(&t->lock);
        more = t->sweep(state);
        co_log_tick();
        pthread_mutex_lock(&t->lock);
        if (more)
            continue;
        deadline(&until, t->interval_ms);
        while (!t->stop && pthread_cond_timedwait(&t->wake, &t->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&t->lock);
    if (state != NULL)
        t->teardown(state);
    return NULL;
}

bool co_ticker_start(co_ticker *t)
{
    t->stop = false;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    t->started = pthread_create(&t->thread, NULL, ticker_main, t) == 0;
    return t->started;
}

void co_ticker_stop(co_ticker *t)
{
    if (!t->started)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->wake);
    t->started = false;
}

bool co_ticker_stopping(co_ticker *t)
{
    bool stop;

    pthread_mutex_lock(&t->lock);
    stop = t->stop;
    pthread_mutex_unlock(&t->lock);
    return stop;
}

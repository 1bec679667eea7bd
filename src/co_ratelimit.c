#include "co_ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A fixed open-addressing table: a shopper's slot is found by hash, and when
 * the probe window is full the stalest bucket in it is reused. A full bucket
 * left alone is the same as a fresh one, so forgetting idle shoppers changes
 * nothing; memory stays bounded whatever the number of shoppers. */
#define SLOTS 4096
#define PROBE 8

typedef struct {
    char key[40];
    double tokens;
    double stamp; /* seconds, monotonic; 0: empty slot */
} slot;

struct co_ratelimit {
    pthread_mutex_t lock;
    double rate, burst;
    slot slots[SLOTS];
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + 1.0; /* never 0 */
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

co_ratelimit *co_ratelimit_new(double rate, double burst)
{
    co_ratelimit *rl;

    if (rate <= 0)
        return NULL;
    rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    pthread_mutex_init(&rl->lock, NULL);
    rl->rate = rate;
    rl->burst = burst >= 1 ? burst : 1;
    return rl;
}

void co_ratelimit_free(co_ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

/* key's slot (found, or the stalest of its probe window made key's). */
static slot *find(co_ratelimit *rl, const char *key, double now)
{
    size_t base = (size_t)(hash(key) % SLOTS);
    slot *oldest = NULL;

    for (size_t i = 0; i < PROBE; i++) {
        slot *x = &rl->slots[(base + i) % SLOTS];

        if (x->stamp != 0 && strcmp(x->key, key) == 0)
            return x;
        if (oldest == NULL || x->stamp < oldest->stamp)
            oldest = x;
    }
    snprintf(oldest->key, sizeof oldest->key, "%s", key);
    oldest->tokens = rl->burst;
    oldest->stamp = now;
    return oldest;
}

bool co_ratelimit_take(co_ratelimit *rl, const char *key, unsigned *retry_after)
{
    double now;
    slot *x;
    bool ok;

    if (rl == NULL)
        return true;
    now = now_s();
    pthread_mutex_lock(&rl->lock);
    x = find(rl, key, now);
    x->tokens = fmin(rl->burst, x->tokens + (now - x->stamp) * rl->rate);
    x->stamp = now;
    ok = x->tokens >= 1.0;
    if (ok)
        x->tokens -= 1.0;
    else
        *retry_after = (unsigned)ceil((1.0 - x->tokens) / rl->rate);
    pthread_mutex_unlock(&rl->lock);
    if (!ok && *retry_after < 1)
        *retry_after = 1;
    return ok;
}

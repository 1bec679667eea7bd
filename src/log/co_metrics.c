#include "co_metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX 64
static struct {
    const char *name;
    atomic_long value;
} metrics[METRICS_MAX];
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;

void co_metric_add(const char *name, long delta)
{
    for (int i = 0; i < METRICS_MAX; i++) {
        const char *n = __atomic_load_n(&metrics[i].name, __ATOMIC_ACQUIRE);
        if (n != NULL && strcmp(n, name) == 0) {
            atomic_fetch_add(&metrics[i].value, delta);
            return;
        }
        if (n == NULL) {
            pthread_mutex_lock(&metrics_lock);
            if (metrics[i].name == NULL) {
                atomic_store(&metrics[i].value, delta);
                __atomic_store_n(&metrics[i].name, name, __ATOMIC_RELEASE);
                pthread_mutex_unlock(&metrics_lock);
                return;
            }
            pthread_mutex_unlock(&metrics_lock);
            i--; /* someone took this slot: look at it again */
        }
    }
}

char *co_metrics_render(void)
{
    size_t cap = 8192;
    size_t len = 0;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    len += (size_t)snprintf(out, cap, "# TYPE checkoutd_events_total counter\n");
    for (int i = 0; i < METRICS_MAX && len < cap - 200; i++) {
        const char *n = __atomic_load_n(&metrics[i].name, __ATOMIC_ACQUIRE);
        if (n == NULL)
            break;
        len += (size_t)snprintf(out + len, cap - len, "checkoutd_events_total{event=\"%s\"} %ld\n",
                                n, atomic_load(&metrics[i].value));
    }
    return out;
}


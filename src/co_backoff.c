#include "co_backoff.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

long co_backoff_ms(long initial_ms, long max_ms, int retry, unsigned int *seed)
{
    long base = initial_ms;
    long half;

    for (int i = 0; i < retry && base < max_ms; i++)
        base *= 2;
    if (base > max_ms)
        base = max_ms;
    half = base / 2;
    return half + (long)((double)(base - half) * ((double)rand_r(seed) / RAND_MAX));
}

void co_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#include "race.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>

/* The starting line of the race under way. */
static pthread_barrier_t line;

void co_test_race(int n, void *(*fn)(void *), void *args, size_t size)
{
    pthread_t *t = calloc((size_t)n, sizeof *t);

    ck_assert_ptr_nonnull(t);
    pthread_barrier_init(&line, NULL, (unsigned)n);
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * size);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&line);
    free(t);
}

void co_test_race_wait(void)
{
    pthread_barrier_wait(&line);
}

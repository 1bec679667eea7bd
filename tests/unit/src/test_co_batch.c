/* Group commit (src/co_batch.c) with real threads and no database: every
 * request is handled exactly once, by a batch of its own group; concurrent
 * requests share batches; a key is never in two batches in flight at once;
 * the sizes are kept; and an idle system runs a request at once, alone. */
#include "harness.h"

#include "co_batch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define THREADS 48
#define ROUNDS 40
#define KEYS 3

typedef struct {
    co_batch_req req;
    _Atomic int handled;
    int key_no;
} item;

static _Atomic int in_flight[KEYS];     /* batches in flight holding key k */
static _Atomic int overlap;             /* a key seen in two batches at once */
static _Atomic int mixed;               /* a batch with two groups */
static _Atomic int biggest, batches, requests, inflight_now, inflight_max;
static _Atomic int unhandled;           /* a submit returned before its request ran once */
static const char *const keys[KEYS] = {"item-a", "item-b", "item-c"};

static void run(void *ctx, co_batch_req **reqs, int n)
{
    bool has[KEYS] = {false};
    int now = atomic_fetch_add(&inflight_now, 1) + 1;

    (void)ctx;
    if (now > atomic_load(&inflight_max))
        atomic_store(&inflight_max, now);
    for (int i = 0; i < n; i++) {
        item *it = (item *)reqs[i];

        if (reqs[i]->group != reqs[0]->group)
            atomic_store(&mixed, 1);
        if (it->key_no >= 0 && !has[it->key_no]) {
            has[it->key_no] = true;
            if (atomic_fetch_add(&in_flight[it->key_no], 1) > 0)
                atomic_store(&overlap, 1);
        }
    }
    usleep(2000); /* the statement */
    for (int i = 0; i < n; i++)
        atomic_fetch_add(&((item *)reqs[i])->handled, 1);
    for (int k = 0; k < KEYS; k++)
        if (has[k])
            atomic_fetch_sub(&in_flight[k], 1);
    if (n > atomic_load(&biggest))
        atomic_store(&biggest, n);
    atomic_fetch_add(&batches, 1);
    atomic_fetch_add(&requests, n);
    atomic_fetch_sub(&inflight_now, 1);
}

static co_batch b = CO_BATCH_INIT(run, NULL);

/* A counter's value (a function, so that a failed assertion names it). */
static int get(_Atomic int *v)
{
    return atomic_load(v);
}
static int group_a, group_b;

static void reset(int max_batch, int max_inflight)
{
    co_batch_configure(&b, max_batch, max_inflight);
    for (int k = 0; k < KEYS; k++)
        atomic_store(&in_flight[k], 0);
    atomic_store(&overlap, 0);
    atomic_store(&mixed, 0);
    atomic_store(&biggest, 0);
    atomic_store(&batches, 0);
    atomic_store(&requests, 0);
    atomic_store(&inflight_max, 0);
    atomic_store(&unhandled, 0);
}

static void *worker(void *arg)
{
    long t = (long)arg;

    for (int i = 0; i < ROUNDS; i++) {
        item it = {.key_no = (int)((t + i) % (KEYS + 1)) - 1};

        it.req.group = t % 2 ? (void *)&group_a : (void *)&group_b;
        it.req.key = it.key_no >= 0 ? keys[it.key_no] : NULL;
        co_batch_submit(&b, &it.req);
        if (atomic_load(&it.handled) != 1)
            atomic_store(&unhandled, 1); /* asserted on the main thread */
    }
    return NULL;
}

static void hammer(void)
{
    pthread_t th[THREADS];

    for (long t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker, (void *)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    ck_assert_int_eq(get(&unhandled), 0);
    ck_assert_int_eq(get(&requests), THREADS * ROUNDS);
}

START_TEST(concurrent_requests_share_batches)
{
    reset(16, 4);
    hammer();
    ck_assert_msg(get(&batches) < THREADS * ROUNDS / 2, "%d batches for %d requests",
                  get(&batches), THREADS * ROUNDS);
    ck_assert_int_le(get(&biggest), 16);
    ck_assert_int_gt(get(&biggest), 1);
    ck_assert_int_le(get(&inflight_max), 4);
    ck_assert_int_eq(get(&overlap), 0);
    ck_assert_int_eq(get(&mixed), 0);
}
END_TEST

START_TEST(a_batch_of_one_is_each_alone)
{
    reset(1, 8);
    hammer();
    ck_assert_int_eq(get(&biggest), 1);
    ck_assert_int_eq(get(&batches), THREADS * ROUNDS);
    ck_assert_int_eq(get(&overlap), 0);
}
END_TEST

START_TEST(an_idle_request_runs_alone_at_once)
{
    item it = {.key_no = 0};

    reset(32, 4);
    it.req.group = &group_a;
    it.req.key = keys[0];
    co_batch_submit(&b, &it.req);
    ck_assert_int_eq(get(&it.handled), 1);
    ck_assert_int_eq(get(&batches), 1);
    ck_assert_int_eq(get(&biggest), 1);
    ck_assert_double_eq(co_batch_mean(&b) > 0, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/src/co_batch");
    TCase *tc = tcase_create("batch");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, concurrent_requests_share_batches);
    tcase_add_test(tc, a_batch_of_one_is_each_alone);
    tcase_add_test(tc, an_idle_request_runs_alone_at_once);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

/* Group commit for statements: while a batch is in flight, the requests that
 * arrive gather, and the next free slot runs them all as one statement (one
 * transaction, one commit, one round trip). An idle system adds no delay: a
 * request that finds a free slot and nothing queued runs at once, alone.
 *
 * The caller's thread does the work: co_batch_submit queues the request and
 * either leads a batch (calls run with the oldest queued requests) or waits
 * until a leader has handled it. A key (an item id, say) is in at most one
 * batch in flight: requests with a key in flight wait for the next batch, so
 * two concurrent batches never contend for the same rows. */
#ifndef CO_BATCH_H
#define CO_BATCH_H

#include <pthread.h>
#include <stdbool.h>

#define CO_BATCH_MAX 64       /* most requests in one batch */
#define CO_BATCH_INFLIGHT 8   /* most batches in flight at once */

typedef struct co_batch_req {
    /* Filled by the caller. */
    const void *group;        /* only requests of one group share a batch (a pool, say) */
    const char *key;          /* at most one batch in flight per key; NULL: no key */
    /* Internal. */
    struct co_batch_req *next;
    bool done;
} co_batch_req;

/* Runs reqs[0..n-1] (oldest first, all of one group) and fills each one's
 * result (the caller embeds co_batch_req in its own struct). Called on the
 * leader's thread with no lock held. */
typedef void co_batch_run_fn(void *ctx, co_batch_req **reqs, int n);

typedef struct {
    /* Filled by the caller (or co_batch_configure) before the first submit. */
    co_batch_run_fn *run;
    void *ctx;
    int max_batch;            /* 1..CO_BATCH_MAX; 1: every request alone */
    int max_inflight;         /* 1..CO_BATCH_INFLIGHT */
    /* Internal. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    co_batch_req *head, *tail;
    int inflight;
    bool slot_used[CO_BATCH_INFLIGHT];
    int nbusy[CO_BATCH_INFLIGHT];                       /* keys in busy[slot * MAX ...] */
    const char *busy[CO_BATCH_INFLIGHT * CO_BATCH_MAX]; /* keys in flight */
    unsigned long long batches, requests;               /* for co_batch_mean */
} co_batch;

#define CO_BATCH_INIT(run_, ctx_)                                                         \
    {.run = (run_), .ctx = (ctx_), .max_batch = 32, .max_inflight = 4,                   \
     .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}

/* Sets the sizes (clamped to the ranges above); before the first submit. */
void co_batch_configure(co_batch *b, int max_batch, int max_inflight);
/* Returns once run has handled r. */
void co_batch_submit(co_batch *b, co_batch_req *r);
/* Requests per batch so far (0 before the first). */
double co_batch_mean(co_batch *b);

#endif

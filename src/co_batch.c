/* Group commit: see co_batch.h. One mutex guards the queue and the slots; the
 * batch itself runs with it released. */
#include "co_batch.h"

#include <string.h>

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void co_batch_configure(co_batch *b, int max_batch, int max_inflight)
{
    b->max_batch = clamp(max_batch, 1, CO_BATCH_MAX);
    b->max_inflight = clamp(max_inflight, 1, CO_BATCH_INFLIGHT);
}

/* True when key is in a batch in flight (the one being filled, slot, aside). */
static bool key_busy(const co_batch *b, int slot, const char *key)
{
    if (key == NULL)
        return false;
    for (int s = 0; s < b->max_inflight; s++) {
        const char *const *busy = &b->busy[s * CO_BATCH_MAX];

        for (int i = 0; s != slot && b->slot_used[s] && i < b->nbusy[s]; i++)
            if (busy[i] != NULL && strcmp(busy[i], key) == 0)
                return true;
    }
    return false;
}

/* Takes from the queue, oldest first, up to max_batch requests of the first
 * takeable request's group whose keys are not in flight, and marks their keys
 * busy in slot. Returns how many (0: nothing can run now). */
static int take(co_batch *b, int slot, co_batch_req **reqs)
{
    co_batch_req **link = &b->head, *prev = NULL;
    const void *group = NULL;
    const char **busy = &b->busy[slot * CO_BATCH_MAX];
    int n = 0;

    while (*link != NULL && n < b->max_batch) {
        co_batch_req *q = *link;

        if ((group != NULL && q->group != group) || key_busy(b, slot, q->key)) {
            prev = q;
            link = &q->next;
            continue;
        }
        group = q->group;
        *link = q->next;
        if (b->tail == q)
            b->tail = prev;
        q->next = NULL;
        reqs[n] = q;
        busy[n] = q->key;
        n++;
    }
    b->nbusy[slot] = n;
    return n;
}

static int free_slot(const co_batch *b)
{
    for (int s = 0; s < b->max_inflight; s++)
        if (!b->slot_used[s])
            return s;
    return -1;
}

void co_batch_submit(co_batch *b, co_batch_req *r)
{
    co_batch_req *reqs[CO_BATCH_MAX];

    r->next = NULL;
    r->done = false;
    pthread_mutex_lock(&b->mu);
    if (b->tail != NULL)
        b->tail->next = r;
    else
        b->head = r;
    b->tail = r;
    while (!r->done) {
        int slot = b->inflight < b->max_inflight ? free_slot(b) : -1;
        int n = slot >= 0 ? take(b, slot, reqs) : 0;

        if (n == 0) {
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        b->slot_used[slot] = true;
        b->inflight++;
        b->batches++;
        b->requests += (unsigned long long)n;
        pthread_mutex_unlock(&b->mu);
        b->run(b->ctx, reqs, n);
        pthread_mutex_lock(&b->mu);
        for (int i = 0; i < n; i++)
            reqs[i]->done = true;
        b->nbusy[slot] = 0;
        b->slot_used[slot] = false;
        b->inflight--;
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
}

double co_batch_mean(co_batch *b)
{
    double m;

    pthread_mutex_lock(&b->mu);
    m = b->batches > 0 ? (double)b->requests / (double)b->batches : 0.0;
    pthread_mutex_unlock(&b->mu);
    return m;
}

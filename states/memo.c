/* The memo of this process's own orders: see memo.h. */
#include "memo.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a over the order id. */
static unsigned slot_of(const char *order_id)
{
    unsigned h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)order_id; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % CO_MEMO_SLOTS;
}

static bool fits(const char *s, size_t n)
{
    return s == NULL || strlen(s) < n;
}

void co_memo_driving(co_memo *m, const char *order_id)
{
    co_memo_entry *e;

    if (m == NULL || m->driving_ms <= 0 || order_id == NULL ||
        !fits(order_id, sizeof e->order_id))
        return;
    e = &m->slot[slot_of(order_id)];
    pthread_mutex_lock(&m->mu);
    memset(e, 0, sizeof *e);
    e->kind = CO_MEMO_DRIVING;
    e->status = CO_ST_RESERVED;
    e->until_ms = now_ms() + m->driving_ms;
    snprintf(e->order_id, sizeof e->order_id, "%s", order_id);
    pthread_mutex_unlock(&m->mu);
}

/* A driving entry of order_id: ended (done) or marked confirming. */
static void driving_mark(co_memo *m, const char *order_id, bool done)
{
    co_memo_entry *e;

    if (m == NULL || order_id == NULL)
        return;
    e = &m->slot[slot_of(order_id)];
    pthread_mutex_lock(&m->mu);
    if (e->kind == CO_MEMO_DRIVING && strcmp(e->order_id, order_id) == 0) {
        if (done)
            e->kind = CO_MEMO_NONE;
        else
            e->confirming = true;
    }
    pthread_mutex_unlock(&m->mu);
}

void co_memo_done(co_memo *m, const char *order_id)
{
    driving_mark(m, order_id, true);
}

void co_memo_confirming(co_memo *m, const char *order_id)
{
    driving_mark(m, order_id, false);
}

void co_memo_moved(co_memo *m, const char *order_id, co_state status, const char *intent,
                   const char *event_id)
{
    co_memo_entry *e;
    bool mine;

    if (m == NULL || order_id == NULL)
        return;
    e = &m->slot[slot_of(order_id)];
    pthread_mutex_lock(&m->mu);
    mine = e->kind != CO_MEMO_NONE && strcmp(e->order_id, order_id) == 0;
    if (status == CO_ST_CONFIRMED && intent != NULL && intent[0] != '\0' &&
        fits(intent, sizeof e->intent) && fits(event_id, sizeof e->event_id) &&
        fits(order_id, sizeof e->order_id)) {
        memset(e, 0, sizeof *e);
        e->kind = CO_MEMO_CONFIRMED;
        e->status = status;
        snprintf(e->order_id, sizeof e->order_id, "%s", order_id);
        snprintf(e->intent, sizeof e->intent, "%s", intent);
        snprintf(e->event_id, sizeof e->event_id, "%s", event_id != NULL ? event_id : "");
    } else if (mine && e->kind == CO_MEMO_DRIVING && fits(intent, sizeof e->intent)) {
        e->status = status;
        e->until_ms = now_ms() + m->driving_ms;
        if (intent != NULL && intent[0] != '\0')
            snprintf(e->intent, sizeof e->intent, "%s", intent);
    } else if (mine) {
        e->kind = CO_MEMO_NONE; /* confirmed no more, or nothing we can keep */
    }
    pthread_mutex_unlock(&m->mu);
}

bool co_memo_get(co_memo *m, const char *order_id, co_memo_entry *e)
{
    bool hit;

    if (m == NULL || order_id == NULL || order_id[0] == '\0')
        return false;
    pthread_mutex_lock(&m->mu);
    *e = m->slot[slot_of(order_id)];
    pthread_mutex_unlock(&m->mu);
    hit = e->kind != CO_MEMO_NONE && strcmp(e->order_id, order_id) == 0;
    if (hit && e->kind == CO_MEMO_DRIVING && now_ms() > e->until_ms)
        hit = false; /* stale: the store knows */
    return hit;
}

/* Orders this process saw confirmed, by payment intent: a webhook about one of
 * them that would change nothing is answered without a read of Postgres
 * (states/events.c). A cache: a fixed table where a newer order overwrites
 * an older one in its slot, so a miss only means "ask the database". What it
 * holds cannot go stale for the events it answers: a confirmed order can only
 * move on to refunding and refunded, and the memo answers only event types
 * that do nothing in all three (co_event_settles_confirmed). A move on from
 * confirmed made here forgets the order; one made by another instance leaves
 * it, and the answer's outcome then still says "order confirmed". An event
 * applied in an earlier run than the one that confirmed (a mobile order whose
 * capture came later, by recovery) is answered "ignored" again rather than
 * "duplicate": either way it is acknowledged and changes nothing. */
#ifndef CO_MEMO_H
#define CO_MEMO_H

#include <pthread.h>
#include <stdbool.h>

#define CO_MEMO_SLOTS 16384
#define CO_MEMO_EVENT 72        /* an event id (Stripe's are evt_ and 24 characters) */

typedef struct co_memo {
    pthread_mutex_t mu;
    struct {
        char intent[64];
        char order_id[37];
        char event_id[CO_MEMO_EVENT]; /* the event whose run confirmed it, or "" */
    } slot[CO_MEMO_SLOTS];
} co_memo;

#define CO_MEMO_INIT {.mu = PTHREAD_MUTEX_INITIALIZER}

/* Remembers that order_id, paid by intent, is confirmed, by a run that the
 * event event_id caused (NULL: none; a redelivery of it is a duplicate). */
void co_memo_confirmed(co_memo *m, const char *intent, const char *order_id,
                       const char *event_id);
/* Forgets intent's order (it moved on from confirmed here). */
void co_memo_forget(co_memo *m, const char *intent);
/* True when intent's order is remembered confirmed; its id into order_id and
 * the event that confirmed it into event_id ("" for none). */
bool co_memo_is_confirmed(co_memo *m, const char *intent, char order_id[37],
                          char event_id[CO_MEMO_EVENT]);

#endif

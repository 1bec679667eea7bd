/* What this process knows of its own orders without asking Postgres, so that a
 * webhook about one of them that would change nothing is answered without a
 * read (states/events.c). Two kinds of entry, by order id:
 *
 *   driving    a checkout request of this process is driving the order and
 *              its answer is not stored yet: an event about it is left to the
 *              request, as the store's answer_pending says. Entered after the
 *              first commit, left before the move that stores the answer is
 *              sent and when the request ends, so it never claims more than
 *              the database would; while the move storing the answer goes to
 *              confirmed (it may commit before the memo hears of it), only
 *              for events that do nothing to a confirmed order either. An
 *              entry holds for driving_ms (half the saga lease) after the
 *              request's last move: a request stalled past its lease may
 *              have lost the order to another process's recovery.
 *   confirmed  this process confirmed it. A confirmed order can only move on
 *              to refunding and refunded; the memo answers only event types
 *              that do nothing in all three (co_event_settles_confirmed). A
 *              move on from confirmed made here forgets it; one made by
 *              another instance leaves it, and the answer's outcome then
 *              still says "order confirmed". An event applied in an earlier
 *              run than the one that confirmed (a mobile order captured later,
 *              by recovery) is answered "ignored" again rather than
 *              "duplicate": either way it is acknowledged and changes nothing.
 *
 * A cache: a fixed table where a newer order overwrites an older one in its
 * slot, so a miss only means "ask the database". */
#ifndef CO_MEMO_H
#define CO_MEMO_H

#include "order.h"

#include <pthread.h>
#include <stdbool.h>

#define CO_MEMO_SLOTS 16384
#define CO_MEMO_EVENT 72        /* an event id (Stripe's are evt_ and 24 characters) */

typedef enum { CO_MEMO_NONE, CO_MEMO_DRIVING, CO_MEMO_CONFIRMED } co_memo_kind;

typedef struct {
    co_memo_kind kind;
    co_state status;            /* driving: where the request has taken it */
    bool confirming;            /* driving: the move to confirmed that stores the answer is
                                 * being made (it may have committed) */
    long long until_ms;         /* driving: valid until then (monotonic ms), well inside the
                                 * lease the request holds: past it another process may
                                 * have taken the order over */
    char order_id[37];
    char intent[64];            /* "" until it has one */
    char event_id[CO_MEMO_EVENT]; /* confirmed: the event whose run confirmed it, or "" */
} co_memo_entry;

typedef struct co_memo {
    pthread_mutex_t mu;
    int driving_ms;             /* how long a driving entry holds after the request's last
                                 * move (half its lease); 0: no driving entries */
    co_memo_entry slot[CO_MEMO_SLOTS];
} co_memo;

/* A request of this process drives order_id (reserved, answer pending). */
void co_memo_driving(co_memo *m, const char *order_id);
/* The order's answer is about to be stored, or its request ended: no longer
 * driving (a confirmed entry stays). */
void co_memo_done(co_memo *m, const char *order_id);
/* The answer is about to be stored with a move to confirmed: still driving
 * until the move is made, but only for events that do nothing either way. */
void co_memo_confirming(co_memo *m, const char *order_id);
/* A move of this process was made: order_id is now in status, paid by intent
 * ("" or NULL: none yet), by a run that event_id caused (NULL: none). Keeps a
 * driving entry up to date, makes a confirmed one, forgets one that left
 * confirmed. */
void co_memo_moved(co_memo *m, const char *order_id, co_state status, const char *intent,
                   const char *event_id);
/* The entry of order_id into *e; false when there is none. */
bool co_memo_get(co_memo *m, const char *order_id, co_memo_entry *e);

#endif

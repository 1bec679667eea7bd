/* The event table of states/events.c, as a pure function the unit tests read. */
#ifndef CO_EVENTS_H
#define CO_EVENTS_H

#include "steps.h"

typedef enum {
    CO_EV_UNHANDLED_TYPE,     /* not an event type we act on: recorded, ignored */
    CO_EV_IGNORE,             /* the order is past it or not there yet: recorded, ignored */
    CO_EV_IN_PROGRESS,        /* its checkout request is driving it: left to the request */
    CO_EV_DRIVE_CONFIRM,      /* look at the intent, capture if authorized */
    CO_EV_LATE_AUTHORIZATION, /* expired but paid: take the stock again, or void */
    CO_EV_CONFIRM_IF_CAPTURED,/* the provider captured: confirm without a call of ours */
    CO_EV_VOID_UNLESS_PAID,   /* payment failed: void, unless authorized since */
    CO_EV_CANCEL,             /* canceled at the provider: void and release */
    CO_EV_REFUND_IF_FULL,     /* refunded at the provider: refunding, if in full */
} co_event_action;

/* What an event of this type does to an order in state st (answer_pending:
 * its checkout has not been answered yet). */
co_event_action co_event_decide(const char *type, co_state st, bool answer_pending);
/* True when an event of this type does nothing to a confirmed order, nor to one
 * refunding or refunded (where a confirmed order can go next): such an event
 * about an order the memo (memo.h) holds is answered without the store. */
bool co_event_settles_confirmed(const char *type);

#endif

/* The checkout saga: what handlers and background jobs call. It decides;
 * it reaches Postgres and the payment provider only through the two ports it
 * owns (store_port.h, pay_port.h), and knows nothing of HTTP.
 *
 * It never holds a row lock across a call to the provider: every step is
 * "call the provider, then make one transition durable in one round trip".
 * Each provider call carries an Idempotency-Key derived from the order and the
 * step ("<order id>:<step>"), so a step that is run again after a crash or a
 * lost answer never charges twice. */
#ifndef CO_SAGA_H
#define CO_SAGA_H

#include "order.h"
#include "pay_port.h"
#include "store_port.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* What the saga runs with: its ports and its identity. Set up once per
 * worker; the saga only reads it, and keeps no state of a request in it. */
typedef struct {
    co_store_port store;
    co_pay_port pay;
    const char *owner;      /* lease owner: this process */
    int lease_seconds;
    const char *crash_at;   /* test-only: SIGKILL ourselves at this named step */
    struct co_memo *memo;   /* orders this process confirmed (memo.h), shared; NULL: none */
} co_saga;

/* ------------------------------------------------------------- checkout */

typedef enum {
    CO_CHECKOUT_ANSWERED,    /* answer is the checkout's answer (replayed: given before) */
    CO_CHECKOUT_REUSED,      /* the key was used with another body */
    CO_CHECKOUT_IN_PROGRESS, /* the key's first request is still running (order_id) */
    CO_CHECKOUT_UNDECIDED,   /* the order (order_id) could not be decided now; recovery
                              * finishes it and a retry with the key gets the answer */
    CO_CHECKOUT_REFUSED,     /* the cart: refusal says why, nothing was written */
    CO_CHECKOUT_LIMITED,     /* the shopper holds too many unpaid units (retry_after s) */
    CO_CHECKOUT_UNAVAILABLE, /* the store failed: rc says how, nothing was decided */
} co_checkout_kind;

typedef struct {
    co_checkout_kind kind;
    co_answer answer;       /* ANSWERED; co_checkout_result_clear frees it */
    bool replayed;
    char order_id[37];
    co_state status;        /* the order's state when answered, CO_ST_NONE if unknown */
    bool out_of_stock;      /* answered now: the cart could not be reserved */
    int retry_after;        /* LIMITED: seconds until it may work; 0 when unknown */
    co_store_refusal refusal;
    co_store_rc rc;
} co_checkout_result;

/* POST /v1/checkout after parsing: idempotency, order and reservation in one
 * round trip, then the saga driven until it answers. a->order_id is the id a
 * new order gets. */
void co_saga_checkout(const co_saga *s, const co_checkout_args *a, co_checkout_result *out);
void co_checkout_result_clear(co_checkout_result *r);

/* ------------------------------------------------- the shopper's order moves */

typedef enum {
    CO_ORDER_DONE,          /* done, or nothing to do: *o is the order now */
    CO_ORDER_NOT_FOUND,     /* no such order, or not the user's */
    CO_ORDER_UNAVAILABLE,   /* the store cannot be reached */
    CO_ORDER_RUNNING,       /* its checkout is still running: not yet */
    CO_ORDER_ENDED,         /* it has ended in a way this cannot change */
    CO_ORDER_UNPAID,        /* confirm: the payment is not authorized yet */
    CO_ORDER_LEASED,        /* drive: another process holds its lease */
    CO_ORDER_UNRESOLVED,    /* resolve: no rule applies (why says the provider's state) */
} co_order_result;

/* Cancels the order: voids or refunds and releases. user_id NULL: any owner. */
co_order_result co_saga_cancel(const co_saga *s, const char *order_id, const char *user_id,
                               co_order *o);
/* The shopper's app says the payment is done: look, and capture if it is. */
co_order_result co_saga_confirm(const co_saga *s, const char *order_id, const char *user_id,
                                co_order *o);

/* ------------------------------------------------ operators (states/orders.c) */

/* Runs the order's next step now, as the recovery sweep would: leases it
 * (CO_ORDER_LEASED when another process's lease has not lapsed) and drives it
 * on. An order with nothing to drive (ended, pending, unpaid and not expired)
 * is left as it is: CO_ORDER_DONE with *o as it is. */
co_order_result co_saga_drive_now(const co_saga *s, const char *order_id, co_order *o);

/* Resolves a stuck compensation (voiding or refunding) by the provider's own
 * answer about its intent, recording the rule and the operator's reason in
 * the history:
 *   the provider has no such intent   -> the compensated terminal state, stock released
 *   the cancel or refund is done there -> the state that matches, stock released
 *   money still held, a void or refund possible -> driven (voiding, refunding)
 *   anything else -> CO_ORDER_UNRESOLVED, nothing changed, why (why_n bytes) says
 *                    what the provider answered.
 * CO_ORDER_ENDED for an order that has ended; CO_ORDER_UNAVAILABLE when the
 * store or the provider cannot be reached (nothing changed). */
co_order_result co_saga_resolve(const co_saga *s, const char *order_id, const char *reason,
                                co_order *o, char *why, size_t why_n);

/* ---------------------------------------------------------- recovery */

/* Leases up to max (at most 16) stalled orders and drives each on. Returns
 * how many it drove; stops early when *stop becomes true. */
int co_saga_recover(const co_saga *s, int max, const atomic_bool *stop);

/* ------------------------------------------- provider events (states/events.c) */

/* A payment provider event as the saga needs it; webhooks/stripe.c fills it
 * from a body whose signature it verified. Strings are borrowed. */
typedef struct {
    const char *id;             /* evt_... */
    const char *type;           /* e.g. payment_intent.succeeded */
    const char *payment_intent; /* the PaymentIntent it is about, or NULL */
    const char *order_id;       /* data.object.metadata.order_id when a uuid, or NULL */
    const char *decline_code;   /* last_payment_error.decline_code (or .code), or NULL */
} co_pay_event;
/* (No amounts: what moved money is always asked of the provider.) */

typedef enum {
    CO_EVENT_APPLIED,   /* it moved the order; recorded in that move's transaction */
    CO_EVENT_IGNORED,   /* it changes nothing (unknown intent or type, or the order is past
                         * it, or it raced another move): recorded as seen */
    CO_EVENT_DUPLICATE, /* this event id was handled before: nothing done */
    CO_EVENT_RETRY,     /* it could not take effect now (database or provider unreachable):
                         * nothing recorded, so a redelivery is handled afresh */
} co_event_result;

typedef struct {
    char order_id[37];  /* "" when the event names no order of ours */
    co_state status;    /* the order's status afterwards, CO_ST_NONE without one */
    char outcome[96];   /* what was recorded: "applied: confirmed", "ignored: order expired" */
} co_event_outcome;

/* Applies a provider event at most once: finds its order (metadata, else the
 * PaymentIntent), lets the order's state decide (the table at the top of
 * states/events.c), and moves it only through the transition function, so the
 * event is recorded by the first move it causes (or, when it moves nothing,
 * on its own). */
co_event_result co_saga_event(const co_saga *s, const co_pay_event *ev, co_event_outcome *out);

#endif

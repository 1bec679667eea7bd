/* Reconciliation with the payment provider: find where our orders and the
 * provider's PaymentIntents disagree, repair what the rules decide, report the
 * rest (states/reconcile.c has the rules). Reaches Postgres and the provider
 * through the saga's ports only; bin/checkoutd reconcile and the server's
 * periodic job (src/reconcile.c) call it. */
#ifndef CO_RECONCILE_H
#define CO_RECONCILE_H

#include "saga.h"

typedef struct {
    int overlap_seconds;    /* list from the watermark minus this (intents change after
                             * creation, clocks differ); 600 */
    int min_idle_seconds;   /* an order waiting on the provider is looked at once it has not
                             * moved for this long; 60 */
    int lease_seconds;      /* the pass's hold on the watermark; a crashed pass is taken over
                             * after it; 900 */
    const atomic_bool *stop; /* the pass ends early (incomplete) once true; NULL: never */
} co_recon_params;
#define CO_RECON_PARAMS_DEFAULT {.overlap_seconds = 600, .min_idle_seconds = 60, \
                                 .lease_seconds = 900}

typedef enum {
    CO_RECON_NOTHING = 0,   /* they agree, or the saga is on it: no finding */
    CO_RECON_CANCEL,        /* cancel the authorization */
    CO_RECON_REFUND,        /* refund what is captured and not refunded */
    CO_RECON_DRIVE,         /* the provider is ahead of the order: move the order on */
    CO_RECON_REPORT,        /* disagreement no rule decides: for an operator, nothing changed */
} co_recon_action;

/* "cancel", "refund", "drive", "report" ("none" for NOTHING). Static strings. */
const char *co_recon_action_name(co_recon_action a);

/* What one intent and its order (if any) look like to the rules. */
typedef struct {
    const co_payment *intent;   /* status, amount, currency, order_id (metadata) */
    long long refunded;         /* succeeded: what has been refunded of it */
    const co_recon_order *order; /* NULL: no order has it, none is named by its metadata */
    int min_idle_seconds;
} co_recon_case;

typedef struct {
    co_recon_action action;
    const char *finding;        /* static snake_case name; NULL with NOTHING */
} co_recon_decision;

/* The rules (pure: no port is called). */
co_recon_decision co_recon_decide(const co_recon_case *c);

/* One finding of a pass and what was done about it. */
typedef struct {
    const char *finding;
    co_recon_action action;
    char intent[64];
    char order_id[37];          /* "" without an order */
    co_state before, after;     /* the order's state before and after; CO_ST_NONE without */
    char result[160];           /* what happened, e.g. "canceled", "order refunding -> refunded" */
    bool failed;                /* not carried out now (the provider or the store could not
                                 * be reached): the next pass tries again */
} co_recon_row;

typedef struct {
    char run_id[37];
    long long listed_since;     /* intents created at or after this were listed */
    long long watermark;        /* the watermark afterwards */
    int intents, orders;        /* examined: listed intents, waiting orders */
    int acted, reported, failed;
    char holder[96];            /* CO_RECON_BUSY: who holds the pass */
} co_recon_summary;

typedef enum {
    CO_RECON_DONE,              /* a whole pass (rows may still have failed) */
    CO_RECON_BUSY,              /* another pass is running (summary.holder): nothing done */
    CO_RECON_ERROR,             /* the store or the provider's list could not be read, or the
                                 * pass was stopped early: the watermark was not moved */
} co_recon_status;

/* One pass: every finding goes to sink (may be NULL) as it is settled, and is
 * recorded (reconcile_log, the order's history). */
co_recon_status co_saga_reconcile(const co_saga *s, const co_recon_params *p,
                                  void (*sink)(void *arg, const co_recon_row *row), void *arg,
                                  co_recon_summary *sum);

#endif

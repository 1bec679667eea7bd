/* Inside the saga: one run, the transition function, the drive loop and the
 * steps (one file per state). Only states/ includes this. */
#ifndef CO_STEPS_H
#define CO_STEPS_H

#include "saga.h"

/* One run of the saga (a request, an event, a recovery pass), on the stack of
 * the entry function that started it. */
typedef struct {
    const co_saga *saga;
    /* The provider event that caused this run: the first transition records
     * it in its own transaction and clears these. */
    const char *event_id;
    const char *event_type;
    const char *cause_id;   /* the same event id, kept for the whole run (the memo's) */
    /* An operator's resolve: the first move of this run adds it to its last
     * hop's history reason, and clears it. */
    const char *note;
    co_answer answer;       /* the checkout's answer, when a move of this run stored it */
} co_run;

/* A run of s, caused by nothing in particular. co_run_end frees what it holds. */
co_run co_run_begin(const co_saga *s);
void co_run_end(co_run *r);

/* What a step did. */
typedef enum {
    CO_STEP_MOVED,    /* a transition was made: drive on */
    CO_STEP_WAIT,     /* nothing to do now (waiting for the shopper, or terminal) */
    CO_STEP_RETRY,    /* the provider or the DB is unreachable: recovery retries later */
    CO_STEP_LOST,     /* someone else moved the order first: leave it to them */
    CO_STEP_SHORT,    /* a transition with take=true found too little stock: nothing changed */
} co_step;

/* The one function that moves an order. Checks the move is legal (aborts on a
 * move the state machine does not have: that is a bug), writes it with its
 * history row(s) in one transaction, stores the checkout's first answer if the
 * new state decides it, and updates *o. CO_STEP_LOST when the order had moved. */
co_step co_saga_transition(co_run *r, co_order *o, co_state to, const co_change *ch);

/* The state machine's edges (states/transition.c). */
bool co_saga_legal(co_state from, co_state to);

/* How the drive was started. */
typedef enum {
    CO_DRIVE_FORWARD,  /* run steps until the order waits or ends */
    CO_DRIVE_CONFIRM,  /* also: the shopper (or a webhook) says an awaiting payment is done */
    CO_DRIVE_CANCEL,   /* the shopper cancels */
} co_drive_mode;

/* Drives an order until it waits, ends, or cannot go on now. Returns the last
 * step's result; *o holds the order as it was left. */
co_step co_saga_drive(co_run *r, co_order *o, co_drive_mode mode);

/* Test-only crash points: SIGKILL this process when name matches crash_at. */
void co_saga_crash_point(const co_run *r, const char *name);

/* The steps, one file each. Each makes at most one provider call and one
 * transition. */
co_step co_step_reserved(co_run *r, co_order *o);
co_step co_step_awaiting_payment(co_run *r, co_order *o, co_drive_mode mode);
co_step co_step_authorized(co_run *r, co_order *o);
co_step co_step_captured(co_run *r, co_order *o);
co_step co_step_voiding(co_run *r, co_order *o);
co_step co_step_refunding(co_run *r, co_order *o);
co_step co_step_confirmed(co_run *r, co_order *o, co_drive_mode mode);

/* The create call of the order's flow (authorize, or create for the app), with
 * its fixed idempotency key; voiding repeats it to learn a lost answer. */
co_payment_result co_saga_create_intent(co_run *r, const co_order *o, co_payment *res);

/* Starts compensation before capture: -> voiding, ending in failed with code
 * (and the provider's decline code and intent from res, if any). via as in
 * co_change. */
co_step co_saga_void(co_run *r, co_order *o, const char *code, const co_payment *res,
                     co_state via);

/* Captures the authorized intent o->payment_intent and confirms, or starts
 * voiding. via is CO_ST_AUTHORIZED when the authorization has not been
 * committed on its own (the server flow's second commit carries both). */
co_step co_saga_capture(co_run *r, co_order *o, co_state via);

/* Builds "<order id>:<step>" into out (80 bytes). */
void co_saga_key(const co_order *o, const char *step, char out[80]);

#endif

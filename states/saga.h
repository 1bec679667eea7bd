/* The checkout saga: its states, the one function that moves an order between
 * them, and the steps that drive an order forward or compensate it.
 *
 * The saga reaches Postgres only through co_store.h and the payment provider
 * only through co_pay_port (below), and never holds a row lock across a call
 * to the provider: every step is "call the provider, then make one transition
 * durable in one round trip". Each provider call carries an Idempotency-Key
 * derived from the order and the step ("<order id>:<step>"), so a step that is
 * run again after a crash or a lost answer never charges twice. */
#ifndef CO_SAGA_H
#define CO_SAGA_H

#include "co_db.h"
#include "co_stripe.h"

#include <stdbool.h>

typedef enum {
    CO_ST_NONE = -1,
    CO_ST_PENDING,          /* order and lines written; no stock held (never left so by the saga) */
    CO_ST_RESERVED,         /* stock held; no payment call has been answered yet */
    CO_ST_AWAITING_PAYMENT, /* mobile flow: PaymentIntent created, client_secret handed out;
                             * stock held until reservation_expires_at */
    CO_ST_AUTHORIZED,       /* PaymentIntent requires_capture for the amount; stock held */
    CO_ST_CAPTURED,         /* money captured; stock held; confirmation is a DB step only */
    CO_ST_CONFIRMED,        /* terminal: one captured payment of the amount; stock sold */
    CO_ST_VOIDING,          /* compensating, nothing captured (as far as we know): cancel the
                             * PaymentIntent if there is one, release, end in compensate_to */
    CO_ST_REFUNDING,        /* compensating after capture: refund, release, end in refunded */
    CO_ST_FAILED,           /* terminal: no stock held, no money held; failure_code says why */
    CO_ST_EXPIRED,          /* terminal: the unpaid reservation lapsed */
    CO_ST_CANCELLED,        /* terminal: cancelled before capture */
    CO_ST_REFUNDED,         /* terminal: captured, then refunded in full */
} co_state;

const char *co_state_name(co_state st);
co_state co_state_parse(const char *name);
bool co_state_terminal(co_state st);

/* An order as the saga sees it (loaded by co_store_load_order). */
typedef struct {
    char id[37];
    char user_id[37];
    co_state status;
    bool mobile;
    char payment_method[256];
    long long amount;
    char currency[8];
    char payment_intent[64];
    char client_secret[160];
    char failure_code[64];
    char decline_code[64];
    char failure_detail[64];  /* out_of_stock: the short item */
    co_state compensate_to;
    char expires_at[32];    /* ISO 8601 UTC, "" when none */
    bool expired;           /* reservation_expires_at has passed */
    bool stock_held;
    bool answer_pending;    /* its checkout has not been answered yet */
} co_order;

/* The payment provider as the saga needs it; tests may supply their own. */
typedef struct {
    void *impl;
    co_pay_status (*create)(void *impl, const co_pi_create_params *p, const char *key,
                            co_pay_result *out);
    co_pay_status (*retrieve)(void *impl, const char *pi, co_pay_result *out);
    co_pay_status (*capture)(void *impl, const char *pi, const char *key, co_pay_result *out);
    co_pay_status (*cancel)(void *impl, const char *pi, const char *key, co_pay_result *out);
    co_pay_status (*refund)(void *impl, const char *pi, const char *key, co_pay_result *out);
} co_pay_port;

/* The provider port backed by the libcurl client. */
co_pay_port co_pay_port_stripe(co_stripe *client);

typedef struct {
    co_db *db;
    co_pay_port pay;
    const char *owner;      /* lease owner: this process */
    int lease_seconds;
    const char *crash_at;   /* test-only: SIGKILL ourselves at this named step */
    /* In: a provider event that caused this drive (webhooks). The next
     * transition records it in the same transaction and then clears these;
     * a transition of an event applied before answers CO_STEP_LOST. */
    const char *event_id;
    const char *event_type;
    /* Out: the checkout's first answer, when a transition of this run stored it. */
    unsigned answer_status;
    char *answer_body;      /* malloc'd; co_saga_reset frees */
} co_saga;

void co_saga_reset(co_saga *s);

/* What a step did. */
typedef enum {
    CO_STEP_MOVED,    /* a transition was made: drive on */
    CO_STEP_WAIT,     /* nothing to do now (waiting for the shopper, or terminal) */
    CO_STEP_RETRY,    /* the provider or the DB is unreachable: recovery retries later */
    CO_STEP_LOST,     /* someone else moved the order first: leave it to them */
    CO_STEP_SHORT,    /* a transition with take=true found too little stock: nothing changed */
} co_step;

/* The changes a transition makes beside the status. */
typedef struct {
    const char *reason;         /* history row reason, e.g. a failure code */
    bool release;               /* give the stock back in the same transaction */
    bool take;                  /* take the stock again (late authorization) */
    const char *payment_intent;
    const char *client_secret;
    const char *failure_code;
    const char *decline_code;
    co_state compensate_to;     /* for voiding/refunding; CO_ST_NONE otherwise */
    co_state via;               /* a state passed through on the way, with no commit
                                 * of its own (history still shows it); CO_ST_NONE */
} co_change;
#define CO_CHANGE_INIT {.compensate_to = CO_ST_NONE, .via = CO_ST_NONE}

/* The one function that moves an order. Checks the move is legal (aborts on a
 * move the state machine does not have: that is a bug), writes it with its
 * history row(s) in one transaction, stores the checkout's first answer if the
 * new state decides it, and updates *o. CO_STEP_LOST when the order had moved. */
co_step co_saga_transition(co_saga *s, co_order *o, co_state to, const co_change *ch);

/* The checkout's answer for an order in a deciding state: status and a
 * malloc'd JSON body; false when the state decides nothing. */
bool co_saga_answer(const co_order *o, unsigned *status, char **body);

/* How the drive was started. */
typedef enum {
    CO_DRIVE_FORWARD,  /* run steps until the order waits or ends */
    CO_DRIVE_CONFIRM,  /* also: the shopper (or a webhook) says an awaiting payment is done */
    CO_DRIVE_CANCEL,   /* the shopper cancels */
} co_drive_mode;

/* Drives an order until it waits, ends, or cannot go on now. Returns the last
 * step's result; *o holds the order as it was left. */
co_step co_saga_drive(co_saga *s, co_order *o, co_drive_mode mode);

/* Test-only crash points: SIGKILL this process when name matches crash_at. */
void co_saga_crash_point(const co_saga *s, const char *name);

/* The steps, one file each in states/. Each makes at most one provider call
 * and one transition. */
co_step co_step_reserved(co_saga *s, co_order *o);
co_step co_step_awaiting_payment(co_saga *s, co_order *o, co_drive_mode mode);
co_step co_step_authorized(co_saga *s, co_order *o);
co_step co_step_captured(co_saga *s, co_order *o);
co_step co_step_voiding(co_saga *s, co_order *o);
co_step co_step_refunding(co_saga *s, co_order *o);
co_step co_step_confirmed(co_saga *s, co_order *o, co_drive_mode mode);

/* The create call of the order's flow (authorize, or create for the app), with
 * its fixed idempotency key; voiding repeats it to learn a lost answer. */
co_pay_status co_saga_create_intent(co_saga *s, const co_order *o, co_pay_result *res);

/* Starts compensation before capture: -> voiding, ending in failed with code
 * (and the provider's decline code and PaymentIntent id from res, if any).
 * via as in co_change. */
co_step co_saga_void(co_saga *s, co_order *o, const char *code, const co_pay_result *res,
                     co_state via);

/* Captures the authorized PaymentIntent o->payment_intent and confirms, or
 * starts voiding. via is CO_ST_AUTHORIZED when the authorization has not been
 * committed on its own (the server flow's second commit carries both). */
co_step co_saga_capture(co_saga *s, co_order *o, co_state via);

/* True when a provider call failed because another process is making the
 * same keyed call right now (409 idempotency_key_in_use after the client's
 * retries): someone else is driving this order, so do not compensate. */
bool co_saga_contended(co_pay_status st, const co_pay_result *res);

/* Builds "<order id>:<step>" into out (80 bytes). */
void co_saga_key(const co_order *o, const char *step, char out[80]);

/* ------------------------------------------- provider events (states/events.c) */

/* A payment provider event as the saga needs it; webhooks/stripe.c fills it
 * from a body whose signature it verified. Strings are borrowed. */
typedef struct {
    const char *id;             /* evt_... */
    const char *type;           /* e.g. payment_intent.succeeded */
    const char *payment_intent; /* the PaymentIntent it is about, or NULL */
    const char *order_id;       /* data.object.metadata.order_id when a uuid, or NULL */
    const char *decline_code;   /* last_payment_error.decline_code (or .code), or NULL */
    long long amount_refunded;  /* charge.refunded: data.object.amount_refunded */
} co_pay_event;

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
 * PaymentIntent), lets the order's state decide, and moves it only through
 * co_saga_transition / co_saga_drive with s->event_id set, so the event is
 * recorded by the first move it causes (or, when it moves nothing, on its
 * own). The table of what each event does is at the top of states/events.c. */
co_event_result co_saga_event(co_saga *s, const co_pay_event *ev, co_event_outcome *out);

#endif

/* An order as the saga sees it: its states (what holds in each), the order
 * record, and the changes a transition makes. Pure data and names: nothing
 * here touches Postgres, the provider or HTTP. */
#ifndef CO_ORDER_H
#define CO_ORDER_H

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

/* "reserved", "awaiting_payment", ...; "none" for CO_ST_NONE. Static strings. */
const char *co_state_name(co_state st);
/* The state named name, or CO_ST_NONE (also for NULL). */
co_state co_state_parse(const char *name);
bool co_state_terminal(co_state st);

/* An order (loaded by the store port's load_order). */
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

/* True when o's state decides its checkout's answer (confirmed, awaiting
 * payment, or failed / voiding towards failed): the answer is then stored
 * with the move that reached it. */
bool co_order_answer_decided(const co_order *o);

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

/* The failure codes an order can end with (orders.failure_code); the API
 * answers each with the error of the same name. */
#define CO_FAIL_OUT_OF_STOCK "out_of_stock"
#define CO_FAIL_DECLINED "payment_declined"
#define CO_FAIL_AUTH_REQUIRED "authentication_required"
#define CO_FAIL_UNAVAILABLE "payment_provider_unavailable"
#define CO_FAIL_PROVIDER "payment_provider_error"

#endif

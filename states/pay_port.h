/* The payment port: the provider as the saga needs it. The saga owns this
 * interface; src/pay_stripe.c implements it on the libcurl Stripe client, and
 * tests may supply their own. Every call that moves money carries the
 * caller's Idempotency-Key, so repeating a call never charges twice. */
#ifndef CO_PAY_PORT_H
#define CO_PAY_PORT_H

#include <stdbool.h>

typedef enum {
    CO_PAYMENT_OK = 0,        /* done; the intent is filled */
    CO_PAYMENT_DECLINED,      /* the card was refused: code/decline_code set */
    CO_PAYMENT_WRONG_STATE,   /* the intent's state does not allow this; status is its state */
    CO_PAYMENT_NOT_FOUND,     /* the provider has no such intent */
    CO_PAYMENT_ALREADY_REFUNDED,
    CO_PAYMENT_REFUSED,       /* any other refusal: repeating it will not help */
    CO_PAYMENT_UNKNOWN,       /* no answer: the effect may or may not have happened */
    CO_PAYMENT_IN_USE,        /* the same keyed call is running elsewhere right now: another
                               * process is driving this order, leave it to them */
} co_payment_result;

/* Outcome unknown (no answer, or the call is being made elsewhere): never
 * read as "not paid". */
static inline bool co_payment_unknown(co_payment_result r)
{
    return r == CO_PAYMENT_UNKNOWN || r == CO_PAYMENT_IN_USE;
}

/* A PaymentIntent's state at the provider. */
typedef enum {
    CO_INTENT_OTHER = 0,      /* unknown or not readable */
    CO_INTENT_REQUIRES_PAYMENT_METHOD,
    CO_INTENT_REQUIRES_CONFIRMATION,
    CO_INTENT_REQUIRES_ACTION, /* the shopper must authenticate (3-D Secure) */
    CO_INTENT_PROCESSING,
    CO_INTENT_REQUIRES_CAPTURE, /* authorized: the amount is held */
    CO_INTENT_SUCCEEDED,      /* captured */
    CO_INTENT_CANCELED,
} co_intent_status;

/* What a call learnt. Strings are NUL-terminated, "" when absent. */
typedef struct {
    co_payment_result result;
    co_intent_status status;  /* of the intent the call was about, when the answer had it */
    char intent[64];          /* pi_... */
    char client_secret[160];  /* secret: for the shopper's app only, never logged */
    char code[64];            /* the provider's error code, e.g. card_declined */
    char decline_code[64];    /* e.g. insufficient_funds */
    char message[256];        /* the provider's message, or why there was none */
    long long amount_refunded; /* refunded(): what the provider has given back so far */
    long long amount;         /* the intent's amount (minor units), 0 when the answer had none */
    char currency[8];
    char order_id[64];        /* its metadata[order_id], "" when none */
    long long created;        /* Unix seconds */
} co_payment;

/* A PaymentIntent to create for an order (manual capture always). */
typedef struct {
    long long amount;
    const char *currency;
    const char *payment_method; /* NULL: the shopper's app confirms it (mobile flow) */
    bool confirm;               /* authorize now (server flow) */
    const char *order_id;       /* recorded with the provider (metadata[order_id]) */
} co_intent_params;

/* Each call resets *out, fills it and returns out->result. */
typedef struct {
    void *impl;
    co_payment_result (*create)(void *impl, const co_intent_params *p, const char *key,
                                co_payment *out);
    co_payment_result (*retrieve)(void *impl, const char *intent, co_payment *out);
    co_payment_result (*capture)(void *impl, const char *intent, const char *key,
                                 co_payment *out);
    co_payment_result (*cancel)(void *impl, const char *intent, const char *key,
                                co_payment *out);
    co_payment_result (*refund)(void *impl, const char *intent, const char *key,
                                co_payment *out);
    /* How much of the intent's captured money the provider has refunded
     * (amount_refunded), whoever refunded it; status is the intent's. */
    co_payment_result (*refunded)(void *impl, const char *intent, co_payment *out);
    /* A page of the intents created at or after created_gte, newest first,
     * older than starting_after (NULL: from the newest): up to max into rows
     * (each as retrieve fills it), *n of them, *more when older ones remain.
     * The result is the call's; rows are only meaningful when it is OK. */
    co_payment_result (*list)(void *impl, long long created_gte, const char *starting_after,
                              co_payment *rows, int max, int *n, bool *more);
} co_pay_port;

/* "ok", "declined", ... and "requires_capture", ... for logs. Static strings. */
const char *co_payment_result_name(co_payment_result r);
const char *co_intent_status_name(co_intent_status st);

#endif

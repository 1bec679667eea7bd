/* The payment client: PaymentIntents and Refunds on a Stripe-compatible API over
 * libcurl (the real Stripe, or mocks/stripe/ in tests and the demo).
 *
 * One co_stripe per worker thread: it owns a CURL easy handle so the TCP
 * connection to the provider is kept alive and reused between calls. A handle
 * must not be used by two threads at once; different handles are independent.
 * curl_global_init() is the program's job (main, before any thread starts).
 *
 * Every call is synchronous and blocks for at most
 *   (max_retries + 1) * timeout_ms + the backoff sleeps in between.
 * Every POST carries the caller's Idempotency-Key; a retry resends the SAME key
 * and the SAME body, so a retry after a lost answer never charges twice.
 *
 * What the statuses mean for the caller (the saga):
 *   CO_PAY_OK                 the provider answered 2xx; `pi` (or the refund) is filled.
 *   CO_PAY_DECLINED .. REJECTED  the provider answered and refused: the outcome is
 *                             known, retrying the same request will not change it.
 *   CO_PAY_UNAVAILABLE        the outcome is UNKNOWN (no answer, 5xx, 409, 429,
 *                             or an unreadable 2xx): the effect may or may not have
 *                             happened. Retry later with the same Idempotency-Key,
 *                             or retrieve the PaymentIntent, before compensating.
 * The secret key and client secrets are never logged. */
#ifndef CO_STRIPE_H
#define CO_STRIPE_H

#include <stdbool.h>

#include "co_errors.h"

typedef struct co_stripe co_stripe;

/* The Stripe API version every call is made in (the Stripe-Version header), the one
 * the official stripe-node 16.12.0 pins and whose fields we read (latest_charge,
 * from 2022-11-15 on). Without the header a real account answers in its own default
 * version, whatever that is. mocks/stripe/ answers in the same version. */
#define CO_STRIPE_API_VERSION "2024-06-20"

typedef struct {
    const char *api_base;       /* e.g. http://127.0.0.1:12111; a trailing '/' is dropped */
    const char *secret_key;     /* sk_test_...; sent as Authorization: Bearer; never logged */
    const char *stripe_version; /* Stripe-Version header; NULL or "": CO_STRIPE_API_VERSION */
    long connect_timeout_ms;    /* <=0: 2000 */
    long timeout_ms;            /* whole transfer of one attempt; <=0: 10000 */
    int max_retries;            /* <0: 3 (so up to 4 attempts); 0 disables retries */
    long backoff_initial_ms;    /* <=0: 250; doubles per retry, capped, with jitter */
    long backoff_max_ms;        /* <=0: 2000; also caps Retry-After */
} co_stripe_config;

/* Copies every string of cfg (the caller may free them after). NULL on OOM, or
 * when api_base or secret_key is NULL/empty, or when curl_easy_init fails.
 * Free with co_stripe_free (which wipes the copy of the key). */
co_stripe *co_stripe_new(const co_stripe_config *cfg);
void co_stripe_free(co_stripe *s);

typedef enum {
    CO_PAY_OK = 0,
    CO_PAY_DECLINED,         /* card_error (402): code/decline_code set; pi from the
                              * error's payment_intent when present */
    CO_PAY_UNEXPECTED_STATE, /* 400 payment_intent_unexpected_state; pi from the embedded object */
    CO_PAY_NOT_FOUND,        /* 404 resource_missing */
    CO_PAY_ALREADY_REFUNDED, /* 400 charge_already_refunded */
    CO_PAY_REJECTED,         /* any other 4xx (incl. 401, idempotency_error): not retried */
    CO_PAY_UNAVAILABLE,      /* outcome unknown: connection errors, timeouts, 5xx, 409, 429
                              * (after all retries), or a 2xx body we could not read */
} co_pay_status;

/* Strings are NUL-terminated and truncated to fit; "" when absent. */
typedef struct {
    char id[64];     /* pi_... */
    char status[32]; /* Stripe status string, e.g. requires_capture */
    long long amount, amount_capturable, amount_received;
    char currency[8];
    char client_secret[160]; /* secret: hand to the shopper's app, never log */
    char latest_charge[64];
    char payment_method[64];
    char order_id[64];         /* metadata[order_id] */
    char next_action_type[48]; /* "" unless requires_action */
    long long created;         /* Unix seconds */
} co_payment_intent;

typedef struct {
    co_pay_status status;
    long http_status;      /* last HTTP status, 0 if none */
    int attempts;          /* how many HTTP attempts were made */
    char code[64];         /* Stripe error.code, e.g. card_declined */
    char decline_code[64]; /* Stripe error.decline_code, e.g. insufficient_funds */
    char message[256];     /* Stripe error.message (safe to show), or our transport reason */
    char type[48];         /* Stripe error.type */
    char request_id[64];   /* Request-Id response header, for support tickets */
    bool replayed;         /* Idempotent-Replayed: true was seen on the final answer */
    co_payment_intent pi;  /* filled on success, and from error bodies that embed one */
    char refund_id[64];    /* for refunds */
    char refund_status[32];
    long long refund_amount;
    char charge_id[64];    /* for charges */
    long long charge_amount, charge_amount_refunded;
} co_pay_result;

typedef struct {
    long long amount;           /* minor units, > 0 */
    const char *currency;       /* ISO code, lower or upper case */
    const char *payment_method; /* NULL: create without a method (mobile flow) */
    bool confirm;               /* confirm=true (server flow) */
    bool manual_capture;        /* capture_method=manual */
    const char *order_id;       /* -> metadata[order_id] (always sent) */
    const char *description;    /* optional */
} co_pi_create_params;

/* All calls reset *out, fill it, and return out->status. idempotency_key must not be
 * NULL for the POSTs (asserted); a key with control characters or longer than 255
 * bytes is refused locally (CO_PAY_REJECTED, attempts 0). */

/* POST /v1/payment_intents. Always sends payment_method_types[0]=card (see .c). */
co_pay_status co_stripe_create_intent(co_stripe *s, const co_pi_create_params *p,
                                      const char *idempotency_key, co_pay_result *out);
/* GET /v1/payment_intents/{id}; GETs are retried like POSTs (they are safe). */
co_pay_status co_stripe_retrieve_intent(co_stripe *s, const char *pi_id, co_pay_result *out);
/* GET /v1/charges/{id}: fills charge_id, charge_amount, charge_amount_refunded
 * and pi.id (the charge's payment_intent). */
co_pay_status co_stripe_retrieve_charge(co_stripe *s, const char *charge_id, co_pay_result *out);
/* POST /v1/payment_intents/{id}/confirm; payment_method may be NULL (use the attached one). */
co_pay_status co_stripe_confirm_intent(co_stripe *s, const char *pi_id,
                                       const char *payment_method,
                                       const char *idempotency_key, co_pay_result *out);
/* POST /v1/payment_intents/{id}/capture; amount_to_capture < 0: all of it. */
co_pay_status co_stripe_capture(co_stripe *s, const char *pi_id, long long amount_to_capture,
                                const char *idempotency_key, co_pay_result *out);
/* POST /v1/payment_intents/{id}/cancel (voids an uncaptured authorization). */
co_pay_status co_stripe_cancel(co_stripe *s, const char *pi_id, const char *idempotency_key,
                               co_pay_result *out);
/* POST /v1/refunds with payment_intent=pi_id; amount < 0: all that is left.
 * Fills refund_id/refund_status/refund_amount, and pi.id from the refund. */
co_pay_status co_stripe_refund(co_stripe *s, const char *pi_id, long long amount,
                               const char *idempotency_key, co_pay_result *out);

/* GET /v1/payment_intents?created[gte]=&limit=&starting_after=: one page of
 * Stripe's list, newest first. created_gte < 0: no filter; starting_after NULL:
 * from the newest; limit 1..100. Up to max intents into rows, *n of them,
 * *has_more when older ones remain (the next page starts after the last). */
co_pay_status co_stripe_list_intents(co_stripe *s, long long created_gte,
                                     const char *starting_after, int limit,
                                     co_payment_intent *rows, int max, int *n, bool *has_more,
                                     co_pay_result *out);

/* DECLINED -> payment_declined, UNAVAILABLE -> payment_provider_unavailable,
 * OK -> CO_OK, the others -> payment_provider_error. */
co_err co_pay_status_err(co_pay_status st);
/* "ok", "declined", "unexpected_state", "not_found", "already_refunded",
 * "rejected", "unavailable"; "unknown" otherwise. Static strings. */
const char *co_pay_status_name(co_pay_status st);

#endif

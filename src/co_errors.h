/* The error registry: every error the API answers with, in one table.
 * Clients switch on `code`; the number is ours (ranges by area), the HTTP
 * status and the hint are fixed per code. Every error reply is built from it
 * (co_http_error in co_http.h). */
#ifndef CO_ERRORS_H
#define CO_ERRORS_H

#include <jansson.h>

/*  X(name, number, http status, hint)    name is the wire `code` */
#define CO_ERRORS(X)                                                                         \
    /* 1xxx: the request itself */                                                           \
    X(invalid_request, 1000, 400, "The request is malformed; see `param`.")                  \
    X(invalid_json, 1001, 400, "The body is not valid JSON.")                                \
    X(payload_too_large, 1002, 413, "The body is larger than the server accepts.")           \
    X(not_found, 1003, 404, "No such route.")                                                \
    X(method_not_allowed, 1004, 405, "The route does not take this method.")                 \
    X(unsupported_media_type, 1005, 415, "Send Content-Type: application/json.")             \
    X(uri_too_long, 1006, 414, "The request target is longer than the server accepts.")      \
    X(header_too_large, 1007, 431, "The request header is larger than the server accepts.")  \
    /* 2xxx: who is asking */                                                                \
    X(unauthenticated, 2000, 401, "A valid bearer token is required.")                       \
    X(forbidden, 2001, 403, "This key may not do that.")                                     \
    /* 3xxx: catalogue and stock */                                                          \
    X(item_not_found, 3000, 404, "No item has this id.")                                     \
    X(out_of_stock, 3001, 409, "Not enough units of an item are free; see `item_id`.")       \
    X(sku_exists, 3002, 409, "An item with this sku exists.")                                \
    X(item_in_stock, 3003, 409, "The item has units free; buy it instead of waiting.")       \
    /* 4xxx: orders and checkout */                                                          \
    X(order_not_found, 4000, 404, "No order of yours has this id.")                          \
    X(idempotency_key_reused, 4001, 422, "This Idempotency-Key was used with another body.") \
    X(request_in_progress, 4002, 409, "The first request with this key is still running.")  \
    X(order_state_conflict, 4003, 409, "The order's state does not allow this.")             \
    X(rate_limited, 4004, 429, "Too many checkout attempts; retry after Retry-After.")      \
    X(reservation_limit, 4005, 429, "Too many units held in unpaid reservations.")          \
    X(order_in_progress, 4006, 409, "Another process holds the order's lease.")              \
    X(order_terminal, 4007, 409, "The order has ended.")                                     \
    X(cannot_resolve, 4008, 409, "No resolve rule applies to the provider's state.")         \
    /* 5xxx: payment */                                                                      \
    X(payment_declined, 5000, 402, "The card was declined; see `decline_code`.")             \
    X(authentication_required, 5001, 402, "The card needs the shopper to authenticate.")     \
    X(payment_provider_unavailable, 5002, 503, "The payment provider cannot be reached.")    \
    X(payment_provider_error, 5003, 502, "The payment provider refused the request.")        \
    /* 6xxx: webhooks */                                                                     \
    X(signature_missing, 6000, 400, "The signature header is missing.")                      \
    X(signature_invalid, 6001, 400, "The signature does not match the body.")                \
    X(signature_expired, 6002, 400, "The signature's timestamp is outside the tolerance.")   \
    X(event_id_reused, 6003, 422, "This event_id was applied before with another body.")    \
    /* 9xxx: ours */                                                                         \
    X(internal_error, 9000, 500, "Something failed on our side; nothing was charged twice.") \
    X(service_unavailable, 9001, 503, "The server is busy or its database is down; retry.")

typedef enum {
    CO_OK = 0,
#define CO_ERR_ENUM(name, num, status, hint) CO_ERR_##name = num,
    CO_ERRORS(CO_ERR_ENUM)
#undef CO_ERR_ENUM
} co_err;

typedef struct {
    co_err err;
    const char *code;   /* wire name */
    unsigned status;    /* HTTP status */
    const char *hint;   /* default message */
} co_err_info;

/* The registry entry; an unknown value gives internal_error's entry. */
const co_err_info *co_err_get(co_err err);

/* s as valid UTF-8 of at most max bytes, malloc'd: each byte of an invalid
 * sequence becomes '?', and a character that would not fit is left out
 * whole. NULL on OOM. */
char *co_utf8_clean(const char *s, size_t max);

/* The error body {"error":{"code":..., "message":..., ...extra}} as a malloc'd
 * string (message made valid UTF-8; NULL only on OOM). message NULL = the
 * registry's hint; extra (may be NULL) is merged
 * into the error object and its reference stolen. */
char *co_error_body(co_err err, const char *message, json_t *extra);

#endif

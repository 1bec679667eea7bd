/* Signed payloads in Stripe's scheme: header "t=<unix>,v1=<hex>" where the hex
 * is HMAC-SHA256(secret, "<t>.<raw body>"). Used by the payment and restock
 * webhooks, the notification outbox, and the mocks. */
#ifndef CO_SIG_H
#define CO_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CO_SIG_TOLERANCE_SECONDS 300
#define CO_SIG_HEADER_MAX 160
#define CO_SIG_MAX_V1 32 /* v1= values tried per header; more is malformed */

/* Lower-case hex HMAC-SHA256 of data under key; out must hold 65 bytes. */
void co_hmac_sha256_hex(const char *key, size_t key_len,
                        const void *data, size_t data_len, char out[65]);

/* Lower-case hex SHA-256 of data; out must hold 65 bytes. */
void co_sha256_hex(const void *data, size_t len, char out[65]);

/* Constant-time comparison of two equal-length buffers (false on length mismatch;
 * the lengths themselves are not secret). */
bool co_const_eq(const void *a, size_t a_len, const void *b, size_t b_len);

/* Writes "t=<now>,v1=<hex>" into out (CO_SIG_HEADER_MAX bytes). */
void co_sig_header(const char *secret, time_t now, const void *body, size_t body_len,
                   char out[CO_SIG_HEADER_MAX]);

typedef enum {
    CO_SIG_OK = 0,
    CO_SIG_MISSING,     /* no header */
    CO_SIG_MALFORMED,   /* no t= or no v1= */
    CO_SIG_STALE,       /* |now - t| > tolerance */
    CO_SIG_MISMATCH,    /* no v1 matched */
} co_sig_result;

/* Verifies a header against body exactly as Stripe's SDKs do: every v1= value is
 * tried (secret rotation), compare is constant time, timestamp within tolerance
 * seconds of now. */
co_sig_result co_sig_verify(const char *header, const char *secret, time_t now,
                            long tolerance, const void *body, size_t body_len);

#endif

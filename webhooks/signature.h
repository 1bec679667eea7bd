/* The signature check both webhooks share: a "t=<unix>,v1=<hex>" header over
 * the raw body, verified by co_sig_verify exactly as Stripe's SDKs do (every
 * v1 tried, so a secret can be rotated; constant-time compare; timestamps more
 * than 300 s from now refused), and its failures mapped to the error registry. */
#ifndef CO_WEBHOOK_SIGNATURE_H
#define CO_WEBHOOK_SIGNATURE_H

#include "co_http.h"

#include <stdbool.h>

/* True when value (the header named name, NULL when absent) signs req's raw
 * body under secret. Otherwise answers 400 signature_missing,
 * signature_invalid (malformed or no v1 matches) or signature_expired, naming
 * the header in `param`, and returns false: the caller applies nothing. */
bool co_webhook_signed(const co_req *req, const char *name, const char *value,
                       const char *secret, co_resp *resp);

#endif

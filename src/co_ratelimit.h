/* Per-shopper rate limit on checkout attempts: a token bucket per shopper,
 * in this process (N instances allow N times the rate; the unpaid-units cap
 * in co_checkout_begin is the shared, exact limit). */
#ifndef CO_RATELIMIT_H
#define CO_RATELIMIT_H

#include <stdbool.h>

typedef struct co_ratelimit co_ratelimit;

/* rate tokens per second, up to burst; rate <= 0: no limit (NULL is returned
 * and co_ratelimit_take always allows). */
co_ratelimit *co_ratelimit_new(double rate, double burst);
void co_ratelimit_free(co_ratelimit *rl);

/* Takes one token of key's bucket. False when it is empty: *retry_after gets
 * the whole seconds until one is back (at least 1). Thread-safe. */
bool co_ratelimit_take(co_ratelimit *rl, const char *key, unsigned *retry_after);

#endif

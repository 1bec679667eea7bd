/* Exponential backoff with jitter, for every retry loop of the server (the
 * database runner, the payment client). */
#ifndef CO_BACKOFF_H
#define CO_BACKOFF_H

/* How long to wait before retry number retry (0-based): initial * 2^retry,
 * capped at max, times a random factor in [0.5, 1.0] so that many callers
 * failing together do not come back together. seed: the caller's rand_r
 * state (per connection or handle, so no state is shared between threads). */
long co_backoff_ms(long initial_ms, long max_ms, int retry, unsigned int *seed);

/* Sleeps ms milliseconds (restarting after a signal). */
void co_sleep_ms(long ms);

#endif

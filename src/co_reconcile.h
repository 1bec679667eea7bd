/* Reconciliation with the payment provider around the saga's pass
 * (states/reconcile.h): the operator's command, bin/checkoutd reconcile, and
 * the server's periodic job (RECONCILE_INTERVAL_SECONDS, 0 = off). */
#ifndef CO_RECONCILE_JOB_H
#define CO_RECONCILE_JOB_H

#include "co_app.h"
#include "co_ticker.h"
#include "reconcile.h"

/* One pass with the environment of the server (DATABASE_URL, STRIPE_API_BASE,
 * STRIPE_SECRET_KEY, STRIPE_TIMEOUT_MS, STRIPE_MAX_RETRIES, SAGA_LEASE_SECONDS),
 * printing a table of findings to stdout. Returns the exit code: 0 nothing
 * left unresolved, 1 something reported for an operator, 2 an error (another
 * pass running, the database or the provider unreachable, an action that
 * could not be carried out). */
int co_reconcile_cli(void);

typedef struct {
    co_app *app;
    co_ticker ticker;
} co_reconciler;

/* Starts the periodic pass (at start, then every interval) unless the interval
 * is 0; false when the thread could not start. */
bool co_reconcile_start(co_reconciler *r, co_app *app);
void co_reconcile_stop(co_reconciler *r);

#endif

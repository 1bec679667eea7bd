/* Background recovery: at start and every RECOVERY_INTERVAL_MS, claim live
 * sagas whose lease lapsed (and unpaid reservations past their expiry) and
 * drive them forward or compensate them, through the same transition function
 * requests use. Safe with several servers: claims use SKIP LOCKED. */
#ifndef CO_RECOVERY_H
#define CO_RECOVERY_H

#include "co_app.h"
#include "co_ticker.h"

typedef struct {
    co_app *app;
    co_ticker ticker;
} co_recovery;

bool co_recovery_start(co_recovery *r, co_app *app);
void co_recovery_stop(co_recovery *r);
/* One sweep with the given worker; returns how many orders it drove. */
int co_recovery_sweep(co_worker *w);

#endif

/* The back-in-stock notifier: a thread that delivers the transactional outbox
 * (notification_outbox, written by co_restock in the restock's transaction) to
 * NOTIFY_URL as signed JSON, at least once per row.
 *
 * Every NOTIFY_INTERVAL_MS it claims up to a batch of due rows in one
 * autocommit statement (co_notify_claim: FOR UPDATE SKIP LOCKED, and a lease
 * written into next_attempt_at), so no row lock is held across HTTP and
 * several checkoutd processes never hand the same row to two deliverers while
 * the lease runs. Each row is POSTed as
 *   {"id":"<outbox id>","type":"item.back_in_stock","item_id","user_id",
 *    "restock_event_id","created_at"}
 * with "Notify-Signature: t=<unix>,v1=<hex>" (co_sig_header, NOTIFY_SECRET)
 * and "Idempotency-Key: notification-<id>" (the receiver dedupes on it: a
 * delivery whose answer was lost is sent again). A 2xx marks it delivered;
 * anything else schedules a retry after NOTIFY_BACKOFF_MS x 2^(attempts-1)
 * (capped at 60 s), and after NOTIFY_MAX_ATTEMPTS attempts the row is dead,
 * with last_error saying why. */
#ifndef CO_NOTIFY_H
#define CO_NOTIFY_H

#include "co_app.h"
#include "co_ticker.h"

typedef struct {
    co_app *app;
    co_ticker ticker;
} co_notifier;

/* Starts the thread (its own Postgres connection and CURL handle). */
bool co_notify_start(co_notifier *n, co_app *app);
/* Stops it: the delivery in flight finishes (bounded by NOTIFY_TIMEOUT_MS),
 * rows claimed but not yet tried are given back, and the thread is joined. */
void co_notify_stop(co_notifier *n);

#endif

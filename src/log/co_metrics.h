/* What GET /metrics shows (Prometheus text exposition format 0.0.4).
 *
 * Every family is registered up front with a fixed set of label values, so
 * the hot path is a lookup in a small table and a few atomic adds: no lock,
 * no allocation. A label value outside its family's set is counted under
 * "other" (nothing an outsider sends can grow a family). The one exception is
 * the database statements' names (co_metric_db), which come from our own SQL
 * text and are added on first use, up to a cap.
 *
 * Timings are taken with co_metric_now_us (the monotonic clock) at the start
 * and passed as the start: each observation site is one line. */
#ifndef CO_METRICS_H
#define CO_METRICS_H

#include <stdbool.h>

/* A named event (checkoutd_events_total{event=...}): the edge's refusals, the
 * error codes answered, notifications... Names must be string literals (they
 * are kept, not copied); up to 64 distinct names. */
void co_metric_add(const char *name, long delta);

/* The monotonic clock in microseconds. */
long long co_metric_now_us(void);

/* A checkout answered (not a replay): result is "confirmed",
 * "awaiting_payment" or the error code answered; outcome of the latency
 * histogram from the HTTP status. A replay counts only as a replay. */
void co_metric_checkout(const char *result, unsigned http_status, bool replayed,
                        long long start_us);
/* One saga step (the state it ran in: "reserved", "voiding", ...) and what it
 * did ("moved", "wait", "retry", "lost", "short"). */
void co_metric_step(const char *step, const char *result, long long start_us);
/* One payment provider call with its retries: endpoint ("create_intent",
 * "capture", ...) and outcome (co_pay_status_name: "ok", "declined", ...). */
void co_metric_provider(const char *endpoint, const char *outcome, long long start_us);
/* One retry of a provider call. */
void co_metric_provider_retry(const char *endpoint);
/* One round trip to Postgres: the statement's name and its outcome ("ok",
 * "refused" (our own raised SQLSTATE), "retry" (soft), "error"). name is
 * copied on first use. */
void co_metric_db(const char *name, const char *outcome, long long start_us);
/* A webhook: type (the payment event's type, "restock", or "unverified" when
 * it was refused before its body could be trusted) and outcome ("applied",
 * "ignored", "duplicate", "rejected", "retry"). */
void co_metric_webhook(const char *type, const char *outcome);

/* Gauges the process keeps itself. */
typedef enum {
    CO_GAUGE_WORKERS,       /* request threads */
    CO_GAUGE_WORKERS_BUSY,  /* of them running a handler */
    CO_GAUGE_WORKER_QUEUE,  /* requests waiting for a worker */
    CO_GAUGE_DB_POOL,       /* Postgres connections the pools may open */
    CO_GAUGE_DB_POOL_BUSY,  /* of them lent to a statement */
    CO_GAUGE_COUNT
} co_gauge;
void co_gauge_add(co_gauge g, long delta);

/* ------------------------------------------------------------ rendering */

/* A text being built; every call is a no-op after an allocation failed. */
typedef struct co_metrics_text co_metrics_text;

co_metrics_text *co_metrics_text_new(void);
/* # HELP and # TYPE lines of a family (type "counter", "gauge", ...). */
void co_metrics_family(co_metrics_text *t, const char *name, const char *type,
                       const char *help);
/* One sample; label NULL for none (the value is escaped). */
void co_metrics_sample(co_metrics_text *t, const char *name, const char *label,
                       const char *value, double v);
/* Every family this process keeps (all but the database's gauges). */
void co_metrics_write(co_metrics_text *t);
/* The text, malloc'd (caller frees), and t freed; NULL on OOM. */
char *co_metrics_text_take(co_metrics_text *t);

#endif

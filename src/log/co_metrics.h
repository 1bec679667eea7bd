/* Event counters for GET /metrics (Prometheus text). Names must be string
 * literals (they are kept, not copied); up to 64 distinct names. */
#ifndef CO_METRICS_H
#define CO_METRICS_H

void co_metric_add(const char *name, long delta);
/* The text of all counters, malloc'd (caller frees); NULL on OOM. */
char *co_metrics_render(void);

#endif

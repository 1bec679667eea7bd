/* The families of GET /metrics: fixed tables of atomics, rendered on demand.
 * co_metrics.h says what each observation means. */
#include "co_metrics.h"

#include "co_errors.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------ label sets */

/* label_index counts a value it does not know under a set's last one: the
 * catch-all ("other", "error") of the sets that have one. */
static const char *const results[] = {
    "confirmed", "awaiting_payment",
#define CO_M_CODE(name, num, status, hint) #name,
    CO_ERRORS(CO_M_CODE)
#undef CO_M_CODE
};
static const char *const http_outcomes[] = {"success", "client_error", "server_error"};
static const char *const steps[] = {"reserved", "awaiting_payment", "authorized", "captured",
                                    "voiding", "refunding", "confirmed", "other"};
static const char *const step_results[] = {"moved", "wait", "retry", "lost", "short", "other"};
static const char *const endpoints[] = {"create_intent", "retrieve_intent", "retrieve_charge",
                                        "confirm_intent", "capture", "cancel", "refund",
                                        "list_intents", "other"};
static const char *const pay_outcomes[] = {"ok", "declined", "unexpected_state", "not_found",
                                           "already_refunded", "rejected", "unavailable",
                                           "other"};
static const char *const db_outcomes[] = {"ok", "refused", "retry", "error"};
static const char *const hook_types[] = {
    "payment_intent.amount_capturable_updated", "payment_intent.succeeded",
    "payment_intent.payment_failed", "payment_intent.canceled", "charge.refunded", "restock",
    "unverified", "other"};
static const char *const hook_outcomes[] = {"applied", "ignored", "duplicate", "rejected",
                                            "retry"};

/* The index of v in set (n values), else the last one. */
static int label_index(const char *const *set, int n, const char *v)
{
    for (int i = 0; v != NULL && i < n; i++)
        if (strcmp(set[i], v) == 0)
            return i;
    return n - 1;
}

/* ------------------------------------------------------------ histograms */

/* Bucket bounds in microseconds, and as the le labels say them. */
static const long long bounds_us[] = {500,    1000,   2500,    5000,    10000,
                                      25000,  50000,  100000,  250000,  500000,
                                      1000000, 2500000, 5000000, 10000000, 30000000};
static const char *const bounds_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                        "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                        "1",      "2.5",   "5",      "10",    "30"};
#define NBOUNDS COUNT(bounds_us)

typedef struct {
    atomic_ulong bucket[NBOUNDS + 1]; /* not cumulative; the last is past every bound */
    atomic_ullong sum_us;
} hist;

static void observe(hist *h, long long start_us)
{
    long long us = co_metric_now_us() - start_us;
    int i = 0;

    if (us < 0)
        us = 0;
    while (i < NBOUNDS && us > bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)us, memory_order_relaxed);
}

static unsigned long hist_count(hist *h)
{
    unsigned long n = 0;

    for (int i = 0; i <= NBOUNDS; i++)
        n += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    return n;
}

/* ------------------------------------------------------------ the families */

#define EVENTS_MAX 64
static struct {
    const char *name;
    atomic_long value;
} events[EVENTS_MAX];
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_ulong checkout_results[COUNT(results)];
static atomic_ulong checkout_replays;
static hist checkout_latency[COUNT(http_outcomes)];
static hist step_latency[COUNT(steps)][COUNT(step_results)];
static hist provider_latency[COUNT(endpoints)][COUNT(pay_outcomes)];
static atomic_ulong provider_retries[COUNT(endpoints)];
static atomic_ulong webhooks[COUNT(hook_types)][COUNT(hook_outcomes)];
static atomic_long gauges[CO_GAUGE_COUNT];

/* Statement names are our own SQL's (co_db.c names them), added on first use;
 * the last slot takes whatever does not fit. */
#define DB_NAMES 48
#define DB_NAME_LEN 48
static struct {
    atomic_bool used;
    char name[DB_NAME_LEN];
    hist h[COUNT(db_outcomes)];
} db_stmts[DB_NAMES];
static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;

long long co_metric_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

void co_metric_add(const char *name, long delta)
{
    for (int i = 0; i < EVENTS_MAX; i++) {
        const char *n = __atomic_load_n(&events[i].name, __ATOMIC_ACQUIRE);
        if (n != NULL && strcmp(n, name) == 0) {
            atomic_fetch_add(&events[i].value, delta);
            return;
        }
        if (n == NULL) {
            pthread_mutex_lock(&events_lock);
            if (events[i].name == NULL) {
                atomic_store(&events[i].value, delta);
                __atomic_store_n(&events[i].name, name, __ATOMIC_RELEASE);
                pthread_mutex_unlock(&events_lock);
                return;
            }
            pthread_mutex_unlock(&events_lock);
            i--; /* someone took this slot: look at it again */
        }
    }
}

/* The index of a checkout result. There is no "other": an answer whose code
 * is not in the registry is our own failure, counted as internal_error. */
static int result_index(const char *result)
{
    for (int i = 0; result != NULL && i < COUNT(results); i++)
        if (strcmp(results[i], result) == 0)
            return i;
    return label_index(results, COUNT(results), "internal_error");
}

void co_metric_checkout(const char *result, unsigned http_status, bool replayed,
                        long long start_us)
{
    int outcome = http_status >= 500 ? 2 : http_status >= 400 ? 1 : 0;

    if (replayed) {
        atomic_fetch_add_explicit(&checkout_replays, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&checkout_results[result_index(result)], 1,
                              memory_order_relaxed);
    observe(&checkout_latency[outcome], start_us);
}

void co_metric_step(const char *step, const char *result, long long start_us)
{
    observe(&step_latency[label_index(steps, COUNT(steps), step)]
                         [label_index(step_results, COUNT(step_results), result)],
            start_us);
}

void co_metric_provider(const char *endpoint, const char *outcome, long long start_us)
{
    observe(&provider_latency[label_index(endpoints, COUNT(endpoints), endpoint)]
                             [label_index(pay_outcomes, COUNT(pay_outcomes), outcome)],
            start_us);
}

void co_metric_provider_retry(const char *endpoint)
{
    atomic_fetch_add_explicit(&provider_retries[label_index(endpoints, COUNT(endpoints),
                                                            endpoint)],
                              1, memory_order_relaxed);
}

/* The slot of statement name, taking a free one on first use. */
static int db_slot(const char *name)
{
    int i;

    for (i = 0; i < DB_NAMES - 1; i++) {
        if (!atomic_load_explicit(&db_stmts[i].used, memory_order_acquire))
            break;
        if (strcmp(db_stmts[i].name, name) == 0)
            return i;
    }
    if (i == DB_NAMES - 1)
        return i;
    pthread_mutex_lock(&db_lock);
    for (i = 0; i < DB_NAMES - 1; i++) {
        if (!atomic_load_explicit(&db_stmts[i].used, memory_order_acquire)) {
            snprintf(db_stmts[i].name, sizeof db_stmts[i].name, "%s", name);
            atomic_store_explicit(&db_stmts[i].used, true, memory_order_release);
            break;
        }
        if (strcmp(db_stmts[i].name, name) == 0)
            break;
    }
    pthread_mutex_unlock(&db_lock);
    return i;
}

void co_metric_db(const char *name, const char *outcome, long long start_us)
{
    observe(&db_stmts[db_slot(name ? name : "other")]
                 .h[label_index(db_outcomes, COUNT(db_outcomes), outcome)],
            start_us);
}

void co_metric_webhook(const char *type, const char *outcome)
{
    atomic_fetch_add_explicit(&webhooks[label_index(hook_types, COUNT(hook_types), type)]
                                       [label_index(hook_outcomes, COUNT(hook_outcomes),
                                                    outcome)],
                              1, memory_order_relaxed);
}

void co_gauge_add(co_gauge g, long delta)
{
    if ((int)g >= 0 && g < CO_GAUGE_COUNT)
        atomic_fetch_add_explicit(&gauges[g], delta, memory_order_relaxed);
}

/* ------------------------------------------------------------ the text */

struct co_metrics_text {
    char *buf;
    size_t len, cap;
    bool oom;
};

co_metrics_text *co_metrics_text_new(void)
{
    co_metrics_text *t = calloc(1, sizeof *t);

    if (t == NULL)
        return NULL;
    t->cap = 16384;
    t->buf = malloc(t->cap);
    if (t->buf == NULL) {
        free(t);
        return NULL;
    }
    t->buf[0] = '\0';
    return t;
}

__attribute__((format(printf, 2, 3))) static void put(co_metrics_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t == NULL || t->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        {
            char *grown = realloc(t->buf, t->cap * 2 + (size_t)n);
            if (grown == NULL) {
                t->oom = true;
                return;
            }
            t->buf = grown;
            t->cap = t->cap * 2 + (size_t)n;
        }
    }
}

/* A label value as the exposition format quotes it: \ " and newline escaped. */
static void put_value(co_metrics_text *t, const char *v)
{
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '\\')
            put(t, "\\\\");
        else if (*p == '"')
            put(t, "\\\"");
        else if (*p == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *p);
    }
}

/* {k0="v0",k1="v1"...} for the n pairs (nothing for n == 0). */
static void put_labels(co_metrics_text *t, int n, const char *const *keys,
                       const char *const *values)
{
    if (n == 0)
        return;
    put(t, "{");
    for (int i = 0; i < n; i++) {
        put(t, "%s%s=\"", i ? "," : "", keys[i]);
        put_value(t, values[i]);
        put(t, "\"");
    }
    put(t, "}");
}

void co_metrics_family(co_metrics_text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void co_metrics_sample(co_metrics_text *t, const char *name, const char *label,
                       const char *value, double v)
{
    put(t, "%s", name);
    if (label != NULL)
        put_labels(t, 1, &label, &value);
    put(t, " %.17g\n", v);
}

/* One histogram series: its buckets (cumulative), sum and count; n labels. */
static void put_hist(co_metrics_text *t, const char *name, hist *h, int n,
                     const char *const *keys, const char *const *values)
{
    const char *k[4], *v[4];
    unsigned long cum = 0;

    for (int i = 0; i < n; i++) {
        k[i] = keys[i];
        v[i] = values[i];
    }
    k[n] = "le";
    for (int i = 0; i <= NBOUNDS; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        v[n] = i < NBOUNDS ? bounds_le[i] : "+Inf";
        put(t, "%s_bucket", name);
        put_labels(t, n + 1, k, v);
        put(t, " %lu\n", cum);
    }
    put(t, "%s_sum", name);
    put_labels(t, n, k, v);
    put(t, " %.6f\n", (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    put(t, "%s_count", name);
    put_labels(t, n, k, v);
    put(t, " %lu\n", cum);
}

/* A family of histograms over two label sets; only series observed at least
 * once are written (most pairs never happen). */
static void put_hist2(co_metrics_text *t, const char *name, const char *help, hist *base,
                      const char *k1, const char *const *set1, int n1, const char *k2,
                      const char *const *set2, int n2)
{
    const char *keys[2] = {k1, k2};

    co_metrics_family(t, name, "histogram", help);
    for (int i = 0; i < n1; i++) {
        for (int j = 0; j < n2; j++) {
            hist *h = &base[i * n2 + j];
            const char *values[2] = {set1[i], set2[j]};

            if (hist_count(h) > 0)
                put_hist(t, name, h, 2, keys, values);
        }
    }
}

static void put_counter_set(co_metrics_text *t, const char *name, const char *label,
                            const char *const *set, int n, atomic_ulong *values)
{
    for (int i = 0; i < n; i++)
        co_metrics_sample(t, name, label, set[i],
                          (double)atomic_load_explicit(&values[i], memory_order_relaxed));
}

static void write_events(co_metrics_text *t)
{
    co_metrics_family(t, "checkoutd_events_total", "counter",
                      "Named events: error codes answered (any endpoint), the HTTP edge's "
                      "refusals and timeouts, notifications, restocks, recovery.");
    for (int i = 0; i < EVENTS_MAX; i++) {
        const char *n = __atomic_load_n(&events[i].name, __ATOMIC_ACQUIRE);
        if (n == NULL)
            break;
        co_metrics_sample(t, "checkoutd_events_total", "event", n,
                          (double)atomic_load(&events[i].value));
    }
}

static void write_checkout(co_metrics_text *t)
{
    const char *key = "outcome";

    co_metrics_family(t, "checkoutd_checkout_results_total", "counter",
                      "Checkouts answered, by result: confirmed, awaiting_payment, or the "
                      "error code answered (replays not counted).");
    put_counter_set(t, "checkoutd_checkout_results_total", "result", results, COUNT(results),
                    checkout_results);
    co_metrics_family(t, "checkoutd_checkout_replays_total", "counter",
                      "Checkouts answered from the stored first answer (same Idempotency-Key).");
    co_metrics_sample(t, "checkoutd_checkout_replays_total", NULL, NULL,
                      (double)atomic_load(&checkout_replays));
    co_metrics_family(t, "checkoutd_checkout_duration_seconds", "histogram",
                      "Checkout latency in the server, from the whole request read to the "
                      "answer, by HTTP status class.");
    for (int i = 0; i < COUNT(http_outcomes); i++)
        put_hist(t, "checkoutd_checkout_duration_seconds", &checkout_latency[i], 1, &key,
                 &http_outcomes[i]);
}

static void write_db(co_metrics_text *t)
{
    const char *keys[2] = {"statement", "outcome"};

    co_metrics_family(t, "checkoutd_db_query_duration_seconds", "histogram",
                      "Postgres round trips (a pool connection borrowed, one statement), by "
                      "statement (the SQL function called) and outcome.");
    for (int i = 0; i < DB_NAMES; i++) {
        const char *name = db_stmts[i].name;

        if (i < DB_NAMES - 1 && !atomic_load_explicit(&db_stmts[i].used, memory_order_acquire))
            break;
        if (i == DB_NAMES - 1)
            name = "other";
        for (int j = 0; j < COUNT(db_outcomes); j++) {
            const char *values[2] = {name, db_outcomes[j]};

            if (hist_count(&db_stmts[i].h[j]) > 0)
                put_hist(t, "checkoutd_db_query_duration_seconds", &db_stmts[i].h[j], 2, keys,
                         values);
        }
    }
}

static void write_gauges(co_metrics_text *t)
{
    static const struct {
        co_gauge g;
        const char *name, *help;
    } list[] = {
        {CO_GAUGE_WORKERS, "checkoutd_workers", "Request threads (WORKERS)."},
        {CO_GAUGE_WORKERS_BUSY, "checkoutd_workers_busy", "Request threads running a handler."},
        {CO_GAUGE_WORKER_QUEUE, "checkoutd_worker_queue_length",
         "Requests read and waiting for a free request thread."},
        {CO_GAUGE_DB_POOL, "checkoutd_db_pool_connections",
         "Postgres connections the pool may hold (DB_POOL_SIZE)."},
        {CO_GAUGE_DB_POOL_BUSY, "checkoutd_db_pool_connections_busy",
         "Postgres connections lent to a statement now."},
    };

    for (int i = 0; i < COUNT(list); i++) {
        co_metrics_family(t, list[i].name, "gauge", list[i].help);
        co_metrics_sample(t, list[i].name, NULL, NULL, (double)atomic_load(&gauges[list[i].g]));
    }
}

void co_metrics_write(co_metrics_text *t)
{
    write_checkout(t);
    put_hist2(t, "checkoutd_saga_step_duration_seconds",
              "Saga steps (one provider call and one transition at most), by the state the "
              "step ran in and what it did.",
              &step_latency[0][0], "step", steps, COUNT(steps), "result", step_results,
              COUNT(step_results));
    put_hist2(t, "checkoutd_provider_request_duration_seconds",
              "Payment provider calls, retries included, by endpoint and outcome.",
              &provider_latency[0][0], "endpoint", endpoints, COUNT(endpoints), "outcome",
              pay_outcomes, COUNT(pay_outcomes));
    co_metrics_family(t, "checkoutd_provider_retries_total", "counter",
                      "Payment provider requests sent again after a retryable failure.");
    put_counter_set(t, "checkoutd_provider_retries_total", "endpoint", endpoints,
                    COUNT(endpoints), provider_retries);
    write_db(t);
    co_metrics_family(t, "checkoutd_webhook_events_total", "counter",
                      "Webhooks received, by event type (restock for the warehouse's; "
                      "unverified when refused before the body could be trusted) and "
                      "outcome.");
    for (int i = 0; i < COUNT(hook_types); i++) {
        for (int j = 0; j < COUNT(hook_outcomes); j++) {
            const char *keys[2] = {"type", "outcome"};
            const char *values[2] = {hook_types[i], hook_outcomes[j]};

            put(t, "checkoutd_webhook_events_total");
            put_labels(t, 2, keys, values);
            put(t, " %lu\n", atomic_load(&webhooks[i][j]));
        }
    }
    write_gauges(t);
    write_events(t);
}

char *co_metrics_text_take(co_metrics_text *t)
{
    char *out;

    if (t == NULL)
        return NULL;
    out = t->oom ? NULL : t->buf;
    if (t->oom)
        free(t->buf);
    free(t);
    return out;
}

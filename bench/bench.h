/* The measuring half of the load generators (bench/sqlbase.c, bench/loadgen.c):
 * N client threads run one operation in a loop for a fixed time, and the run
 * reports throughput and latency percentiles as one key=value line that
 * scripts/bench.sh turns into the table.
 *
 * A run has three phases, switched by the main thread:
 *   warm-up  every thread has connected; operations run but are not measured
 *            (connection set-up, first-use caches, the server's lazy pools);
 *   measure  operations that complete in this window count towards ok/s and
 *            the percentiles; the window is timed with CLOCK_MONOTONIC;
 *   stop     each thread finishes the operation it is in and leaves.
 * Every completed operation, measured or not, is also counted in ok_all: the
 * script divides the database's commits by it (commits/op) and checks it
 * against the orders the database holds.
 *
 * Two ways to send (bench_run.rate):
 *   closed loop (rate 0)  each client starts its next operation as soon as the
 *            last one answered; latency is the operation's own time;
 *   open loop (rate R)    the clients share a schedule of R operations a second:
 *            client i sends its k-th at start + (k + i / clients) * clients / R,
 *            whether or not the answers keep up. A client that is behind sends
 *            at once, and the latency is counted from the scheduled time, so it
 *            includes the time the operation waited for its turn (no
 *            coordinated omission). Nothing is skipped: a server slower than R
 *            shows as latency growing through the run.
 *
 * Header-only (static inline) because the Makefile builds each .c of bench/ into
 * its own program: a bench/common.c would become a program of its own. */
#ifndef CO_BENCH_H
#define CO_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_CLIENTS 512
#define BENCH_ERR_REPORTS 5  /* error messages printed per run; the rest are only counted */

enum { BENCH_WARMUP = 0, BENCH_MEASURE = 1, BENCH_STOP = 2 };

/* What an operation tells the runner. */
typedef enum {
    BENCH_OP_OK = 0,    /* succeeded */
    BENCH_OP_ERROR = 1, /* failed; counted, and the run goes on */
    BENCH_OP_FATAL = 2, /* the thread cannot go on (its connection is gone) */
} bench_op_result;

typedef struct bench_run bench_run;

/* One client thread. ctx belongs to the program (its connection, buffers). */
typedef struct {
    bench_run *run;
    int index;
    void *ctx;
    uint32_t *lat_us;              /* latencies of measured operations, microseconds */
    size_t nlat, cap;
    unsigned long long ok_all;     /* every success, warm-up included */
    unsigned long long ok;         /* successes completed in the measured window */
    unsigned long long errors;     /* failures, any phase */
    bool fatal;
    pthread_t tid;
} bench_thread;

struct bench_run {
    int clients;
    double warmup_s, seconds;
    double rate;                   /* operations a second over all clients; 0 = closed loop */
    /* Connects; false when it could not (the run is abandoned). */
    bool (*setup)(bench_thread *t);
    /* One operation. On BENCH_OP_ERROR/FATAL it may describe the failure in
     * err (NUL-terminated, at most errlen bytes) for the error report. */
    bench_op_result (*op)(bench_thread *t, char *err, size_t errlen);
    void (*teardown)(bench_thread *t);

    /* Runner state. */
    atomic_int phase;
    atomic_int err_reports;
    atomic_bool setup_failed;
    pthread_barrier_t ready;
    double window_s;               /* the measured window's real length */
    bench_thread threads[BENCH_MAX_CLIENTS];
};

static inline double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void bench_sleep(double s)
{
    struct timespec ts;

    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Appends a latency sample; false when out of memory (the sample is lost). */
static inline bool bench_sample(bench_thread *t, double seconds)
{
    if (t->nlat == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        uint32_t *p = realloc(t->lat_us, cap * sizeof *p);

        if (p == NULL)
            return false;
        t->lat_us = p;
        t->cap = cap;
    }
    t->lat_us[t->nlat++] = seconds >= 4294.0 ? UINT32_MAX : (uint32_t)(seconds * 1e6);
    return true;
}

static inline void *bench_thread_main(void *arg)
{
    bench_thread *t = arg;
    bench_run *run = t->run;
    char err[512];
    double interval = 0, next = 0;

    if (!run->setup(t))
        atomic_store(&run->setup_failed, true);
    /* Everyone (and the main thread) meets here, failed or not, so that the
     * clock starts with every connection open. */
    pthread_barrier_wait(&run->ready);
    if (atomic_load(&run->setup_failed))
        goto done;
    if (run->rate > 0) {
        interval = (double)run->clients / run->rate;
        next = bench_now() + interval * (double)t->index / (double)run->clients;
    }
    for (;;) {
        int phase = atomic_load(&run->phase);
        double t0, t1;
        bench_op_result r;

        if (phase == BENCH_STOP)
            break;
        err[0] = '\0';
        if (run->rate > 0) {
            double now = bench_now();

            /* Sleep in short steps so that a stop is seen within 50 ms. */
            if (next > now) {
                bench_sleep(next - now < 0.05 ? next - now : 0.05);
                continue;
            }
            t0 = next;              /* the latency includes the wait for a turn */
            next += interval;
        } else {
            t0 = bench_now();
        }
        r = run->op(t, err, sizeof err);
        t1 = bench_now();
        /* An operation counts in the window if it finished inside it. */
        phase = atomic_load(&run->phase);
        if (r == BENCH_OP_OK) {
            t->ok_all++;
            if (phase == BENCH_MEASURE) {
                t->ok++;
                bench_sample(t, t1 - t0);
            }
            continue;
        }
        t->errors++;
        if (atomic_fetch_add(&run->err_reports, 1) < BENCH_ERR_REPORTS)
            fprintf(stderr, "bench: client %d: %s\n", t->index, err[0] ? err : "error");
        if (r == BENCH_OP_FATAL) {
            t->fatal = true;
            break;
        }
    }
done:
    if (run->teardown != NULL)
        run->teardown(t);
    return NULL;
}

static inline int bench_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in milliseconds. */
static inline double bench_pct_ms(const uint32_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1000.0;
}

/* Runs the clients and prints the result line on stdout:
 *   clients=N rate=R seconds=S ok=N ok_all=N errors=N fatal=N ops_per_s=X
 *   p50_ms=X p90_ms=X p95_ms=X p99_ms=X max_ms=X
 * Returns 0 when every client connected (errors are reported, not fatal
 * here: the script decides), 1 otherwise. */
static inline int bench_run_all(bench_run *run)
{
    unsigned long long ok = 0, ok_all = 0, errors = 0, fatal = 0;
    size_t nlat = 0;
    uint32_t *all = NULL;
    double t0;
    int started = 0;
    int rc = 1;

    if (run->clients < 1 || run->clients > BENCH_MAX_CLIENTS) {
        fprintf(stderr, "bench: clients must be from 1 to %d\n", BENCH_MAX_CLIENTS);
        return 1;
    }
    atomic_init(&run->phase, BENCH_WARMUP);
    atomic_init(&run->err_reports, 0);
    atomic_init(&run->setup_failed, false);
    if (pthread_barrier_init(&run->ready, NULL, (unsigned)run->clients + 1) != 0)
        return 1;
    for (int i = 0; i < run->clients; i++) {
        bench_thread *t = &run->threads[i];

        memset(t, 0, sizeof *t);
        t->run = run;
        t->index = i;
        if (pthread_create(&t->tid, NULL, bench_thread_main, t) != 0) {
            fprintf(stderr, "bench: cannot start client %d\n", i);
            /* The barrier counts clients + 1: this run cannot meet it. */
            exit(1);
        }
        started++;
    }
    pthread_barrier_wait(&run->ready);
    if (atomic_load(&run->setup_failed)) {
        fprintf(stderr, "bench: a client could not connect\n");
        goto join;
    }
    bench_sleep(run->warmup_s);
    t0 = bench_now();
    atomic_store(&run->phase, BENCH_MEASURE);
    bench_sleep(run->seconds);
    atomic_store(&run->phase, BENCH_STOP);
    run->window_s = bench_now() - t0;
    rc = 0;

join:
    for (int i = 0; i < started; i++)
        pthread_join(run->threads[i].tid, NULL);
    pthread_barrier_destroy(&run->ready);
    if (rc != 0)
        goto out;

    for (int i = 0; i < run->clients; i++) {
        bench_thread *t = &run->threads[i];
        ok += t->ok;
        ok_all += t->ok_all;
        errors += t->errors;
        fatal += t->fatal;
        nlat += t->nlat;
    }
    all = malloc((nlat ? nlat : 1) * sizeof *all);
    if (all == NULL) {
        rc = 1;
        goto out;
    }
    nlat = 0;
    for (int i = 0; i < run->clients; i++) {
        bench_thread *t = &run->threads[i];
        if (t->nlat > 0)
            memcpy(all + nlat, t->lat_us, t->nlat * sizeof *all);
        nlat += t->nlat;
    }
    qsort(all, nlat, sizeof *all, bench_cmp_u32);
    printf("clients=%d rate=%.1f seconds=%.2f ok=%llu ok_all=%llu errors=%llu fatal=%llu"
           " ops_per_s=%.1f p50_ms=%.2f p90_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           run->clients, run->rate, run->window_s, ok, ok_all, errors, fatal,
           run->window_s > 0 ? (double)ok / run->window_s : 0.0,
           bench_pct_ms(all, nlat, 50), bench_pct_ms(all, nlat, 90),
           bench_pct_ms(all, nlat, 95), bench_pct_ms(all, nlat, 99),
           nlat ? (double)all[nlat - 1] / 1000.0 : 0.0);
    fflush(stdout);

out:
    free(all);
    for (int i = 0; i < started; i++)
        free(run->threads[i].lat_us);
    return rc;
}

/* Parses a positive number option ("--seconds 10"); false with a message. */
static inline bool bench_parse_num(const char *name, const char *s, double lo, double hi,
                                   double *out)
{
    char *end = NULL;
    double v;

    if (s == NULL) {
        fprintf(stderr, "bench: %s needs a value\n", name);
        return false;
    }
    v = strtod(s, &end);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench: %s must be a number from %g to %g\n", name, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

#endif

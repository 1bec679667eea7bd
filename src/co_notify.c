#include "co_notify.h"

#include "co_log.h"
#include "co_sig.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Rows claimed per statement. Small, because the lease must cover the batch. */
#define NOTIFY_BATCH 10

/* What the thread owns: its own connection and handle (neither is shared). */
typedef struct {
    co_notifier *n;
    const co_config *cfg;
    co_db *db;
    CURL *curl;
} co_sender;

static bool stop_requested(co_notifier *n)
{
    return co_ticker_stopping(&n->ticker);
}

/* A claimed row is leased for the worst case of its whole batch (every
 * delivery timing out) plus a margin, so that its lease cannot lapse, and
 * another process take it, while this one is still working through the batch. */
static int lease_seconds(const co_config *cfg)
{
    return NOTIFY_BATCH * (cfg->notify_timeout_ms / 1000 + 1) + 10;
}

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

/* ------------------------------------------------------------- delivery */

typedef enum {
    CO_SEND_OK,        /* 2xx */
    CO_SEND_REFUSED,   /* the receiver answered something else */
    CO_SEND_NO_ANSWER, /* connect failure, timeout: the receiver is down or hung */
} co_send;

/* POSTs one signed notification; on failure err says why (no secret in it). */
static co_send post(co_sender *x, const char *id, const char *body, char err[128])
{
    char sig[CO_SIG_HEADER_MAX + 32], sig_value[CO_SIG_HEADER_MAX], idem[96];
    struct curl_slist *h = NULL;
    CURLcode rc;
    long status = 0;

    co_sig_header(x->cfg->notify_secret, time(NULL), body, strlen(body), sig_value);
    snprintf(sig, sizeof sig, "Notify-Signature: %s", sig_value);
    snprintf(idem, sizeof idem, "Idempotency-Key: notification-%s", id);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, sig);
    h = curl_slist_append(h, idem);
    h = curl_slist_append(h, "Expect:");
    if (h == NULL) {
        snprintf(err, 128, "out of memory");
        return CO_SEND_NO_ANSWER;
    }
    curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    rc = curl_easy_perform(x->curl);
    curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(err, 128, "%s", curl_easy_strerror(rc));
        return CO_SEND_NO_ANSWER;
    }
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300)
        return CO_SEND_OK;
    snprintf(err, 128, "HTTP %ld", status);
    return CO_SEND_REFUSED;
}

/* Reports one claimed attempt (co_notify_result). error NULL: delivered. */
static void report(co_sender *x, const char *id, const char *attempts, const char *error,
                   bool unclaim)
{
    char max[16], backoff[16];
    const char *params[6] = {id, attempts, error, max, backoff, unclaim ? "t" : "f"};
    co_dbr r;
    const char *after;

    snprintf(max, sizeof max, "%d", x->cfg->notify_max_attempts);
    snprintf(backoff, sizeof backoff, "%d", x->cfg->notify_backoff_ms);
    if (co_db_call(x->db, &r, "SELECT co_notify_result($1, $2, $3, $4, $5, $6)", 6, params) < 0) {
        /* The lease lapses and the row is tried again: at least once, maybe twice. */
        CO_WARN("notify", "notification %s: cannot record the outcome: %s", id, r.message);
        co_dbr_clear(&r);
        return;
    }
    after = co_dbr_get(&r, 0, 0);
    if (unclaim) {
        /* given back untried: nothing to count */
    } else if (error == NULL) {
        co_metric_add("notify_delivered", 1);
    } else if (after != NULL && strcmp(after, "dead") == 0) {
        co_metric_add("notify_dead", 1);
        CO_WARN("notify", "notification %s: dead after %s attempts (%s)", id, attempts, error);
    } else {
        co_metric_add("notify_retried", 1);
        CO_INFO("notify", "notification %s: attempt %s failed (%s), will retry", id, attempts,
                error);
    }
    co_dbr_clear(&r);
}

/* One pass: claims a batch of due rows and tries each once. Returns how many
 * it claimed (NOTIFY_BATCH: more may be due). */
static int sweep(co_sender *x)
{
    char lease[16], limit[16];
    const char *params[2] = {lease, limit};
    co_dbr r;
    int n;
    bool give_back = false;

    snprintf(lease, sizeof lease, "%d", lease_seconds(x->cfg));
    snprintf(limit, sizeof limit, "%d", NOTIFY_BATCH);
    if (co_db_call(x->db, &r,
                   "SELECT id, item_id, user_id, restock_event_id, created_at, attempts"
                   "  FROM co_notify_claim($1, $2)",
                   2, params) < 0) {
        co_dbr_clear(&r);
        return 0;
    }
    n = co_dbr_rows(&r);
    for (int i = 0; i < n; i++) {
        const char *id = co_dbr_get(&r, i, 0);
        const char *attempts = co_dbr_get(&r, i, 5);
        json_t *j;
        char *body;
        char err[128] = "";
        co_send sent;

        /* Stopping, or the receiver is down: give the rest back untried, so a
         * dead sink costs one attempt per pass, not one per row. */
        if (give_back || stop_requested(x->n)) {
            report(x, id, attempts, NULL, true);
            continue;
        }
        j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", id, "type", "item.back_in_stock",
                      "item_id", co_dbr_get(&r, i, 1), "user_id", co_dbr_get(&r, i, 2),
                      "restock_event_id", co_dbr_get(&r, i, 3), "created_at",
                      co_dbr_get(&r, i, 4));
        body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (body == NULL) {
            report(x, id, attempts, "cannot encode the notification", false);
            continue;
        }
        sent = post(x, id, body, err);
        free(body);
        report(x, id, attempts, sent == CO_SEND_OK ? NULL : err, false);
        give_back = sent == CO_SEND_NO_ANSWER;
    }
    co_dbr_clear(&r);
    return n;
}

/* ------------------------------------------------------------- the thread */

static void *notify_setup(co_ticker *t)
{
    co_notifier *n = t->arg;
    co_sender *x = calloc(1, sizeof *x);

    if (x == NULL)
        return NULL;
    x->n = n;
    x->cfg = &n->app->cfg;
    x->db = co_db_open(n->app->cfg.database_url);
    x->curl = curl_easy_init();
    if (x->db == NULL || x->curl == NULL) {
        co_db_close(x->db);
        if (x->curl != NULL)
            curl_easy_cleanup(x->curl);
        free(x);
        return NULL;
    }
    curl_easy_setopt(x->curl, CURLOPT_URL, n->app->cfg.notify_url);
    curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->curl, CURLOPT_TIMEOUT_MS, (long)n->app->cfg.notify_timeout_ms);
    curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(n->app->cfg.notify_timeout_ms < 2000 ? n->app->cfg.notify_timeout_ms
                                                                   : 2000));
    curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(x->curl, CURLOPT_USERAGENT, "checkoutd-notifier/1");
    curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    return x;
}

static bool notify_sweep(void *state)
{
    return sweep(state) == NOTIFY_BATCH; /* a full batch: more may be due */
}

static void notify_teardown(void *state)
{
    co_sender *x = state;

    curl_easy_cleanup(x->curl);
    co_db_close(x->db);
    free(x);
}

bool co_notify_start(co_notifier *n, co_app *app)
{
    n->app = app;
    n->ticker = (co_ticker){.name = "notify", .interval_ms = app->cfg.notify_interval_ms,
                            .setup = notify_setup, .sweep = notify_sweep,
                            .teardown = notify_teardown, .arg = n};
    return co_ticker_start(&n->ticker);
}

void co_notify_stop(co_notifier *n)
{
    co_ticker_stop(&n->ticker);
}

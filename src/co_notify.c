#include "co_notify.h"

#include "co_log.h"
#include "co_sig.h"
#include "store.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Rows claimed per statement. Small, because the lease must cover the batch. */
#define NOTIFY_BATCH 10

/* What the thread owns: its own HTTP handle; Postgres through the app's pool. */
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
    snprintf(idem, sizeof idem, "Idempotency-Key: notification-%.40s", id);
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

/* Reports one claimed attempt. error NULL: delivered. */
static void report(co_sender *x, const co_notification *row, const char *error, bool unclaim)
{
    co_notify_outcome oc = {.max_attempts = x->cfg->notify_max_attempts,
                            .backoff_ms = x->cfg->notify_backoff_ms,
                            .unclaim = unclaim, .error = error};
    bool dead = false;

    if (co_store_notify_result(x->db, row, &oc, &dead) < 0) {
        /* The lease lapses and the row is tried again: at least once, maybe twice. */
        CO_WARN("notify", "notification %s: cannot record the outcome", row->id);
        return;
    }
    if (unclaim) {
        /* given back untried: nothing to count */
    } else if (error == NULL) {
        co_metric_add("notify_delivered", 1);
        CO_DEBUG("notify", "notification %s: delivered at attempt %d", row->id, row->attempts);
    } else if (dead) {
        co_metric_add("notify_dead", 1);
        CO_WARN("notify", "notification %s: dead after %d attempts (%s)", row->id,
                row->attempts, error);
    } else {
        co_metric_add("notify_retried", 1);
        CO_INFO("notify", "notification %s: attempt %d failed (%s), will retry", row->id,
                row->attempts, error);
    }
}

/* One pass: claims a batch of due rows and tries each once. Returns how many
 * it claimed (NOTIFY_BATCH: more may be due). */
static int sweep(co_sender *x)
{
    co_notification rows[NOTIFY_BATCH];
    int n = 0;
    bool give_back = false;

    if (co_store_notify_claim(x->db, lease_seconds(x->cfg), NOTIFY_BATCH, rows, &n) < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        const co_notification *row = &rows[i];
        json_t *j;
        char *body;
        char err[128] = "";
        co_send sent;

        /* Stopping, or the receiver is down: give the rest back untried, so a
         * dead sink costs one attempt per pass, not one per row. */
        if (give_back || stop_requested(x->n)) {
            report(x, row, NULL, true);
            continue;
        }
        j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", row->id, "type",
                      "item.back_in_stock", "item_id", row->item_id, "user_id", row->user_id,
                      "restock_event_id", row->restock_event_id, "created_at", row->created_at);
        body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (body == NULL) {
            report(x, row, "cannot encode the notification", false);
            continue;
        }
        sent = post(x, row->id, body, err);
        free(body);
        report(x, row, sent == CO_SEND_OK ? NULL : err, false);
        give_back = sent == CO_SEND_NO_ANSWER;
    }
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
    x->db = n->app->db;
    x->curl = curl_easy_init();
    if (x->curl == NULL) {
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

/* mock-stripe's webhooks: the events a request produces, the queue they wait in, and
 * the sender threads that POST them signed (co_sig_header) to --webhook-url, retrying
 * with backoff; GET /_mock/webhooks lists them. */
#include "stripe.h"
#include "co_sig.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ intrusive lists */

typedef struct ms_link {
    struct ms_link *prev, *next;
} ms_link;

#define MS_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static void list_init(ms_link *head)
{
    head->prev = head;
    head->next = head;
}

static void list_push_back(ms_link *head, ms_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void list_remove(ms_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l;
    l->next = l;
}

/* ================================================================ events */

/* Builds an event now (the object is a snapshot taken under the PI lock); takes obj. */
void ms_ev_add(ms_req *rq, const char *type, const char *obj_id, json_t *obj)
{
    ms_evlist *ev = &rq->ev;
    ms_newev *e;
    json_t *root;

    if (g_cfg.webhook_url == NULL || ev->n == MS_EVENTS_PER_REQUEST) {
        json_decref(obj);
        return;
    }
    e = &ev->e[ev->n++];
    ms_new_id(e->id, sizeof e->id, "evt_", 24);
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->obj, sizeof e->obj, "%s", obj_id);
    root = json_object();
    ms_jset(root, "id", json_string(e->id));
    ms_jset(root, "object", json_string("event"));
    ms_jset(root, "api_version", json_string(MS_API_VERSION));
    ms_jset(root, "created", json_integer(time(NULL)));
    ms_jset(root, "data", json_pack("{s:o}", "object", obj));
    ms_jset(root, "livemode", json_false());
    ms_jset(root, "pending_webhooks", json_integer(1));
    ms_jset(root, "request", json_pack("{s:s?, s:s?}", "id",
                                       strncmp(rq->path, "/v1/", 4) == 0 ? rq->req_id : NULL,
                                       "idempotency_key", rq->idem));
    ms_jset(root, "type", json_string(type));
    e->body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (e->body == NULL)
        mh_oom();
}

/* ================================================================ delivery */

typedef enum { WH_PENDING, WH_SENDING, WH_DELIVERED, WH_FAILED, WH_DROPPED } ms_whstate;

static const char *const wh_state_names[] = {"pending", "sending", "delivered", "failed",
                                             "dropped"};

typedef struct {
    ms_link all;                /* g_wh.all: every remembered event, oldest first */
    ms_link q;                  /* g_wh.pending or g_wh.done */
    unsigned long long seq;
    char id[MS_ID_MAX];
    char type[48];
    char obj[MS_ID_MAX];
    time_t created;
    char *body;
    size_t len;
    ms_whstate state;
    int attempts;
    long last_status;           /* HTTP status of the last attempt; 0 if none came back */
    char last_error[128];
    long long next_at_ms;       /* monotonic */
} ms_event;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ms_link all, pending, done;
    size_t n_pending, n_done;
    long long delivered, failed, dropped;
    unsigned long long seq;
    pthread_t *threads;
    size_t n_threads;
    atomic_bool stop;
} g_wh;

static void wh_trim_done_locked(void);
static void wh_journal_locked(const ms_event *e);

static void wh_event_free(ms_event *e)
{
    free(e->body);
    free(e);
}

/* Queues one delivery of an event (body copied), due at due_ms; a dropped one
 * goes straight to the finished ones, so GET /_mock/webhooks shows it. */
static void wh_queue(const ms_newev *n, long long due_ms, bool dropped)
{
    ms_event *e = ms_xcalloc(1, sizeof *e);

    memcpy(e->id, n->id, sizeof e->id);
    memcpy(e->type, n->type, sizeof e->type);
    memcpy(e->obj, n->obj, sizeof e->obj);
    e->body = ms_xstrdup(n->body);
    e->len = strlen(e->body);
    e->created = time(NULL);
    e->state = dropped ? WH_DROPPED : WH_PENDING;
    e->next_at_ms = due_ms;
    pthread_mutex_lock(&g_wh.mu);
    e->seq = ++g_wh.seq;
    list_push_back(&g_wh.all, &e->all);
    if (dropped) {
        list_push_back(&g_wh.done, &e->q);
        g_wh.n_done++;
        g_wh.dropped++;
        wh_trim_done_locked();
    } else {
        list_push_back(&g_wh.pending, &e->q);
        g_wh.n_pending++;
        wh_journal_locked(e);
        pthread_cond_signal(&g_wh.cv);
    }
    pthread_mutex_unlock(&g_wh.mu);
}

/* The request's events, each as the webhook faults of its type say (POST
 * /_mock/faults with a "WEBHOOK <type>" match): delayed, dropped (never sent),
 * duplicated (two deliveries of the one event, as Stripe may make), or
 * reordered (held back delay_ms, so that the events made after it are sent
 * first). */
void ms_wh_enqueue(ms_evlist *ev)
{
    for (size_t i = 0; i < ev->n; i++) {
        long long now = ms_mono_ms();
        ms_fault f;

        if (!ms_fault_take("WEBHOOK", ev->e[i].type, &f)) {
            wh_queue(&ev->e[i], now, false);
        } else if (f.action == F_DROP) {
            wh_queue(&ev->e[i], now, true);
        } else if (f.action == F_DUPLICATE) {
            wh_queue(&ev->e[i], now, false);
            wh_queue(&ev->e[i], now + f.delay_ms, false);
        } else {
            wh_queue(&ev->e[i], now + f.delay_ms, false); /* delay, reorder */
        }
        free(ev->e[i].body);
        ev->e[i].body = NULL;
    }
    ev->n = 0;
}

void ms_evlist_free(ms_evlist *ev)
{
    for (size_t i = 0; i < ev->n; i++)
        free(ev->e[i].body);
    ev->n = 0;
}

static size_t wh_discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* Aborts a transfer in flight when the process is stopping. */
static int wh_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)ud;
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    return atomic_load(&g_wh.stop) ? 1 : 0;
}

/* One attempt. The signature is made now, not at creation, as Stripe re-signs every
 * retry with a fresh timestamp (receivers reject stale ones). */
static bool wh_send(CURL *c, const ms_event *e, long *status, char *err, size_t errcap)
{
    char sig[CO_SIG_HEADER_MAX];
    char hdr[CO_SIG_HEADER_MAX + 32];
    char ebuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL;
    CURLcode rc;

    co_sig_header(g_cfg.webhook_secret, time(NULL), e->body, e->len, sig);
    snprintf(hdr, sizeof hdr, "Stripe-Signature: %s", sig);
    h = curl_slist_append(h, "Content-Type: application/json; charset=utf-8");
    h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Expect:");   /* no 100-continue round trip */
    if (h == NULL)
        mh_oom();
    curl_easy_setopt(c, CURLOPT_URL, g_cfg.webhook_url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, e->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "Stripe/1.0 (+https://stripe.com/docs/webhooks)");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wh_discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, wh_progress);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(h);
    if (rc != CURLE_OK)
        snprintf(err, errcap, "%.120s", ebuf[0] != '\0' ? ebuf : curl_easy_strerror(rc));
    else if (*status < 200 || *status > 299)
        snprintf(err, errcap, "HTTP %ld", *status);
    else
        err[0] = '\0';
    return rc == CURLE_OK && *status >= 200 && *status <= 299;
}

static void wh_trim_done_locked(void)
{
    while (g_wh.n_done > (size_t)g_cfg.wh_history) {
        ms_event *e = MS_CONTAINER(g_wh.done.next, ms_event, q);

        list_remove(&e->q);
        list_remove(&e->all);
        g_wh.n_done--;
        wh_event_free(e);
    }
}

/* A sender: takes the oldest due event, sends it without holding g_wh.mu, then records
 * the outcome and schedules a retry (exponential backoff) or retires the event. */
static void *wh_thread(void *arg)
{
    CURL *c = curl_easy_init();

    (void)arg;
    if (c == NULL) {
        CO_ERROR("mock-stripe", "curl_easy_init failed; a webhook sender is missing");
        return NULL;
    }
    pthread_mutex_lock(&g_wh.mu);
    while (!atomic_load(&g_wh.stop)) {
        long long now = ms_mono_ms(), next = now + 1000;
        ms_event *e = NULL;
        long status;
        char err[128];
        bool ok;

        for (ms_link *l = g_wh.pending.next; l != &g_wh.pending; l = l->next) {
            ms_event *x = MS_CONTAINER(l, ms_event, q);

            if (x->state != WH_PENDING)
                continue;
            if (x->next_at_ms <= now) {
                e = x;
                break;
            }
            if (x->next_at_ms < next)
                next = x->next_at_ms;
        }
        if (e == NULL) {
            struct timespec dl;

            ms_deadline_after(&dl, next - now);
            pthread_cond_timedwait(&g_wh.cv, &g_wh.mu, &dl);
            continue;
        }
        e->state = WH_SENDING;
        e->attempts++;
        pthread_mutex_unlock(&g_wh.mu);
        ok = wh_send(c, e, &status, err, sizeof err);
        {
            co_log_field f[] = {CO_LOG_STR("event_id", e->id), CO_LOG_STR("event_type", e->type),
                                CO_LOG_INT("attempt", e->attempts), CO_LOG_INT("status", status)};

            CO_LOGF(g_cfg.verbose ? CO_LOG_INFO : CO_LOG_DEBUG, "mock-stripe", f,
                    "webhook %s %s attempt %d: %s", e->id, e->type, e->attempts,
                    ok ? "delivered" : err);
        }
        pthread_mutex_lock(&g_wh.mu);
        e->last_status = status;
        snprintf(e->last_error, sizeof e->last_error, "%s", err);
        if (ok || e->attempts >= g_cfg.wh_max_attempts) {
            e->state = ok ? WH_DELIVERED : WH_FAILED;
            if (ok)
                g_wh.delivered++;
            else
                g_wh.failed++;
            list_remove(&e->q);
            g_wh.n_pending--;
            list_push_back(&g_wh.done, &e->q);
            g_wh.n_done++;
            wh_trim_done_locked();
        } else {
            long long backoff = (long long)MS_WH_BACKOFF_START_MS << (e->attempts - 1 < 10 ?
                                                                       e->attempts - 1 : 10);

            e->state = WH_PENDING;
            e->next_at_ms = ms_mono_ms() + (backoff < MS_WH_BACKOFF_CAP_MS ? backoff
                                                                           : MS_WH_BACKOFF_CAP_MS);
        }
        wh_journal_locked(e);   /* the attempt's outcome */
    }
    pthread_mutex_unlock(&g_wh.mu);
    curl_easy_cleanup(c);
    return NULL;
}

/* ================================================================ the journal's side */

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The event's record, keyed by seq (a duplicated delivery shares the event's id):
 * whole while it is to be delivered, with its due time on the wall clock (the
 * monotonic one restarts with the process); only its end once it is finished. */
static json_t *wh_rec(const ms_event *e)
{
    long long due = e->next_at_ms - ms_mono_ms();

    if (e->state != WH_PENDING && e->state != WH_SENDING)
        return json_pack("{s:s, s:I, s:s}", "t", "event", "seq", (json_int_t)e->seq,
                         "state", wh_state_names[e->state]);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:s%, s:s, s:i, s:I, s:s, s:I}",
                     "t", "event", "seq", (json_int_t)e->seq, "id", e->id, "type", e->type,
                     "object_id", e->obj, "created", (json_int_t)e->created,
                     "body", e->body, e->len, "state", "pending", "attempts", e->attempts,
                     "last_http_status", (json_int_t)e->last_status, "last_error",
                     e->last_error, "next_at", (json_int_t)(wall_ms() + (due > 0 ? due : 0)));
}

/* Under g_wh.mu, so an event's records land in the order of its changes. */
static void wh_journal_locked(const ms_event *e)
{
    if (ms_journal_on())
        ms_journal_put(wh_rec(e));
}

static bool copy_str(const json_t *rec, const char *k, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(rec, k));

    if (v == NULL || strlen(v) >= cap)
        return false;
    memcpy(out, v, strlen(v) + 1);
    return true;
}

bool ms_wh_restore(const json_t *rec)
{
    const char *state = json_string_value(json_object_get(rec, "state"));
    json_t *body = json_object_get(rec, "body"), *v;
    ms_event *e;
    long long due;

    if (state == NULL)
        return false;
    if (strcmp(state, "pending") != 0)
        return true;            /* finished before the restart */
    e = ms_xcalloc(1, sizeof *e);
    e->seq = (unsigned long long)json_integer_value(json_object_get(rec, "seq"));
    v = json_object_get(rec, "attempts");
    e->attempts = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    e->last_status = (long)json_integer_value(json_object_get(rec, "last_http_status"));
    e->created = (time_t)json_integer_value(json_object_get(rec, "created"));
    due = json_integer_value(json_object_get(rec, "next_at")) - wall_ms();
    e->next_at_ms = ms_mono_ms() + (due > 0 ? due : 0);
    if (!copy_str(rec, "id", e->id, sizeof e->id) ||
        !copy_str(rec, "type", e->type, sizeof e->type) ||
        !copy_str(rec, "object_id", e->obj, sizeof e->obj) ||
        !copy_str(rec, "last_error", e->last_error, sizeof e->last_error) ||
        !json_is_string(body) || e->attempts < 0) {
        free(e);
        return false;
    }
    e->len = json_string_length(body);
    e->body = ms_xstrndup(json_string_value(body), e->len);
    e->state = WH_PENDING;
    pthread_mutex_lock(&g_wh.mu);
    if (e->seq > g_wh.seq)
        g_wh.seq = e->seq;
    list_push_back(&g_wh.all, &e->all);
    list_push_back(&g_wh.pending, &e->q);
    g_wh.n_pending++;
    pthread_mutex_unlock(&g_wh.mu);
    return true;
}

void ms_wh_dump(void)
{
    pthread_mutex_lock(&g_wh.mu);
    for (ms_link *l = g_wh.pending.next; l != &g_wh.pending; l = l->next)
        wh_journal_locked(MS_CONTAINER(l, ms_event, q));
    pthread_mutex_unlock(&g_wh.mu);
}

/* ================================================================ start, stop */

void ms_wh_init(void)
{
    pthread_mutex_init(&g_wh.mu, NULL);
    ms_cond_init_mono(&g_wh.cv);
    list_init(&g_wh.all);
    list_init(&g_wh.pending);
    list_init(&g_wh.done);
}

bool ms_wh_start(void)
{
    if (g_cfg.webhook_url == NULL)
        return true;
    g_wh.threads = ms_xcalloc((size_t)g_cfg.wh_threads, sizeof(pthread_t));
    for (long i = 0; i < g_cfg.wh_threads; i++) {
        if (pthread_create(&g_wh.threads[i], NULL, wh_thread, NULL) != 0) {
            CO_ERROR("mock-stripe", "cannot start webhook sender thread");
            return false;
        }
        g_wh.n_threads++;
    }
    return true;
}

/* Stops the senders (abandoning retries) and frees every event. */
void ms_wh_stop(void)
{
    pthread_mutex_lock(&g_wh.mu);
    atomic_store(&g_wh.stop, true);
    pthread_cond_broadcast(&g_wh.cv);
    pthread_mutex_unlock(&g_wh.mu);
    for (size_t i = 0; i < g_wh.n_threads; i++)
        pthread_join(g_wh.threads[i], NULL);
    free(g_wh.threads);
    while (g_wh.all.next != &g_wh.all) {
        ms_event *e = MS_CONTAINER(g_wh.all.next, ms_event, all);

        list_remove(&e->all);
        wh_event_free(e);
    }
    pthread_cond_destroy(&g_wh.cv);
    pthread_mutex_destroy(&g_wh.mu);
}

/* Forgets finished events; pending ones keep being delivered. */
void ms_wh_clear_done(void)
{
    pthread_mutex_lock(&g_wh.mu);
    while (g_wh.done.next != &g_wh.done) {
        ms_event *e = MS_CONTAINER(g_wh.done.next, ms_event, q);

        list_remove(&e->q);
        list_remove(&e->all);
        wh_event_free(e);
    }
    g_wh.n_done = 0;
    g_wh.delivered = 0;
    g_wh.failed = 0;
    g_wh.dropped = 0;
    pthread_mutex_unlock(&g_wh.mu);
}

json_t *ms_wh_list_json(const char *type, const char *obj)
{
    json_t *data = json_array();
    json_t *root;
    long long now = ms_mono_ms();

    pthread_mutex_lock(&g_wh.mu);
    for (ms_link *l = g_wh.all.next; l != &g_wh.all; l = l->next) {
        ms_event *e = MS_CONTAINER(l, ms_event, all);

        if ((type != NULL && strcmp(type, e->type) != 0) ||
            (obj != NULL && strcmp(obj, e->obj) != 0))
            continue;
        json_array_append_new(data, json_pack(
            "{s:s, s:s, s:s, s:I, s:s, s:i, s:I, s:s?, s:I}",
            "id", e->id, "type", e->type, "object_id", e->obj,
            "created", (json_int_t)e->created, "status", wh_state_names[e->state],
            "attempts", e->attempts, "last_http_status", (json_int_t)e->last_status,
            "last_error", e->last_error[0] != '\0' ? e->last_error : NULL,
            "next_attempt_in_ms", (json_int_t)(e->state == WH_PENDING && e->next_at_ms > now ?
                                               e->next_at_ms - now : 0)));
    }
    root = json_pack("{s:s, s:o, s:I, s:I, s:I, s:I, s:s?}", "object", "list", "data", data,
                     "pending", (json_int_t)g_wh.n_pending, "delivered",
                     (json_int_t)g_wh.delivered, "failed", (json_int_t)g_wh.failed,
                     "dropped", (json_int_t)g_wh.dropped, "url", g_cfg.webhook_url);
    pthread_mutex_unlock(&g_wh.mu);
    return root;
}

/* The counters GET /_mock/stats shows. */
void ms_wh_counts(json_int_t *pending, json_int_t *delivered, json_int_t *failed)
{
    pthread_mutex_lock(&g_wh.mu);
    *pending = (json_int_t)g_wh.n_pending;
    *delivered = (json_int_t)g_wh.delivered;
    *failed = (json_int_t)g_wh.failed;
    pthread_mutex_unlock(&g_wh.mu);
}

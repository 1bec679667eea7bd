/* mock-stripe's fault injection (POST /_mock/faults: answer 500, delay, drop the answer,
 * or hang, for requests matching a method and path; delay, drop, duplicate or
 * reorder the webhook deliveries of an event type) and the rest of the /_mock/
 * endpoints: health, stats, webhooks, reset and 3-D Secure completion. */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ faults */

static const char *const fault_names[] = {"status_500", "delay", "drop_response", "hang",
                                          "drop", "duplicate", "reorder", "status_429", NULL};

#define WEBHOOK_MATCH "WEBHOOK"

/* Which actions a request match takes, and which a webhook match takes. */
static bool action_fits(int act, bool webhook)
{
    if (webhook)
        return act == F_DELAY || act == F_DROP || act == F_DUPLICATE || act == F_REORDER;
    return act == F_STATUS_500 || act == F_DELAY || act == F_DROP_RESPONSE || act == F_HANG ||
           act == F_STATUS_429;
}

static struct {
    pthread_mutex_t mu;
    ms_fault *head;
    long next_id;
} g_faults = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool path_match(const char *pat, const char *path)
{
    for (;;) {
        size_t pl, sl;

        if (*pat != *path)
            return false;       /* both are '/' here, or both end */
        if (*pat == '\0')
            return true;
        pat++;
        path++;
        pl = strcspn(pat, "/");
        sl = strcspn(path, "/");
        if (pl == 1 && pat[0] == '*') {
            if (sl == 0)
                return false;
        } else if (pl != sl || memcmp(pat, path, pl) != 0) {
            return false;
        }
        pat += pl;
        path += sl;
    }
}

/* Does f apply to a request (method, path), or, with method WEBHOOK, to the
 * delivery of an event of type path? The two kinds never match each other. */
static bool fault_matches(const ms_fault *f, const char *method, const char *path)
{
    bool fw = strcmp(f->method, WEBHOOK_MATCH) == 0, rw = strcmp(method, WEBHOOK_MATCH) == 0;

    if (fw || rw)
        return fw && rw && (strcmp(f->path, "*") == 0 || strcmp(f->path, path) == 0);
    return (strcmp(f->method, "*") == 0 || strcmp(f->method, method) == 0) &&
           path_match(f->path, path);
}

/* Consumes one use of the first fault matching the request; copies it to *out. */
bool ms_fault_take(const char *method, const char *path, ms_fault *out)
{
    bool hit = false;

    pthread_mutex_lock(&g_faults.mu);
    for (ms_fault **p = &g_faults.head; *p != NULL; p = &(*p)->next) {
        ms_fault *f = *p;

        if (!fault_matches(f, method, path))
            continue;
        *out = *f;
        out->path = NULL;
        out->next = NULL;
        hit = true;
        f->hits++;
        if (f->remaining > 0 && --f->remaining == 0) {
            *p = f->next;
            free(f->path);
            free(f);
        }
        break;
    }
    pthread_mutex_unlock(&g_faults.mu);
    return hit;
}

static json_t *fault_json(const ms_fault *f)
{
    char match[600], id[32];

    snprintf(match, sizeof match, "%s %s", f->method, f->path);
    snprintf(id, sizeof id, "flt_%ld", f->id);
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "id", id, "match", match,
                     "action", fault_names[f->action], "remaining", (json_int_t)f->remaining,
                     "delay_ms", (json_int_t)f->delay_ms, "hits", (json_int_t)f->hits);
}

long ms_faults_clear(void)
{
    long n = 0;

    pthread_mutex_lock(&g_faults.mu);
    while (g_faults.head != NULL) {
        ms_fault *f = g_faults.head;

        g_faults.head = f->next;
        free(f->path);
        free(f);
        n++;
    }
    pthread_mutex_unlock(&g_faults.mu);
    return n;
}

/* ================================================================ /_mock endpoints */

static json_t *stats_json(void)
{
    json_int_t pending, delivered, failed;

    ms_wh_counts(&pending, &delivered, &failed);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}}",
                     "payment_intents", (json_int_t)atomic_load(&st_pis),
                     "captured", (json_int_t)atomic_load(&st_captured),
                     "canceled", (json_int_t)atomic_load(&st_canceled),
                     "refunds", (json_int_t)atomic_load(&st_refunds),
                     "requests", (json_int_t)atomic_load(&st_requests),
                     "declines", (json_int_t)atomic_load(&st_declines),
                     "idempotent_replays", (json_int_t)atomic_load(&st_replays),
                     "webhooks", "pending", pending, "delivered", delivered,
                     "failed", failed);
}

static json_t *faults_list_json(void)
{
    json_t *data = json_array();

    pthread_mutex_lock(&g_faults.mu);
    for (ms_fault *f = g_faults.head; f != NULL; f = f->next)
        json_array_append_new(data, fault_json(f));
    pthread_mutex_unlock(&g_faults.mu);
    return json_pack("{s:s, s:o}", "object", "list", "data", data);
}

/* POST /_mock/faults {"match":"POST /v1/payment_intents/x/capture","action":...,
 * "count":N (default 1, -1 = until cleared),"delay_ms":M} */
static void mock_fault_add(const ms_req *rq, ms_resp *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(rq->body != NULL ? rq->body : "", rq->body_len, 0, &jerr);
    const char *match, *action, *sp;
    json_t *count, *delay;
    ms_fault *f, **tail;
    long long cnt = 1, dms;
    int act = -1;
    bool webhook;

    if (!json_is_object(j)) {
        ms_fail_mock(r, "Body must be a JSON object: %s", j == NULL ? jerr.text : "not an object");
        goto out;
    }
    match = json_string_value(json_object_get(j, "match"));
    action = json_string_value(json_object_get(j, "action"));
    count = json_object_get(j, "count");
    delay = json_object_get(j, "delay_ms");
    sp = match != NULL ? strchr(match, ' ') : NULL;
    webhook = sp != NULL && (size_t)(sp - match) == strlen(WEBHOOK_MATCH) &&
              memcmp(match, WEBHOOK_MATCH, strlen(WEBHOOK_MATCH)) == 0;
    if (webhook && (strlen(sp + 1) == 0 || strlen(sp + 1) > 100 ||
                    strspn(sp + 1, "abcdefghijklmnopqrstuvwxyz_.") != strlen(sp + 1)) &&
        strcmp(sp + 1, "*") != 0) {
        ms_fail_mock(r, "a webhook match looks like \"WEBHOOK payment_intent.succeeded\" "
                        "or \"WEBHOOK *\"");
        goto out;
    }
    if (!webhook && (sp == NULL || sp == match || (size_t)(sp - match) >= sizeof f->method ||
                     sp[1] != '/' || strlen(sp + 1) > 500)) {
        ms_fail_mock(r, "match must look like \"POST /v1/payment_intents/*/capture\" "
                        "or \"WEBHOOK payment_intent.succeeded\"");
        goto out;
    }
    for (int i = 0; action != NULL && fault_names[i] != NULL; i++) {
        if (strcmp(action, fault_names[i]) == 0)
            act = i;
    }
    if (act < 0 || !action_fits(act, webhook)) {
        ms_fail_mock(r, webhook ? "a webhook fault's action is one of delay, drop, duplicate, "
                                  "reorder"
                                : "action must be one of status_500, status_429, delay, "
                                  "drop_response, hang");
        goto out;
    }
    if (count != NULL) {
        cnt = json_is_integer(count) ? json_integer_value(count) : 0;
        if (cnt == 0 || cnt < -1 || cnt > 1000000000) {
            ms_fail_mock(r, "count must be a positive integer, or -1 for every request");
            goto out;
        }
    }
    dms = act == F_HANG         ? MS_HANG_DEFAULT_MS
          : act == F_DELAY      ? MS_DELAY_DEFAULT_MS
          : act == F_STATUS_429 ? 1000
          : act == F_REORDER    ? MS_REORDER_DEFAULT_MS
                                : 0;
    if (delay != NULL) {
        dms = json_is_integer(delay) ? json_integer_value(delay) : -1;
        if (dms < 0 || dms > 600000) {
            ms_fail_mock(r, "delay_ms must be an integer from 0 to 600000");
            goto out;
        }
    }
    f = ms_xcalloc(1, sizeof *f);
    memcpy(f->method, match, (size_t)(sp - match));
    f->path = ms_xstrdup(sp + 1);
    f->action = (ms_fault_action)act;
    f->remaining = (long)cnt;
    f->delay_ms = (long)dms;
    pthread_mutex_lock(&g_faults.mu);
    f->id = ++g_faults.next_id;
    for (tail = &g_faults.head; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = f;
    ms_resp_json(r, 200, fault_json(f));
    pthread_mutex_unlock(&g_faults.mu);
out:
    json_decref(j);
}

void ms_mock_route(ms_req *rq, ms_resp *r)
{
    const char *m = rq->method;
    const char *p = rq->path;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;

    if (get && strcmp(p, "/_mock/health") == 0) {
        ms_resp_json(r, 200, json_pack("{s:b}", "ok", 1));
    } else if (get && strcmp(p, "/_mock/stats") == 0) {
        ms_resp_json(r, 200, stats_json());
    } else if (strcmp(p, "/_mock/faults") == 0 && (get || post || strcmp(m, "DELETE") == 0)) {
        if (get)
            ms_resp_json(r, 200, faults_list_json());
        else if (post)
            mock_fault_add(rq, r);
        else
            ms_resp_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)ms_faults_clear()));
    } else if (get && strcmp(p, "/_mock/webhooks") == 0) {
        ms_resp_json(r, 200, ms_wh_list_json(ms_form_get(&rq->form, "type"),
                                             ms_form_get(&rq->form, "object_id")));
    } else if (strcmp(m, "DELETE") == 0 && strcmp(p, "/_mock/webhooks") == 0) {
        ms_wh_clear_done();
        ms_resp_json(r, 200, json_pack("{s:b}", "cleared", 1));
    } else if (post && strcmp(p, "/_mock/reset") == 0) {
        ms_reset_state();
        ms_resp_json(r, 200, json_pack("{s:b}", "reset", 1));
    } else if (post && strncmp(p, "/_mock/payment_intents/", 23) == 0) {
        char *copy = ms_xstrdup(p + 23);
        char *slash = strchr(copy, '/');

        if (slash != NULL && strcmp(slash, "/authenticate") == 0) {
            *slash = '\0';
            pthread_rwlock_rdlock(&g_state);
            ms_mock_authenticate(rq, copy, r);
            pthread_rwlock_unlock(&g_state);
        } else {
            ms_fail(r, 404, "invalid_request_error", NULL, NULL, "Unknown mock endpoint");
        }
        free(copy);
    } else {
        ms_fail(r, 404, "invalid_request_error", NULL, NULL,
                "Unknown mock endpoint (%s: %.200s). Try /_mock/stats, /_mock/faults, "
                "/_mock/webhooks, /_mock/reset or /_mock/payment_intents/:id/authenticate.",
                m, p);
    }
}

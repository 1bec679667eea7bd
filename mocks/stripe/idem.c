/* mock-stripe's idempotency store: the first answer to each Idempotency-Key, replayed
 * to retries, with Stripe's 409 for a key still in flight and 400 for a key reused on
 * another endpoint or with other parameters. */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stripe saves the first answer for (account, key) and replays it; keyed here by
 * "<api key>\n<idempotency key>". */
typedef struct {
    bool done;                  /* false: the first request is still running */
    char *endpoint;             /* "POST /v1/..." */
    char *body;
    size_t body_len;
    char req_id[MS_ID_MAX];     /* of the first request: Original-Request */
    int status, retry;
    char *resp;
    size_t resp_len;
} ms_idem;

typedef struct ms_keyq {
    struct ms_keyq *next;
    char key[];
} ms_keyq;

static ms_map g_idem;

/* Keys in order of first use, to forget the oldest beyond --max-idempotency-keys. */
static struct {
    pthread_mutex_t mu;
    ms_keyq *head, *tail;
    size_t n;
} g_idem_fifo = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void idem_free(void *p)
{
    ms_idem *e = p;

    free(e->endpoint);
    free(e->body);
    free(e->resp);
    free(e);
}

static void idem_fifo_clear(void)
{
    while (g_idem_fifo.head != NULL) {
        ms_keyq *q = g_idem_fifo.head;

        g_idem_fifo.head = q->next;
        free(q);
    }
    g_idem_fifo.tail = NULL;
    g_idem_fifo.n = 0;
}

static void idem_remember(const char *key)
{
    size_t len = strlen(key);
    ms_keyq *q = mh_xmalloc(sizeof *q + len + 1), *old = NULL;

    memcpy(q->key, key, len + 1);
    q->next = NULL;
    pthread_mutex_lock(&g_idem_fifo.mu);
    if (g_idem_fifo.tail != NULL)
        g_idem_fifo.tail->next = q;
    else
        g_idem_fifo.head = q;
    g_idem_fifo.tail = q;
    if (++g_idem_fifo.n > (size_t)g_cfg.idem_max) {
        old = g_idem_fifo.head;
        g_idem_fifo.head = old->next;
        g_idem_fifo.n--;
    }
    pthread_mutex_unlock(&g_idem_fifo.mu);
    if (old != NULL) {
        ms_node **bucket;
        ms_shard *s = ms_map_shard(&g_idem, old->key, &bucket);
        ms_node **slot;

        pthread_mutex_lock(&s->mu);
        slot = ms_map_slot_locked(bucket, old->key);
        if (*slot != NULL && ((ms_idem *)(*slot)->val)->done)
            idem_free(ms_map_unlink_locked(slot));
        pthread_mutex_unlock(&s->mu);
        free(old);
    }
}

/* ================================================================ the journal's side */

/* A saved answer as a journal record; NULL when the key or the request is not UTF-8
 * (jansson refuses such strings), which leaves that answer to memory alone. */
static json_t *idem_rec(const char *key, const ms_idem *e)
{
    return json_pack("{s:s, s:s, s:s, s:s%, s:s, s:i, s:i, s:s%}", "t", "idem", "key", key,
                     "endpoint", e->endpoint, "body", e->body, e->body_len,
                     "request_id", e->req_id, "status", e->status, "retry", e->retry,
                     "response", e->resp, e->resp_len);
}

bool ms_idem_restore(const json_t *rec)
{
    const char *key = json_string_value(json_object_get(rec, "key"));
    const char *endpoint = json_string_value(json_object_get(rec, "endpoint"));
    const char *req_id = json_string_value(json_object_get(rec, "request_id"));
    json_t *body = json_object_get(rec, "body"), *resp = json_object_get(rec, "response");
    json_t *status = json_object_get(rec, "status"), *retry = json_object_get(rec, "retry");
    ms_node **bucket;
    ms_shard *s;
    ms_node **slot;
    ms_idem *e;

    if (key == NULL || endpoint == NULL || req_id == NULL || strlen(req_id) >= MS_ID_MAX ||
        !json_is_string(body) || !json_is_string(resp) || !json_is_integer(status) ||
        !json_is_integer(retry))
        return false;
    e = ms_xcalloc(1, sizeof *e);
    e->done = true;
    e->endpoint = ms_xstrdup(endpoint);
    e->body_len = json_string_length(body);
    e->body = ms_xstrndup(json_string_value(body), e->body_len);
    memcpy(e->req_id, req_id, strlen(req_id) + 1);
    e->status = (int)json_integer_value(status);
    e->retry = (int)json_integer_value(retry);
    e->resp_len = json_string_length(resp);
    e->resp = ms_xstrndup(json_string_value(resp), e->resp_len);
    s = ms_map_shard(&g_idem, key, &bucket);
    pthread_mutex_lock(&s->mu);
    slot = ms_map_slot_locked(bucket, key);
    if (*slot != NULL)
        idem_free(ms_map_unlink_locked(slot));
    ms_map_insert_locked(bucket, key, e);
    pthread_mutex_unlock(&s->mu);
    idem_remember(key);         /* and the cap applies again */
    return true;
}

void ms_idem_dump(void)
{
    for (ms_keyq *q = g_idem_fifo.head; q != NULL; q = q->next) {
        ms_idem *e = ms_map_get(&g_idem, q->key);

        if (e != NULL && e->done)
            ms_journal_put(idem_rec(q->key, e));
    }
}

/* ================================================================ begin, finish */

/* Looks the key up; a new key is reserved as in flight. For a replay, fills r with a copy
 * of the saved answer and orig with the first request's id. */
ms_idem_res ms_idem_begin(const char *key, const ms_req *rq, ms_resp *r, char *orig)
{
    ms_node **bucket;
    ms_shard *s = ms_map_shard(&g_idem, key, &bucket);
    ms_node **slot;
    ms_idem *e;
    char endpoint[512];
    ms_idem_res res;

    snprintf(endpoint, sizeof endpoint, "%s %s", rq->method, rq->path);
    pthread_mutex_lock(&s->mu);
    slot = ms_map_slot_locked(bucket, key);
    if (*slot == NULL) {
        e = ms_xcalloc(1, sizeof *e);
        e->endpoint = ms_xstrdup(endpoint);
        e->body = ms_xstrndup(rq->body != NULL ? rq->body : "", rq->body_len);
        e->body_len = rq->body_len;
        memcpy(e->req_id, rq->req_id, sizeof e->req_id);
        ms_map_insert_locked(bucket, key, e);
        pthread_mutex_unlock(&s->mu);
        idem_remember(key);
        return IDEM_NEW;
    }
    e = (*slot)->val;
    if (strcmp(e->endpoint, endpoint) != 0) {
        res = IDEM_OTHER_ENDPOINT;
    } else if (e->body_len != rq->body_len ||
               (rq->body_len > 0 && memcmp(e->body, rq->body, rq->body_len) != 0)) {
        res = IDEM_OTHER_PARAMS;
    } else if (!e->done) {
        res = IDEM_IN_FLIGHT;
    } else {
        res = IDEM_REPLAY;
        r->status = e->status;
        r->retry = e->retry;
        r->body = ms_xstrndup(e->resp, e->resp_len);
        r->len = e->resp_len;
        memcpy(orig, e->req_id, MS_ID_MAX);
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

/* Saves the answer for replays, or (validation failures, faults) forgets the key so a
 * retry runs afresh. Finds the entry again by key: /_mock/reset may have freed it. */
void ms_idem_finish(const char *key, const ms_req *rq, const ms_resp *r, bool save)
{
    ms_node **bucket;
    ms_shard *s = ms_map_shard(&g_idem, key, &bucket);
    ms_node **slot;
    ms_idem *e;
    json_t *rec = NULL;

    pthread_mutex_lock(&s->mu);
    slot = ms_map_slot_locked(bucket, key);
    e = *slot != NULL ? (*slot)->val : NULL;
    if (e != NULL && !e->done && strcmp(e->req_id, rq->req_id) == 0) {
        if (save) {
            e->done = true;
            e->status = r->status;
            e->retry = r->retry;
            e->resp = ms_xstrndup(r->body, r->len);
            e->resp_len = r->len;
            if (ms_journal_on())
                rec = idem_rec(key, e);
        } else {
            idem_free(ms_map_unlink_locked(slot));
        }
    }
    pthread_mutex_unlock(&s->mu);
    /* Before the answer is sent: a retry after a restart replays it. A key still in
     * flight is not kept (as a request the provider never finished, it runs again). */
    ms_journal_put(rec);
}

void ms_idem_init(void)
{
    ms_map_init(&g_idem);
}

/* For /_mock/reset, under the state write lock. */
void ms_idem_reset(void)
{
    ms_map_clear(&g_idem, idem_free);
    pthread_mutex_lock(&g_idem_fifo.mu);
    idem_fifo_clear();
    pthread_mutex_unlock(&g_idem_fifo.mu);
}

void ms_idem_free(void)
{
    ms_map_destroy(&g_idem, idem_free);
    idem_fifo_clear();
}

/* mock-stripe: a stateful Stripe look-alike for the tests, the local demo and the
 * benchmarks (SPEC section 7).
 *
 * A real HTTP server that the official Stripe SDKs talk to: PaymentIntents (create,
 * retrieve, list, update, confirm, capture, cancel), refunds, charges (retrieve), Stripe's
 * test payment methods, Stripe's error bodies and HTTP codes, idempotent replays, and
 * signed webhook events delivered and retried by background threads. Test-only endpoints
 * live under /_mock/ (fault injection, stats, webhook log, 3-D Secure completion, reset);
 * usage() lists the flags and the README describes the behaviour.
 *
 * Threading: libmicrohttpd runs a thread per connection, so --latency-ms and the
 * "delay"/"hang" faults block only the connection they apply to. State is guarded by
 * fine-grained locks: a sharded hash table for lookups, one mutex per PaymentIntent for
 * its fields, short mutexes for the creation-order lists, and one rwlock that every
 * request takes for reading while it touches state and only /_mock/reset takes for
 * writing. No lock is held while sleeping or while a webhook is sent.
 *
 * Lock order: g_state (read) -> pi->mu -> { map shard, g_refunds.mu }. The list mutexes
 * (g_pis.mu, g_refunds.mu) are never held while a PaymentIntent is locked by the same
 * thread in the other order: lists copy pointers under their mutex, release it, and only
 * then lock each PaymentIntent. g_wh.mu, g_faults.mu and g_idem_fifo.mu are leaves. */
#include "co_sig.h"
#include "../common/mockhttp.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define MS_API_VERSION "2024-06-20"
#define MS_BODY_MAX (64 * 1024)     /* larger request bodies get 413 */
#define MS_ID_MAX 48                /* our ids: "prefix_" + 24 characters */
#define MS_KEY_MAX 255              /* API keys and idempotency keys (Stripe's cap) */
#define MS_META_KEYS 50             /* Stripe's metadata limits */
#define MS_META_KEY_LEN 40
#define MS_META_VAL_LEN 500
#define MS_AMOUNT_MAX 99999999LL    /* Stripe's cap for USD: $999,999.99 */
#define MS_SHARDS 64
#define MS_BUCKETS 4096             /* per shard; chains stay short up to ~1M objects */
#define MS_HANG_DEFAULT_MS 30000
#define MS_DELAY_DEFAULT_MS 1000
#define MS_WH_BACKOFF_START_MS 200
#define MS_WH_BACKOFF_CAP_MS 5000
#define MS_EVENTS_PER_REQUEST 4

/* ================================================================ configuration */

typedef struct {
    const char *listen;         /* HOST:PORT; port 0 picks a free one */
    const char *webhook_url;    /* NULL: no events are sent */
    const char *webhook_secret;
    const char *api_key;        /* NULL: any sk_test_ key is accepted */
    long latency_ms;
    long wh_max_attempts;
    long wh_threads;
    long wh_history;            /* finished events kept for GET /_mock/webhooks */
    long idem_max;              /* idempotency keys remembered (Stripe: 24 h) */
    bool verbose;
} ms_config;

static ms_config g_cfg = {
    .listen = "127.0.0.1:12111",
    .wh_max_attempts = 8,
    .wh_threads = 4,
    .wh_history = 10000,
    .idem_max = 50000,
};

/* Counters for GET /_mock/stats. Only operations that took effect count: an idempotent
 * replay executes nothing, so tests can assert "exactly one capture". */
static atomic_llong st_pis, st_captured, st_canceled, st_refunds, st_requests;
static atomic_llong st_declines, st_replays;

/* ================================================================ small utilities */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size > 0 ? size : 1);

    if (p == NULL)
        mh_oom();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = mh_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

static char *xstrdup_opt(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_after(struct timespec *ts, long long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Condition variables time out on the monotonic clock so a clock step cannot stretch
 * a latency sleep or a webhook backoff. */
static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Shutdown wakes every sleeping request (latency, delay and hang faults) so that
 * MHD_stop_daemon, which joins the connection threads, returns promptly. */
static pthread_mutex_t g_stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_stop_cv;
static atomic_bool g_stopping;

static void ms_sleep_ms(long long ms)
{
    struct timespec dl;

    if (ms <= 0)
        return;
    deadline_after(&dl, ms);
    pthread_mutex_lock(&g_stop_mu);
    while (!atomic_load(&g_stopping)) {
        if (pthread_cond_timedwait(&g_stop_cv, &g_stop_mu, &dl) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&g_stop_mu);
}

static void wake_sleepers_for_stop(void)
{
    pthread_mutex_lock(&g_stop_mu);
    atomic_store(&g_stopping, true);
    pthread_cond_broadcast(&g_stop_cv);
    pthread_mutex_unlock(&g_stop_mu);
}

static void fill_random(unsigned char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = getrandom(buf + got, n - got, 0);

        if (k < 0) {
            if (errno == EINTR)
                continue;
            perror("mock-stripe: getrandom");
            abort();
        }
        got += (size_t)k;
    }
}

/* Writes prefix + nrand random alphanumerics, like Stripe's "pi_3MtwBwLkdIwHu7ix28a3tqPa". */
static void new_id(char *out, size_t cap, const char *prefix, size_t nrand)
{
    static const char alnum[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned char rnd[32];
    size_t plen = strlen(prefix);

    if (nrand > sizeof rnd || plen + nrand + 1 > cap)
        abort();
    fill_random(rnd, nrand);
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < nrand; i++)
        out[plen + i] = alnum[rnd[i] % 62];
    out[plen + nrand] = '\0';
}

/* jansson refuses strings that are not UTF-8, so input is checked once at parse time. */
static bool utf8_ok(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < n) {
        unsigned long c = s[i];
        unsigned long min;
        size_t k;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            k = 1;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* Strict base-10 integer: an optional '-', then 1 to 18 digits (so no overflow). */
static bool parse_ll(const char *s, long long *out)
{
    bool neg = false;
    long long v = 0;
    size_t n = 0;

    if (*s == '-') {
        neg = true;
        s++;
    }
    for (; *s != '\0'; s++, n++) {
        if (*s < '0' || *s > '9' || n >= 18)
            return false;
        v = v * 10 + (*s - '0');
    }
    if (n == 0)
        return false;
    *out = neg ? -v : v;
    return true;
}

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

/* ================================================================ sharded hash map */

/* String-keyed map split into shards, each with its own mutex, so lookups from
 * hundreds of connection threads rarely contend. Values are owned by the caller. */
typedef struct ms_node {
    struct ms_node *next;
    char *key;
    void *val;
} ms_node;

typedef struct {
    pthread_mutex_t mu;
    ms_node **b;
} ms_shard;

typedef struct {
    ms_shard s[MS_SHARDS];
} ms_map;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void map_init(ms_map *m)
{
    for (size_t i = 0; i < MS_SHARDS; i++) {
        pthread_mutex_init(&m->s[i].mu, NULL);
        m->s[i].b = xcalloc(MS_BUCKETS, sizeof(ms_node *));
    }
}

static ms_shard *map_shard(ms_map *m, const char *key, ms_node ***bucket)
{
    uint64_t h = hash_str(key);
    ms_shard *s = &m->s[h % MS_SHARDS];

    *bucket = &s->b[(h / MS_SHARDS) % MS_BUCKETS];
    return s;
}

/* The link that points at key's node, or at the NULL that ends the chain. */
static ms_node **map_slot_locked(ms_node **bucket, const char *key)
{
    ms_node **p = bucket;

    while (*p != NULL && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

static void *map_get(ms_map *m, const char *key)
{
    ms_node **bucket;
    ms_shard *s = map_shard(m, key, &bucket);
    ms_node *n;

    pthread_mutex_lock(&s->mu);
    n = *map_slot_locked(bucket, key);
    pthread_mutex_unlock(&s->mu);
    return n != NULL ? n->val : NULL;   /* values outlive their nodes (reset aside) */
}

static void map_insert_locked(ms_node **bucket, const char *key, void *val)
{
    ms_node *n = mh_xmalloc(sizeof *n);

    n->key = xstrdup(key);
    n->val = val;
    n->next = *bucket;
    *bucket = n;
}

static void map_put(ms_map *m, const char *key, void *val)
{
    ms_node **bucket;
    ms_shard *s = map_shard(m, key, &bucket);

    pthread_mutex_lock(&s->mu);
    map_insert_locked(bucket, key, val);
    pthread_mutex_unlock(&s->mu);
}

/* Unlinks *slot and returns its value; the caller frees the value. */
static void *map_unlink_locked(ms_node **slot)
{
    ms_node *n = *slot;
    void *val = n->val;

    *slot = n->next;
    free(n->key);
    free(n);
    return val;
}

/* Not thread-safe: for reset (under the state write lock) and shutdown. */
static void map_clear(ms_map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < MS_SHARDS; i++) {
        for (size_t j = 0; j < MS_BUCKETS; j++) {
            while (m->s[i].b[j] != NULL) {
                void *val = map_unlink_locked(&m->s[i].b[j]);

                if (free_val != NULL)
                    free_val(val);
            }
        }
    }
}

static void map_destroy(ms_map *m, void (*free_val)(void *))
{
    map_clear(m, free_val);
    for (size_t i = 0; i < MS_SHARDS; i++) {
        free(m->s[i].b);
        pthread_mutex_destroy(&m->s[i].mu);
    }
}

/* ================================================================ metadata */

typedef struct {
    char **k, **v;
    size_t n;
} ms_meta;

static void meta_free(ms_meta *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->k[i]);
        free(m->v[i]);
    }
    free(m->k);
    free(m->v);
    m->k = NULL;
    m->v = NULL;
    m->n = 0;
}

/* Stripe's rule: an empty value deletes the key. */
static void meta_set(ms_meta *m, const char *key, const char *val)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->k[i], key) != 0)
            continue;
        if (*val == '\0') {
            free(m->k[i]);
            free(m->v[i]);
            memmove(&m->k[i], &m->k[i + 1], (m->n - i - 1) * sizeof(char *));
            memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(char *));
            m->n--;
        } else {
            free(m->v[i]);
            m->v[i] = xstrdup(val);
        }
        return;
    }
    if (*val == '\0')
        return;
    m->k = mh_xrealloc(m->k, (m->n + 1) * sizeof(char *));
    m->v = mh_xrealloc(m->v, (m->n + 1) * sizeof(char *));
    m->k[m->n] = xstrdup(key);
    m->v[m->n] = xstrdup(val);
    m->n++;
}

static ms_meta meta_clone(const ms_meta *m)
{
    ms_meta c = {0};

    for (size_t i = 0; i < m->n; i++)
        meta_set(&c, m->k[i], m->v[i]);
    return c;
}

static json_t *meta_json(const ms_meta *m)
{
    json_t *o = json_object();

    for (size_t i = 0; i < m->n; i++)
        json_object_set_new(o, m->k[i], json_string(m->v[i]));
    return o;
}

/* ================================================================ responses and errors */

typedef struct {
    int status;
    char *body;         /* malloc'd JSON; sent with MHD_RESPMEM_MUST_FREE */
    size_t len;
    bool no_store;      /* Stripe saves no idempotent result when validation failed */
    int retry;          /* Stripe-Should-Retry: -1 default by status, 0 false, 1 true */
} ms_resp;

static void jset(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v != NULL ? v : json_null());
}

static json_t *jstr_opt(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* Takes root. */
static void resp_json(ms_resp *r, int status, json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);

    json_decref(root);
    free(r->body);
    if (s == NULL)
        mh_oom();
    r->status = status;
    r->body = s;
    r->len = strlen(s);
}

/* Stripe's page for an error code: card_declined -> .../error-codes/card-declined */
static void doc_url(const char *code, char *out, size_t cap)
{
    static const char base[] = "https://stripe.com/docs/error-codes/";

    snprintf(out, cap, "%s%s", base, code);
    for (char *p = out + strlen(out) - strlen(code); *p != '\0'; p++) {
        if (*p == '_')
            *p = '-';
    }
}

static json_t *err_new(const char *type, const char *code, const char *param, const char *msg)
{
    json_t *e = json_object();
    char url[160];

    if (code != NULL) {
        jset(e, "code", json_string(code));
        doc_url(code, url, sizeof url);
        jset(e, "doc_url", json_string(url));
    }
    jset(e, "message", json_string(msg));
    if (param != NULL)
        jset(e, "param", json_string(param));
    jset(e, "type", json_string(type));
    return e;
}

/* Takes err; wraps it as {"error": err}. */
static void reply_error(ms_resp *r, int status, json_t *err)
{
    json_t *root = json_object();

    json_object_set_new(root, "error", err);
    resp_json(r, status, root);
}

/* Messages quote client input; bytes that are not UTF-8 become '?' so jansson takes them. */
static void vformat_msg(char *msg, size_t cap, const char *fmt, va_list ap)
{
    vsnprintf(msg, cap, fmt, ap);
    if (!utf8_ok(msg, strlen(msg))) {
        for (char *p = msg; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        }
    }
}

__attribute__((format(printf, 6, 0)))
static void vfail(ms_resp *r, int status, const char *type, const char *code,
                  const char *param, const char *fmt, va_list ap)
{
    char msg[1024];

    vformat_msg(msg, sizeof msg, fmt, ap);
    reply_error(r, status, err_new(type, code, param, msg));
}

__attribute__((format(printf, 6, 7)))
static void fail(ms_resp *r, int status, const char *type, const char *code,
                 const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(r, status, type, code, param, fmt, ap);
    va_end(ap);
}

/* A 400 for bad parameters: validation, so no idempotent result is saved. */
__attribute__((format(printf, 4, 5)))
static void fail_param(ms_resp *r, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(r, 400, "invalid_request_error", code, param, fmt, ap);
    va_end(ap);
    r->no_store = true;
}

/* ================================================================ form parameters */

typedef struct {
    char *k, *v;
} ms_kv;

typedef struct {
    ms_kv *kv;
    size_t n, cap;
} ms_form;

static void form_add(ms_form *f, char *k, char *v)
{
    if (f->n == f->cap) {
        f->cap = f->cap > 0 ? 2 * f->cap : 16;
        f->kv = mh_xrealloc(f->kv, f->cap * sizeof *f->kv);
    }
    f->kv[f->n].k = k;
    f->kv[f->n].v = v;
    f->n++;
}

static void form_free(ms_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->kv[i].k);
        free(f->kv[i].v);
    }
    free(f->kv);
    memset(f, 0, sizeof *f);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX and '+'; a malformed escape stays literal, as Rack does. Returns NULL
 * (nothing allocated) when the result holds a NUL byte or is not UTF-8. */
static char *form_decode(const char *s, size_t n)
{
    char *out = mh_xmalloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 &&
                   hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    if (memchr(out, '\0', o) != NULL || !utf8_ok(out, o)) {
        free(out);
        return NULL;
    }
    return out;
}

/* Parses an application/x-www-form-urlencoded body. False (f partly filled) on bytes
 * that cannot be a Stripe parameter. */
static bool form_parse(ms_form *f, const char *body, size_t len)
{
    size_t i = 0;

    while (i < len) {
        const char *pair = body + i;
        const char *amp = memchr(pair, '&', len - i);
        size_t plen = amp != NULL ? (size_t)(amp - pair) : len - i;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - pair) : plen;
        char *k, *v;

        i += plen + 1;
        if (klen == 0)
            continue;
        k = form_decode(pair, klen);
        v = eq != NULL ? form_decode(eq + 1, plen - klen - 1) : xstrdup("");
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            return false;
        }
        form_add(f, k, v);
    }
    return true;
}

/* The last value given for key (Rack semantics for repeated scalars), or NULL. */
static const char *form_get(const ms_form *f, const char *key)
{
    for (size_t i = f->n; i > 0; i--) {
        if (strcmp(f->kv[i - 1].k, key) == 0)
            return f->kv[i - 1].v;
    }
    return NULL;
}

typedef enum { P_SCALAR, P_HASH, P_ARRAY, P_ANY } ms_pkind;

typedef struct {
    const char *name;
    ms_pkind kind;
} ms_param;

/* Rejects parameters the endpoint does not know, as Stripe does ("Received unknown
 * parameter"), so a client typo fails loudly here rather than in production. P_ANY
 * names are accepted and ignored (features the mock does not model). */
static bool check_params(const ms_form *f, const ms_param *allowed, ms_resp *r)
{
    for (size_t i = 0; i < f->n; i++) {
        const char *key = f->kv[i].k;
        size_t nlen = strcspn(key, "[");
        const ms_param *p = allowed;

        for (; p->name != NULL; p++) {
            if (strlen(p->name) == nlen && strncmp(p->name, key, nlen) == 0)
                break;
        }
        if (p->name == NULL || (p->kind == P_SCALAR && key[nlen] != '\0')) {
            fail_param(r, "parameter_unknown", key, "Received unknown parameter: %.200s", key);
            return false;
        }
        if (p->kind == P_HASH && key[nlen] != '\0') {
            const char *in = key + nlen + 1;
            size_t ilen = strcspn(in, "[]");

            if (ilen == 0 || strcmp(in + ilen, "]") != 0) {
                fail_param(r, NULL, key, "Invalid %s: must be a hash of string keys", p->name);
                return false;
            }
        }
        if (p->kind == P_ARRAY && key[nlen] != '\0') {
            const char *in = key + nlen + 1;
            size_t ilen = strspn(in, "0123456789");

            if (strcmp(in + ilen, "]") != 0) {
                fail_param(r, NULL, key, "Invalid array: %.200s", key);
                return false;
            }
        }
    }
    return true;
}

/* Reads an optional integer parameter in [min, max]; false after writing a 400. */
static bool get_int(const ms_form *f, const char *name, long long min, long long max,
                    bool *present, long long *out, ms_resp *r)
{
    const char *v = form_get(f, name);

    *present = v != NULL;
    if (v == NULL)
        return true;
    if (!parse_ll(v, out)) {
        fail_param(r, "parameter_invalid_integer", name, "Invalid integer: %.100s", v);
        return false;
    }
    if (*out < min) {
        fail_param(r, "parameter_invalid_integer", name,
                   "This value must be greater than or equal to %lld.", min);
        return false;
    }
    if (*out > max) {
        fail_param(r, "parameter_invalid_integer", name,
                   "This value must be less than or equal to %lld.", max);
        return false;
    }
    return true;
}

static bool get_bool(const ms_form *f, const char *name, bool *out, ms_resp *r)
{
    const char *v = form_get(f, name);

    if (v == NULL)
        return true;
    if (strcmp(v, "true") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0) {
        *out = false;
    } else {
        fail_param(r, NULL, name, "Invalid boolean: %.100s", v);
        return false;
    }
    return true;
}

/* Index of the value in choices (NULL-terminated), *out untouched when absent. */
static bool get_enum(const ms_form *f, const char *name, const char *const *choices,
                     int *out, ms_resp *r)
{
    const char *v = form_get(f, name);
    char list[256] = "";
    size_t used = 0;

    if (v == NULL)
        return true;
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return true;
        }
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i > 0 ? ", " : "",
                                     choices[i]);
    }
    fail_param(r, NULL, name, "Invalid %s: must be one of %s", name, list);
    return false;
}

static bool get_string(const ms_form *f, const char *name, size_t max, const char **out,
                       ms_resp *r)
{
    const char *v = form_get(f, name);

    if (v != NULL && strlen(v) > max) {
        fail_param(r, "parameter_invalid_string", name,
                   "Invalid string: must be at most %zu characters", max);
        return false;
    }
    *out = v;
    return true;
}

/* Validates metadata[...] parameters and applies them to a copy of *m, swapped in only
 * when everything is valid, so a bad request changes nothing. */
static bool apply_metadata(const ms_form *f, ms_meta *m, ms_resp *r)
{
    ms_meta c = meta_clone(m);

    for (size_t i = 0; i < f->n; i++) {
        const char *key = f->kv[i].k;
        const char *val = f->kv[i].v;
        size_t klen;

        if (strcmp(key, "metadata") == 0) {
            if (*val != '\0') {
                fail_param(r, NULL, "metadata", "Invalid hash");
                goto fail;
            }
            meta_free(&c);      /* metadata= (empty) clears every key */
            continue;
        }
        if (strncmp(key, "metadata[", 9) != 0)
            continue;
        klen = strlen(key + 9) - 1;     /* check_params guaranteed the closing ']' */
        if (klen > MS_META_KEY_LEN) {
            fail_param(r, NULL, key, "Metadata keys can have a maximum length of %d characters.",
                       MS_META_KEY_LEN);
            goto fail;
        }
        if (strlen(val) > MS_META_VAL_LEN) {
            fail_param(r, NULL, key,
                       "Metadata values can have a maximum length of %d characters.",
                       MS_META_VAL_LEN);
            goto fail;
        }
        {
            char *k = xstrndup(key + 9, klen);

            meta_set(&c, k, val);
            free(k);
        }
        if (c.n > MS_META_KEYS)
            break;              /* no need to read thousands more */
    }
    if (c.n > MS_META_KEYS) {
        fail_param(r, NULL, "metadata", "You can specify up to %d keys, with key names up to "
                   "%d characters long and values up to %d characters long.",
                   MS_META_KEYS, MS_META_KEY_LEN, MS_META_VAL_LEN);
        goto fail;
    }
    meta_free(m);
    *m = c;
    return true;
fail:
    meta_free(&c);
    return false;
}

/* ================================================================ domain objects */

typedef enum {
    ST_REQUIRES_PAYMENT_METHOD,
    ST_REQUIRES_CONFIRMATION,
    ST_REQUIRES_ACTION,         /* 3-D Secure pending: next_action is set */
    ST_PROCESSING,              /* never entered: card payments settle synchronously */
    ST_REQUIRES_CAPTURE,        /* authorized, amount_capturable > 0 */
    ST_CANCELED,
    ST_SUCCEEDED,               /* captured; amount_received > 0 */
} ms_status;

static const char *const status_names[] = {
    "requires_payment_method", "requires_confirmation", "requires_action", "processing",
    "requires_capture", "canceled", "succeeded",
};

static const char *const capture_names[] = {"automatic", "automatic_async", "manual", NULL};
enum { CAP_AUTOMATIC, CAP_AUTOMATIC_ASYNC, CAP_MANUAL };

static const char *const cancel_reasons[] = {
    "abandoned", "duplicate", "fraudulent", "requested_by_customer", NULL,
};
static const char *const refund_reasons[] = {
    "duplicate", "fraudulent", "requested_by_customer", NULL,
};

typedef struct ms_refund {
    /* Immutable once published, so it is read without a lock. */
    char id[MS_ID_MAX], pi_id[MS_ID_MAX], ch_id[MS_ID_MAX];
    long long amount;
    char currency[4];
    const char *reason;         /* from refund_reasons, or NULL */
    ms_meta meta;
    time_t created;
    size_t idx;                 /* position in g_refunds.v */
    struct ms_refund *next_for_pi;  /* the PI's refunds, newest first (guarded by pi->mu) */
} ms_refund;

typedef struct {
    bool set;
    const char *type, *code, *decline, *msg;    /* static strings */
    char *pm;
    bool has_charge;            /* the failed charge is the PI's latest_charge */
} ms_payerr;

typedef struct ms_pi {
    pthread_mutex_t mu;
    /* immutable once published */
    size_t idx;                 /* position in g_pis.v */
    char id[MS_ID_MAX];
    char secret[MS_ID_MAX + 32];
    time_t created;
    /* guarded by mu */
    ms_status status;
    int capture;                /* CAP_* */
    long long amount, capturable, received, refunded;
    char currency[4];
    char *pm, *description, *receipt_email;
    const char *cancel_reason;
    time_t canceled_at;
    ms_meta meta;
    char **pm_types;
    size_t n_pm_types;
    char ch_id[MS_ID_MAX];      /* latest charge, "" when none */
    bool ch_ok;                 /* it authorized (else it is a failed charge) */
    time_t ch_created;
    char *ch_pm;
    ms_payerr err;              /* last_payment_error */
    ms_refund *refunds;
} ms_pi;

/* Every object by id: pi_ -> ms_pi, ch_ -> the ms_pi that owns the charge, re_ ->
 * ms_refund. Objects are freed only by reset and shutdown. */
static ms_map g_objs;

static struct {
    pthread_mutex_t mu;
    ms_pi **v;
    size_t n, cap;
} g_pis;

static struct {
    pthread_mutex_t mu;
    ms_refund **v;
    size_t n, cap;
} g_refunds;

/* Read by every request that touches state, written only by /_mock/reset. */
static pthread_rwlock_t g_state;

static ms_pi *pi_find(const char *id)
{
    if (strncmp(id, "pi_", 3) != 0)
        return NULL;
    return map_get(&g_objs, id);
}

static ms_pi *charge_find(const char *id)
{
    if (strncmp(id, "ch_", 3) != 0)
        return NULL;
    return map_get(&g_objs, id);
}

static void pi_free(ms_pi *pi)
{
    ms_refund *rf = pi->refunds;

    while (rf != NULL) {
        ms_refund *next = rf->next_for_pi;

        meta_free(&rf->meta);
        free(rf);
        rf = next;
    }
    free(pi->pm);
    free(pi->description);
    free(pi->receipt_email);
    free(pi->ch_pm);
    free(pi->err.pm);
    meta_free(&pi->meta);
    for (size_t i = 0; i < pi->n_pm_types; i++)
        free(pi->pm_types[i]);
    free(pi->pm_types);
    pthread_mutex_destroy(&pi->mu);
    free(pi);
}

/* ---------------------------------------------------------------- test cards */

typedef enum { PM_UNKNOWN, PM_SUCCEEDS, PM_DECLINES, PM_NEEDS_3DS } ms_pm_kind;

typedef struct {
    const char *suffix;         /* after "pm_card_" or "pm_card_visa_" */
    const char *code, *decline, *msg, *last4;
} ms_decline;

static const ms_decline declines[] = {
    {"chargeDeclined", "card_declined", "generic_decline", "Your card was declined.", "0002"},
    {"chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds",
     "Your card has insufficient funds.", "9995"},
    {"chargeDeclinedExpiredCard", "expired_card", "expired_card", "Your card has expired.",
     "0069"},
    {"chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc",
     "Your card's security code is incorrect.", "0127"},
    {"chargeDeclinedProcessingError", "processing_error", "processing_error",
     "An error occurred while processing your card. Try again in a little bit.", "0119"},
    {"chargeDeclinedFraudulent", "card_declined", "fraudulent", "Your card was declined.",
     "0019"},
    {"chargeDeclinedLostCard", "card_declined", "lost_card", "Your card was declined.", "9987"},
    {"chargeDeclinedStolenCard", "card_declined", "stolen_card", "Your card was declined.",
     "9979"},
    {NULL, NULL, NULL, NULL, NULL},
};

static const ms_decline auth_required = {
    "authenticationRequired", "authentication_required", "authentication_required",
    "Your card was declined. This transaction requires authentication.", "3184",
};

static const char *pm_suffix(const char *pm)
{
    if (strncmp(pm, "pm_card_visa_", 13) == 0)
        return pm + 13;
    if (strncmp(pm, "pm_card_", 8) == 0)
        return pm + 8;
    return NULL;
}

static ms_pm_kind pm_classify(const char *pm, const ms_decline **d)
{
    const char *sfx = pm_suffix(pm);

    *d = NULL;
    if (sfx == NULL || *sfx == '\0')
        return PM_UNKNOWN;
    for (const ms_decline *x = declines; x->suffix != NULL; x++) {
        if (strcmp(sfx, x->suffix) == 0) {
            *d = x;
            return PM_DECLINES;
        }
    }
    if (strcmp(sfx, "authenticationRequired") == 0 || strcmp(sfx, "threeDSecureRequired") == 0 ||
        strcmp(sfx, "threeDSecure2Required") == 0)
        return PM_NEEDS_3DS;
    return PM_SUCCEEDS;
}

static json_t *pm_json(const char *pm, time_t created)
{
    const ms_decline *d;
    const char *brand = "visa", *last4 = "4242";
    json_t *o = json_object();

    if (pm_classify(pm, &d) == PM_DECLINES) {
        last4 = d->last4;
    } else if (strstr(pm, "mastercard") != NULL) {
        brand = "mastercard";
        last4 = "4444";
    } else if (strstr(pm, "amex") != NULL) {
        brand = "amex";
        last4 = "8431";
    } else if (strstr(pm, "discover") != NULL) {
        brand = "discover";
        last4 = "1117";
    } else if (strstr(pm, "threeDSecure") != NULL) {
        last4 = "3063";
    } else if (strstr(pm, "authenticationRequired") != NULL) {
        last4 = "3184";
    }
    jset(o, "id", json_string(pm));
    jset(o, "object", json_string("payment_method"));
    jset(o, "billing_details", json_pack("{s:n, s:n, s:n, s:n}", "address", "email", "name",
                                         "phone"));
    jset(o, "card", json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "brand", brand, "country", "US",
                              "exp_month", 12, "exp_year", 2034, "funding", "credit",
                              "last4", last4));
    jset(o, "created", json_integer(created));
    jset(o, "customer", NULL);
    jset(o, "livemode", json_false());
    jset(o, "metadata", json_object());
    jset(o, "type", json_string("card"));
    return o;
}

/* ---------------------------------------------------------------- rendering */

static json_t *payerr_json(const ms_pi *pi)
{
    const ms_payerr *e = &pi->err;
    json_t *o;

    if (!e->set)
        return json_null();
    o = err_new(e->type, e->code, NULL, e->msg);
    if (e->has_charge)
        jset(o, "charge", json_string(pi->ch_id));
    if (e->decline != NULL)
        jset(o, "decline_code", json_string(e->decline));
    if (e->pm != NULL)
        jset(o, "payment_method", pm_json(e->pm, pi->created));
    return o;
}

static json_t *pi_json(const ms_pi *pi)
{
    json_t *o = json_object();
    json_t *types = json_array();

    jset(o, "id", json_string(pi->id));
    jset(o, "object", json_string("payment_intent"));
    jset(o, "amount", json_integer(pi->amount));
    jset(o, "amount_capturable", json_integer(pi->capturable));
    jset(o, "amount_details", json_pack("{s:{}}", "tip"));
    jset(o, "amount_received", json_integer(pi->received));
    jset(o, "application", NULL);
    jset(o, "application_fee_amount", NULL);
    jset(o, "automatic_payment_methods", NULL);
    jset(o, "canceled_at", pi->canceled_at != 0 ? json_integer(pi->canceled_at) : NULL);
    jset(o, "cancellation_reason", jstr_opt(pi->cancel_reason));
    jset(o, "capture_method", json_string(capture_names[pi->capture]));
    jset(o, "client_secret", json_string(pi->secret));
    jset(o, "confirmation_method", json_string("automatic"));
    jset(o, "created", json_integer(pi->created));
    jset(o, "currency", json_string(pi->currency));
    jset(o, "customer", NULL);
    jset(o, "description", jstr_opt(pi->description));
    jset(o, "invoice", NULL);
    jset(o, "last_payment_error", payerr_json(pi));
    jset(o, "latest_charge", pi->ch_id[0] != '\0' ? json_string(pi->ch_id) : NULL);
    jset(o, "livemode", json_false());
    jset(o, "metadata", meta_json(&pi->meta));
    if (pi->status == ST_REQUIRES_ACTION)
        jset(o, "next_action",
             json_pack("{s:s, s:{s:s, s:s}}", "type", "use_stripe_sdk", "use_stripe_sdk",
                       "type", "three_d_secure_redirect", "stripe_js",
                       "https://hooks.stripe.com/3d_secure_2/hosted"));
    else
        jset(o, "next_action", NULL);
    jset(o, "on_behalf_of", NULL);
    jset(o, "payment_method", jstr_opt(pi->pm));
    jset(o, "payment_method_configuration_details", NULL);
    jset(o, "payment_method_options",
         json_pack("{s:{s:n, s:n, s:n, s:s}}", "card", "installments", "mandate_options",
                   "network", "request_three_d_secure", "automatic"));
    for (size_t i = 0; i < pi->n_pm_types; i++)
        json_array_append_new(types, json_string(pi->pm_types[i]));
    jset(o, "payment_method_types", types);
    jset(o, "processing", NULL);
    jset(o, "receipt_email", jstr_opt(pi->receipt_email));
    jset(o, "review", NULL);
    jset(o, "setup_future_usage", NULL);
    jset(o, "shipping", NULL);
    jset(o, "source", NULL);
    jset(o, "statement_descriptor", NULL);
    jset(o, "statement_descriptor_suffix", NULL);
    jset(o, "status", json_string(status_names[pi->status]));
    jset(o, "transfer_data", NULL);
    jset(o, "transfer_group", NULL);
    return o;
}

/* What the latest charge has given back: refunds, the part a partial capture released,
 * or everything when an authorization was voided. */
static long long charge_refunded(const ms_pi *pi)
{
    if (!pi->ch_ok)
        return 0;
    if (pi->status == ST_SUCCEEDED)
        return pi->refunded + (pi->amount - pi->received);
    if (pi->status == ST_CANCELED)
        return pi->amount;
    return 0;
}

static json_t *charge_json(const ms_pi *pi)
{
    json_t *o = json_object();
    bool captured = pi->ch_ok && pi->status == ST_SUCCEEDED;
    long long refunded = charge_refunded(pi);

    jset(o, "id", json_string(pi->ch_id));
    jset(o, "object", json_string("charge"));
    jset(o, "amount", json_integer(pi->amount));
    jset(o, "amount_captured", json_integer(captured ? pi->received : 0));
    jset(o, "amount_refunded", json_integer(refunded));
    jset(o, "balance_transaction", NULL);
    jset(o, "captured", json_boolean(captured));
    jset(o, "created", json_integer(pi->ch_created));
    jset(o, "currency", json_string(pi->currency));
    jset(o, "description", jstr_opt(pi->description));
    jset(o, "failure_code", pi->ch_ok ? NULL : jstr_opt(pi->err.code));
    jset(o, "failure_message", pi->ch_ok ? NULL : jstr_opt(pi->err.msg));
    jset(o, "livemode", json_false());
    jset(o, "metadata", meta_json(&pi->meta));
    jset(o, "outcome",
         pi->ch_ok ? json_pack("{s:s, s:n, s:s, s:s, s:s}", "network_status",
                               "approved_by_network", "reason", "risk_level", "normal",
                               "seller_message", "Payment complete.", "type", "authorized")
                   : json_pack("{s:s, s:s?, s:s, s:s, s:s}", "network_status",
                               "declined_by_network", "reason", pi->err.decline,
                               "risk_level", "normal", "seller_message",
                               "The bank did not return any further details with this decline.",
                               "type", "issuer_declined"));
    jset(o, "paid", json_boolean(pi->ch_ok));
    jset(o, "payment_intent", json_string(pi->id));
    jset(o, "payment_method", jstr_opt(pi->ch_pm));
    jset(o, "receipt_email", jstr_opt(pi->receipt_email));
    jset(o, "refunded", json_boolean(pi->ch_ok && refunded == pi->amount));
    jset(o, "status", json_string(pi->ch_ok ? "succeeded" : "failed"));
    return o;
}

static json_t *refund_json(const ms_refund *rf)
{
    json_t *o = json_object();

    jset(o, "id", json_string(rf->id));
    jset(o, "object", json_string("refund"));
    jset(o, "amount", json_integer(rf->amount));
    jset(o, "balance_transaction", NULL);
    jset(o, "charge", json_string(rf->ch_id));
    jset(o, "created", json_integer(rf->created));
    jset(o, "currency", json_string(rf->currency));
    jset(o, "metadata", meta_json(&rf->meta));
    jset(o, "payment_intent", json_string(rf->pi_id));
    jset(o, "reason", jstr_opt(rf->reason));
    jset(o, "receipt_number", NULL);
    jset(o, "source_transfer_reversal", NULL);
    jset(o, "status", json_string("succeeded"));
    jset(o, "transfer_reversal", NULL);
    return o;
}

/* ================================================================ requests */

typedef struct {
    char *body;                 /* the whole event, JSON */
    char id[MS_ID_MAX];
    char type[48];
    char obj[MS_ID_MAX];
} ms_newev;

/* Events produced while a request runs; queued for delivery once its locks are gone. */
typedef struct {
    ms_newev e[MS_EVENTS_PER_REQUEST];
    size_t n;
} ms_evlist;

typedef struct {
    struct MHD_Connection *conn;
    const char *method, *path;
    const char *body;
    size_t body_len;
    ms_form form;               /* body parameters (POST) or query parameters */
    char req_id[MS_ID_MAX];
    char api_key[MS_KEY_MAX + 1];
    const char *idem;           /* Idempotency-Key header or NULL */
    ms_evlist ev;
} ms_req;

/* Builds an event now (the object is a snapshot taken under the PI lock); takes obj. */
static void ev_add(ms_req *rq, const char *type, const char *obj_id, json_t *obj)
{
    ms_evlist *ev = &rq->ev;
    ms_newev *e;
    json_t *root;

    if (g_cfg.webhook_url == NULL || ev->n == MS_EVENTS_PER_REQUEST) {
        json_decref(obj);
        return;
    }
    e = &ev->e[ev->n++];
    new_id(e->id, sizeof e->id, "evt_", 24);
    snprintf(e->type, sizeof e->type, "%s", type);
    snprintf(e->obj, sizeof e->obj, "%s", obj_id);
    root = json_object();
    jset(root, "id", json_string(e->id));
    jset(root, "object", json_string("event"));
    jset(root, "api_version", json_string(MS_API_VERSION));
    jset(root, "created", json_integer(time(NULL)));
    jset(root, "data", json_pack("{s:o}", "object", obj));
    jset(root, "livemode", json_false());
    jset(root, "pending_webhooks", json_integer(1));
    jset(root, "request", json_pack("{s:s?, s:s?}", "id",
                                    strncmp(rq->path, "/v1/", 4) == 0 ? rq->req_id : NULL,
                                    "idempotency_key", rq->idem));
    jset(root, "type", json_string(type));
    e->body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (e->body == NULL)
        mh_oom();
}

/* ================================================================ webhook delivery */

typedef enum { WH_PENDING, WH_SENDING, WH_DELIVERED, WH_FAILED } ms_whstate;

static const char *const wh_state_names[] = {"pending", "sending", "delivered", "failed"};

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
    long long delivered, failed;
    unsigned long long seq;
    pthread_t *threads;
    size_t n_threads;
    atomic_bool stop;
} g_wh;

static void wh_event_free(ms_event *e)
{
    free(e->body);
    free(e);
}

static void wh_enqueue(ms_evlist *ev)
{
    for (size_t i = 0; i < ev->n; i++) {
        ms_event *e = xcalloc(1, sizeof *e);

        memcpy(e->id, ev->e[i].id, sizeof e->id);
        memcpy(e->type, ev->e[i].type, sizeof e->type);
        memcpy(e->obj, ev->e[i].obj, sizeof e->obj);
        e->body = ev->e[i].body;
        e->len = strlen(e->body);
        ev->e[i].body = NULL;
        e->created = time(NULL);
        e->state = WH_PENDING;
        e->next_at_ms = mono_ms();
        pthread_mutex_lock(&g_wh.mu);
        e->seq = ++g_wh.seq;
        list_push_back(&g_wh.all, &e->all);
        list_push_back(&g_wh.pending, &e->q);
        g_wh.n_pending++;
        pthread_cond_signal(&g_wh.cv);
        pthread_mutex_unlock(&g_wh.mu);
    }
    ev->n = 0;
}

static void evlist_free(ms_evlist *ev)
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
        fputs("mock-stripe: curl_easy_init failed; a webhook sender is missing\n", stderr);
        return NULL;
    }
    pthread_mutex_lock(&g_wh.mu);
    while (!atomic_load(&g_wh.stop)) {
        long long now = mono_ms(), next = now + 1000;
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

            deadline_after(&dl, next - now);
            pthread_cond_timedwait(&g_wh.cv, &g_wh.mu, &dl);
            continue;
        }
        e->state = WH_SENDING;
        e->attempts++;
        pthread_mutex_unlock(&g_wh.mu);
        ok = wh_send(c, e, &status, err, sizeof err);
        if (g_cfg.verbose)
            fprintf(stderr, "mock-stripe: webhook %s %s attempt %d: %s\n", e->id, e->type,
                    e->attempts, ok ? "delivered" : err);
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
            e->next_at_ms = mono_ms() + (backoff < MS_WH_BACKOFF_CAP_MS ? backoff
                                                                        : MS_WH_BACKOFF_CAP_MS);
        }
    }
    pthread_mutex_unlock(&g_wh.mu);
    curl_easy_cleanup(c);
    return NULL;
}

static void wh_init(void)
{
    pthread_mutex_init(&g_wh.mu, NULL);
    cond_init_mono(&g_wh.cv);
    list_init(&g_wh.all);
    list_init(&g_wh.pending);
    list_init(&g_wh.done);
}

static bool wh_start(void)
{
    if (g_cfg.webhook_url == NULL)
        return true;
    g_wh.threads = xcalloc((size_t)g_cfg.wh_threads, sizeof(pthread_t));
    for (long i = 0; i < g_cfg.wh_threads; i++) {
        if (pthread_create(&g_wh.threads[i], NULL, wh_thread, NULL) != 0) {
            fputs("mock-stripe: cannot start webhook sender thread\n", stderr);
            return false;
        }
        g_wh.n_threads++;
    }
    return true;
}

/* Stops the senders (abandoning retries) and frees every event. */
static void wh_stop(void)
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
static void wh_clear_done(void)
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
    pthread_mutex_unlock(&g_wh.mu);
}

static json_t *wh_list_json(const char *type, const char *obj)
{
    json_t *data = json_array();
    json_t *root;
    long long now = mono_ms();

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
    root = json_pack("{s:s, s:o, s:I, s:I, s:I, s:s?}", "object", "list", "data", data,
                     "pending", (json_int_t)g_wh.n_pending, "delivered",
                     (json_int_t)g_wh.delivered, "failed", (json_int_t)g_wh.failed,
                     "url", g_cfg.webhook_url);
    pthread_mutex_unlock(&g_wh.mu);
    return root;
}

/* ================================================================ idempotency */

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
        ms_shard *s = map_shard(&g_idem, old->key, &bucket);
        ms_node **slot;

        pthread_mutex_lock(&s->mu);
        slot = map_slot_locked(bucket, old->key);
        if (*slot != NULL && ((ms_idem *)(*slot)->val)->done)
            idem_free(map_unlink_locked(slot));
        pthread_mutex_unlock(&s->mu);
        free(old);
    }
}

typedef enum { IDEM_NEW, IDEM_REPLAY, IDEM_IN_FLIGHT, IDEM_OTHER_ENDPOINT, IDEM_OTHER_PARAMS }
    ms_idem_res;

/* Looks the key up; a new key is reserved as in flight. For a replay, fills r with a copy
 * of the saved answer and orig with the first request's id. */
static ms_idem_res idem_begin(const char *key, const ms_req *rq, ms_resp *r, char *orig)
{
    ms_node **bucket;
    ms_shard *s = map_shard(&g_idem, key, &bucket);
    ms_node **slot;
    ms_idem *e;
    char endpoint[512];
    ms_idem_res res;

    snprintf(endpoint, sizeof endpoint, "%s %s", rq->method, rq->path);
    pthread_mutex_lock(&s->mu);
    slot = map_slot_locked(bucket, key);
    if (*slot == NULL) {
        e = xcalloc(1, sizeof *e);
        e->endpoint = xstrdup(endpoint);
        e->body = xstrndup(rq->body != NULL ? rq->body : "", rq->body_len);
        e->body_len = rq->body_len;
        memcpy(e->req_id, rq->req_id, sizeof e->req_id);
        map_insert_locked(bucket, key, e);
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
        r->body = xstrndup(e->resp, e->resp_len);
        r->len = e->resp_len;
        memcpy(orig, e->req_id, MS_ID_MAX);
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

/* Saves the answer for replays, or (validation failures, faults) forgets the key so a
 * retry runs afresh. Finds the entry again by key: /_mock/reset may have freed it. */
static void idem_finish(const char *key, const ms_req *rq, const ms_resp *r, bool save)
{
    ms_node **bucket;
    ms_shard *s = map_shard(&g_idem, key, &bucket);
    ms_node **slot;
    ms_idem *e;

    pthread_mutex_lock(&s->mu);
    slot = map_slot_locked(bucket, key);
    e = *slot != NULL ? (*slot)->val : NULL;
    if (e != NULL && !e->done && strcmp(e->req_id, rq->req_id) == 0) {
        if (save) {
            e->done = true;
            e->status = r->status;
            e->retry = r->retry;
            e->resp = xstrndup(r->body, r->len);
            e->resp_len = r->len;
        } else {
            idem_free(map_unlink_locked(slot));
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* ================================================================ faults */

typedef enum { F_STATUS_500, F_DELAY, F_DROP_RESPONSE, F_HANG } ms_fault_action;

static const char *const fault_names[] = {"status_500", "delay", "drop_response", "hang", NULL};

typedef struct ms_fault {
    struct ms_fault *next;
    long id;
    char method[16];            /* "*" matches any method */
    char *path;                 /* '*' segments match one path segment */
    ms_fault_action action;
    long remaining;             /* -1: until deleted */
    long delay_ms;
    long hits;
} ms_fault;

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

/* Consumes one use of the first fault matching the request; copies it to *out. */
static bool fault_take(const char *method, const char *path, ms_fault *out)
{
    bool hit = false;

    pthread_mutex_lock(&g_faults.mu);
    for (ms_fault **p = &g_faults.head; *p != NULL; p = &(*p)->next) {
        ms_fault *f = *p;

        if ((strcmp(f->method, "*") != 0 && strcmp(f->method, method) != 0) ||
            !path_match(f->path, path))
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

static long faults_clear(void)
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

/* ================================================================ PaymentIntent logic */

__attribute__((format(printf, 3, 4)))
static void fail_state(ms_resp *r, const ms_pi *pi, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *err;

    va_start(ap, fmt);
    vformat_msg(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err = err_new("invalid_request_error", "payment_intent_unexpected_state", NULL, msg);
    jset(err, "payment_intent", pi_json(pi));
    reply_error(r, 400, err);
}

static void fail_no_pi(ms_resp *r, const char *id, const char *param, int status)
{
    fail(r, status, "invalid_request_error", "resource_missing", param,
         "No such payment_intent: '%.100s'", id);
    r->no_store = true;
}

/* The PaymentIntent id, locked (pi->mu; the caller unlocks it), or NULL with a 404
 * resource_missing answered. */
static ms_pi *pi_lock(const char *id, ms_resp *r)
{
    ms_pi *pi = pi_find(id);

    if (pi == NULL) {
        fail_no_pi(r, id, "intent", 404);
        return NULL;
    }
    pthread_mutex_lock(&pi->mu);
    return pi;
}

static void fail_unknown_pm(ms_resp *r, const char *pm)
{
    fail_param(r, "resource_missing", "payment_method", "No such PaymentMethod: '%.100s'", pm);
}

static void reply_pi(ms_resp *r, const ms_pi *pi)
{
    resp_json(r, 200, pi_json(pi));
}

/* The 402 Stripe answers for a declined card: the error carries the whole PaymentIntent
 * (now requires_payment_method with last_payment_error) and the failed charge. */
static void reply_card_error(ms_resp *r, const ms_req *rq, const ms_pi *pi)
{
    json_t *err = err_new("card_error", pi->err.code, NULL, pi->err.msg);
    char url[160];

    if (pi->err.has_charge)
        jset(err, "charge", json_string(pi->ch_id));
    jset(err, "decline_code", jstr_opt(pi->err.decline));
    jset(err, "payment_intent", pi_json(pi));
    if (pi->err.pm != NULL)
        jset(err, "payment_method", pm_json(pi->err.pm, pi->created));
    snprintf(url, sizeof url, "https://dashboard.stripe.com/test/logs/%s?t=%lld", rq->req_id,
             (long long)time(NULL));
    jset(err, "request_log_url", json_string(url));
    reply_error(r, 402, err);
    r->retry = 0;
}

/* A new latest charge, made with payment method pm. */
static void pi_new_charge_locked(ms_pi *pi, bool ok, const char *pm)
{
    new_id(pi->ch_id, sizeof pi->ch_id, "ch_", 24);
    pi->ch_ok = ok;
    pi->ch_created = time(NULL);
    free(pi->ch_pm);
    pi->ch_pm = xstrdup_opt(pm);
    map_put(&g_objs, pi->ch_id, pi);
}

static void pi_clear_error_locked(ms_pi *pi)
{
    free(pi->err.pm);
    memset(&pi->err, 0, sizeof pi->err);
}

/* The card authorized: manual capture waits in requires_capture, automatic captures now. */
static void pi_authorized_locked(ms_pi *pi, ms_req *rq)
{
    pi_clear_error_locked(pi);
    pi_new_charge_locked(pi, true, pi->pm);
    if (pi->capture == CAP_MANUAL) {
        pi->status = ST_REQUIRES_CAPTURE;
        pi->capturable = pi->amount;
        ev_add(rq, "payment_intent.amount_capturable_updated", pi->id, pi_json(pi));
    } else {
        pi->status = ST_SUCCEEDED;
        pi->received = pi->amount;
        atomic_fetch_add(&st_captured, 1);
        ev_add(rq, "payment_intent.succeeded", pi->id, pi_json(pi));
    }
}

/* The attempt failed: Stripe detaches the payment method and goes back to
 * requires_payment_method, recording why in last_payment_error. */
static void pi_failed_locked(ms_pi *pi, ms_req *rq, const char *type, const ms_decline *d,
                             bool with_charge)
{
    char *pm = pi->pm;         /* moves to last_payment_error */

    pi->pm = NULL;
    if (with_charge)
        pi_new_charge_locked(pi, false, pm);
    pi_clear_error_locked(pi);
    pi->err.set = true;
    pi->err.type = type;
    pi->err.code = d->code;
    pi->err.decline = d->decline;
    pi->err.msg = d->msg;
    pi->err.pm = pm;
    pi->err.has_charge = with_charge;
    pi->status = ST_REQUIRES_PAYMENT_METHOD;
    atomic_fetch_add(&st_declines, 1);
    ev_add(rq, "payment_intent.payment_failed", pi->id, pi_json(pi));
}

/* Confirms with pi->pm (known to be a test card). pi is locked. */
static void pi_confirm_locked(ms_pi *pi, ms_req *rq, bool off_session, ms_resp *r)
{
    const ms_decline *d;

    switch (pm_classify(pi->pm, &d)) {
    case PM_SUCCEEDS:
        pi_authorized_locked(pi, rq);
        reply_pi(r, pi);
        return;
    case PM_DECLINES:
        pi_failed_locked(pi, rq, "card_error", d, true);
        reply_card_error(r, rq, pi);
        return;
    case PM_NEEDS_3DS:
        if (off_session) {
            /* Nobody is there to authenticate: Stripe declines at once. */
            pi_failed_locked(pi, rq, "card_error", &auth_required, true);
            reply_card_error(r, rq, pi);
            return;
        }
        pi_clear_error_locked(pi);
        pi->status = ST_REQUIRES_ACTION;
        ev_add(rq, "payment_intent.requires_action", pi->id, pi_json(pi));
        reply_pi(r, pi);
        return;
    case PM_UNKNOWN:
        break;
    }
    abort();                    /* callers check the payment method first */
}

static const ms_param pi_create_params[] = {
    {"amount", P_SCALAR}, {"currency", P_SCALAR}, {"payment_method", P_SCALAR},
    {"confirm", P_SCALAR}, {"capture_method", P_SCALAR}, {"metadata", P_HASH},
    {"payment_method_types", P_ARRAY}, {"description", P_SCALAR},
    {"receipt_email", P_SCALAR}, {"expand", P_ARRAY}, {"customer", P_SCALAR},
    {"automatic_payment_methods", P_ANY}, {"return_url", P_SCALAR},
    {"off_session", P_SCALAR}, {"error_on_requires_action", P_SCALAR},
    {"confirmation_method", P_SCALAR}, {"statement_descriptor", P_SCALAR},
    {"statement_descriptor_suffix", P_SCALAR}, {"setup_future_usage", P_SCALAR},
    {"shipping", P_ANY}, {"payment_method_options", P_ANY}, {"payment_method_data", P_ANY},
    {"mandate_data", P_ANY}, {"transfer_group", P_SCALAR}, {"use_stripe_sdk", P_SCALAR},
    {"radar_options", P_ANY}, {"payment_method_configuration", P_SCALAR},
    {NULL, P_ANY},
};

/* payment_method_types[...] values, in order; none given -> ["card"]. */
static bool parse_pm_types(const ms_form *f, char ***out, size_t *n, ms_resp *r)
{
    char **v = NULL;
    size_t k = 0;

    for (size_t i = 0; i < f->n; i++) {
        if (strncmp(f->kv[i].k, "payment_method_types", 20) != 0 || f->kv[i].k[20] != '[')
            continue;
        if (f->kv[i].v[0] == '\0' || strlen(f->kv[i].v) > 64) {
            for (size_t j = 0; j < k; j++)
                free(v[j]);
            free(v);
            fail_param(r, NULL, f->kv[i].k, "Invalid payment_method_types: %.64s",
                       f->kv[i].v);
            return false;
        }
        v = mh_xrealloc(v, (k + 1) * sizeof *v);
        v[k++] = xstrdup(f->kv[i].v);
    }
    if (k == 0) {
        v = mh_xmalloc(sizeof *v);
        v[k++] = xstrdup("card");
    }
    *out = v;
    *n = k;
    return true;
}

static bool parse_amount(const ms_form *f, const char *name, bool required, bool *present,
                         long long *out, ms_resp *r)
{
    if (!get_int(f, name, 1, 999999999999999999LL, present, out, r))
        return false;
    if (!*present && required) {
        fail_param(r, "parameter_missing", name, "Missing required param: %s.", name);
        return false;
    }
    if (*present && *out > MS_AMOUNT_MAX) {
        fail_param(r, "amount_too_large", name, "Amount must be no more than $999,999.99");
        return false;
    }
    return true;
}

static bool parse_currency(const ms_form *f, bool required, char out[4], ms_resp *r)
{
    const char *v = form_get(f, "currency");

    if (v == NULL) {
        if (required) {
            fail_param(r, "parameter_missing", "currency", "Missing required param: currency.");
            return false;
        }
        return true;
    }
    if (strlen(v) != 3 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        != 3) {
        fail_param(r, "parameter_invalid_string", "currency", "Invalid currency: %.20s", v);
        return false;
    }
    for (int i = 0; i < 3; i++)
        out[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] - 'A' + 'a' : v[i]);
    out[3] = '\0';
    return true;
}

static bool check_pm(const char *pm, ms_resp *r)
{
    const ms_decline *d;

    if (pm != NULL && pm_classify(pm, &d) == PM_UNKNOWN) {
        fail_unknown_pm(r, pm);
        return false;
    }
    return true;
}

static void pi_publish(ms_pi *pi)
{
    pthread_mutex_lock(&g_pis.mu);
    if (g_pis.n == g_pis.cap) {
        g_pis.cap = g_pis.cap > 0 ? 2 * g_pis.cap : 1024;
        g_pis.v = mh_xrealloc(g_pis.v, g_pis.cap * sizeof *g_pis.v);
    }
    pi->idx = g_pis.n;
    g_pis.v[g_pis.n++] = pi;
    pthread_mutex_unlock(&g_pis.mu);
    map_put(&g_objs, pi->id, pi);
    atomic_fetch_add(&st_pis, 1);
}

/* POST /v1/payment_intents */
static void h_pi_create(ms_req *rq, const char *id, ms_resp *r)
{
    const ms_form *f = &rq->form;
    long long amount;
    bool present, confirm = false, off_session = false, error_on_action = false;
    int capture = CAP_AUTOMATIC;
    char currency[4];
    const char *pm = form_get(f, "payment_method"), *desc, *email;
    ms_meta meta = {0};
    char **types = NULL;
    size_t n_types = 0;
    ms_pi *pi;

    (void)id;
    if (!check_params(f, pi_create_params, r) ||
        !parse_amount(f, "amount", true, &present, &amount, r) ||
        !parse_currency(f, true, currency, r) ||
        !get_enum(f, "capture_method", capture_names, &capture, r) ||
        !get_bool(f, "confirm", &confirm, r) || !get_bool(f, "off_session", &off_session, r) ||
        !get_bool(f, "error_on_requires_action", &error_on_action, r) ||
        !get_string(f, "description", 1000, &desc, r) ||
        !get_string(f, "receipt_email", 800, &email, r) || !check_pm(pm, r))
        return;
    if (confirm && pm == NULL) {
        fail_param(r, "parameter_missing", "payment_method",
                   "You cannot confirm this PaymentIntent because it's missing a payment "
                   "method. Pass payment_method, or confirm later with one.");
        return;
    }
    if (!apply_metadata(f, &meta, r))
        return;
    if (!parse_pm_types(f, &types, &n_types, r)) {
        meta_free(&meta);
        return;
    }
    pi = xcalloc(1, sizeof *pi);
    pthread_mutex_init(&pi->mu, NULL);
    new_id(pi->id, sizeof pi->id, "pi_", 24);
    snprintf(pi->secret, sizeof pi->secret, "%s_secret_", pi->id);
    new_id(pi->secret + strlen(pi->secret), sizeof pi->secret - strlen(pi->secret), "", 25);
    pi->created = time(NULL);
    pi->amount = amount;
    memcpy(pi->currency, currency, sizeof currency);
    pi->capture = capture;
    pi->pm = xstrdup_opt(pm);
    pi->description = xstrdup_opt(desc);
    pi->receipt_email = xstrdup_opt(email);
    pi->meta = meta;
    pi->pm_types = types;
    pi->n_pm_types = n_types;
    pi->status = pm != NULL ? ST_REQUIRES_CONFIRMATION : ST_REQUIRES_PAYMENT_METHOD;
    /* Locked before it is visible, so nobody sees it between creation and confirmation:
     * create-and-confirm is one step for clients, as it is at Stripe. */
    pthread_mutex_lock(&pi->mu);
    pi_publish(pi);
    if (confirm)
        pi_confirm_locked(pi, rq, off_session || error_on_action, r);
    else
        reply_pi(r, pi);
    pthread_mutex_unlock(&pi->mu);
}

/* GET /v1/payment_intents/:id */
static void h_pi_retrieve(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"client_secret", P_SCALAR}, {"expand", P_ARRAY}, {NULL, P_ANY},
    };
    ms_pi *pi;

    if (!check_params(&rq->form, params, r))
        return;
    pi = pi_lock(id, r);
    if (pi == NULL)
        return;
    reply_pi(r, pi);
    pthread_mutex_unlock(&pi->mu);
}

/* The page of a newest-first list over items kept oldest first: [lo, hi) of indexes,
 * emitted from hi-1 down to lo. anchor is the index of starting_after/ending_before. */
static void page_bounds(size_t total, long anchor, bool ending_before, size_t limit,
                        size_t *lo, size_t *hi, bool *more)
{
    if (anchor >= 0 && ending_before) {
        *lo = (size_t)anchor + 1;
        *hi = *lo + limit < total ? *lo + limit : total;
        *more = *hi < total;
    } else {
        *hi = anchor >= 0 ? (size_t)anchor : total;
        *lo = *hi > limit ? *hi - limit : 0;
        *more = *lo > 0;
    }
}

static bool list_args(const ms_form *f, long long *limit, const char **sa, const char **eb,
                      ms_resp *r)
{
    bool present;

    if (!get_int(f, "limit", 1, 100, &present, limit, r))
        return false;
    if (!present)
        *limit = 10;
    *sa = form_get(f, "starting_after");
    *eb = form_get(f, "ending_before");
    if (*sa != NULL && *eb != NULL) {
        fail_param(r, "parameters_exclusive", "ending_before",
                   "You may only specify one of these parameters: ending_before, "
                   "starting_after.");
        return false;
    }
    return true;
}

static json_t *list_json(json_t *data, bool more, const char *url)
{
    return json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data", data, "has_more", more,
                     "url", url);
}

/* GET /v1/payment_intents */
static void h_pi_list(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"limit", P_SCALAR}, {"starting_after", P_SCALAR}, {"ending_before", P_SCALAR},
        {"expand", P_ARRAY}, {"created", P_ANY}, {"customer", P_SCALAR}, {NULL, P_ANY},
    };
    long long limit;
    const char *sa, *eb;
    ms_pi *anchor = NULL, **page;
    size_t lo, hi, n = 0;
    bool more;
    json_t *data;

    (void)id;
    if (!check_params(&rq->form, params, r) || !list_args(&rq->form, &limit, &sa, &eb, r))
        return;
    if (sa != NULL || eb != NULL) {
        anchor = pi_find(sa != NULL ? sa : eb);
        if (anchor == NULL) {
            fail_no_pi(r, sa != NULL ? sa : eb, sa != NULL ? "starting_after" : "ending_before",
                       400);
            return;
        }
    }
    page = xcalloc((size_t)limit, sizeof *page);
    pthread_mutex_lock(&g_pis.mu);
    page_bounds(g_pis.n, anchor != NULL ? (long)anchor->idx : -1, eb != NULL, (size_t)limit,
                &lo, &hi, &more);
    for (size_t i = hi; i > lo; i--)
        page[n++] = g_pis.v[i - 1];
    pthread_mutex_unlock(&g_pis.mu);
    data = json_array();
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&page[i]->mu);
        json_array_append_new(data, pi_json(page[i]));
        pthread_mutex_unlock(&page[i]->mu);
    }
    free(page);
    resp_json(r, 200, list_json(data, more, "/v1/payment_intents"));
}

/* An optional string field set from a form value: "" clears it. */
static void set_opt_str(char **field, const char *v)
{
    free(*field);
    *field = *v != '\0' ? xstrdup(v) : NULL;
}

static bool pi_is_mutable(const ms_pi *pi)
{
    return pi->status == ST_REQUIRES_PAYMENT_METHOD ||
           pi->status == ST_REQUIRES_CONFIRMATION || pi->status == ST_REQUIRES_ACTION;
}

/* POST /v1/payment_intents/:id */
static void h_pi_update(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"amount", P_SCALAR}, {"currency", P_SCALAR}, {"payment_method", P_SCALAR},
        {"capture_method", P_SCALAR}, {"metadata", P_HASH}, {"description", P_SCALAR},
        {"receipt_email", P_SCALAR}, {"payment_method_types", P_ARRAY}, {"expand", P_ARRAY},
        {"shipping", P_ANY}, {"statement_descriptor", P_SCALAR},
        {"statement_descriptor_suffix", P_SCALAR}, {"setup_future_usage", P_SCALAR},
        {"customer", P_SCALAR}, {"transfer_group", P_SCALAR}, {"payment_method_options", P_ANY},
        {"payment_method_data", P_ANY}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    long long amount;
    bool has_amount;
    int capture = -1;
    char currency[4] = "";
    const char *pm = form_get(f, "payment_method"), *desc, *email;
    const char *restricted = NULL;
    ms_pi *pi;

    if (!check_params(f, params, r) || !parse_amount(f, "amount", false, &has_amount, &amount, r)
        || !parse_currency(f, false, currency, r) ||
        !get_enum(f, "capture_method", capture_names, &capture, r) ||
        !get_string(f, "description", 1000, &desc, r) ||
        !get_string(f, "receipt_email", 800, &email, r) || !check_pm(pm, r))
        return;
    if (has_amount)
        restricted = "amount";
    else if (currency[0] != '\0')
        restricted = "currency";
    else if (pm != NULL)
        restricted = "payment_method";
    else if (capture >= 0)
        restricted = "capture_method";
    pi = pi_lock(id, r);
    if (pi == NULL)
        return;
    if (restricted != NULL && !pi_is_mutable(pi)) {
        fail_state(r, pi, "This PaymentIntent's %s could not be updated because it has a "
                   "status of %s. You may only update the %s of a PaymentIntent with one of "
                   "the following statuses: requires_payment_method, requires_confirmation, "
                   "requires_action.", restricted, status_names[pi->status], restricted);
        goto out;
    }
    if (!apply_metadata(f, &pi->meta, r))
        goto out;
    if (has_amount)
        pi->amount = amount;
    if (currency[0] != '\0')
        memcpy(pi->currency, currency, sizeof currency);
    if (capture >= 0)
        pi->capture = capture;
    if (desc != NULL)
        set_opt_str(&pi->description, desc);
    if (email != NULL)
        set_opt_str(&pi->receipt_email, email);
    if (pm != NULL) {
        free(pi->pm);
        pi->pm = xstrdup(pm);
        pi->status = ST_REQUIRES_CONFIRMATION;
    }
    reply_pi(r, pi);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* POST /v1/payment_intents/:id/confirm */
static void h_pi_confirm(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"payment_method", P_SCALAR}, {"capture_method", P_SCALAR}, {"return_url", P_SCALAR},
        {"off_session", P_SCALAR}, {"error_on_requires_action", P_SCALAR},
        {"receipt_email", P_SCALAR}, {"setup_future_usage", P_SCALAR},
        {"payment_method_types", P_ARRAY}, {"payment_method_options", P_ANY},
        {"payment_method_data", P_ANY}, {"mandate_data", P_ANY}, {"expand", P_ARRAY},
        {"use_stripe_sdk", P_SCALAR}, {"shipping", P_ANY}, {"radar_options", P_ANY},
        {"client_secret", P_SCALAR}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    const char *pm = form_get(f, "payment_method"), *email;
    bool off_session = false, error_on_action = false;
    int capture = -1;
    ms_pi *pi;

    if (!check_params(f, params, r) || !get_bool(f, "off_session", &off_session, r) ||
        !get_bool(f, "error_on_requires_action", &error_on_action, r) ||
        !get_enum(f, "capture_method", capture_names, &capture, r) ||
        !get_string(f, "receipt_email", 800, &email, r) || !check_pm(pm, r))
        return;
    pi = pi_lock(id, r);
    if (pi == NULL)
        return;
    if (pi->status == ST_SUCCEEDED) {
        fail_state(r, pi, "You cannot confirm this PaymentIntent because it has already "
                   "succeeded after being previously confirmed.");
        goto out;
    }
    if (!pi_is_mutable(pi)) {
        fail_state(r, pi, "You cannot confirm this PaymentIntent because it has a status of "
                   "%s. Only a PaymentIntent with one of the following statuses may be "
                   "confirmed: requires_payment_method, requires_confirmation, "
                   "requires_action.", status_names[pi->status]);
        goto out;
    }
    if (pm == NULL && pi->pm == NULL) {
        fail_param(r, "parameter_missing", "payment_method",
                   "You cannot confirm this PaymentIntent because it's missing a payment "
                   "method. Update the PaymentIntent with a payment method and then confirm "
                   "it again.");
        goto out;
    }
    if (pm != NULL) {
        free(pi->pm);
        pi->pm = xstrdup(pm);
    }
    if (capture >= 0)
        pi->capture = capture;
    if (email != NULL)
        set_opt_str(&pi->receipt_email, email);
    pi_confirm_locked(pi, rq, off_session || error_on_action, r);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* POST /v1/payment_intents/:id/capture */
static void h_pi_capture(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"amount_to_capture", P_SCALAR}, {"metadata", P_HASH}, {"expand", P_ARRAY},
        {"statement_descriptor", P_SCALAR}, {"statement_descriptor_suffix", P_SCALAR},
        {"final_capture", P_SCALAR}, {"application_fee_amount", P_SCALAR},
        {"transfer_data", P_ANY}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    long long amt;
    bool has_amt;
    ms_pi *pi;

    if (!check_params(f, params, r) ||
        !parse_amount(f, "amount_to_capture", false, &has_amt, &amt, r))
        return;
    pi = pi_lock(id, r);
    if (pi == NULL)
        return;
    if (pi->status != ST_REQUIRES_CAPTURE) {
        fail_state(r, pi, "This PaymentIntent could not be captured because it has a status "
                   "of %s. Only a PaymentIntent with one of the following statuses may be "
                   "captured: requires_capture.", status_names[pi->status]);
        goto out;
    }
    if (!has_amt) {
        amt = pi->capturable;
    } else if (amt > pi->capturable) {
        fail_param(r, "amount_too_large", "amount_to_capture",
                   "The amount_to_capture of %lld must be less than or equal to the "
                   "PaymentIntent's amount_capturable of %lld.", amt, pi->capturable);
        goto out;
    }
    if (!apply_metadata(f, &pi->meta, r))
        goto out;
    pi->status = ST_SUCCEEDED;
    pi->received = amt;
    pi->capturable = 0;
    atomic_fetch_add(&st_captured, 1);
    ev_add(rq, "payment_intent.succeeded", pi->id, pi_json(pi));
    reply_pi(r, pi);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* POST /v1/payment_intents/:id/cancel */
static void h_pi_cancel(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"cancellation_reason", P_SCALAR}, {"expand", P_ARRAY}, {NULL, P_ANY},
    };
    int reason = -1;
    ms_pi *pi;

    if (!check_params(&rq->form, params, r) ||
        !get_enum(&rq->form, "cancellation_reason", cancel_reasons, &reason, r))
        return;
    pi = pi_lock(id, r);
    if (pi == NULL)
        return;
    if (pi->status == ST_SUCCEEDED || pi->status == ST_CANCELED) {
        fail_state(r, pi, "You cannot cancel this PaymentIntent because it has a status of "
                   "%s. Only a PaymentIntent with one of the following statuses may be "
                   "canceled: requires_payment_method, requires_capture, "
                   "requires_confirmation, requires_action, processing.",
                   status_names[pi->status]);
        goto out;
    }
    pi->status = ST_CANCELED;
    pi->capturable = 0;
    pi->canceled_at = time(NULL);
    pi->cancel_reason = reason >= 0 ? cancel_reasons[reason] : NULL;
    atomic_fetch_add(&st_canceled, 1);
    ev_add(rq, "payment_intent.canceled", pi->id, pi_json(pi));
    reply_pi(r, pi);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* ================================================================ refunds and charges */

static void fail_no_charge(ms_resp *r, const char *id, const char *param, int status)
{
    fail(r, status, "invalid_request_error", "resource_missing", param,
         "No such charge: '%.100s'", id);
    r->no_store = true;
}

/* The PaymentIntent named by payment_intent= or charge= (which must agree). */
static ms_pi *refund_target(const char *pi_id, const char *ch_id, ms_resp *r)
{
    ms_pi *pi = NULL, *by_charge = NULL;

    if (pi_id == NULL && ch_id == NULL) {
        fail_param(r, "parameter_missing", "payment_intent",
                   "One of the following params should be provided for this request: "
                   "payment_intent or charge.");
        return NULL;
    }
    if (pi_id != NULL) {
        pi = pi_find(pi_id);
        if (pi == NULL) {
            fail_no_pi(r, pi_id, "payment_intent", 404);
            return NULL;
        }
    }
    if (ch_id != NULL) {
        by_charge = charge_find(ch_id);
        if (by_charge == NULL) {
            fail_no_charge(r, ch_id, "charge", 404);
            return NULL;
        }
        if (pi != NULL && pi != by_charge) {
            fail_param(r, NULL, "charge", "The charge %.60s does not belong to the "
                       "PaymentIntent %.60s.", ch_id, pi_id);
            return NULL;
        }
    }
    return pi != NULL ? pi : by_charge;
}

/* POST /v1/refunds */
static void h_refund_create(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"payment_intent", P_SCALAR}, {"charge", P_SCALAR}, {"amount", P_SCALAR},
        {"reason", P_SCALAR}, {"metadata", P_HASH}, {"expand", P_ARRAY},
        {"refund_application_fee", P_SCALAR}, {"reverse_transfer", P_SCALAR},
        {"instructions_email", P_SCALAR}, {"origin", P_SCALAR}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    const char *ch_id = form_get(f, "charge");
    long long amt, remaining;
    bool has_amt;
    int reason = -1;
    ms_meta meta = {0};
    ms_refund *rf;
    ms_pi *pi;

    (void)id;
    if (!check_params(f, params, r) || !parse_amount(f, "amount", false, &has_amt, &amt, r) ||
        !get_enum(f, "reason", refund_reasons, &reason, r) || !apply_metadata(f, &meta, r))
        return;
    pi = refund_target(form_get(f, "payment_intent"), ch_id, r);
    if (pi == NULL)
        goto fail;
    pthread_mutex_lock(&pi->mu);
    if (ch_id != NULL && strcmp(ch_id, pi->ch_id) != 0) {
        fail_param(r, "charge_not_refundable", "charge", "Charge %.60s did not succeed and "
                   "cannot be refunded.", ch_id);
        goto unlock;
    }
    if (pi->status != ST_SUCCEEDED) {
        fail_state(r, pi, "This PaymentIntent (%s) does not have a successful charge to refund "
                   "(status: %s).%s", pi->id, status_names[pi->status],
                   pi->status == ST_REQUIRES_CAPTURE ?
                   " Cancel the PaymentIntent to release an uncaptured payment." : "");
        goto unlock;
    }
    remaining = pi->received - pi->refunded;
    if (remaining <= 0) {
        fail(r, 400, "invalid_request_error", "charge_already_refunded", NULL,
             "Charge %s has already been refunded.", pi->ch_id);
        goto unlock;
    }
    if (!has_amt) {
        amt = remaining;
    } else if (amt > remaining) {
        fail(r, 400, "invalid_request_error", "amount_too_large", "amount",
             "Refund amount ($%lld.%02lld) is greater than unrefunded amount on charge "
             "($%lld.%02lld)", amt / 100, amt % 100, remaining / 100, remaining % 100);
        goto unlock;
    }
    rf = xcalloc(1, sizeof *rf);
    new_id(rf->id, sizeof rf->id, "re_", 24);
    memcpy(rf->pi_id, pi->id, sizeof rf->pi_id);
    memcpy(rf->ch_id, pi->ch_id, sizeof rf->ch_id);
    memcpy(rf->currency, pi->currency, sizeof rf->currency);
    rf->amount = amt;
    rf->reason = reason >= 0 ? refund_reasons[reason] : NULL;
    rf->meta = meta;
    meta.n = 0;
    meta.k = NULL;
    meta.v = NULL;
    rf->created = time(NULL);
    rf->next_for_pi = pi->refunds;
    pi->refunds = rf;
    pi->refunded += amt;
    pthread_mutex_lock(&g_refunds.mu);
    if (g_refunds.n == g_refunds.cap) {
        g_refunds.cap = g_refunds.cap > 0 ? 2 * g_refunds.cap : 256;
        g_refunds.v = mh_xrealloc(g_refunds.v, g_refunds.cap * sizeof *g_refunds.v);
    }
    rf->idx = g_refunds.n;
    g_refunds.v[g_refunds.n++] = rf;
    pthread_mutex_unlock(&g_refunds.mu);
    map_put(&g_objs, rf->id, rf);
    atomic_fetch_add(&st_refunds, 1);
    ev_add(rq, "charge.refunded", pi->ch_id, charge_json(pi));
    resp_json(r, 200, refund_json(rf));
unlock:
    pthread_mutex_unlock(&pi->mu);
fail:
    meta_free(&meta);
}

/* GET /v1/refunds/:id */
static void h_refund_retrieve(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {{"expand", P_ARRAY}, {NULL, P_ANY}};
    ms_refund *rf = strncmp(id, "re_", 3) == 0 ? map_get(&g_objs, id) : NULL;

    if (!check_params(&rq->form, params, r))
        return;
    if (rf == NULL) {
        fail(r, 404, "invalid_request_error", "resource_missing", "id",
             "No such refund: '%.100s'", id);
        r->no_store = true;
        return;
    }
    resp_json(r, 200, refund_json(rf));
}

/* GET /v1/refunds?payment_intent=&charge=&limit=&starting_after=&ending_before= */
static void h_refund_list(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"payment_intent", P_SCALAR}, {"charge", P_SCALAR}, {"limit", P_SCALAR},
        {"starting_after", P_SCALAR}, {"ending_before", P_SCALAR}, {"expand", P_ARRAY},
        {"created", P_ANY}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    const char *pi_id = form_get(f, "payment_intent"), *ch_id = form_get(f, "charge");
    const char *sa, *eb;
    long long limit;
    ms_refund **all = NULL;
    size_t n = 0, lo, hi;
    long anchor = -1;
    bool more;
    json_t *data;

    (void)id;
    if (!check_params(f, params, r) || !list_args(f, &limit, &sa, &eb, r))
        return;
    if (pi_id != NULL || ch_id != NULL) {
        ms_pi *pi = refund_target(pi_id, ch_id, r);
        size_t k = 0;

        if (pi == NULL)
            return;
        pthread_mutex_lock(&pi->mu);
        for (ms_refund *x = pi->refunds; x != NULL; x = x->next_for_pi)
            n++;
        all = xcalloc(n, sizeof *all);
        for (ms_refund *x = pi->refunds; x != NULL; x = x->next_for_pi)
            all[n - ++k] = x;   /* oldest first, like g_refunds */
        pthread_mutex_unlock(&pi->mu);
    } else {
        pthread_mutex_lock(&g_refunds.mu);
        n = g_refunds.n;
        all = xcalloc(n, sizeof *all);
        if (n > 0)
            memcpy(all, g_refunds.v, n * sizeof *all);
        pthread_mutex_unlock(&g_refunds.mu);
    }
    if (sa != NULL || eb != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(all[i]->id, sa != NULL ? sa : eb) == 0)
                anchor = (long)i;
        }
        if (anchor < 0) {
            fail(r, 400, "invalid_request_error", "resource_missing",
                 sa != NULL ? "starting_after" : "ending_before", "No such refund: '%.100s'",
                 sa != NULL ? sa : eb);
            r->no_store = true;
            free(all);
            return;
        }
    }
    page_bounds(n, anchor, eb != NULL, (size_t)limit, &lo, &hi, &more);
    data = json_array();
    for (size_t i = hi; i > lo; i--)
        json_array_append_new(data, refund_json(all[i - 1]));
    free(all);
    resp_json(r, 200, list_json(data, more, "/v1/refunds"));
}

/* GET /v1/charges/:id (only a PaymentIntent's latest charge is kept) */
static void h_charge_retrieve(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {{"expand", P_ARRAY}, {NULL, P_ANY}};
    ms_pi *pi;

    if (!check_params(&rq->form, params, r))
        return;
    pi = charge_find(id);
    if (pi == NULL) {
        fail_no_charge(r, id, "id", 404);
        return;
    }
    pthread_mutex_lock(&pi->mu);
    if (strcmp(pi->ch_id, id) == 0)
        resp_json(r, 200, charge_json(pi));
    else
        fail_no_charge(r, id, "id", 404);
    pthread_mutex_unlock(&pi->mu);
}

/* ================================================================ routing */

typedef void (*ms_handler)(ms_req *rq, const char *id, ms_resp *r);

typedef struct {
    ms_handler fn;
    const char *id;             /* points into the caller's path copy */
} ms_route;

#define MS_MAX_SEGS 6

/* Splits path (modified in place) into at most MS_MAX_SEGS segments. */
static size_t split_path(char *path, char **seg)
{
    size_t n = 0;
    char *p = path;

    while (*p == '/')
        p++;
    while (*p != '\0') {
        char *slash = strchr(p, '/');

        if (n == MS_MAX_SEGS)
            return MS_MAX_SEGS + 1;
        seg[n++] = p;
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

static bool route_api(const char *method, char *path, ms_route *rt)
{
    char *s[MS_MAX_SEGS];
    size_t n = split_path(path, s);
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    rt->id = NULL;
    if (n < 2 || n > 4 || strcmp(s[0], "v1") != 0)
        return false;
    if (n >= 3)
        rt->id = s[2];
    if (strcmp(s[1], "payment_intents") == 0) {
        if (n == 2) {
            rt->fn = post ? h_pi_create : get ? h_pi_list : NULL;
        } else if (n == 3) {
            rt->fn = post ? h_pi_update : get ? h_pi_retrieve : NULL;
        } else if (post && strcmp(s[3], "confirm") == 0) {
            rt->fn = h_pi_confirm;
        } else if (post && strcmp(s[3], "capture") == 0) {
            rt->fn = h_pi_capture;
        } else if (post && strcmp(s[3], "cancel") == 0) {
            rt->fn = h_pi_cancel;
        } else {
            rt->fn = NULL;
        }
    } else if (strcmp(s[1], "refunds") == 0 && n <= 3) {
        rt->fn = n == 2 ? (post ? h_refund_create : get ? h_refund_list : NULL)
                        : (get ? h_refund_retrieve : NULL);
    } else if (strcmp(s[1], "charges") == 0 && n == 3) {
        rt->fn = get ? h_charge_retrieve : NULL;
    } else {
        rt->fn = NULL;
    }
    return rt->fn != NULL;
}

/* ================================================================ /_mock endpoints */

static void reset_state(void)
{
    pthread_rwlock_wrlock(&g_state);
    map_clear(&g_objs, NULL);
    for (size_t i = 0; i < g_pis.n; i++)
        pi_free(g_pis.v[i]);        /* frees each PI's refunds too */
    free(g_pis.v);
    g_pis.v = NULL;
    g_pis.n = g_pis.cap = 0;
    free(g_refunds.v);
    g_refunds.v = NULL;
    g_refunds.n = g_refunds.cap = 0;
    map_clear(&g_idem, idem_free);
    pthread_mutex_lock(&g_idem_fifo.mu);
    idem_fifo_clear();
    pthread_mutex_unlock(&g_idem_fifo.mu);
    atomic_store(&st_pis, 0);
    atomic_store(&st_captured, 0);
    atomic_store(&st_canceled, 0);
    atomic_store(&st_refunds, 0);
    atomic_store(&st_requests, 0);
    atomic_store(&st_declines, 0);
    atomic_store(&st_replays, 0);
    pthread_rwlock_unlock(&g_state);
    faults_clear();
    wh_clear_done();
}

static json_t *stats_json(void)
{
    json_int_t pending, delivered, failed;

    pthread_mutex_lock(&g_wh.mu);
    pending = (json_int_t)g_wh.n_pending;
    delivered = (json_int_t)g_wh.delivered;
    failed = (json_int_t)g_wh.failed;
    pthread_mutex_unlock(&g_wh.mu);
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

__attribute__((format(printf, 2, 3)))
static void fail_mock(ms_resp *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(r, 400, "invalid_request_error", NULL, NULL, fmt, ap);
    va_end(ap);
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

    if (!json_is_object(j)) {
        fail_mock(r, "Body must be a JSON object: %s", j == NULL ? jerr.text : "not an object");
        goto out;
    }
    match = json_string_value(json_object_get(j, "match"));
    action = json_string_value(json_object_get(j, "action"));
    count = json_object_get(j, "count");
    delay = json_object_get(j, "delay_ms");
    sp = match != NULL ? strchr(match, ' ') : NULL;
    if (sp == NULL || sp == match || (size_t)(sp - match) >= sizeof f->method ||
        sp[1] != '/' || strlen(sp + 1) > 500) {
        fail_mock(r, "match must look like \"POST /v1/payment_intents/*/capture\"");
        goto out;
    }
    for (int i = 0; action != NULL && fault_names[i] != NULL; i++) {
        if (strcmp(action, fault_names[i]) == 0)
            act = i;
    }
    if (act < 0) {
        fail_mock(r, "action must be one of status_500, delay, drop_response, hang");
        goto out;
    }
    if (count != NULL) {
        cnt = json_is_integer(count) ? json_integer_value(count) : 0;
        if (cnt == 0 || cnt < -1 || cnt > 1000000000) {
            fail_mock(r, "count must be a positive integer, or -1 for every request");
            goto out;
        }
    }
    dms = act == F_HANG ? MS_HANG_DEFAULT_MS : act == F_DELAY ? MS_DELAY_DEFAULT_MS : 0;
    if (delay != NULL) {
        dms = json_is_integer(delay) ? json_integer_value(delay) : -1;
        if (dms < 0 || dms > 600000) {
            fail_mock(r, "delay_ms must be an integer from 0 to 600000");
            goto out;
        }
    }
    f = xcalloc(1, sizeof *f);
    memcpy(f->method, match, (size_t)(sp - match));
    f->path = xstrdup(sp + 1);
    f->action = (ms_fault_action)act;
    f->remaining = (long)cnt;
    f->delay_ms = (long)dms;
    pthread_mutex_lock(&g_faults.mu);
    f->id = ++g_faults.next_id;
    for (tail = &g_faults.head; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = f;
    resp_json(r, 200, fault_json(f));
    pthread_mutex_unlock(&g_faults.mu);
out:
    json_decref(j);
}

/* POST /_mock/payment_intents/:id/authenticate: what the shopper's 3-D Secure challenge
 * does at Stripe. Body (form or JSON) "outcome": "succeed" (default) or "fail". */
static void mock_authenticate(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_decline auth_failed = {
        NULL, "payment_intent_authentication_failure", NULL,
        "The provided PaymentMethod has failed authentication. You can provide "
        "payment_method_data or a new PaymentMethod to attempt to fulfill this "
        "PaymentIntent again.", NULL,
    };
    const char *outcome = NULL;
    json_t *j = NULL;
    ms_pi *pi;

    if (rq->body_len > 0 && rq->body[0] == '{') {
        j = json_loadb(rq->body, rq->body_len, 0, NULL);
        outcome = json_string_value(json_object_get(j, "outcome"));
    } else {
        outcome = form_get(&rq->form, "outcome");
    }
    if (outcome != NULL && strcmp(outcome, "succeed") != 0 && strcmp(outcome, "fail") != 0) {
        fail_mock(r, "outcome must be \"succeed\" or \"fail\"");
        goto out;
    }
    pi = pi_lock(id, r);
    if (pi == NULL)
        goto out;
    if (pi->status != ST_REQUIRES_ACTION) {
        fail_state(r, pi, "This PaymentIntent has a status of %s; only one that "
                   "requires_action can be authenticated.", status_names[pi->status]);
    } else if (outcome != NULL && strcmp(outcome, "fail") == 0) {
        pi_failed_locked(pi, rq, "invalid_request_error", &auth_failed, false);
        reply_pi(r, pi);
    } else {
        pi_authorized_locked(pi, rq);
        reply_pi(r, pi);
    }
    pthread_mutex_unlock(&pi->mu);
out:
    json_decref(j);
}

static void mock_route(ms_req *rq, ms_resp *r)
{
    const char *m = rq->method;
    const char *p = rq->path;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;

    if (get && strcmp(p, "/_mock/health") == 0) {
        resp_json(r, 200, json_pack("{s:b}", "ok", 1));
    } else if (get && strcmp(p, "/_mock/stats") == 0) {
        resp_json(r, 200, stats_json());
    } else if (strcmp(p, "/_mock/faults") == 0 && (get || post || strcmp(m, "DELETE") == 0)) {
        if (get)
            resp_json(r, 200, faults_list_json());
        else if (post)
            mock_fault_add(rq, r);
        else
            resp_json(r, 200, json_pack("{s:I}", "deleted", (json_int_t)faults_clear()));
    } else if (get && strcmp(p, "/_mock/webhooks") == 0) {
        resp_json(r, 200, wh_list_json(form_get(&rq->form, "type"),
                                       form_get(&rq->form, "object_id")));
    } else if (strcmp(m, "DELETE") == 0 && strcmp(p, "/_mock/webhooks") == 0) {
        wh_clear_done();
        resp_json(r, 200, json_pack("{s:b}", "cleared", 1));
    } else if (post && strcmp(p, "/_mock/reset") == 0) {
        reset_state();
        resp_json(r, 200, json_pack("{s:b}", "reset", 1));
    } else if (post && strncmp(p, "/_mock/payment_intents/", 23) == 0) {
        char *copy = xstrdup(p + 23);
        char *slash = strchr(copy, '/');

        if (slash != NULL && strcmp(slash, "/authenticate") == 0) {
            *slash = '\0';
            pthread_rwlock_rdlock(&g_state);
            mock_authenticate(rq, copy, r);
            pthread_rwlock_unlock(&g_state);
        } else {
            fail(r, 404, "invalid_request_error", NULL, NULL, "Unknown mock endpoint");
        }
        free(copy);
    } else {
        fail(r, 404, "invalid_request_error", NULL, NULL,
             "Unknown mock endpoint (%s: %.200s). Try /_mock/stats, /_mock/faults, "
             "/_mock/webhooks, /_mock/reset or /_mock/payment_intents/:id/authenticate.",
             m, p);
    }
}

/* ================================================================ HTTP glue */

static char *b64_decode(const char *in, size_t *outlen)
{
    size_t n = strlen(in), o = 0;
    char *out = mh_xmalloc(n / 4 * 3 + 4);
    unsigned acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n && in[i] != '='; i++) {
        const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *pos = strchr(tbl, in[i]);

        if (pos == NULL || in[i] == '\0') {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)(pos - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* "sk_test_*****************1234": Stripe never echoes a whole key. */
static void mask_key(const char *key, char *out, size_t cap)
{
    size_t n = strlen(key), keep = n > 12 ? 4 : 0, o = 0;
    size_t head = strncmp(key, "sk_test_", 8) == 0 ? 8 : 0;

    for (size_t i = 0; i < n && o + 1 < cap && o < 40; i++)
        out[o++] = (i < head || i >= n - keep) ? key[i] : '*';
    out[o] = '\0';
}

/* Bearer (what the SDKs send) or Basic with the key as user name (curl -u sk_test_x:). */
static bool auth_check(ms_req *rq, ms_resp *r)
{
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    char masked[48];
    bool ok;

    if (h == NULL || *h == '\0') {
        fail(r, 401, "invalid_request_error", NULL, NULL,
             "You did not provide an API key. You need to provide your API key in the "
             "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
             "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
             "or we can help at https://support.stripe.com/.");
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        snprintf(rq->api_key, sizeof rq->api_key, "%s", h + 7);
    } else if (strncasecmp(h, "Basic ", 6) == 0) {
        size_t len;
        char *dec = b64_decode(h + 6, &len);

        snprintf(rq->api_key, sizeof rq->api_key, "%.*s",
                 dec != NULL ? (int)strcspn(dec, ":") : 0, dec != NULL ? dec : "");
        free(dec);
    } else {
        rq->api_key[0] = '\0';
    }
    if (g_cfg.api_key != NULL)
        ok = strcmp(rq->api_key, g_cfg.api_key) == 0;
    else
        ok = strncmp(rq->api_key, "sk_test_", 8) == 0 && rq->api_key[8] != '\0' &&
             strlen(h) < MS_KEY_MAX + 8 && utf8_ok(rq->api_key, strlen(rq->api_key));
    if (!ok) {
        mask_key(rq->api_key, masked, sizeof masked);
        fail(r, 401, "invalid_request_error", NULL, NULL, "Invalid API Key provided: %s",
             masked);
    }
    return ok;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    ms_form *f = cls;

    (void)kind;
    if (key != NULL && *key != '\0')
        form_add(f, xstrdup(key), xstrdup(value != NULL ? value : ""));
    return MHD_YES;
}

/* Query parameters as decoded by libmicrohttpd; false when one is not UTF-8. */
static bool query_form(ms_req *rq)
{
    MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &rq->form);
    for (size_t i = 0; i < rq->form.n; i++) {
        if (!utf8_ok(rq->form.kv[i].k, strlen(rq->form.kv[i].k)) ||
            !utf8_ok(rq->form.kv[i].v, strlen(rq->form.kv[i].v)))
            return false;
    }
    return true;
}

static enum MHD_Result send_resp(const ms_req *rq, ms_resp *r, const char *orig_req)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    int retry = r->retry;

    if (r->body == NULL)
        resp_json(r, r->status != 0 ? r->status : 500, json_object());
    resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL)
        return MHD_NO;          /* r->body is still ours; the caller frees it */
    r->body = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, "Request-Id", rq->req_id);
    MHD_add_response_header(resp, "Stripe-Version", MS_API_VERSION);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store");
    if (rq->idem != NULL && utf8_ok(rq->idem, strlen(rq->idem)))
        MHD_add_response_header(resp, "Idempotency-Key", rq->idem);
    if (orig_req != NULL) {
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
        MHD_add_response_header(resp, "Original-Request", orig_req);
    }
    if (retry < 0 && r->status >= 400)
        retry = r->status == 409 || r->status == 429 || r->status >= 500;
    if (retry >= 0 && r->status >= 400)
        MHD_add_response_header(resp, "Stripe-Should-Retry", retry ? "true" : "false");
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"Stripe\"");
    ret = MHD_queue_response(rq->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The pipeline for /v1: auth -> latency -> faults -> parse -> idempotency -> handler.
 * Runs on the connection's own thread, so sleeping here blocks nobody else. */
static enum MHD_Result handle_api(ms_req *rq, mh_conn *cx, ms_resp *r, char *orig)
{
    char key[2 * MS_KEY_MAX + 2];
    char *path = xstrdup(rq->path);
    bool post = strcmp(rq->method, "POST") == 0;
    bool routed, faulted, own_key = false;
    ms_fault fault;
    ms_route rt = {NULL, NULL};
    enum MHD_Result ret = MHD_YES;

    memset(&fault, 0, sizeof fault);
    atomic_fetch_add(&st_requests, 1);
    if (cx->too_big) {
        fail(r, 413, "invalid_request_error", NULL, NULL,
             "Request body too large (the limit is %d bytes).", MS_BODY_MAX);
        goto out;
    }
    ms_sleep_ms(g_cfg.latency_ms);     /* every /v1 answer, errors too, as over a real WAN */
    if (!auth_check(rq, r))
        goto out;
    routed = route_api(rq->method, path, &rt);
    faulted = fault_take(rq->method, rq->path, &fault);
    if (faulted && fault.action == F_HANG) {
        /* Holds the connection, then closes it unanswered; nothing was applied. */
        ms_sleep_ms(fault.delay_ms);
        ret = MHD_NO;
        goto out;
    }
    if (faulted && fault.action == F_STATUS_500) {
        fail(r, 500, "api_error", NULL, NULL,
             "An unknown error occurred (injected by /_mock/faults); nothing was applied.");
        r->retry = 1;
        goto out;
    }
    if (!routed) {
        fail(r, 404, "invalid_request_error", NULL, NULL,
             "Unrecognized request URL (%s: %.300s). Please see https://stripe.com/docs or we "
             "can help at https://support.stripe.com/.", rq->method, rq->path);
        goto out;
    }
    if (post ? !form_parse(&rq->form, rq->body != NULL ? rq->body : "", rq->body_len)
             : !query_form(rq)) {
        fail_param(r, NULL, NULL, "Invalid request: parameters must be UTF-8 text "
                   "without NUL bytes.");
        goto out;
    }
    if (post && rq->idem != NULL) {
        if (strlen(rq->idem) > MS_KEY_MAX || *rq->idem == '\0') {
            fail_param(r, NULL, NULL, "Invalid Idempotency-Key: it must be 1 to %d "
                       "characters.", MS_KEY_MAX);
            goto out;
        }
        snprintf(key, sizeof key, "%s\n%s", rq->api_key, rq->idem);
        pthread_rwlock_rdlock(&g_state);
        switch (idem_begin(key, rq, r, orig)) {
        case IDEM_NEW:
            own_key = true;
            break;
        case IDEM_REPLAY:
            atomic_fetch_add(&st_replays, 1);
            break;
        case IDEM_IN_FLIGHT:
            fail(r, 409, "idempotency_error", "idempotency_key_in_use", NULL,
                 "There is currently another in-progress request using this Idempotent Key "
                 "(that probably means you submitted twice, and the other request is still "
                 "going through): %.255s. Please try again later.", rq->idem);
            r->retry = 1;
            break;
        case IDEM_OTHER_ENDPOINT:
            fail(r, 400, "idempotency_error", NULL, NULL,
                 "Keys for idempotent requests can only be used for the same endpoint they "
                 "were first used for ('%.255s' was used for another endpoint).", rq->idem);
            break;
        case IDEM_OTHER_PARAMS:
            fail(r, 400, "idempotency_error", NULL, NULL,
                 "Keys for idempotent requests can only be used with the same parameters they "
                 "were first used with. Try using a key other than '%.255s' if you meant to "
                 "execute a different request.", rq->idem);
            break;
        }
        pthread_rwlock_unlock(&g_state);
        if (!own_key)
            goto out;
    }
    if (faulted && fault.action == F_DELAY)
        ms_sleep_ms(fault.delay_ms);    /* inside the in-flight window: a retry gets 409 */
    pthread_rwlock_rdlock(&g_state);
    rt.fn(rq, rt.id, r);
    if (own_key)
        idem_finish(key, rq, r, !r->no_store);
    pthread_rwlock_unlock(&g_state);
    wh_enqueue(&rq->ev);
    if (faulted && fault.action == F_DROP_RESPONSE)
        ret = MHD_NO;           /* applied (and saved for replay), but never answered */
out:
    free(path);
    return ret;
}

static enum MHD_Result handle(struct MHD_Connection *conn, const char *url, const char *method,
                              mh_conn *cx)
{
    ms_req rq;
    ms_resp r = {.retry = -1};
    char orig[MS_ID_MAX] = "";    /* the first request's id when this is a replay */
    long long t0 = mono_ms();
    enum MHD_Result ret;

    memset(&rq, 0, sizeof rq);
    rq.conn = conn;
    rq.method = method;
    rq.path = url;
    rq.body = cx->body;
    rq.body_len = cx->len;
    rq.idem = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    new_id(rq.req_id, sizeof rq.req_id, "req_", 14);
    if (strncmp(url, "/_mock/", 7) == 0) {
        if (strcmp(method, "GET") == 0) {
            query_form(&rq);
        } else if (rq.body_len > 0 && rq.body[0] != '{') {
            form_parse(&rq.form, rq.body, rq.body_len);
        }
        mock_route(&rq, &r);
        wh_enqueue(&rq.ev);
        ret = MHD_YES;
    } else {
        ret = handle_api(&rq, cx, &r, orig);
    }
    if (ret == MHD_YES)
        ret = send_resp(&rq, &r, orig[0] != '\0' ? orig : NULL);
    if (g_cfg.verbose)
        fprintf(stderr, "mock-stripe: %s %s -> %d%s %lldms\n", method, url,
                ret == MHD_YES ? r.status : 0, orig[0] != '\0' ? " (replayed)" : "",
                mono_ms() - t0);
    evlist_free(&rq.ev);
    form_free(&rq.form);
    free(r.body);
    return ret;
}

/* The first call (headers only): a Content-Length over the cap is refused before the
 * body is read; libmicrohttpd then closes the connection. */
static enum MHD_Result on_headers(struct MHD_Connection *conn, const char *url,
                                  const char *method, mh_conn *cx)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    ms_req rq = {.conn = conn, .method = method, .path = url};
    ms_resp r = {.retry = 0};
    enum MHD_Result ret;

    if (cl == NULL || strtoull(cl, NULL, 10) <= MS_BODY_MAX)
        return MHD_YES;
    new_id(rq.req_id, sizeof rq.req_id, "req_", 14);
    fail(&r, 413, "invalid_request_error", NULL, NULL,
         "Request body too large (the limit is %d bytes).", MS_BODY_MAX);
    cx->answered = true;
    ret = send_resp(&rq, &r, NULL);
    free(r.body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    mh_conn *cx;

    (void)cls;
    (void)version;
    switch (mh_feed(con_cls, upload_data, upload_data_size, MS_BODY_MAX, &cx)) {
    case MH_STARTED:
        return on_headers(conn, url, method, cx);
    case MH_CONTINUE:
        /* Chunked bodies have no Content-Length: keep nothing, answer 413 at the end. */
        if (cx->too_big)
            mh_drop_body(cx);
        return MHD_YES;
    case MH_COMPLETE:
        return handle(conn, url, method, cx);
    case MH_FAILED:
        break;
    }
    return MHD_NO;
}

/* ================================================================ start-up */

/* libmicrohttpd's log, minus the line it prints each time a handler returns MHD_NO:
 * drop_response and hang do that on purpose. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (strstr(msg, "Application reported internal error") != NULL)
        return;
    fprintf(stderr, "mock-stripe: libmicrohttpd: %s", msg);
}

static void usage(FILE *out)
{
    fputs("usage: mock-stripe [--listen HOST:PORT] [--webhook-url URL]\n"
          "                   [--webhook-secret whsec_...] [--latency-ms N]\n"
          "                   [--api-key sk_test_...]\n"
          "                   [--webhook-max-attempts N] [--webhook-threads N]\n"
          "                   [--webhook-history N] [--max-idempotency-keys N] [--verbose]\n"
          "\n"
          "A Stripe-compatible payment API for tests (PaymentIntents, refunds, charges,\n"
          "idempotency, signed webhooks). Flags override the environment variables\n"
          "MOCK_STRIPE_LISTEN (default 127.0.0.1:12111; port 0 picks a free port),\n"
          "MOCK_STRIPE_WEBHOOK_URL, MOCK_STRIPE_WEBHOOK_SECRET, MOCK_STRIPE_LATENCY_MS,\n"
          "MOCK_STRIPE_API_KEY (default: any sk_test_ key),\n"
          "MOCK_STRIPE_WEBHOOK_MAX_ATTEMPTS (8),\n"
          "MOCK_STRIPE_VERBOSE=1.\n"
          "Test endpoints: GET /_mock/stats, GET|POST|DELETE /_mock/faults, GET|DELETE\n"
          "/_mock/webhooks, POST /_mock/reset, POST /_mock/payment_intents/:id/authenticate.\n",
          out);
}

static bool parse_long(const char *what, const char *s, long min, long max, long *out)
{
    long long v;

    if (s == NULL)
        return true;
    if (!parse_ll(s, &v) || v < min || v > max) {
        fprintf(stderr, "mock-stripe: %s must be an integer from %ld to %ld\n", what, min, max);
        return false;
    }
    *out = (long)v;
    return true;
}

static bool parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"webhook-url", required_argument, NULL, 'w'},
        {"webhook-secret", required_argument, NULL, 's'},
        {"latency-ms", required_argument, NULL, 'L'},
        {"api-key", required_argument, NULL, 'k'},
        {"webhook-max-attempts", required_argument, NULL, 'A'},
        {"webhook-threads", required_argument, NULL, 'T'},
        {"webhook-history", required_argument, NULL, 'H'},
        {"max-idempotency-keys", required_argument, NULL, 'I'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *verbose = getenv("MOCK_STRIPE_VERBOSE");

    g_cfg.listen = mh_env_or("MOCK_STRIPE_LISTEN", g_cfg.listen);
    g_cfg.webhook_url = mh_env_or("MOCK_STRIPE_WEBHOOK_URL", NULL);
    g_cfg.webhook_secret = mh_env_or("MOCK_STRIPE_WEBHOOK_SECRET", NULL);
    g_cfg.api_key = mh_env_or("MOCK_STRIPE_API_KEY", NULL);
    g_cfg.verbose = verbose != NULL && strcmp(verbose, "1") == 0;
    if (!parse_long("MOCK_STRIPE_LATENCY_MS", getenv("MOCK_STRIPE_LATENCY_MS"), 0, 600000,
                    &g_cfg.latency_ms) ||
        !parse_long("MOCK_STRIPE_WEBHOOK_MAX_ATTEMPTS", getenv("MOCK_STRIPE_WEBHOOK_MAX_ATTEMPTS"),
                    1, 100, &g_cfg.wh_max_attempts))
        return false;
    for (;;) {
        int c = getopt_long(argc, argv, "h", opts, NULL);
        bool ok = true;

        if (c == -1)
            break;
        switch (c) {
        case 'l': g_cfg.listen = optarg; break;
        case 'w': g_cfg.webhook_url = *optarg != '\0' ? optarg : NULL; break;
        case 's': g_cfg.webhook_secret = optarg; break;
        case 'k': g_cfg.api_key = optarg; break;
        case 'v': g_cfg.verbose = true; break;
        case 'L': ok = parse_long("--latency-ms", optarg, 0, 600000, &g_cfg.latency_ms); break;
        case 'A':
            ok = parse_long("--webhook-max-attempts", optarg, 1, 100, &g_cfg.wh_max_attempts);
            break;
        case 'T': ok = parse_long("--webhook-threads", optarg, 1, 64, &g_cfg.wh_threads); break;
        case 'H':
            ok = parse_long("--webhook-history", optarg, 0, 10000000, &g_cfg.wh_history);
            break;
        case 'I':
            ok = parse_long("--max-idempotency-keys", optarg, 1, 100000000, &g_cfg.idem_max);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return false;
        }
        if (!ok)
            return false;
    }
    if (optind < argc) {
        fprintf(stderr, "mock-stripe: unexpected argument '%s'\n", argv[optind]);
        return false;
    }
    if (g_cfg.webhook_url != NULL &&
        (g_cfg.webhook_secret == NULL || *g_cfg.webhook_secret == '\0')) {
        fputs("mock-stripe: --webhook-url needs --webhook-secret (whsec_...)\n", stderr);
        return false;
    }
    if (g_cfg.api_key != NULL && strncmp(g_cfg.api_key, "sk_test_", 8) != 0) {
        fputs("mock-stripe: --api-key must start with sk_test_\n", stderr);
        return false;
    }
    return true;
}

/* Hundreds of connections plus webhook sockets need more than the usual 1024 fds. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void state_init(void)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
    /* Writer preference: /_mock/reset must not starve under a benchmark's load. */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&g_state, &a);
    pthread_rwlockattr_destroy(&a);
    pthread_mutex_init(&g_pis.mu, NULL);
    pthread_mutex_init(&g_refunds.mu, NULL);
    map_init(&g_objs);
    map_init(&g_idem);
    cond_init_mono(&g_stop_cv);
    wh_init();
}

static void state_free(void)
{
    map_destroy(&g_objs, NULL);
    for (size_t i = 0; i < g_pis.n; i++)
        pi_free(g_pis.v[i]);
    free(g_pis.v);
    free(g_refunds.v);
    map_destroy(&g_idem, idem_free);
    idem_fifo_clear();
    faults_clear();
    pthread_mutex_destroy(&g_pis.mu);
    pthread_mutex_destroy(&g_refunds.mu);
    pthread_rwlock_destroy(&g_state);
    pthread_cond_destroy(&g_stop_cv);
}

int main(int argc, char **argv)
{
    mh_listen l;
    sigset_t sigs;
    struct MHD_Daemon *d = NULL;
    unsigned flags;
    int rc = 1;

    mh_init("mock-stripe");
    if (!parse_args(argc, argv))
        return 2;
    if (!mh_parse_listen(g_cfg.listen, &l))
        return 2;
    raise_nofile();
    /* Before any thread exists: libcurl's global init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("mock-stripe: curl_global_init failed\n", stderr);
        return 1;
    }
    json_object_seed(0);
    mh_block_signals(&sigs);
    state_init();
    if (!wh_start())
        goto out;
    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG | (l.v6 ? MHD_USE_IPv6 : 0);
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,     /* must be first */
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&l.addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                         MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
                         MHD_OPTION_NOTIFY_COMPLETED, mh_completed, NULL,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mock-stripe: cannot listen on %s\n", g_cfg.listen);
        goto out;
    }
    mh_announce(d, &l);
    if (g_cfg.verbose)
        fprintf(stderr, "mock-stripe: webhooks to %s, latency %ld ms\n",
                g_cfg.webhook_url != NULL ? g_cfg.webhook_url : "(none)", g_cfg.latency_ms);
    mh_wait_signal(&sigs);
    rc = 0;
out:
    wake_sleepers_for_stop();
    if (d != NULL)
        MHD_stop_daemon(d);     /* joins every connection thread */
    wh_stop();
    state_free();
    curl_global_cleanup();
    return rc;
}

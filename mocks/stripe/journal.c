/* mock-stripe's journal (--state-dir DIR): what a restart of the provider keeps.
 *
 * DIR/journal is an append-only file of JSON lines. Each line is one whole object
 * as it is after a change: a PaymentIntent (with its latest charge inside, as the
 * mock keeps it), a refund, an earlier charge of a PaymentIntent (only its id),
 * a saved idempotent answer, or a webhook event still to deliver with its attempt
 * state. Ids are random, so the one counter kept is the events' sequence number,
 * inside each event's record. Faults (/_mock/faults) are test settings, not
 * provider state, and are not kept; neither are finished deliveries.
 *
 * Every mutation appends its record with one write() before the request's answer
 * is sent (the one call per mutation point: ms_journal_pi, ms_journal_refund,
 * and the idempotency store's and webhook queue's own records through
 * ms_journal_put). Once write() has returned, the bytes are in the kernel's page
 * cache and reach the file even if the mock is SIGKILLed the next instant; only a
 * crash of the machine can lose them, which --state-fsync (fdatasync after each
 * record) covers at the price of a disk flush per mutation.
 *
 * At start the journal is replayed (the last record of an object wins; objects
 * keep the order of their first record, which is their creation order), then
 * compacted: the live objects are written to DIR/journal.new, which is renamed
 * over DIR/journal, and appending continues there. A line that does not parse
 * (the last one torn by a kill mid-write, say) is skipped with a warning. DIR/lock
 * (flock) keeps two mocks off one directory.
 *
 * Lock order: the journal's mutex is a leaf; records are written under pi->mu and
 * g_wh.mu so that an object's records land in the order of its changes. */
#include "stripe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_FILE "journal"
#define JOURNAL_NEW "journal.new"
#define JOURNAL_LOCK "lock"

static struct {
    pthread_mutex_t mu;
    int fd;                     /* -1: no --state-dir, memory only */
    int lock_fd;
    bool sync;
    char path[PATH_MAX], tmp[PATH_MAX];
} g_j = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .lock_fd = -1};

/* Restored copies of the static strings some fields point at (decline messages,
 * reasons): ms_pi_free does not free those fields, so the journal owns them. */
typedef struct ms_interned {
    struct ms_interned *next;
    char s[];
} ms_interned;

static ms_interned *g_interned;

static const char *intern(const char *s)
{
    ms_interned *p;
    size_t n;

    if (s == NULL)
        return NULL;
    for (p = g_interned; p != NULL; p = p->next) {
        if (strcmp(p->s, s) == 0)
            return p->s;
    }
    n = strlen(s);
    p = mh_xmalloc(sizeof *p + n + 1);
    memcpy(p->s, s, n + 1);
    p->next = g_interned;
    g_interned = p;
    return p->s;
}

bool ms_journal_on(void)
{
    return g_j.fd >= 0;
}

/* ================================================================ writing */

typedef struct {
    char *p;
    size_t n, cap;
} ms_jbuf;

/* Appends rec as one line; takes rec. False (nothing added) when it cannot be
 * encoded, which our own validated input never causes. */
static bool jbuf_add(ms_jbuf *b, json_t *rec)
{
    char *line = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    size_t len;

    json_decref(rec);
    if (line == NULL) {
        fputs("mock-stripe: journal: a record could not be encoded; not kept\n", stderr);
        return false;
    }
    len = strlen(line);
    if (b->n + len + 1 > b->cap) {
        b->cap = (b->n + len + 1) * 2;
        b->p = mh_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, line, len);
    b->p[b->n + len] = '\n';
    b->n += len + 1;
    free(line);
    return true;
}

/* One write() for the whole buffer (its records land together or, killed
 * mid-write, as a torn last line), then fdatasync with --state-fsync. */
static void jbuf_write(ms_jbuf *b)
{
    const char *p = b->p;
    size_t left = b->n;

    pthread_mutex_lock(&g_j.mu);
    while (left > 0) {
        ssize_t k = write(g_j.fd, p, left);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            fprintf(stderr, "mock-stripe: journal: write to %s failed: %s\n", g_j.path,
                    strerror(errno));
            break;
        }
        p += k;
        left -= (size_t)k;
    }
    if (g_j.sync && fdatasync(g_j.fd) != 0)
        fprintf(stderr, "mock-stripe: journal: fdatasync failed: %s\n", strerror(errno));
    pthread_mutex_unlock(&g_j.mu);
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

void ms_journal_put(json_t *rec)
{
    ms_jbuf b = {0};

    if (g_j.fd < 0) {
        json_decref(rec);
        return;
    }
    if (jbuf_add(&b, rec))
        jbuf_write(&b);
}

/* ================================================================ records */

static json_t *meta_rec(const ms_meta *m)
{
    json_t *a = json_array();

    /* Pairs, not an object: the order of the keys is part of the answers. */
    for (size_t i = 0; i < m->n; i++)
        json_array_append_new(a, json_pack("[s,s]", m->k[i], m->v[i]));
    return a;
}

static json_t *pi_rec(const ms_pi *pi)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s}",
                          "t", "pi", "id", pi->id, "secret", pi->secret,
                          "created", (json_int_t)pi->created,
                          "status", ms_status_names[pi->status],
                          "capture_method", ms_capture_names[pi->capture],
                          "amount", (json_int_t)pi->amount,
                          "capturable", (json_int_t)pi->capturable,
                          "received", (json_int_t)pi->received,
                          "refunded", (json_int_t)pi->refunded, "currency", pi->currency);
    json_t *types = json_array();

    if (o == NULL) {
        json_decref(types);
        return NULL;
    }
    ms_jset(o, "payment_method", ms_jstr_opt(pi->pm));
    ms_jset(o, "description", ms_jstr_opt(pi->description));
    ms_jset(o, "receipt_email", ms_jstr_opt(pi->receipt_email));
    ms_jset(o, "cancellation_reason", ms_jstr_opt(pi->cancel_reason));
    ms_jset(o, "canceled_at", json_integer(pi->canceled_at));
    ms_jset(o, "metadata", meta_rec(&pi->meta));
    for (size_t i = 0; i < pi->n_pm_types; i++)
        json_array_append_new(types, json_string(pi->pm_types[i]));
    ms_jset(o, "payment_method_types", types);
    if (pi->ch_id[0] != '\0')
        ms_jset(o, "charge", json_pack("{s:s, s:b, s:I, s:s?}", "id", pi->ch_id, "ok",
                                       pi->ch_ok, "created", (json_int_t)pi->ch_created,
                                       "payment_method", pi->ch_pm));
    else
        ms_jset(o, "charge", NULL);
    if (pi->err.set)
        ms_jset(o, "last_payment_error",
                json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:b}", "type", pi->err.type,
                          "code", pi->err.code, "decline_code", pi->err.decline,
                          "message", pi->err.msg, "payment_method", pi->err.pm,
                          "has_charge", pi->err.has_charge));
    else
        ms_jset(o, "last_payment_error", NULL);
    return o;
}

static json_t *refund_rec(const ms_refund *rf)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s?, s:I}", "t", "refund",
                          "id", rf->id, "payment_intent", rf->pi_id, "charge", rf->ch_id,
                          "amount", (json_int_t)rf->amount, "currency", rf->currency,
                          "reason", rf->reason, "created", (json_int_t)rf->created);

    if (o != NULL)
        ms_jset(o, "metadata", meta_rec(&rf->meta));
    return o;
}

void ms_journal_pi(const ms_pi *pi)
{
    if (g_j.fd >= 0)
        ms_journal_put(pi_rec(pi));
}

void ms_journal_refund(const ms_pi *pi, const ms_refund *rf)
{
    ms_jbuf b = {0};

    if (g_j.fd < 0)
        return;
    /* Refund first: replayed in this order, the refund finds its PaymentIntent
     * (recorded when it was created) and the PaymentIntent's refunded total follows. */
    jbuf_add(&b, refund_rec(rf));
    jbuf_add(&b, pi_rec(pi));
    if (b.n > 0)
        jbuf_write(&b);
}

/* ================================================================ reading records */

static const char *opt_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool get_id(const json_t *o, const char *k, const char *prefix, char *out, size_t cap)
{
    const char *s = opt_str(o, k);

    if (s == NULL || strlen(s) >= cap || strncmp(s, prefix, strlen(prefix)) != 0)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

static bool get_ll(const json_t *o, const char *k, long long *out)
{
    json_t *v = json_object_get(o, k);

    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        if (names[i] != NULL && strcmp(names[i], s) == 0)
            return (int)i;
    }
    return -1;
}

static bool currency_of(const json_t *o, char out[4])
{
    const char *s = opt_str(o, "currency");

    if (s == NULL || strlen(s) != 3)
        return false;
    memcpy(out, s, 4);
    return true;
}

static bool meta_of(const json_t *o, ms_meta *m)
{
    json_t *a = json_object_get(o, "metadata"), *pair;
    size_t i;

    if (!json_is_array(a))
        return false;
    m->n = 0;
    m->k = ms_xcalloc(json_array_size(a), sizeof *m->k);
    m->v = ms_xcalloc(json_array_size(a), sizeof *m->v);
    json_array_foreach(a, i, pair) {
        const char *k = json_string_value(json_array_get(pair, 0));
        const char *v = json_string_value(json_array_get(pair, 1));

        if (k == NULL || v == NULL)
            return false;       /* the caller frees what was taken */
        m->k[m->n] = ms_xstrdup(k);
        m->v[m->n] = ms_xstrdup(v);
        m->n++;
    }
    return true;
}

static bool charge_of(const json_t *o, ms_pi *pi)
{
    json_t *ch = json_object_get(o, "charge");
    long long created;

    if (json_is_null(ch))
        return true;
    if (!get_id(ch, "id", "ch_", pi->ch_id, sizeof pi->ch_id) ||
        !get_ll(ch, "created", &created) || !json_is_boolean(json_object_get(ch, "ok")))
        return false;
    pi->ch_ok = json_is_true(json_object_get(ch, "ok"));
    pi->ch_created = (time_t)created;
    pi->ch_pm = ms_xstrdup_opt(opt_str(ch, "payment_method"));
    return true;
}

static bool payerr_of(const json_t *o, ms_pi *pi)
{
    json_t *e = json_object_get(o, "last_payment_error");

    if (json_is_null(e))
        return true;
    if (!json_is_object(e))
        return false;
    pi->err.set = true;
    pi->err.type = intern(opt_str(e, "type"));
    pi->err.code = intern(opt_str(e, "code"));
    pi->err.decline = intern(opt_str(e, "decline_code"));
    pi->err.msg = intern(opt_str(e, "message"));
    pi->err.pm = ms_xstrdup_opt(opt_str(e, "payment_method"));
    pi->err.has_charge = json_is_true(json_object_get(e, "has_charge"));
    return true;
}

static bool pm_types_of(const json_t *o, ms_pi *pi)
{
    json_t *a = json_object_get(o, "payment_method_types"), *v;
    size_t i;

    if (!json_is_array(a))
        return false;
    pi->pm_types = ms_xcalloc(json_array_size(a), sizeof *pi->pm_types);
    json_array_foreach(a, i, v) {
        if (!json_is_string(v))
            return false;
        pi->pm_types[pi->n_pm_types++] = ms_xstrdup(json_string_value(v));
    }
    return true;
}

static bool restore_pi(const json_t *o)
{
    ms_pi *pi = ms_xcalloc(1, sizeof *pi);
    const char *secret = opt_str(o, "secret");
    long long created, canceled_at;
    int status = name_index(ms_status_names, ST_SUCCEEDED + 1, opt_str(o, "status"));
    int capture = name_index(ms_capture_names, CAP_MANUAL + 1, opt_str(o, "capture_method"));

    pthread_mutex_init(&pi->mu, NULL);
    if (!get_id(o, "id", "pi_", pi->id, sizeof pi->id) || ms_pi_find(pi->id) != NULL ||
        secret == NULL || strlen(secret) >= sizeof pi->secret || status < 0 || capture < 0 ||
        !get_ll(o, "created", &created) || !get_ll(o, "canceled_at", &canceled_at) ||
        !get_ll(o, "amount", &pi->amount) || !get_ll(o, "capturable", &pi->capturable) ||
        !get_ll(o, "received", &pi->received) || !get_ll(o, "refunded", &pi->refunded) ||
        !currency_of(o, pi->currency) || !meta_of(o, &pi->meta) || !pm_types_of(o, pi) ||
        !charge_of(o, pi) || !payerr_of(o, pi)) {
        ms_pi_free(pi);
        return false;
    }
    memcpy(pi->secret, secret, strlen(secret) + 1);
    pi->created = (time_t)created;
    pi->canceled_at = (time_t)canceled_at;
    pi->status = (ms_status)status;
    pi->capture = capture;
    pi->pm = ms_xstrdup_opt(opt_str(o, "payment_method"));
    pi->description = ms_xstrdup_opt(opt_str(o, "description"));
    pi->receipt_email = ms_xstrdup_opt(opt_str(o, "receipt_email"));
    pi->cancel_reason = intern(opt_str(o, "cancellation_reason"));
    if (g_pis.n == g_pis.cap) {
        g_pis.cap = g_pis.cap > 0 ? 2 * g_pis.cap : 1024;
        g_pis.v = mh_xrealloc(g_pis.v, g_pis.cap * sizeof *g_pis.v);
    }
    pi->idx = g_pis.n;
    g_pis.v[g_pis.n++] = pi;
    ms_map_put(&g_objs, pi->id, pi);
    if (pi->ch_id[0] != '\0')
        ms_map_put(&g_objs, pi->ch_id, pi);
    return true;
}

static bool restore_refund(const json_t *o)
{
    ms_refund *rf = ms_xcalloc(1, sizeof *rf);
    long long created;
    ms_pi *pi;

    if (!get_id(o, "id", "re_", rf->id, sizeof rf->id) || ms_map_get(&g_objs, rf->id) != NULL ||
        !get_id(o, "payment_intent", "pi_", rf->pi_id, sizeof rf->pi_id) ||
        !get_id(o, "charge", "ch_", rf->ch_id, sizeof rf->ch_id) ||
        !get_ll(o, "amount", &rf->amount) || !get_ll(o, "created", &created) ||
        !currency_of(o, rf->currency) || !meta_of(o, &rf->meta) ||
        ms_pi_find(rf->pi_id) == NULL) {
        ms_meta_free(&rf->meta);
        free(rf);
        return false;
    }
    pi = ms_pi_find(rf->pi_id);
    rf->created = (time_t)created;
    rf->reason = intern(opt_str(o, "reason"));
    rf->next_for_pi = pi->refunds;     /* oldest first in, so newest first out */
    pi->refunds = rf;
    if (g_refunds.n == g_refunds.cap) {
        g_refunds.cap = g_refunds.cap > 0 ? 2 * g_refunds.cap : 256;
        g_refunds.v = mh_xrealloc(g_refunds.v, g_refunds.cap * sizeof *g_refunds.v);
    }
    rf->idx = g_refunds.n;
    g_refunds.v[g_refunds.n++] = rf;
    ms_map_put(&g_objs, rf->id, rf);
    return true;
}

/* An earlier charge of a PaymentIntent: its id still leads to the PaymentIntent
 * (GET /v1/charges answers only the latest; a refund of an earlier one is refused). */
static bool restore_charge(const json_t *o)
{
    char id[MS_ID_MAX], pi_id[MS_ID_MAX];
    ms_pi *pi;

    if (!get_id(o, "id", "ch_", id, sizeof id) ||
        !get_id(o, "payment_intent", "pi_", pi_id, sizeof pi_id))
        return false;
    pi = ms_pi_find(pi_id);
    if (pi == NULL)
        return false;
    if (ms_charge_find(id) == NULL)
        ms_map_put(&g_objs, id, pi);
    return true;
}

/* ================================================================ replay */

/* The key an object's records share: "<t>:<id>" ("event:<seq>"); false when the
 * record names none. */
static bool rec_key(const json_t *rec, char *out, size_t cap)
{
    const char *t = opt_str(rec, "t");
    const char *id;
    json_t *seq;

    if (t == NULL)
        return false;
    if (strcmp(t, "event") == 0) {
        seq = json_object_get(rec, "seq");
        if (!json_is_integer(seq))
            return false;
        snprintf(out, cap, "event:%lld", (long long)json_integer_value(seq));
        return true;
    }
    id = opt_str(rec, strcmp(t, "idem") == 0 ? "key" : "id");
    if (id == NULL)
        return false;
    snprintf(out, cap, "%s:%s", t, id);
    return true;
}

/* Reads path into live: the last record of each object, in the order of the
 * objects' first records. A PaymentIntent's every charge id is remembered too. */
static bool read_journal(const char *path, json_t *live, long *lines, long *skipped)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, key[2 * MS_KEY_MAX + 16];
    size_t cap = 0;

    if (f == NULL)
        return errno == ENOENT;
    for (;;) {
        ssize_t len = getline(&line, &cap, f);
        bool torn;
        json_error_t jerr;
        json_t *rec, *ch;

        if (len <= 0)
            break;
        torn = line[len - 1] != '\n';
        (*lines)++;
        if (!torn)
            len--;
        if (len == 0)
            continue;
        rec = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(rec) || !rec_key(rec, key, sizeof key)) {
            fprintf(stderr, "mock-stripe: journal %s: %s line %ld (%zd bytes) skipped: %s\n",
                    path, torn ? "torn last" : "unreadable", *lines, len,
                    rec == NULL ? jerr.text : "not a record");
            json_decref(rec);
            (*skipped)++;
            continue;
        }
        json_object_set_new(live, key, rec);
        ch = json_object_get(rec, "charge");
        if (strcmp(opt_str(rec, "t"), "pi") == 0 && opt_str(ch, "id") != NULL) {
            snprintf(key, sizeof key, "charge:%s", opt_str(ch, "id"));
            if (json_object_get(live, key) == NULL)
                json_object_set_new(live, key, json_pack("{s:s, s:s, s:s}", "t", "charge",
                                                          "id", opt_str(ch, "id"),
                                                          "payment_intent", opt_str(rec, "id")));
        }
    }
    free(line);
    fclose(f);
    return true;
}

static bool apply(const json_t *rec)
{
    const char *t = opt_str(rec, "t");

    if (strcmp(t, "pi") == 0)
        return restore_pi(rec);
    if (strcmp(t, "refund") == 0)
        return restore_refund(rec);
    if (strcmp(t, "charge") == 0)
        return restore_charge(rec);
    if (strcmp(t, "idem") == 0)
        return ms_idem_restore(rec);
    if (strcmp(t, "event") == 0)
        return ms_wh_restore(rec);
    return false;
}

/* The counters of objects follow from the objects (a PaymentIntent is captured
 * or canceled at most once); requests, replays and declines count from the start. */
static void recount(void)
{
    long long captured = 0, canceled = 0;

    for (size_t i = 0; i < g_pis.n; i++) {
        captured += g_pis.v[i]->status == ST_SUCCEEDED;
        canceled += g_pis.v[i]->status == ST_CANCELED;
    }
    atomic_store(&st_pis, (long long)g_pis.n);
    atomic_store(&st_captured, captured);
    atomic_store(&st_canceled, canceled);
    atomic_store(&st_refunds, (long long)g_refunds.n);
}

/* ================================================================ compaction */

/* Every live object into g_j.fd (the new file), in creation order. At start-up,
 * before any other thread exists. */
static void write_live(void)
{
    for (size_t i = 0; i < g_pis.n; i++)
        ms_journal_pi(g_pis.v[i]);
    for (size_t i = 0; i < g_refunds.n; i++)
        ms_journal_put(refund_rec(g_refunds.v[i]));
    for (size_t i = 0; i < MS_SHARDS; i++) {
        for (size_t j = 0; j < MS_BUCKETS; j++) {
            for (ms_node *n = g_objs.s[i].b[j]; n != NULL; n = n->next) {
                const ms_pi *pi = n->val;

                if (strncmp(n->key, "ch_", 3) == 0 && strcmp(pi->ch_id, n->key) != 0)
                    ms_journal_put(json_pack("{s:s, s:s, s:s}", "t", "charge", "id", n->key,
                                             "payment_intent", pi->id));
            }
        }
    }
    ms_idem_dump();
    ms_wh_dump();
}

static bool mkdirs(const char *dir)
{
    char p[PATH_MAX];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof p)
        return false;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return false;
        p[i] = i < n ? '/' : '\0';
    }
    return true;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

bool ms_journal_open(const char *dir, bool sync)
{
    char lock[PATH_MAX];
    json_t *live = json_object(), *rec;
    const char *key;
    long lines = 0, skipped = 0, bad = 0;
    int fd;

    if (!mkdirs(dir) ||
        snprintf(g_j.path, sizeof g_j.path, "%s/" JOURNAL_FILE, dir) >= (int)sizeof g_j.path ||
        snprintf(g_j.tmp, sizeof g_j.tmp, "%s/" JOURNAL_NEW, dir) >= (int)sizeof g_j.tmp ||
        snprintf(lock, sizeof lock, "%s/" JOURNAL_LOCK, dir) >= (int)sizeof lock) {
        fprintf(stderr, "mock-stripe: cannot use the state dir %s: %s\n", dir, strerror(errno));
        goto fail;
    }
    g_j.lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (g_j.lock_fd < 0 || flock(g_j.lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "mock-stripe: the state dir %s is %s\n", dir,
                errno == EWOULDBLOCK ? "in use by another mock-stripe" : strerror(errno));
        goto fail;
    }
    if (!read_journal(g_j.path, live, &lines, &skipped)) {
        fprintf(stderr, "mock-stripe: cannot read %s: %s\n", g_j.path, strerror(errno));
        goto fail;
    }
    json_object_foreach(live, key, rec) {
        if (!apply(rec)) {
            fprintf(stderr, "mock-stripe: journal %s: record %.120s is incomplete; skipped\n",
                    g_j.path, key);
            bad++;
        }
    }
    json_decref(live);
    live = NULL;
    recount();
    fd = open(g_j.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "mock-stripe: cannot create %s: %s\n", g_j.tmp, strerror(errno));
        goto fail;
    }
    g_j.fd = fd;                /* write_live appends to the new file */
    write_live();
    if (fdatasync(fd) != 0 || rename(g_j.tmp, g_j.path) != 0) {
        fprintf(stderr, "mock-stripe: cannot replace %s: %s\n", g_j.path, strerror(errno));
        goto fail;
    }
    sync_dir(dir);
    g_j.sync = sync;
    if (g_cfg.verbose || skipped > 0 || bad > 0)
        fprintf(stderr, "mock-stripe: state from %s: %ld lines, %zu payment intents, %zu "
                "refunds; %ld lines and %ld records skipped\n", g_j.path, lines, g_pis.n,
                g_refunds.n, skipped, bad);
    return true;
fail:
    json_decref(live);
    if (g_j.fd >= 0)
        close(g_j.fd);
    g_j.fd = -1;
    return false;
}

/* POST /_mock/reset, under the state write lock: the journal keeps only what memory
 * still holds, the events still to deliver. */
void ms_journal_reset(void)
{
    if (g_j.fd < 0)
        return;
    pthread_mutex_lock(&g_j.mu);
    if (ftruncate(g_j.fd, 0) != 0)
        fprintf(stderr, "mock-stripe: journal: cannot clear %s: %s\n", g_j.path,
                strerror(errno));
    pthread_mutex_unlock(&g_j.mu);
    ms_wh_dump();
}

/* After the last writer (the webhook senders) has stopped. */
void ms_journal_close(void)
{
    if (g_j.fd >= 0)
        close(g_j.fd);
    g_j.fd = -1;
    if (g_j.lock_fd >= 0)
        close(g_j.lock_fd);
    g_j.lock_fd = -1;
    while (g_interned != NULL) {
        ms_interned *next = g_interned->next;

        free(g_interned);
        g_interned = next;
    }
}

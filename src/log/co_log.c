/* JSON lines on stderr (see co_log.h). A line is built in memory, scrubbed
 * and escaped, and written with one write(2) under a lock, so lines of
 * concurrent threads never interleave. */
#include "co_log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static co_log_level min_level = CO_LOG_INFO;

/* Bounds of what one line carries: a longer message or value is cut. */
#define MSG_MAX 2048
#define VALUE_MAX 512
#define CTX_MAX 80
#define REDACTED "[redacted]"

void co_log_init(void)
{
    const char *v = getenv("LOG_LEVEL");

    if (v == NULL)
        return;
    if (strcmp(v, "debug") == 0)
        min_level = CO_LOG_DEBUG;
    else if (strcmp(v, "info") == 0)
        min_level = CO_LOG_INFO;
    else if (strcmp(v, "warn") == 0)
        min_level = CO_LOG_WARN;
    else if (strcmp(v, "error") == 0)
        min_level = CO_LOG_ERROR;
}

bool co_log_enabled(co_log_level level)
{
    return level >= min_level;
}

double co_log_now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* ------------------------------------------------------------ context */

static __thread char ctx_request[CTX_MAX], ctx_order[CTX_MAX], ctx_step[CTX_MAX];

static void ctx_set(char *dst, const char *v)
{
    snprintf(dst, CTX_MAX, "%s", v != NULL ? v : "");
}

void co_log_ctx_request(const char *request_id)
{
    ctx_set(ctx_request, request_id);
}

void co_log_ctx_order(const char *order_id)
{
    ctx_set(ctx_order, order_id);
}

void co_log_ctx_step(const char *step)
{
    ctx_set(ctx_step, step);
}

void co_log_ctx_clear(void)
{
    ctx_request[0] = ctx_order[0] = ctx_step[0] = '\0';
}

const char *co_log_ctx_request_id(void)
{
    return ctx_request;
}

/* ------------------------------------------------------------ secrets */

#define SECRETS_MAX 16

static pthread_mutex_t secrets_mu = PTHREAD_MUTEX_INITIALIZER;
static char *secrets[SECRETS_MAX];
static atomic_int nsecrets;

void co_log_secret(const char *value)
{
    int n;

    if (value == NULL || strlen(value) < 6)
        return;
    pthread_mutex_lock(&secrets_mu);
    n = atomic_load(&nsecrets);
    for (int i = 0; i < n; i++) {
        if (strcmp(secrets[i], value) == 0) {
            pthread_mutex_unlock(&secrets_mu);
            return;
        }
    }
    if (n < SECRETS_MAX) {
        secrets[n] = strdup(value);
        if (secrets[n] != NULL)
            atomic_store(&nsecrets, n + 1); /* published after the slot is written */
    }
    pthread_mutex_unlock(&secrets_mu);
}

/* A growable buffer; a failed allocation marks it and drops the line. */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} lbuf;

static void lb_grow(lbuf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 512;
    char *p;

    if (b->failed || b->len + more + 1 <= b->cap)
        return;
    while (cap < b->len + more + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void lb_put(lbuf *b, const char *s, size_t n)
{
    lb_grow(b, n);
    if (b->failed)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void lb_puts(lbuf *b, const char *s)
{
    lb_put(b, s, strlen(s));
}

static void lb_printf(lbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lb_printf(lbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        lb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static bool tok_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Length of a card number at s (13 to 19 digits, contiguous or in groups of
 * four split by one space or dash, passing the Luhn check, not inside a
 * longer token), or 0. */
static size_t card_at(const char *s, bool after_token)
{
    int digits[19];
    int nd = 0, group = 0, sum = 0;
    char sep = 0;
    size_t i = 0;

    if (after_token)
        return 0;
    for (;;) {
        if (isdigit((unsigned char)s[i])) {
            if (nd == 19)
                return 0;
            digits[nd++] = s[i] - '0';
            group++;
            i++;
            continue;
        }
        if ((s[i] == ' ' || s[i] == '-') && group == 4 && (sep == 0 || sep == s[i]) &&
            isdigit((unsigned char)s[i + 1]) && (sep != 0 || nd == 4)) {
            sep = s[i];
            group = 0;
            i++;
            continue;
        }
        break;
    }
    if (nd < 13 || tok_char(s[i]) || (sep != 0 && group > 4))
        return 0;
    for (int k = 0; k < nd; k++) {
        int d = digits[nd - 1 - k];

        if (k % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0 ? i : 0;
}

static size_t span(const char *s, const char *set)
{
    return strspn(s, set);
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define B64URL ALNUM "_-"
#define HEX "0123456789abcdefABCDEF"

/* Copies s into out with what looks like a credential or a card number
 * replaced (co_log.h lists the shapes). */
static void scrub_shapes(lbuf *out, const char *s)
{
    static const char *const keys[] = {"sk_test_", "sk_live_", "rk_test_", "rk_live_",
                                       "whsec_"};
    size_t i = 0;

    while (s[i] != '\0') {
        const char *p = s + i;
        bool after_token = i > 0 && tok_char(s[i - 1]);
        size_t n, k;
        bool done = false;

        for (k = 0; k < sizeof keys / sizeof keys[0] && !done; k++) {
            size_t kl = strlen(keys[k]);

            if (!after_token && strncmp(p, keys[k], kl) == 0 && span(p + kl, ALNUM "_") > 0) {
                lb_put(out, p, kl);
                lb_puts(out, REDACTED);
                i += kl + span(p + kl, ALNUM "_");
                done = true;
            }
        }
        if (done)
            continue;
        if (strncmp(p, "_secret_", 8) == 0 && after_token && span(p + 8, ALNUM) > 0) {
            lb_puts(out, "_secret_" REDACTED);
            i += 8 + span(p + 8, ALNUM);
            continue;
        }
        if (!after_token && strncmp(p, "eyJ", 3) == 0) {
            n = span(p, B64URL ".");
            if (memchr(p, '.', n) != NULL) {
                lb_puts(out, REDACTED);
                i += n;
                continue;
            }
        }
        if (!after_token && strncasecmp(p, "bearer ", 7) == 0 && p[7] != '\0' && p[7] != ' ') {
            lb_put(out, p, 7);
            lb_puts(out, REDACTED);
            i += 7 + strcspn(p + 7, " \t\r\n\",;");
            continue;
        }
        if (!after_token && strncmp(p, "v1=", 3) == 0 && span(p + 3, HEX) >= 16) {
            lb_puts(out, "v1=" REDACTED);
            i += 3 + span(p + 3, HEX);
            continue;
        }
        n = isdigit((unsigned char)*p) ? card_at(p, after_token) : 0;
        if (n > 0) {
            lb_puts(out, REDACTED);
            i += n;
            continue;
        }
        lb_put(out, p, 1);
        i++;
    }
}

/* s with secrets and credential shapes replaced; NULL when out of memory.
 * The caller frees it. */
static char *scrub(const char *s)
{
    int n = atomic_load(&nsecrets);
    lbuf a = {0}, b = {0};

    lb_puts(&a, "");
    /* Registered values first: they may have no recognisable shape. */
    for (size_t i = 0; s[i] != '\0';) {
        bool hit = false;

        for (int k = 0; k < n && !hit; k++) {
            size_t kl = strlen(secrets[k]);

            if (strncmp(s + i, secrets[k], kl) == 0) {
                lb_puts(&a, REDACTED);
                i += kl;
                hit = true;
            }
        }
        if (!hit) {
            lb_put(&a, s + i, 1);
            i++;
        }
    }
    if (a.failed) {
        free(a.p);
        return NULL;
    }
    lb_puts(&b, "");
    scrub_shapes(&b, a.p);
    free(a.p);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ------------------------------------------------------------ escaping */

size_t co_utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates, past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* s (at most max bytes of it) as a JSON string. fold: runs of whitespace and
 * line breaks become one space, leading and trailing ones go. */
static void put_json(lbuf *b, const char *s, size_t max, bool fold)
{
    size_t n = strnlen(s, max);
    bool space = false;
    size_t i = 0;

    lb_put(b, "\"", 1);
    if (fold)
        while (i < n && isspace((unsigned char)s[i]))
            i++;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len;

        if (fold && isspace(c)) {
            space = true;
            i++;
            continue;
        }
        if (space) {
            lb_put(b, " ", 1);
            space = false;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            lb_put(b, e, 2);
            i++;
        } else if (c == '\n') {
            lb_puts(b, "\\n");
            i++;
        } else if (c == '\t') {
            lb_puts(b, "\\t");
            i++;
        } else if (c == '\r') {
            lb_puts(b, "\\r");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            lb_printf(b, "\\u%04x", c);
            i++;
        } else {
            len = co_utf8_seq((const unsigned char *)s + i, n - i);
            if (len == 0) {
                lb_puts(b, "\xef\xbf\xbd"); /* U+FFFD */
                i++;
            } else {
                lb_put(b, s + i, len);
                i += len;
            }
        }
    }
    lb_put(b, "\"", 1);
}

/* A key and a scrubbed string value. */
static void put_kv(lbuf *b, const char *key, const char *value, size_t max, bool fold)
{
    char *clean = scrub(value);

    lb_put(b, ",", 1);
    put_json(b, key, 64, false);
    lb_put(b, ":", 1);
    put_json(b, clean != NULL ? clean : "", max, fold);
    free(clean);
}

/* ------------------------------------------------------------ the line */

static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

static void emit(const lbuf *b)
{
    size_t off = 0;

    pthread_mutex_lock(&write_mu);
    while (off < b->len) {
        ssize_t w = write(STDERR_FILENO, b->p + off, b->len - off);

        if (w <= 0)
            break; /* nowhere to log to: drop the line */
        off += (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

static bool field_named(const co_log_field *f, size_t nf, const char *key)
{
    for (size_t i = 0; i < nf; i++)
        if (strcmp(f[i].key, key) == 0)
            return true;
    return false;
}

static void write_line(co_log_level level, const char *component, const char *msg,
                       const co_log_field *f, size_t nf, bool with_ctx)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    const char *const ctx_keys[] = {"request_id", "order_id", "step"};
    const char *const ctx_vals[] = {ctx_request, ctx_order, ctx_step};
    struct timespec now;
    struct tm tm;
    char ts[40];
    lbuf b = {0};

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    lb_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\"", ts, now.tv_nsec / 1000000L,
              names[level]);
    put_kv(&b, "component", component != NULL ? component : "", 64, false);
    put_kv(&b, "msg", msg, MSG_MAX, true);
    for (size_t i = 0; with_ctx && i < 3; i++)
        if (ctx_vals[i][0] != '\0' && !field_named(f, nf, ctx_keys[i]))
            put_kv(&b, ctx_keys[i], ctx_vals[i], CTX_MAX, false);
    for (size_t i = 0; i < nf; i++) {
        switch (f[i].kind) {
        case CO_LF_STR:
            if (f[i].str != NULL)
                put_kv(&b, f[i].key, f[i].str, VALUE_MAX, false);
            continue;
        case CO_LF_INT:
            lb_put(&b, ",", 1);
            put_json(&b, f[i].key, 64, false);
            lb_printf(&b, ":%lld", f[i].num);
            continue;
        case CO_LF_MS:
            lb_put(&b, ",", 1);
            put_json(&b, f[i].key, 64, false);
            lb_printf(&b, ":%.3f", f[i].ms >= 0 && f[i].ms < 1e12 ? f[i].ms : 0.0);
            continue;
        case CO_LF_BOOL:
            lb_put(&b, ",", 1);
            put_json(&b, f[i].key, 64, false);
            lb_puts(&b, f[i].num ? ":true" : ":false");
            continue;
        }
    }
    lb_puts(&b, "}\n");
    if (!b.failed)
        emit(&b);
    free(b.p);
}

/* ------------------------------------------------------------ rate limit */

#define SITES 256

typedef struct {
    const void *key;        /* the call site's file, or its format */
    int line;
    char component[32];
    char where[96];
    long window;            /* monotonic second its window began */
    unsigned in_window;     /* lines written in the window */
    unsigned suppressed;    /* lines dropped in the window */
} site;

typedef struct {
    char component[32];
    char where[96];
    unsigned suppressed;
} summary;

static pthread_mutex_t sites_mu = PTHREAD_MUTEX_INITIALIZER;
static site sites[SITES];
static atomic_long last_sweep;

static long mono_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec;
}

static void say_suppressed(const summary *s)
{
    co_log_field f[] = {CO_LOG_INT("suppressed", s->suppressed), CO_LOG_STR("site", s->where)};
    char msg[200];

    snprintf(msg, sizeof msg, "%u more lines like this were suppressed (at most %d per %d s)",
             s->suppressed, CO_LOG_BURST, CO_LOG_WINDOW_S);
    write_line(CO_LOG_WARN, s->component, msg, f, 2, false);
}

/* Takes the site's count of suppressed lines into *out when its window is
 * over (or always, when force). Under sites_mu. */
static bool take_summary(site *st, long now, bool force, summary *out)
{
    if (st->key == NULL || st->suppressed == 0 ||
        (!force && now - st->window < CO_LOG_WINDOW_S))
        return false;
    snprintf(out->component, sizeof out->component, "%s", st->component);
    snprintf(out->where, sizeof out->where, "%s", st->where);
    out->suppressed = st->suppressed;
    st->suppressed = 0;
    st->in_window = 0;
    st->window = now;
    return true;
}

/* Writes the summaries of every site whose window is over. */
static void sweep(long now, bool force)
{
    summary pending[8];
    int n;

    do {
        n = 0;
        pthread_mutex_lock(&sites_mu);
        for (int i = 0; i < SITES && n < 8; i++)
            if (take_summary(&sites[i], now, force, &pending[n]))
                n++;
        pthread_mutex_unlock(&sites_mu);
        for (int i = 0; i < n; i++)
            say_suppressed(&pending[i]);
    } while (n == 8);
}

void co_log_flush(void)
{
    sweep(mono_s(), true);
}

void co_log_tick(void)
{
    long now = mono_s();
    long last = atomic_load(&last_sweep);

    if (now != last && atomic_compare_exchange_strong(&last_sweep, &last, now))
        sweep(now, false);
}

/* Whether a line of this site may be written now; *sum gets the summary of
 * the window that just ended, if it dropped lines. */
static bool site_allows(const void *key, int line, const char *component, const char *fmt,
                        long now, summary *sum, bool *has_sum)
{
    size_t h = ((uintptr_t)key >> 3) * 31u + (unsigned)line;
    bool ok = true;

    *has_sum = false;
    pthread_mutex_lock(&sites_mu);
    for (int probe = 0; probe < SITES; probe++) {
        site *st = &sites[(h + (size_t)probe) % SITES];

        if (st->key == NULL) {
            st->key = key;
            st->line = line;
            st->window = now;
            snprintf(st->component, sizeof st->component, "%s", component ? component : "");
            if (line > 0)
                snprintf(st->where, sizeof st->where, "%s:%d", (const char *)key, line);
            else
                snprintf(st->where, sizeof st->where, "%s", fmt);
        } else if (st->key != key || st->line != line) {
            continue;
        }
        *has_sum = take_summary(st, now, false, sum);
        if (now - st->window >= CO_LOG_WINDOW_S) {
            st->window = now;
            st->in_window = 0;
        }
        ok = st->in_window < CO_LOG_BURST;
        if (ok)
            st->in_window++;
        else
            st->suppressed++;
        break;
    }
    /* A full table limits nothing. */
    pthread_mutex_unlock(&sites_mu);
    return ok;
}

/* ------------------------------------------------------------ entry points */

static void log_v(co_log_level level, const char *component, const void *key, int line,
                  const co_log_field *f, size_t nf, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
static void log_v(co_log_level level, const char *component, const void *key, int line,
                  const co_log_field *f, size_t nf, const char *fmt, va_list ap)
{
    char msg[MSG_MAX + 1];
    long now;

    if (level < min_level || (unsigned)level > CO_LOG_ERROR)
        return;
    co_log_tick();
    now = mono_s();
    if (level >= CO_LOG_WARN) {
        summary sum;
        bool has_sum, ok = site_allows(key, line, component, fmt, now, &sum, &has_sum);

        if (has_sum)
            say_suppressed(&sum);
        if (!ok)
            return;
    }
    vsnprintf(msg, sizeof msg, fmt, ap);
    write_line(level, component, msg, f, nf, true);
}

void co_log_at(co_log_level level, const char *component, const char *file, int line,
               const co_log_field *fields, size_t nfields, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(level, component, file != NULL ? (const void *)file : (const void *)fmt,
          file != NULL ? line : 0, fields, nfields, fmt, ap);
    va_end(ap);
}

void co_log(co_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(level, component, fmt, 0, NULL, 0, fmt, ap);
    va_end(ap);
}

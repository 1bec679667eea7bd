/* mock-stripe's small utilities: allocation that never returns NULL, the monotonic
 * clock, random ids, UTF-8 and integer checks. */
#include "stripe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ================================================================ allocation */

void *ms_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size > 0 ? size : 1);

    if (p == NULL)
        mh_oom();
    return p;
}

char *ms_xstrndup(const char *s, size_t n)
{
    char *p = mh_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *ms_xstrdup(const char *s)
{
    return ms_xstrndup(s, strlen(s));
}

char *ms_xstrdup_opt(const char *s)
{
    return s != NULL ? ms_xstrdup(s) : NULL;
}

/* ================================================================ clocks */

long long ms_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ms_deadline_after(struct timespec *ts, long long ms)
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
void ms_cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* ================================================================ ids and input */

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
void ms_new_id(char *out, size_t cap, const char *prefix, size_t nrand)
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
bool ms_utf8_ok(const char *str, size_t n)
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
bool ms_parse_ll(const char *s, long long *out)
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

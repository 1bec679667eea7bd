#include "co_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static co_log_level min_level = CO_LOG_INFO;

void co_log_init(void)
{
    const char *v = getenv("LOG_LEVEL");

    if (v == NULL)
        return;
    if (strcmp(v, "debug") == 0)
        min_level = CO_LOG_DEBUG;
    else if (strcmp(v, "warn") == 0)
        min_level = CO_LOG_WARN;
    else if (strcmp(v, "error") == 0)
        min_level = CO_LOG_ERROR;
}

void co_log(co_log_level level, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof line, "%s.%03ldZ %s [%s] ", ts, now.tv_nsec / 1000000L,
                 names[level], component);
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One stdio call per line: stdio locks the stream, so concurrent threads do
     * not interleave within a line. */
    fprintf(stderr, "%s\n", line);
}

/* Logging: one JSON object per line on stderr,
 *   {"ts":"2026-12-01T12:00:00.123Z","level":"info","component":"http","msg":"...",
 *    "request_id":"...","order_id":"...","step":"...", ...fields}
 * request_id, order_id and step come from the calling thread's log context
 * (set by the HTTP layer and the saga, so call sites do not pass them); a
 * call may add fields of its own (CO_LOGF). Every string is JSON-escaped,
 * invalid UTF-8 is replaced by U+FFFD, and the message is folded to one line
 * (a multi-line PQerrorMessage becomes one msg).
 *
 * Warnings and errors are rate-limited per call site: at most
 * CO_LOG_BURST lines of one site per CO_LOG_WINDOW_S seconds, then one line
 * saying how many were suppressed.
 *
 * Never pass a secret (keys, tokens, client_secret, signatures, card numbers)
 * to these. As a second line of defence every string is scrubbed: the values
 * registered with co_log_secret, API keys (sk_/rk_), whsec_ secrets, the
 * secret part of a client_secret, JWTs, Bearer credentials, v1= signatures
 * and card numbers (13 to 19 digits passing the Luhn check) are replaced by
 * "[redacted]". */
#ifndef CO_LOG_H
#define CO_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { CO_LOG_DEBUG, CO_LOG_INFO, CO_LOG_WARN, CO_LOG_ERROR } co_log_level;

#define CO_LOG_BURST 5
#define CO_LOG_WINDOW_S 10

/* Minimum level printed; from LOG_LEVEL (debug|info|warn|error), default info. */
void co_log_init(void);
bool co_log_enabled(co_log_level level);
/* A value that must never appear in a line (a configured secret): masked
 * wherever it occurs. Values shorter than 6 bytes are ignored; up to 16 are
 * kept (copied). */
void co_log_secret(const char *value);
/* Writes the pending "N suppressed" lines now (at exit). */
void co_log_flush(void);
/* Writes the "N suppressed" lines of windows that have ended. Any line
 * checks that once a second; the background tickers call this too, so the
 * count comes soon after its window even when nothing else is logged. */
void co_log_tick(void);

/* ------------------------------------------------------------ fields */

typedef enum { CO_LF_STR, CO_LF_INT, CO_LF_MS, CO_LF_BOOL } co_log_field_kind;

/* One more key of a line. A key that is also a context key (request_id,
 * order_id, step) replaces the context's value; a string field whose value
 * is NULL is left out. */
typedef struct {
    const char *key;
    co_log_field_kind kind;
    const char *str;
    long long num;
    double ms;
} co_log_field;

#define CO_LOG_STR(k, v) ((co_log_field){.key = (k), .kind = CO_LF_STR, .str = (v)})
#define CO_LOG_INT(k, v) ((co_log_field){.key = (k), .kind = CO_LF_INT, .num = (long long)(v)})
#define CO_LOG_MS(k, v) ((co_log_field){.key = (k), .kind = CO_LF_MS, .ms = (double)(v)})
#define CO_LOG_BOOL(k, v) ((co_log_field){.key = (k), .kind = CO_LF_BOOL, .num = (v) ? 1 : 0})

/* A monotonic clock in milliseconds, for duration_ms fields. */
double co_log_now_ms(void);

/* ------------------------------------------------------------ context */

/* The calling thread's context: each value is copied (NULL or "" clears it).
 * The HTTP layer sets the request id for the run of a handler and clears
 * the whole context after it; the saga sets the order and its step. */
void co_log_ctx_request(const char *request_id);
void co_log_ctx_order(const char *order_id);
void co_log_ctx_step(const char *step);
void co_log_ctx_clear(void);
/* The thread's request id now ("" when none). */
const char *co_log_ctx_request_id(void);

/* ------------------------------------------------------------ writing */

/* One line. site (file) and line name the call site for the rate limit of
 * warnings and errors (NULL: the format string names it). */
void co_log_at(co_log_level level, const char *component, const char *file, int line,
               const co_log_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* The same without fields or call site. */
void co_log(co_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Arguments are evaluated only when the level is printed. */
#define CO_LOG_(lvl, comp, f, n, ...)                                                            \
    (co_log_enabled(lvl) ? co_log_at(lvl, comp, __FILE__, __LINE__, f, n, __VA_ARGS__) : (void)0)

#define CO_DEBUG(comp, ...) CO_LOG_(CO_LOG_DEBUG, comp, NULL, 0, __VA_ARGS__)
#define CO_INFO(comp, ...) CO_LOG_(CO_LOG_INFO, comp, NULL, 0, __VA_ARGS__)
#define CO_WARN(comp, ...) CO_LOG_(CO_LOG_WARN, comp, NULL, 0, __VA_ARGS__)
#define CO_ERROR(comp, ...) CO_LOG_(CO_LOG_ERROR, comp, NULL, 0, __VA_ARGS__)
/* With fields: an array of co_log_field (its length is taken with sizeof). */
#define CO_LOGF(lvl, comp, fields, ...)                                                         \
    CO_LOG_(lvl, comp, fields, sizeof(fields) / sizeof((fields)[0]), __VA_ARGS__)

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 when it is
 * not one (overlong forms, UTF-16 surrogates, past U+10FFFF): what the log's
 * escaping and the error bodies (co_utf8_clean) both replace. */
size_t co_utf8_seq(const unsigned char *s, size_t n);

#endif

/* Logging: one line per event on stderr, "ts level [component] message".
 * Never pass a secret (keys, tokens, client_secret, signatures) to these. */
#ifndef CO_LOG_H
#define CO_LOG_H

typedef enum { CO_LOG_DEBUG, CO_LOG_INFO, CO_LOG_WARN, CO_LOG_ERROR } co_log_level;

/* Minimum level printed; from LOG_LEVEL (debug|info|warn|error), default info. */
void co_log_init(void);
void co_log(co_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CO_DEBUG(comp, ...) co_log(CO_LOG_DEBUG, comp, __VA_ARGS__)
#define CO_INFO(comp, ...) co_log(CO_LOG_INFO, comp, __VA_ARGS__)
#define CO_WARN(comp, ...) co_log(CO_LOG_WARN, comp, __VA_ARGS__)
#define CO_ERROR(comp, ...) co_log(CO_LOG_ERROR, comp, __VA_ARGS__)

#endif

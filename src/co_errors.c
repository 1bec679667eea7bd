#include "co_errors.h"

#include "co_log.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const co_err_info registry[] = {
#define CO_ERR_ROW(name, num, st, h) {CO_ERR_##name, #name, st, h},
    CO_ERRORS(CO_ERR_ROW)
#undef CO_ERR_ROW
};

const co_err_info *co_err_get(co_err err)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (registry[i].err == err)
            return &registry[i];
    return co_err_get(CO_ERR_internal_error);
}

char *co_utf8_clean(const char *s, size_t max)
{
    size_t n = strlen(s), in = 0, out = 0;
    char *t = malloc((n < max ? n : max) + 1);

    if (t == NULL)
        return NULL;
    while (in < n) {
        size_t len = co_utf8_seq((const unsigned char *)s + in, n - in);
        size_t take = len ? len : 1;

        if (out + take > max)
            break; /* never cut a character in two */
        if (len == 0)
            t[out] = '?';
        else
            memcpy(t + out, s + in, len);
        in += take;
        out += take;
    }
    t[out] = '\0';
    return t;
}

char *co_error_body(co_err err, const char *message, json_t *extra)
{
    const co_err_info *info = co_err_get(err);
    /* A message may quote what a client sent (a field name, the parser's
     * view of a bad body): made valid UTF-8 here, or the answer itself
     * could not be built. */
    char *clean = co_utf8_clean(message ? message : info->hint, 1024);
    json_t *e = clean ? json_pack("{s:s, s:s}", "code", info->code, "message", clean) : NULL;
    json_t *wrap;
    char *text;

    free(clean);
    if (e == NULL) {
        json_decref(extra);
        return NULL;
    }
    if (extra != NULL) {
        json_object_update(e, extra);
        json_decref(extra);
    }
    wrap = json_pack("{s:o}", "error", e); /* "o" steals e */
    text = json_dumps(wrap, JSON_COMPACT);
    json_decref(wrap);
    return text;
}

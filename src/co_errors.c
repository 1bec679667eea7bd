#include "co_errors.h"

#include <stddef.h>

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

char *co_error_body(co_err err, const char *message, json_t *extra)
{
    const co_err_info *info = co_err_get(err);
    json_t *e = json_pack("{s:s, s:s}", "code", info->code, "message",
                          message ? message : info->hint);
    json_t *wrap;
    char *text;

    if (extra != NULL) {
        json_object_update(e, extra);
        json_decref(extra);
    }
    wrap = json_pack("{s:o}", "error", e); /* "o" steals e */
    text = json_dumps(wrap, JSON_COMPACT);
    json_decref(wrap);
    return text;
}

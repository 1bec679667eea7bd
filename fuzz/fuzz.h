/* What the fuzz targets share: a check that fails loudly (libFuzzer keeps the
 * input as a crash), NUL-terminated copies of the input, a line splitter for
 * the targets whose input has a few text fields before a body, and the check
 * that an error answer is what the API promises.
 *
 * Each target is one file, fuzz/fuzz_NAME.c, that #includes the .c it tests
 * (to reach its statics, as tests/unit/ does) and links the core library of
 * the fuzzing build (Makefile: FUZZ=1). fuzz/README.md says how to run them. */
#ifndef CO_FUZZ_H
#define CO_FUZZ_H

#include "co_http.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold for every input: on failure, say which and abort,
 * so libFuzzer saves the input (crash-<sha1>) and stops. */
#define FZ_CHECK(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* A malloc'd NUL-terminated copy of n bytes (which may hold NULs themselves). */
static inline char *fz_strndup(const void *data, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* The next line of *p (up to *left bytes, without its '\n') as a malloc'd
 * string; advances past it. At the end of the input: the rest, or "". */
static inline char *fz_line(const uint8_t **p, size_t *left)
{
    const uint8_t *nl = memchr(*p, '\n', *left);
    size_t n = nl != NULL ? (size_t)(nl - *p) : *left;
    char *s = fz_strndup(*p, n);

    *p += n;
    *left -= n;
    if (nl != NULL) {
        (*p)++;
        (*left)--;
    }
    return s;
}

/* True when s[0..n) is UTF-8 as the API emits it (co_utf8_clean's rules:
 * no overlong forms, no surrogates, nothing past U+10FFFF). */
static inline bool fz_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned cp;
        size_t len;

        if (u[i] < 0x80) {
            i++;
            continue;
        }
        if (u[i] >= 0xc2 && u[i] <= 0xdf)
            len = 2, cp = u[i] & 0x1fu;
        else if (u[i] >= 0xe0 && u[i] <= 0xef)
            len = 3, cp = u[i] & 0x0fu;
        else if (u[i] >= 0xf0 && u[i] <= 0xf4)
            len = 4, cp = u[i] & 0x07u;
        else
            return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (u[i + k] & 0x3fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* The answer in resp is an error of the registry: the status of its code, a
 * body that is one JSON object {"error":{"code","message",...}} (so valid
 * UTF-8: jansson refuses anything else), code one of codes (NULL-ended), and
 * for invalid_request a string `param`. Returns the error object's code. */
static inline const char *fz_check_error(const co_resp *resp, const char *const *codes)
{
    json_error_t e;
    json_t *root, *err, *code, *param;
    const co_err_info *info = NULL;
    const char *c;
    bool known = false;
    static char code_copy[64];

    /* co_error_body must never fail on a message built from the input. */
    FZ_CHECK(resp->body != NULL, "no error body (status %u)", resp->status);
    FZ_CHECK(resp->body_len == strlen(resp->body), "body_len %zu", resp->body_len);
    FZ_CHECK(fz_utf8(resp->body, resp->body_len), "body is not UTF-8: %s", resp->body);
    root = json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, &e);
    FZ_CHECK(root != NULL, "body is not JSON (%s): %s", e.text, resp->body);
    FZ_CHECK(json_is_object(root) && json_object_size(root) == 1, "body: %s", resp->body);
    err = json_object_get(root, "error");
    FZ_CHECK(json_is_object(err), "no error object: %s", resp->body);
    code = json_object_get(err, "code");
    FZ_CHECK(json_is_string(code), "no code: %s", resp->body);
    FZ_CHECK(json_is_string(json_object_get(err, "message")), "no message: %s", resp->body);
    c = json_string_value(code);
    for (size_t i = 0; codes[i] != NULL; i++)
        known = known || strcmp(c, codes[i]) == 0;
    FZ_CHECK(known, "unexpected code %s: %s", c, resp->body);
#define FZ_ERR_FIND(name, num, st, hint)                                                     \
    if (strcmp(c, #name) == 0)                                                               \
        info = co_err_get(CO_ERR_##name);
    CO_ERRORS(FZ_ERR_FIND)
#undef FZ_ERR_FIND
    FZ_CHECK(info != NULL && info->status == resp->status, "status %u for %s", resp->status, c);
    param = json_object_get(err, "param");
    if (strcmp(c, "invalid_request") == 0)
        FZ_CHECK(json_is_string(param), "invalid_request without param: %s", resp->body);
    snprintf(code_copy, sizeof code_copy, "%s", c);
    json_decref(root);
    return code_copy;
}

/* A response as the HTTP layer frees it. */
static inline void fz_resp_free(co_resp *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

#endif

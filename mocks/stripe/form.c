/* mock-stripe's request parameters: the application/x-www-form-urlencoded codec with
 * Rack's rules, Stripe's checks of known parameters, integers, booleans, enums, strings,
 * amounts, list arguments, and metadata. Every check answers Stripe's 400 itself. */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ metadata */

void ms_meta_free(ms_meta *m)
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
            m->v[i] = ms_xstrdup(val);
        }
        return;
    }
    if (*val == '\0')
        return;
    m->k = mh_xrealloc(m->k, (m->n + 1) * sizeof(char *));
    m->v = mh_xrealloc(m->v, (m->n + 1) * sizeof(char *));
    m->k[m->n] = ms_xstrdup(key);
    m->v[m->n] = ms_xstrdup(val);
    m->n++;
}

static ms_meta meta_clone(const ms_meta *m)
{
    ms_meta c = {0};

    for (size_t i = 0; i < m->n; i++)
        meta_set(&c, m->k[i], m->v[i]);
    return c;
}

/* ================================================================ the form codec */

void ms_form_add(ms_form *f, char *k, char *v)
{
    if (f->n == f->cap) {
        f->cap = f->cap > 0 ? 2 * f->cap : 16;
        f->kv = mh_xrealloc(f->kv, f->cap * sizeof *f->kv);
    }
    f->kv[f->n].k = k;
    f->kv[f->n].v = v;
    f->n++;
}

void ms_form_free(ms_form *f)
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
    if (memchr(out, '\0', o) != NULL || !ms_utf8_ok(out, o)) {
        free(out);
        return NULL;
    }
    return out;
}

/* Parses an application/x-www-form-urlencoded body. False (f partly filled) on bytes
 * that cannot be a Stripe parameter. */
bool ms_form_parse(ms_form *f, const char *body, size_t len)
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
        v = eq != NULL ? form_decode(eq + 1, plen - klen - 1) : ms_xstrdup("");
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            return false;
        }
        ms_form_add(f, k, v);
    }
    return true;
}

/* The last value given for key (Rack semantics for repeated scalars), or NULL. */
const char *ms_form_get(const ms_form *f, const char *key)
{
    for (size_t i = f->n; i > 0; i--) {
        if (strcmp(f->kv[i - 1].k, key) == 0)
            return f->kv[i - 1].v;
    }
    return NULL;
}

/* ================================================================ parameter checks */

/* Rejects parameters the endpoint does not know, as Stripe does ("Received unknown
 * parameter"), so a client typo fails loudly here rather than in production. P_ANY
 * names are accepted and ignored (features the mock does not model). */
bool ms_check_params(const ms_form *f, const ms_param *allowed, ms_resp *r)
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
            ms_fail_param(r, "parameter_unknown", key, "Received unknown parameter: %.200s", key);
            return false;
        }
        if (p->kind == P_HASH && key[nlen] != '\0') {
            const char *in = key + nlen + 1;
            size_t ilen = strcspn(in, "[]");

            if (ilen == 0 || strcmp(in + ilen, "]") != 0) {
                ms_fail_param(r, NULL, key, "Invalid %s: must be a hash of string keys", p->name);
                return false;
            }
        }
        if (p->kind == P_ARRAY && key[nlen] != '\0') {
            const char *in = key + nlen + 1;
            size_t ilen = strspn(in, "0123456789");

            if (strcmp(in + ilen, "]") != 0) {
                ms_fail_param(r, NULL, key, "Invalid array: %.200s", key);
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
    const char *v = ms_form_get(f, name);

    *present = v != NULL;
    if (v == NULL)
        return true;
    if (!ms_parse_ll(v, out)) {
        ms_fail_param(r, "parameter_invalid_integer", name, "Invalid integer: %.100s", v);
        return false;
    }
    if (*out < min) {
        ms_fail_param(r, "parameter_invalid_integer", name,
                      "This value must be greater than or equal to %lld.", min);
        return false;
    }
    if (*out > max) {
        ms_fail_param(r, "parameter_invalid_integer", name,
                      "This value must be less than or equal to %lld.", max);
        return false;
    }
    return true;
}

bool ms_get_bool(const ms_form *f, const char *name, bool *out, ms_resp *r)
{
    const char *v = ms_form_get(f, name);

    if (v == NULL)
        return true;
    if (strcmp(v, "true") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0) {
        *out = false;
    } else {
        ms_fail_param(r, NULL, name, "Invalid boolean: %.100s", v);
        return false;
    }
    return true;
}

/* Index of the value in choices (NULL-terminated), *out untouched when absent. */
bool ms_get_enum(const ms_form *f, const char *name, const char *const *choices,
                 int *out, ms_resp *r)
{
    const char *v = ms_form_get(f, name);
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
    ms_fail_param(r, NULL, name, "Invalid %s: must be one of %s", name, list);
    return false;
}

bool ms_get_string(const ms_form *f, const char *name, size_t max, const char **out,
                   ms_resp *r)
{
    const char *v = ms_form_get(f, name);

    if (v != NULL && strlen(v) > max) {
        ms_fail_param(r, "parameter_invalid_string", name,
                      "Invalid string: must be at most %zu characters", max);
        return false;
    }
    *out = v;
    return true;
}

/* Validates metadata[...] parameters and applies them to a copy of *m, swapped in only
 * when everything is valid, so a bad request changes nothing. */
bool ms_apply_metadata(const ms_form *f, ms_meta *m, ms_resp *r)
{
    ms_meta c = meta_clone(m);

    for (size_t i = 0; i < f->n; i++) {
        const char *key = f->kv[i].k;
        const char *val = f->kv[i].v;
        size_t klen;

        if (strcmp(key, "metadata") == 0) {
            if (*val != '\0') {
                ms_fail_param(r, NULL, "metadata", "Invalid hash");
                goto fail;
            }
            ms_meta_free(&c);   /* metadata= (empty) clears every key */
            continue;
        }
        if (strncmp(key, "metadata[", 9) != 0)
            continue;
        klen = strlen(key + 9) - 1;     /* ms_check_params guaranteed the closing ']' */
        if (klen > MS_META_KEY_LEN) {
            ms_fail_param(r, NULL, key, "Metadata keys can have a maximum length of %d characters.",
                          MS_META_KEY_LEN);
            goto fail;
        }
        if (strlen(val) > MS_META_VAL_LEN) {
            ms_fail_param(r, NULL, key,
                          "Metadata values can have a maximum length of %d characters.",
                          MS_META_VAL_LEN);
            goto fail;
        }
        {
            char *k = ms_xstrndup(key + 9, klen);

            meta_set(&c, k, val);
            free(k);
        }
        if (c.n > MS_META_KEYS)
            break;              /* no need to read thousands more */
    }
    if (c.n > MS_META_KEYS) {
        ms_fail_param(r, NULL, "metadata", "You can specify up to %d keys, with key names up to "
                      "%d characters long and values up to %d characters long.",
                      MS_META_KEYS, MS_META_KEY_LEN, MS_META_VAL_LEN);
        goto fail;
    }
    ms_meta_free(m);
    *m = c;
    return true;
fail:
    ms_meta_free(&c);
    return false;
}

bool ms_parse_amount(const ms_form *f, const char *name, bool required, bool *present,
                     long long *out, ms_resp *r)
{
    if (!get_int(f, name, 1, 999999999999999999LL, present, out, r))
        return false;
    if (!*present && required) {
        ms_fail_param(r, "parameter_missing", name, "Missing required param: %s.", name);
        return false;
    }
    if (*present && *out > MS_AMOUNT_MAX) {
        ms_fail_param(r, "amount_too_large", name, "Amount must be no more than $999,999.99");
        return false;
    }
    return true;
}

bool ms_list_args(const ms_form *f, long long *limit, const char **sa, const char **eb,
                  ms_resp *r)
{
    bool present;

    if (!get_int(f, "limit", 1, 100, &present, limit, r))
        return false;
    if (!present)
        *limit = 10;
    *sa = ms_form_get(f, "starting_after");
    *eb = ms_form_get(f, "ending_before");
    if (*sa != NULL && *eb != NULL) {
        ms_fail_param(r, "parameters_exclusive", "ending_before",
                      "You may only specify one of these parameters: ending_before, "
                      "starting_after.");
        return false;
    }
    return true;
}

/* An optional string field set from a form value: "" clears it. */
void ms_set_opt_str(char **field, const char *v)
{
    free(*field);
    *field = *v != '\0' ? ms_xstrdup(v) : NULL;
}

/* mock-stripe's request parameters: ms_form_parse (mocks/stripe/form.c, the
 * application/x-www-form-urlencoded codec with Rack's rules and Stripe's
 * bracket keys) and the checks every endpoint runs on what it parsed.
 *
 * Input: a request body, as POST /v1/payment_intents would get it.
 * Properties:
 *   - a parsed form has non-empty keys and values that are UTF-8 without NUL
 *     (what jansson needs to echo them), at most one pair per '&'-piece; a
 *     refused body really holds a %00 or bytes that are not UTF-8;
 *   - re-encoding the pairs strictly and parsing again gives the same pairs,
 *     and ms_form_get answers the last value of a key;
 *   - the parameter checks of payment_intents.c (their parameter table,
 *     copied below) pass or answer a 400 Stripe error body that is valid JSON;
 *   - metadata: a refused update leaves the intent's metadata as it was; an
 *     accepted one holds at most 50 keys of 1 to 40 bytes, values of 1 to 500,
 *     no key twice, and renders as JSON. */
#include "../mocks/stripe/form.c"

#include "fuzz.h"

#include <ctype.h>

/* payment_intents.c's pi_create_params (static there). */
static const ms_param params[] = {
    {"amount", P_SCALAR}, {"currency", P_SCALAR}, {"payment_method", P_SCALAR},
    {"confirm", P_SCALAR}, {"capture_method", P_SCALAR}, {"metadata", P_HASH},
    {"payment_method_types", P_ARRAY}, {"description", P_SCALAR},
    {"receipt_email", P_SCALAR}, {"expand", P_ARRAY}, {"customer", P_SCALAR},
    {"automatic_payment_methods", P_ANY}, {"shipping", P_ANY}, {"limit", P_SCALAR},
    {"starting_after", P_SCALAR}, {"ending_before", P_SCALAR}, {NULL, P_ANY},
};

/* A 400 in Stripe's shape: {"error":{"message","type":"invalid_request_error",...}}. */
static void check_fail(ms_resp *r)
{
    json_t *root, *err;

    FZ_CHECK(r->status == 400 && r->body != NULL && r->len == strlen(r->body), "status %d",
             r->status);
    root = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
    err = json_object_get(root, "error");
    FZ_CHECK(json_is_string(json_object_get(err, "message")), "no message: %s", r->body);
    FZ_CHECK(json_is_string(json_object_get(err, "type")) &&
                 strcmp(json_string_value(json_object_get(err, "type")),
                        "invalid_request_error") == 0,
             "type: %s", r->body);
    json_decref(root);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void check_ok(ms_resp *r)
{
    FZ_CHECK(r->body == NULL && r->status == 0, "an accepted check answered: %s", r->body);
}

/* Strict percent-encoding of s onto out. */
static void put(co_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';

        if (!co_buf_append(out, plain ? (const char *)p : e, plain ? 1 : 3, SIZE_MAX - 1))
            abort();
    }
}

static void check_round_trip(const ms_form *f)
{
    co_buf text = {0};
    ms_form g = {0};

    for (size_t i = 0; i < f->n; i++) {
        if (i > 0 && !co_buf_append(&text, "&", 1, SIZE_MAX - 1))
            abort();
        put(&text, f->kv[i].k);
        if (!co_buf_append(&text, "=", 1, SIZE_MAX - 1))
            abort();
        put(&text, f->kv[i].v);
    }
    FZ_CHECK(ms_form_parse(&g, text.body != NULL ? text.body : "", text.len),
             "its own encoding does not parse");
    FZ_CHECK(g.n == f->n, "%zu pairs, then %zu", f->n, g.n);
    for (size_t i = 0; i < f->n; i++)
        FZ_CHECK(strcmp(g.kv[i].k, f->kv[i].k) == 0 && strcmp(g.kv[i].v, f->kv[i].v) == 0,
                 "pair %zu differs", i);
    ms_form_free(&g);
    co_buf_free(&text);
}

static bool meta_equal(const ms_meta *a, const ms_meta *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->k[i], b->k[i]) != 0 || strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

static void check_metadata(const ms_form *f)
{
    ms_meta m = {0}, before;
    ms_resp r = {0};

    /* An intent that has metadata already, as an update would find it. */
    meta_set(&m, "order_id", "4f1e2b3c-5d6e-4f70-8a9b-0c1d2e3f4a5b");
    meta_set(&m, "note", "x");
    before = meta_clone(&m);
    if (!ms_apply_metadata(f, &m, &r)) {
        check_fail(&r);
        FZ_CHECK(meta_equal(&m, &before), "a refused update changed the metadata");
    } else {
        json_t *j = ms_meta_json(&m);
        char *text = json_dumps(j, JSON_COMPACT);

        check_ok(&r);
        FZ_CHECK(m.n <= MS_META_KEYS, "%zu keys", m.n);
        for (size_t i = 0; i < m.n; i++) {
            FZ_CHECK(strlen(m.k[i]) >= 1 && strlen(m.k[i]) <= MS_META_KEY_LEN, "key %s", m.k[i]);
            FZ_CHECK(strlen(m.v[i]) >= 1 && strlen(m.v[i]) <= MS_META_VAL_LEN, "value");
            for (size_t k = 0; k < i; k++)
                FZ_CHECK(strcmp(m.k[i], m.k[k]) != 0, "key %s twice", m.k[i]);
        }
        FZ_CHECK(text != NULL && json_object_size(j) == m.n, "metadata does not render");
        free(text);
        json_decref(j);
    }
    ms_meta_free(&before);
    ms_meta_free(&m);
}

static void check_params(const ms_form *f)
{
    static const char *const capture[] = {"automatic", "automatic_async", "manual", NULL};
    ms_resp r = {0};
    bool present = false, b = false;
    long long v = 0;
    int e = -1;
    const char *s = NULL, *sa = NULL, *eb = NULL;

    if (!ms_check_params(f, params, &r)) {
        check_fail(&r);
        return;
    }
    check_ok(&r);
    check_metadata(f);
    if (ms_parse_amount(f, "amount", false, &present, &v, &r))
        FZ_CHECK(!present || (v >= 1 && v <= MS_AMOUNT_MAX), "amount %lld", v);
    else
        check_fail(&r);
    if (!ms_get_bool(f, "confirm", &b, &r))
        check_fail(&r);
    if (ms_get_enum(f, "capture_method", capture, &e, &r))
        FZ_CHECK(e >= -1 && e <= 2, "capture_method %d", e);
    else
        check_fail(&r);
    if (ms_get_string(f, "description", 1000, &s, &r))
        FZ_CHECK(s == NULL || strlen(s) <= 1000, "description");
    else
        check_fail(&r);
    if (ms_list_args(f, &v, &sa, &eb, &r))
        FZ_CHECK(v >= 1 && v <= 100 && (sa == NULL || eb == NULL), "limit %lld", v);
    else
        check_fail(&r);
}

/* True when the bytes hold a %00 escape or decode to something not UTF-8:
 * the only reasons a body is refused. */
static bool undecodable(const char *body, size_t len)
{
    char *d = malloc(len + 1);
    size_t o = 0;
    bool bad;

    if (d == NULL)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '%' && i + 2 < len && isxdigit((unsigned char)body[i + 1]) &&
            isxdigit((unsigned char)body[i + 2])) {
            d[o++] = (char)strtol((char[]){body[i + 1], body[i + 2], '\0'}, NULL, 16);
            i += 2;
        } else {
            d[o++] = body[i] == '&' || body[i] == '=' ? 'x' : body[i];
        }
    }
    bad = memchr(d, '\0', o) != NULL || !fz_utf8(d, o);
    free(d);
    return bad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fz_strndup(data, size);
    ms_form f = {0};
    size_t pieces = 1;
    bool ok;

    for (size_t i = 0; i < size; i++)
        pieces += body[i] == '&';
    ok = ms_form_parse(&f, body, size);
    if (ok) {
        FZ_CHECK(f.n <= pieces, "%zu pairs from %zu pieces", f.n, pieces);
        for (size_t i = 0; i < f.n; i++) {
            const char *k = f.kv[i].k, *v = f.kv[i].v;

            FZ_CHECK(k != NULL && v != NULL && k[0] != '\0', "pair %zu", i);
            FZ_CHECK(fz_utf8(k, strlen(k)) && fz_utf8(v, strlen(v)), "pair %zu not UTF-8", i);
            FZ_CHECK(ms_form_get(&f, k) != NULL, "no value for %s", k);
        }
        if (f.n > 0)
            FZ_CHECK(ms_form_get(&f, f.kv[f.n - 1].k) == f.kv[f.n - 1].v, "not the last value");
        check_round_trip(&f);
        check_params(&f);
    } else {
        FZ_CHECK(undecodable(body, size), "a decodable body was refused");
    }
    ms_form_free(&f);
    free(body);
    return 0;
}

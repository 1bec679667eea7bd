/* The signature headers: co_sig_verify (src/co_sig.c) on arbitrary
 * Stripe-Signature / Restock-Signature values and bodies, and the webhooks'
 * mapping of its verdicts to errors (co_webhook_signed, webhooks/signature.c).
 *
 * Input, as lines:
 *   T [NOW]   the signing time and the verifying time (NOW defaults to T;
 *             both clamped to 0..10^12, the clock's plausible range)
 *   SECRET    the webhook secret
 *   HEADER    the header; each "{sig}" in it becomes the hex HMAC-SHA256 of
 *             "T.BODY" under SECRET, so well-signed headers are reachable
 *   BODY      the rest of the input, any bytes
 * Properties:
 *   - OK implies a v1= value of the header is exactly the HMAC of
 *     "<t>.<body>" (computed here with OpenSSL), t being the header's last
 *     t= value, and |NOW - t| <= 300;
 *   - OK is lost with another secret, with one more byte of body, and at
 *     t + 301 (STALE); tolerance 0 never answers STALE;
 *   - MISSING exactly for an empty header; a header made by co_sig_header
 *     always verifies;
 *   - every refusal co_webhook_signed answers is a 400 signature_* error
 *     naming the header, in a valid JSON body. */
#include "../src/co_sig.c"

#include "fuzz.h"
#include "signature.h"

#include <errno.h>

#define TOL CO_SIG_TOLERANCE_SECONDS
#define TIME_MAX 1000000000000LL

static long long clamp_time(const char *s, long long dflt)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || errno != 0)
        return dflt;
    return v < 0 ? 0 : v > TIME_MAX ? TIME_MAX : v;
}

/* header with every "{sig}" replaced by hex; malloc'd. */
static char *substitute(const char *header, const char *hex)
{
    size_t n = strlen(header), cap = n * 13 + 1, o = 0;
    char *out = malloc(cap);

    if (out == NULL)
        abort();
    for (size_t i = 0; i < n;) {
        if (strncmp(header + i, "{sig}", 5) == 0) {
            memcpy(out + o, hex, 64);
            o += 64;
            i += 5;
        } else {
            out[o++] = header[i++];
        }
    }
    out[o] = '\0';
    return out;
}

/* HMAC-SHA256 written out from RFC 2104 over SHA-256 (not co_sig.c's call of
 * OpenSSL's HMAC over a concatenation): an independent computation. */
static void hmac_hex(const char *secret, long long t, const char *body, size_t len,
                     char hex[65])
{
    unsigned char key[64] = {0}, pad[64], inner[32], mac[32];
    size_t klen = strlen(secret);
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "%lld.", t);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int mlen = 0;
    bool ok = true;

    if (md == NULL || n < 0)
        abort();
    if (klen > sizeof key)
        ok = EVP_Digest(secret, klen, key, &mlen, EVP_sha256(), NULL) == 1;
    else if (klen > 0)
        memcpy(key, secret, klen);
    for (size_t i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x36;
    ok = ok && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(md, pad, 64) == 1 && EVP_DigestUpdate(md, prefix, (size_t)n) == 1 &&
         EVP_DigestUpdate(md, body, len) == 1 && EVP_DigestFinal_ex(md, inner, &mlen) == 1;
    for (size_t i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x5c;
    ok = ok && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(md, pad, 64) == 1 && EVP_DigestUpdate(md, inner, 32) == 1 &&
         EVP_DigestFinal_ex(md, mac, &mlen) == 1;
    FZ_CHECK(ok && mlen == 32, "SHA-256 failed");
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

/* Calls fn on each element of header as co_sig.c splits it: at commas,
 * leading spaces dropped. */
static void each_element(const char *header, void (*fn)(const char *, size_t, void *), void *arg)
{
    for (const char *p = header; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        fn(p, len, arg);
        if (end == NULL)
            break;
        p = end + 1;
    }
}

/* The last t= value (-1 when none). */
static void last_t(const char *e, size_t len, void *arg)
{
    char buf[32];

    if (len <= 2 || strncmp(e, "t=", 2) != 0 || len - 2 >= sizeof buf)
        return;
    memcpy(buf, e + 2, len - 2);
    buf[len - 2] = '\0';
    *(long long *)arg = strtoll(buf, NULL, 10);
}

typedef struct {
    const char *want;
    bool found;
} v1_search;

static void has_v1(const char *e, size_t len, void *arg)
{
    v1_search *s = arg;

    if (len == 3 + 64 && strncmp(e, "v1=", 3) == 0 && memcmp(e + 3, s->want, 64) == 0)
        s->found = true;
}

static void check_webhook_answer(const char *header, const char *secret, char *body, size_t len)
{
    static const char *const codes[] = {"signature_missing", "signature_invalid",
                                        "signature_expired", NULL};
    co_req req;
    co_resp resp;

    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.body = body;
    req.body_len = len;
    if (co_webhook_signed(&req, "Stripe-Signature", header, secret, &resp)) {
        FZ_CHECK(resp.body == NULL, "a good signature has an answer");
    } else {
        json_t *root;
        const char *param;

        fz_check_error(&resp, codes);
        root = json_loads(resp.body, 0, NULL);
        param = json_string_value(json_object_get(json_object_get(root, "error"), "param"));
        FZ_CHECK(param != NULL && strcmp(param, "Stripe-Signature") == 0, "param: %s",
                 resp.body);
        json_decref(root);
    }
    fz_resp_free(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    char *times = fz_line(&p, &left);
    char *secret = fz_line(&p, &left);
    char *raw = fz_line(&p, &left);
    char *body = fz_strndup(p, left);
    char *more = malloc(left + 2); /* the body and one byte more */
    char *other = malloc(strlen(secret) + 2);
    char *space = strchr(times, ' ');
    long long ts = clamp_time(times, 1700000000LL);
    long long now = space != NULL ? clamp_time(space + 1, ts) : ts;
    char hex[65], want[65], made[CO_SIG_HEADER_MAX];
    char *header;
    co_sig_result r, r0;
    long long t;

    if (other == NULL || more == NULL)
        abort();
    memcpy(more, body, left);
    more[left] = 'x';
    more[left + 1] = '\0';
    hmac_hex(secret, ts, body, left, hex);
    header = substitute(raw, hex);

    r = co_sig_verify(header, secret, (time_t)now, TOL, body, left);
    FZ_CHECK(r >= CO_SIG_OK && r <= CO_SIG_MISMATCH, "result %d", (int)r);
    FZ_CHECK((r == CO_SIG_MISSING) == (header[0] == '\0'), "MISSING for a header of %zu bytes",
             strlen(header));
    r0 = co_sig_verify(header, secret, (time_t)now, 0, body, left);
    FZ_CHECK(r0 != CO_SIG_STALE, "STALE without a tolerance");
    FZ_CHECK((r0 == CO_SIG_OK) == (r == CO_SIG_OK || r == CO_SIG_STALE),
             "tolerance 0 says %d, 300 says %d", (int)r0, (int)r);
    if (r == CO_SIG_OK) {
        v1_search search = {want, false};

        t = -1;
        each_element(header, last_t, &t);
        FZ_CHECK(t >= 0, "OK without a t=");
        hmac_hex(secret, t, body, left, want);
        each_element(header, has_v1, &search);
        FZ_CHECK(search.found, "OK but no v1 is HMAC(%lld.body)", t);
        FZ_CHECK(llabs(now - t) <= TOL, "OK at %lld for t=%lld", now, t);
        snprintf(other, strlen(secret) + 2, "%sx", secret);
        FZ_CHECK(co_sig_verify(header, other, (time_t)now, TOL, body, left) == CO_SIG_MISMATCH,
                 "OK under another secret");
        FZ_CHECK(co_sig_verify(header, secret, (time_t)now, TOL, more, left + 1) ==
                     CO_SIG_MISMATCH,
                 "OK for a longer body");
        FZ_CHECK(co_sig_verify(header, secret, (time_t)(t + TOL + 1), TOL, body, left) ==
                     CO_SIG_STALE,
                 "not STALE at t + %d", TOL + 1);
    }
    co_sig_header(secret, (time_t)now, body, left, made);
    FZ_CHECK(co_sig_verify(made, secret, (time_t)now, TOL, body, left) == CO_SIG_OK,
             "co_sig_header's own header fails: %s", made);
    check_webhook_answer(header, secret, body, left);

    free(header);
    free(other);
    free(more);
    free(body);
    free(raw);
    free(secret);
    free(times);
    return 0;
}

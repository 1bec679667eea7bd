/* Shopper tokens: co_jwt_verify (src/co_jwt.c) on arbitrary tokens, and the
 * base64url codec under it.
 *
 * Input, by its first byte:
 *   'J'  "J<header JSON>\n<payload JSON>": both base64url-encoded here and
 *        signed with the secret, so the claims checks are reached;
 *   'S'  "S<h64>.<p64>...": the text up to the second dot is signed here and
 *        the signature appended;
 *   else the token as it is (NUL ends it, as it would a header).
 * Secret "fuzz-jwt-secret", now 1700000000.
 * Properties:
 *   - OK implies: exactly three parts; the third is exactly the unpadded
 *     base64url of HMAC-SHA256(secret, the text before the second dot)
 *     (encoded here: one spelling only); the header's alg is "HS256"; sub is
 *     the payload's uuid lower-cased; exp > now; role is the payload's (or "");
 *   - OK is lost under another secret, and at now = exp for an integer exp;
 *     a token co_jwt_sign makes for the same claims verifies;
 *   - out stays zeroed unless OK;
 *   - the codec: each dot-separated part decodes exactly when it is a
 *     canonical base64url text (alphabet, length not 1 mod 4, zero unused
 *     bits, padding only as RFC 4648 writes it), and re-encodes to itself
 *     without the padding. */
#include "../src/co_jwt.c"

#include "fuzz.h"

#define SECRET "fuzz-jwt-secret"
#define NOW 1700000000LL

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of n bytes, written here (not co_b64url_encode). */
static char *enc(const unsigned char *p, size_t n)
{
    char *out = malloc(n / 3 * 4 + 5);
    size_t o = 0;

    if (out == NULL)
        abort();
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16;
        size_t left = n - i;

        if (left > 1)
            v |= (unsigned long)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (left > 1)
            out[o++] = alphabet[v >> 6 & 63];
        if (left > 2)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
    return out;
}

/* "<signing input>.<signature>", malloc'd. */
static char *sign(const char *input, size_t n, const char *secret)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *sig, *token;

    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)input, n, mac,
             &mac_len) == NULL)
        abort();
    sig = enc(mac, mac_len);
    token = malloc(n + 1 + strlen(sig) + 1);
    if (token == NULL)
        abort();
    memcpy(token, input, n);
    token[n] = '.';
    memcpy(token + n + 1, sig, strlen(sig) + 1);
    free(sig);
    return token;
}

static int value(char c)
{
    const char *p = c != '\0' ? strchr(alphabet, c) : NULL;

    return p != NULL ? (int)(p - alphabet) : -1;
}

/* The codec's contract for one text: decodes exactly when canonical. */
static void check_codec(const char *s, size_t n)
{
    size_t pads = 0, m, len = 0;
    bool canon = true;
    unsigned char *d = co_b64url_decode(s, n, &len);
    char *back;

    if (n > 0 && n % 4 == 0 && s[n - 1] == '=')
        pads = n >= 2 && s[n - 2] == '=' ? 2 : 1;
    m = n - pads;
    if (m % 4 == 1 || (pads == 1 && m % 4 != 3) || (pads == 2 && m % 4 != 2))
        canon = false;
    for (size_t i = 0; canon && i < m; i++)
        canon = value(s[i]) >= 0;
    if (canon && m % 4 == 2)
        canon = (value(s[m - 1]) & 0x0f) == 0;
    if (canon && m % 4 == 3)
        canon = (value(s[m - 1]) & 0x03) == 0;
    FZ_CHECK((d != NULL) == canon, "decode %s a %scanonical text of %zu", d ? "took" : "refused",
             canon ? "" : "non-", n);
    if (d == NULL)
        return;
    FZ_CHECK(len == m / 4 * 3 + (m % 4 == 0 ? 0 : m % 4 - 1), "%zu bytes from %zu", len, m);
    back = enc(d, len);
    FZ_CHECK(strlen(back) == m && memcmp(back, s, m) == 0, "re-encodes differently");
    free(back);
    back = co_b64url_encode(d, len);
    FZ_CHECK(back != NULL && strlen(back) == m && memcmp(back, s, m) == 0, "encode differs");
    free(back);
    free(d);
}

static json_t *decode_json(const char *s, size_t n)
{
    size_t len = 0;
    char *d = co_b64url_decode(s, n, &len);
    json_t *j = d != NULL ? json_loadb(d, len, 0, NULL) : NULL;

    free(d);
    return j;
}

static bool zeroed(const co_jwt_claims *c)
{
    static const co_jwt_claims zero;

    return memcmp(c, &zero, sizeof zero) == 0;
}

static void check_ok(const char *token, const co_jwt_claims *c)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    json_t *h, *p, *sub, *exp, *role;
    char *want;
    co_jwt_claims again;
    long long exp2;
    char *made;

    FZ_CHECK(dot2 != NULL && strchr(dot2 + 1, '.') == NULL, "OK without three parts");
    want = sign(token, (size_t)(dot2 - token), SECRET);
    FZ_CHECK(strcmp(want, token) == 0, "OK but the signature is not HMAC(secret, h.p)");
    free(want);
    h = decode_json(token, (size_t)(dot1 - token));
    FZ_CHECK(json_is_string(json_object_get(h, "alg")) &&
                 strcmp(json_string_value(json_object_get(h, "alg")), "HS256") == 0,
             "OK without alg HS256");
    p = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    sub = json_object_get(p, "sub");
    exp = json_object_get(p, "exp");
    role = json_object_get(p, "role");
    FZ_CHECK(json_is_string(sub) && strlen(c->sub) == 36 &&
                 strcasecmp(c->sub, json_string_value(sub)) == 0,
             "sub %s", c->sub);
    for (size_t i = 0; i < 36; i++)
        FZ_CHECK(c->sub[i] == '-' || (c->sub[i] >= '0' && c->sub[i] <= '9') ||
                     (c->sub[i] >= 'a' && c->sub[i] <= 'f'),
                 "sub %s is not lower-case", c->sub);
    FZ_CHECK(json_is_number(exp) && json_number_value(exp) > (double)NOW && c->exp >= NOW,
             "exp %lld", c->exp);
    if (role == NULL)
        FZ_CHECK(c->role[0] == '\0', "role %s from nothing", c->role);
    else
        FZ_CHECK(json_is_string(role) && strcmp(c->role, json_string_value(role)) == 0, "role");

    FZ_CHECK(co_jwt_verify(token, SECRET "x", NOW, &again) == CO_JWT_BAD_SIGNATURE,
             "OK under another secret");
    if (json_is_integer(exp))
        FZ_CHECK(co_jwt_verify(token, SECRET, (time_t)c->exp, &again) == CO_JWT_EXPIRED,
                 "not expired at exp");
    /* (A real exp is truncated: 1700000000.5 comes back as now itself.) */
    exp2 = c->exp > NOW ? c->exp : NOW + 1;
    made = co_jwt_sign(SECRET, c->sub, exp2, NOW);
    FZ_CHECK(made != NULL && co_jwt_verify(made, SECRET, NOW, &again) == CO_JWT_OK &&
                 strcmp(again.sub, c->sub) == 0 && again.exp == exp2,
             "co_jwt_sign's token for these claims fails");
    free(made);
    json_decref(h);
    json_decref(p);
}

/* The token the input describes (see the top), malloc'd. */
static char *token_of(const uint8_t *data, size_t size)
{
    char *text = fz_strndup(data + (size > 0), size > 0 ? size - 1 : 0);
    char *token;

    if (size > 0 && data[0] == 'J') {
        char *nl = strchr(text, '\n');
        char *h64, *p64, *input;
        size_t hn = nl != NULL ? (size_t)(nl - text) : strlen(text);
        const char *payload = nl != NULL ? nl + 1 : "";

        h64 = enc((const unsigned char *)text, hn);
        p64 = enc((const unsigned char *)payload, strlen(payload));
        input = malloc(strlen(h64) + strlen(p64) + 2);
        if (input == NULL)
            abort();
        memcpy(input, h64, strlen(h64));
        input[strlen(h64)] = '.';
        memcpy(input + strlen(h64) + 1, p64, strlen(p64) + 1);
        token = sign(input, strlen(input), SECRET);
        free(input);
        free(h64);
        free(p64);
    } else if (size > 0 && data[0] == 'S') {
        char *dot = strchr(text, '.');
        char *dot2 = dot != NULL ? strchr(dot + 1, '.') : NULL;

        token = sign(text, dot2 != NULL ? (size_t)(dot2 - text) : strlen(text), SECRET);
    } else {
        token = fz_strndup(data, size);
    }
    free(text);
    return token;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = token_of(data, size);
    co_jwt_claims c;
    co_jwt_result r;
    size_t n = strlen(token);

    memset(&c, 0xa5, sizeof c);
    r = co_jwt_verify(token, SECRET, NOW, &c);
    FZ_CHECK(r >= CO_JWT_OK && r <= CO_JWT_NOT_YET_VALID, "result %d", (int)r);
    FZ_CHECK(strcmp(co_jwt_result_name(r), "unknown") != 0, "no name for %d", (int)r);
    if (r == CO_JWT_OK)
        check_ok(token, &c);
    else
        FZ_CHECK(zeroed(&c), "claims written on %s", co_jwt_result_name(r));
    FZ_CHECK(co_jwt_verify(token, "", NOW, NULL) != CO_JWT_OK, "OK with no secret");
    /* The codec on each part, bounded so a long token costs linear time. */
    if (n <= 3 * CO_JWT_PART_MAX + 2) {
        for (const char *p = token;;) {
            const char *dot = strchr(p, '.');
            size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);

            check_codec(p, len);
            if (dot == NULL)
                break;
            p = dot + 1;
        }
    }
    free(token);
    return 0;
}

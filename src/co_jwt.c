/* HS256 JWTs (see co_jwt.h). Everything a token says is hostile until its
 * signature matched: the header is parsed before that only because it names
 * the algorithm, and the payload is not parsed at all until then. */
#include "co_jwt.h"

#include "co_sig.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uuid/uuid.h>

/* ------------------------------------------------------------ base64url */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The 6-bit value of a base64url character, or -1. Written out as ranges so
 * that no byte outside the alphabet (NUL, '+', '/', '=', 0x80..0xff) maps. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Bytes that n unpadded characters decode to (n % 4 != 1). */
static size_t b64url_decoded_len(size_t n)
{
    size_t rem = n % 4;

    return n / 4 * 3 + (rem == 0 ? 0 : rem - 1);
}

/* Decodes in[0..n) into out (cap bytes); the rules are co_b64url_decode's.
 * Returns false, with nothing promised about out, if the input is invalid or
 * would not fit. */
static bool b64url_decode_into(const char *in, size_t n, unsigned char *out, size_t cap,
                               size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t pads = 0;
    size_t o = 0;
    size_t i = 0;
    size_t rem;

    /* Padding only as RFC 4648 writes it: to a multiple of 4, at the end. */
    if (n > 0 && n % 4 == 0 && p[n - 1] == '=') {
        pads = (n >= 2 && p[n - 2] == '=') ? 2 : 1;
        n -= pads;
    }
    rem = n % 4;
    if (rem == 1 || (pads == 1 && rem != 3) || (pads == 2 && rem != 2))
        return false;
    if (b64url_decoded_len(n) > cap)
        return false;
    for (; i + 4 <= n; i += 4) {
        int a = b64url_value(p[i]);
        int b = b64url_value(p[i + 1]);
        int c = b64url_value(p[i + 2]);
        int d = b64url_value(p[i + 3]);
        unsigned long v;

        if ((a | b | c | d) < 0)
            return false;
        v = (unsigned long)a << 18 | (unsigned long)b << 12 | (unsigned long)c << 6 |
            (unsigned long)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (rem >= 2) {
        int a = b64url_value(p[i]);
        int b = b64url_value(p[i + 1]);

        if ((a | b) < 0)
            return false;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        if (rem == 2) {
            /* The low 4 bits of b carry nothing: non-zero means a second
             * spelling of the same bytes (signature malleability). */
            if ((b & 0x0f) != 0)
                return false;
        } else {
            int c = b64url_value(p[i + 2]);

            if (c < 0 || (c & 0x03) != 0)
                return false;
            out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
        }
    }
    if (out_len != NULL)
        *out_len = o;
    return true;
}

char *co_b64url_encode(const void *in, size_t len)
{
    const unsigned char *p = in;
    size_t groups = len / 3;
    size_t rem = len % 3;
    size_t out_len;
    char *out;
    size_t o = 0;
    size_t i = 0;

    if (groups > (SIZE_MAX - 4) / 4)
        return NULL;
    out_len = groups * 4 + (rem == 0 ? 0 : rem + 1);
    out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    for (; i + 3 <= len; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];

        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (rem > 0) {
        unsigned long v = (unsigned long)p[i] << 16;

        if (rem == 2)
            v |= (unsigned long)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        if (rem == 2)
            out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return out;
}

void *co_b64url_decode(const char *in, size_t in_len, size_t *out_len)
{
    /* in_len / 4 * 3 + 2 bounds every valid decoding; +1 for the NUL. */
    size_t cap = in_len / 4 * 3 + 2;
    unsigned char *out;
    size_t n = 0;

    if (in == NULL && in_len > 0)
        return NULL;
    out = malloc(cap + 1);
    if (out == NULL)
        return NULL;
    if (!b64url_decode_into(in, in_len, out, cap, &n))
        goto fail;
    out[n] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return out;

fail:
    free(out);
    return NULL;
}

/* ---------------------------------------------------------------- verify */

/* The most a part of CO_JWT_PART_MAX characters can decode to. */
#define PART_BYTES_MAX (CO_JWT_PART_MAX / 4 * 3)
#define HS256_LEN 32

/* One decoded part. Fixed buffers: parts are bounded, so hostile input can
 * never make us allocate more than this (about 18 KiB of stack in all). */
typedef struct {
    const char *b64;
    size_t b64_len;
    unsigned char bytes[PART_BYTES_MAX + 1];
    size_t len;
} jwt_part;

typedef struct {
    jwt_part header;
    jwt_part payload;
    jwt_part sig;
} jwt_parts;

/* Decodes one part: unpadded base64url only (RFC 7515 section 2). */
static bool part_decode(jwt_part *part, const char *b64, size_t len)
{
    part->b64 = b64;
    part->b64_len = len;
    if (len > CO_JWT_PART_MAX || memchr(b64, '=', len) != NULL)
        return false;
    return b64url_decode_into(b64, len, part->bytes, PART_BYTES_MAX, &part->len);
}

/* Splits token at its two dots and decodes the three parts. */
static bool split_token(const char *token, jwt_parts *parts)
{
    const size_t max = 3 * (size_t)CO_JWT_PART_MAX + 2;
    /* strnlen: a huge token is refused without reading all of it. */
    size_t len = strnlen(token, max + 1);
    const char *dot1;
    const char *dot2;
    const char *end = token + len;

    if (len > max)
        return false;
    dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return false;
    dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
        return false;
    return part_decode(&parts->header, token, (size_t)(dot1 - token)) &&
           part_decode(&parts->payload, dot1 + 1, (size_t)(dot2 - dot1 - 1)) &&
           part_decode(&parts->sig, dot2 + 1, (size_t)(end - dot2 - 1));
}

/* A JSON object from a decoded part, or NULL (duplicate keys included). The
 * caller json_decref's it. */
static json_t *part_object(const jwt_part *part)
{
    json_error_t err;
    json_t *j = json_loadb((const char *)part->bytes, part->len, JSON_REJECT_DUPLICATES, &err);

    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool json_string_is(const json_t *v, const char *want, bool fold_case)
{
    size_t n = strlen(want);

    if (!json_is_string(v) || json_string_length(v) != n)
        return false;
    if (fold_case)
        return strncasecmp(json_string_value(v), want, n) == 0;
    return memcmp(json_string_value(v), want, n) == 0;
}

static co_jwt_result check_header(const jwt_part *part)
{
    json_t *h = part_object(part);
    co_jwt_result r = CO_JWT_OK;

    if (h == NULL)
        return CO_JWT_MALFORMED;
    /* Exactly HS256: "none" and every other algorithm are refused by name,
     * so a token cannot choose how it is checked. */
    if (!json_string_is(json_object_get(h, "alg"), "HS256", false)) {
        r = CO_JWT_BAD_ALG;
        goto done;
    }
    if (json_object_get(h, "typ") != NULL &&
        !json_string_is(json_object_get(h, "typ"), "JWT", true)) {
        r = CO_JWT_MALFORMED;
        goto done;
    }
    /* RFC 7515 4.1.11: extensions we were told are critical, we do not know. */
    if (json_object_get(h, "crit") != NULL)
        r = CO_JWT_MALFORMED;
done:
    json_decref(h);
    return r;
}

static co_jwt_result check_signature(const jwt_parts *parts, const char *secret)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t key_len;
    /* The signing input is the token's own text up to the second dot. */
    size_t signed_len = parts->header.b64_len + 1 + parts->payload.b64_len;

    if (secret == NULL || secret[0] == '\0')
        return CO_JWT_BAD_SIGNATURE;
    key_len = strlen(secret);
    if (key_len > INT_MAX || parts->sig.len != HS256_LEN)
        return CO_JWT_BAD_SIGNATURE;
    if (HMAC(EVP_sha256(), secret, (int)key_len, (const unsigned char *)parts->header.b64,
             signed_len, mac, &mac_len) == NULL || mac_len != HS256_LEN)
        return CO_JWT_BAD_SIGNATURE;
    if (!co_const_eq(parts->sig.bytes, parts->sig.len, mac, mac_len))
        return CO_JWT_BAD_SIGNATURE;
    return CO_JWT_OK;
}

/* Compares a JSON number with t: <0, 0, >0. Integers compare exactly; reals
 * as doubles (exact for every time that fits in 2^53 seconds). */
static int number_cmp(const json_t *v, long long t)
{
    double d;
    double dt = (double)t;

    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        return (x > t) - (x < t);
    }
    d = json_real_value(v);
    return (d > dt) - (d < dt);
}

/* A JSON number as a long long: reals truncated toward zero and clamped
 * (converting an out-of-range double is undefined behaviour). */
static long long number_ll(const json_t *v)
{
    double d;

    if (json_is_integer(v))
        return json_integer_value(v);
    d = json_real_value(v);
    if (d >= 9223372036854775807.0)
        return LLONG_MAX;
    if (d <= -9223372036854775807.0)
        return LLONG_MIN;
    return (long long)d;
}

static co_jwt_result check_payload(const jwt_part *part, time_t now, co_jwt_claims *c)
{
    json_t *p = part_object(part);
    json_t *sub;
    json_t *exp;
    json_t *nbf;
    json_t *role;
    long long t = (long long)now;
    long long nbf_limit;
    uuid_t u;
    co_jwt_result r = CO_JWT_MALFORMED;

    if (p == NULL)
        return CO_JWT_MALFORMED;
    sub = json_object_get(p, "sub");
    /* uuid_parse wants exactly 36 characters; check it ourselves as well. */
    if (!json_is_string(sub) || json_string_length(sub) != 36 ||
        uuid_parse(json_string_value(sub), u) != 0)
        goto done;
    uuid_unparse_lower(u, c->sub);

    exp = json_object_get(p, "exp");
    if (exp == NULL) {
        r = CO_JWT_EXPIRED; /* a token that never expires is not one we take */
        goto done;
    }
    if (!json_is_number(exp))
        goto done;
    if (number_cmp(exp, t) <= 0) {
        r = CO_JWT_EXPIRED;
        goto done;
    }
    c->exp = number_ll(exp);

    nbf = json_object_get(p, "nbf");
    if (nbf != NULL) {
        if (!json_is_number(nbf))
            goto done;
        nbf_limit = t > LLONG_MAX - CO_JWT_NBF_LEEWAY ? LLONG_MAX : t + CO_JWT_NBF_LEEWAY;
        if (number_cmp(nbf, nbf_limit) > 0) {
            r = CO_JWT_NOT_YET_VALID;
            goto done;
        }
    }

    /* Informational only, but refuse rather than truncate an odd one. */
    role = json_object_get(p, "role");
    if (role != NULL) {
        if (!json_is_string(role) || json_string_length(role) >= sizeof c->role)
            goto done;
        memcpy(c->role, json_string_value(role), json_string_length(role) + 1);
    }
    r = CO_JWT_OK;
done:
    json_decref(p);
    return r;
}

co_jwt_result co_jwt_verify(const char *token, const char *secret, time_t now,
                            co_jwt_claims *out)
{
    jwt_parts parts;
    co_jwt_claims claims;
    co_jwt_result r;

    memset(&claims, 0, sizeof claims);
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (token == NULL || !split_token(token, &parts))
        return CO_JWT_MALFORMED;
    r = check_header(&parts.header);
    if (r != CO_JWT_OK)
        return r;
    r = check_signature(&parts, secret);
    if (r != CO_JWT_OK)
        return r;
    r = check_payload(&parts.payload, now, &claims);
    if (r != CO_JWT_OK)
        return r;
    if (out != NULL)
        *out = claims;
    return CO_JWT_OK;
}

const char *co_jwt_result_name(co_jwt_result r)
{
    switch (r) {
    case CO_JWT_OK:
        return "ok";
    case CO_JWT_MALFORMED:
        return "malformed";
    case CO_JWT_BAD_ALG:
        return "bad_alg";
    case CO_JWT_BAD_SIGNATURE:
        return "bad_signature";
    case CO_JWT_EXPIRED:
        return "expired";
    case CO_JWT_NOT_YET_VALID:
        return "not_yet_valid";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ sign */

static const char jwt_header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

char *co_jwt_sign(const char *secret, const char *sub, long long exp, time_t now)
{
    json_t *payload = NULL;
    char *payload_json = NULL;
    char *h64 = NULL;
    char *p64 = NULL;
    char *s64 = NULL;
    char *token = NULL;
    char *result = NULL;
    size_t h_len, p_len, s_len, key_len;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    uuid_t u;

    if (secret == NULL || secret[0] == '\0' || sub == NULL)
        return NULL;
    key_len = strlen(secret);
    if (key_len > INT_MAX || strlen(sub) != 36 || uuid_parse(sub, u) != 0)
        return NULL;
    /* jansson keeps insertion order, so the payload reads sub, exp, iat, role. */
    payload = json_pack("{s:s, s:I, s:I, s:s}", "sub", sub, "exp", (json_int_t)exp,
                        "iat", (json_int_t)now, "role", "authenticated");
    if (payload == NULL)
        goto fail;
    payload_json = json_dumps(payload, JSON_COMPACT);
    if (payload_json == NULL)
        goto fail;
    h64 = co_b64url_encode(jwt_header_json, sizeof jwt_header_json - 1);
    p64 = co_b64url_encode(payload_json, strlen(payload_json));
    if (h64 == NULL || p64 == NULL)
        goto fail;
    h_len = strlen(h64);
    p_len = strlen(p64);
    /* "<h64>.<p64>.<s64>": sign the first two in place, then append. */
    token = malloc(h_len + 1 + p_len + 1 + 44);
    if (token == NULL)
        goto fail;
    memcpy(token, h64, h_len);
    token[h_len] = '.';
    memcpy(token + h_len + 1, p64, p_len);
    if (HMAC(EVP_sha256(), secret, (int)key_len, (const unsigned char *)token,
             h_len + 1 + p_len, mac, &mac_len) == NULL || mac_len != HS256_LEN)
        goto fail;
    s64 = co_b64url_encode(mac, mac_len);
    if (s64 == NULL)
        goto fail;
    s_len = strlen(s64); /* 43 for 32 bytes */
    token[h_len + 1 + p_len] = '.';
    memcpy(token + h_len + 1 + p_len + 1, s64, s_len + 1);
    result = token;
    token = NULL;

fail:
    json_decref(payload);
    free(payload_json);
    free(h64);
    free(p64);
    free(s64);
    free(token);
    return result; /* NULL unless every step above succeeded */
}

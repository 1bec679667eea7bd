/* Shopper JWTs (src/co_jwt.c) and the base64url helpers. No database: every
 * token here is built in the test, either by co_jwt_sign, by make_token below
 * (OpenSSL's HMAC directly, so a bug in co_jwt's signing cannot hide itself),
 * or by node's crypto module (the hard-coded vectors). */
#include "harness.h"

#include "co_jwt.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "super-secret-jwt-token-with-at-least-32-characters-long"
#define NOW ((time_t)1700000000)
#define SUB "6f1c2a3e-9b7d-4c1e-8f2a-0d3b5e7c9a11"
#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
/* exp = NOW + 3600 */
#define PAYLOAD "{\"sub\":\"" SUB "\",\"exp\":1700003600}"

/* Both produced independently with node (Buffer base64url + crypto.createHmac):
 * VECTOR_SUPABASE is a Supabase-shaped access token (aud, email, role) with
 * exp 1700003600; VECTOR_SIGN is what co_jwt_sign must print for
 * (SECRET, SUB, exp 1700003600, now 1700000000). */
#define VECTOR_SUPABASE                                                                        \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJhdXRoZW50aWNhdGVkIiwiZXhwIjoxNzAwMDAzNjAw" \
    "LCJpYXQiOjE3MDAwMDAwMDAsInN1YiI6IjZmMWMyYTNlLTliN2QtNGMxZS04ZjJhLTBkM2I1ZTdjOWExMSIsImVt" \
    "YWlsIjoic2hvcHBlckBleGFtcGxlLmNvbSIsInJvbGUiOiJhdXRoZW50aWNhdGVkIn0.xYmS7lW1iEyMlodlCkwKA" \
    "P3q71N6HHB0iSHl3BtpvFk"
#define VECTOR_SIGN                                                                            \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI2ZjFjMmEzZS05YjdkLTRjMWUtOGYyYS0wZDNiNWU3" \
    "YzlhMTEiLCJleHAiOjE3MDAwMDM2MDAsImlhdCI6MTcwMDAwMDAwMCwicm9sZSI6ImF1dGhlbnRpY2F0ZWQifQ.1N8" \
    "mg12u-S5KMgNeC0RaLYuYPvUV_7N9L-8bG5rvzIM"

/* ---------------------------------------------------------------- helpers */

/* "<a>.<b>.<c>", malloc'd. */
static char *join3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t lc = strlen(c);
    char *t = malloc(la + lb + lc + 3);

    ck_assert_ptr_nonnull(t);
    memcpy(t, a, la);
    t[la] = '.';
    memcpy(t + la + 1, b, lb);
    t[la + 1 + lb] = '.';
    memcpy(t + la + 1 + lb + 1, c, lc + 1);
    return t;
}

static char *b64(const char *s)
{
    char *e = co_b64url_encode(s, strlen(s));

    ck_assert_ptr_nonnull(e);
    return e;
}

/* HS256 over "<b64 header>.<b64 payload>" with OpenSSL directly. malloc'd. */
static char *make_token(const char *header_json, const char *payload_json, const char *secret)
{
    char *h = b64(header_json);
    char *p = b64(payload_json);
    char *unsigned_part = join3(h, p, "");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *s;
    char *t;

    unsigned_part[strlen(unsigned_part) - 1] = '\0'; /* drop the trailing dot */
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                               (const unsigned char *)unsigned_part, strlen(unsigned_part), mac,
                               &mac_len));
    s = co_b64url_encode(mac, mac_len);
    ck_assert_ptr_nonnull(s);
    t = join3(h, p, s);
    free(h);
    free(p);
    free(s);
    free(unsigned_part);
    return t;
}

/* Builds a correctly signed token from the two JSON texts and verifies it at NOW. */
static co_jwt_result verify_json(const char *header_json, const char *payload_json,
                                 co_jwt_claims *out)
{
    char *t = make_token(header_json, payload_json, SECRET);
    co_jwt_result r = co_jwt_verify(t, SECRET, NOW, out);

    free(t);
    return r;
}

static co_jwt_result verify_payload(const char *payload_json, co_jwt_claims *out)
{
    return verify_json(HDR, payload_json, out);
}

/* Members after "sub" in a payload ("" for none), and the verdict on them. */
typedef struct {
    const char *claims;
    co_jwt_result want;
} claims_case;

/* Verifies {"sub":SUB,<claims>} at NOW (verify_payload) for each of the n
 * cases and asserts its verdict. */
static void expect_claims(const claims_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char payload[256];
        co_jwt_result got;

        snprintf(payload, sizeof payload, "{\"sub\":\"" SUB "\"%s%s}",
                 cases[i].claims[0] != '\0' ? "," : "", cases[i].claims);
        got = verify_payload(payload, NULL);
        ck_assert_msg(got == cases[i].want, "%s: got %s, want %s", payload,
                      co_jwt_result_name(got), co_jwt_result_name(cases[i].want));
    }
}

#define N_CASES(a) (sizeof(a) / sizeof((a)[0]))

#define ck_assert_jwt(got, want)                                                             \
    do {                                                                                     \
        co_jwt_result got_ = (got);                                                          \
        co_jwt_result want_ = (want);                                                        \
        ck_assert_msg(got_ == want_, "%s: got %s, want %s", #got, co_jwt_result_name(got_),  \
                      co_jwt_result_name(want_));                                            \
    } while (0)

/* ------------------------------------------------------------- base64url */

START_TEST(test_b64url_known_vectors)
{
    /* RFC 4648 section 10, unpadded, and the two characters url-safe changes. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    static const unsigned char url_bytes[] = {0xfb, 0xff, 0xbf};

    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        char *e = co_b64url_encode(plain[i], strlen(plain[i]));
        ck_assert_str_eq(e, enc[i]);
        free(e);
    }
    char *e = co_b64url_encode(url_bytes, sizeof url_bytes);
    ck_assert_str_eq(e, "-_-_");
    free(e);
}
END_TEST

START_TEST(test_b64url_round_trip)
{
    unsigned char in[64];

    for (size_t len = 0; len <= 64; len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)(i * 37 + len * 11 + (i % 3 == 0 ? 0xf0 : 0));
        char *e = co_b64url_encode(len == 0 ? NULL : in, len);
        size_t elen = strlen(e);
        size_t out_len = 12345;
        unsigned char *d;
        char padded[128];

        ck_assert_uint_eq(elen, (len * 4 + 2) / 3);
        ck_assert_msg(strspn(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                          == elen, "len %zu: %s", len, e);
        d = co_b64url_decode(e, elen, &out_len);
        ck_assert_ptr_nonnull(d);
        ck_assert_uint_eq(out_len, len);
        ck_assert_int_eq(memcmp(d, in, len), 0);
        ck_assert_int_eq(d[len], 0);
        free(d);

        /* The same with RFC 4648 padding is accepted too. */
        const char *pad = elen % 4 == 2 ? "==" : elen % 4 == 3 ? "=" : "";
        snprintf(padded, sizeof padded, "%s%s", e, pad);
        d = co_b64url_decode(padded, strlen(padded), &out_len);
        ck_assert_msg(d != NULL, "padded %s", padded);
        ck_assert_uint_eq(out_len, len);
        ck_assert_int_eq(memcmp(d, in, len), 0);
        free(d);
        free(e);
    }
}
END_TEST

static void expect_b64_invalid(const char *s, size_t n)
{
    size_t out_len = 0;
    void *d = co_b64url_decode(s, n, &out_len);

    ck_assert_msg(d == NULL, "decoded invalid base64url \"%.*s\" (len %zu)", (int)n, s, n);
}

START_TEST(test_b64url_rejects_invalid)
{
    static const char *const bad[] = {
        "Zm9v+A",   "Zm9v/A",  "Zm 9v",   "Zm9v\n",    "Zm.v",     "Z",      "Zm9vY",
        "Zh",       "Zm9",     "Zg=",     "Zg===",     "=Zg=",     "Zm9v====", "Z===",
        "Zg=A",     "Zm=v",    "Zm9\x80", "Zm9\xff",   "====",     "Zm8==",
    };
    size_t out_len = 1;
    void *d;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_b64_invalid(bad[i], strlen(bad[i]));
    /* A NUL inside the given length is a character like any other. */
    expect_b64_invalid("Zm\0v", 4);
    /* Every byte outside the alphabet, in every position of a group. */
    for (int c = 0; c < 256; c++) {
        char s[5] = "Zm9v";
        bool in_alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_';
        for (int pos = 0; pos < 4; pos++) {
            memcpy(s, "Zm9v", 4);
            s[pos] = (char)c;
            d = co_b64url_decode(s, 4, NULL);
            ck_assert_msg((d != NULL) == in_alphabet, "byte 0x%02x at %d", c, pos);
            free(d);
        }
    }
    /* Empty input is the empty string, not an error. */
    d = co_b64url_decode("", 0, &out_len);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(out_len, 0);
    free(d);
}
END_TEST

/* ------------------------------------------------------------ round trip */

START_TEST(test_round_trip)
{
    co_jwt_claims c;
    char *t = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);

    ck_assert_ptr_nonnull(t);
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, &c), CO_JWT_OK);
    ck_assert_str_eq(c.sub, SUB);
    ck_assert_int_eq(c.exp, (long long)NOW + 3600);
    ck_assert_str_eq(c.role, "authenticated");
    /* out is optional. */
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_OK);
    free(t);
}
END_TEST

START_TEST(test_sign_matches_node_vector)
{
    char *t = co_jwt_sign(SECRET, SUB, 1700003600LL, (time_t)1700000000);

    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t, VECTOR_SIGN);
    free(t);
}
END_TEST

START_TEST(test_known_vector_from_node)
{
    co_jwt_claims c;

    ck_assert_jwt(co_jwt_verify(VECTOR_SUPABASE, SECRET, NOW + 100, &c), CO_JWT_OK);
    ck_assert_str_eq(c.sub, SUB);
    ck_assert_int_eq(c.exp, 1700003600LL);
    ck_assert_str_eq(c.role, "authenticated");
    ck_assert_jwt(co_jwt_verify(VECTOR_SUPABASE, SECRET, (time_t)1700003600, NULL),
                  CO_JWT_EXPIRED);
    ck_assert_jwt(co_jwt_verify(VECTOR_SUPABASE, SECRET "x", NOW, NULL), CO_JWT_BAD_SIGNATURE);
    ck_assert_jwt(co_jwt_verify(VECTOR_SIGN, SECRET, NOW, NULL), CO_JWT_OK);
}
END_TEST

START_TEST(test_sign_refuses_bad_input)
{
    char *t;

    ck_assert_ptr_null(co_jwt_sign("", SUB, 1, NOW));
    ck_assert_ptr_null(co_jwt_sign(NULL, SUB, 1, NOW));
    ck_assert_ptr_null(co_jwt_sign(SECRET, NULL, 1, NOW));
    ck_assert_ptr_null(co_jwt_sign(SECRET, "not-a-uuid", 1, NOW));
    ck_assert_ptr_null(co_jwt_sign(SECRET, SUB "0", 1, NOW));
    /* An upper-case sub is a uuid: signed as given, verified lower-cased. */
    t = co_jwt_sign(SECRET, "6F1C2A3E-9B7D-4C1E-8F2A-0D3B5E7C9A11", (long long)NOW + 60, NOW);
    ck_assert_ptr_nonnull(t);
    free(t);
}
END_TEST

/* ---------------------------------------------------------------- expiry */

START_TEST(test_expired)
{
    static const claims_case cases[] = {
        /* exp == now is already expired; now + 1 is not. */
        {"\"exp\":1700000000", CO_JWT_EXPIRED},
        {"\"exp\":1700000001", CO_JWT_OK},
        /* Reals are numbers too. */
        {"\"exp\":1700000000.5", CO_JWT_OK},
        {"\"exp\":1699999999.5", CO_JWT_EXPIRED},
        {"\"exp\":-1e300", CO_JWT_EXPIRED},
        {"\"exp\":0", CO_JWT_EXPIRED},
    };
    char *t = co_jwt_sign(SECRET, SUB, (long long)NOW - 1, NOW - 3600);

    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_EXPIRED);
    free(t);
    expect_claims(cases, N_CASES(cases));
}
END_TEST

START_TEST(test_exp_huge_values)
{
    co_jwt_claims c;

    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1e300}", &c), CO_JWT_OK);
    ck_assert_int_eq(c.exp, LLONG_MAX);
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":9223372036854775807}", &c),
                  CO_JWT_OK);
    ck_assert_int_eq(c.exp, LLONG_MAX);
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1700003600.9}", &c), CO_JWT_OK);
    ck_assert_int_eq(c.exp, 1700003600LL);
    /* Integers too big for jansson are a parse error, not a wrap-around. */
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":99999999999999999999}", NULL),
                  CO_JWT_MALFORMED);
}
END_TEST

START_TEST(test_missing_exp)
{
    static const claims_case cases[] = {
        {"", CO_JWT_EXPIRED},
        {"\"iat\":1700000000", CO_JWT_EXPIRED},
        /* Present but not a number is malformed. */
        {"\"exp\":\"1700003600\"", CO_JWT_MALFORMED},
        {"\"exp\":null", CO_JWT_MALFORMED},
        {"\"exp\":true", CO_JWT_MALFORMED},
    };

    expect_claims(cases, N_CASES(cases));
}
END_TEST

START_TEST(test_nbf)
{
    static const claims_case cases[] = {
        /* NOW + 31 is beyond the 30 s leeway, NOW + 30 is within it. */
        {"\"exp\":1700003600,\"nbf\":1700000031", CO_JWT_NOT_YET_VALID},
        {"\"exp\":1700003600,\"nbf\":1700000030", CO_JWT_OK},
        {"\"exp\":1700003600,\"nbf\":1700000030.5", CO_JWT_NOT_YET_VALID},
        {"\"exp\":1700003600,\"nbf\":1600000000", CO_JWT_OK},
        {"\"exp\":1700003600,\"nbf\":\"0\"", CO_JWT_MALFORMED},
        /* iat is ignored, even in the future. */
        {"\"exp\":1700003600,\"iat\":1800000000", CO_JWT_OK},
    };

    expect_claims(cases, N_CASES(cases));
}
END_TEST

/* ------------------------------------------------------------- signature */

START_TEST(test_wrong_secret)
{
    char *t = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);

    ck_assert_jwt(co_jwt_verify(t, "another-secret", NOW, NULL), CO_JWT_BAD_SIGNATURE);
    ck_assert_jwt(co_jwt_verify(t, SECRET "\x01", NOW, NULL), CO_JWT_BAD_SIGNATURE);
    /* No secret verifies nothing (and does not crash). */
    ck_assert_jwt(co_jwt_verify(t, "", NOW, NULL), CO_JWT_BAD_SIGNATURE);
    ck_assert_jwt(co_jwt_verify(t, NULL, NOW, NULL), CO_JWT_BAD_SIGNATURE);
    free(t);
    /* Not even a token really HMAC'd under the empty key: an unset secret
     * must not turn into one anybody can sign with. */
    t = make_token(HDR, PAYLOAD, "");
    ck_assert_jwt(co_jwt_verify(t, "", NOW, NULL), CO_JWT_BAD_SIGNATURE);
    free(t);
}
END_TEST

START_TEST(test_tampered_payload)
{
    char *good = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);
    char *other = co_jwt_sign(SECRET, "00000000-0000-4000-8000-000000000001",
                              (long long)NOW + 3600, NOW);
    const char *g1 = strchr(good, '.');
    const char *g2 = strrchr(good, '.');
    const char *o1 = strchr(other, '.');
    const char *o2 = strrchr(other, '.');
    char header[128];
    char payload[512];
    char *forged;
    co_jwt_claims c;

    /* other's payload (another shopper) under good's header and signature. */
    snprintf(header, sizeof header, "%.*s", (int)(g1 - good), good);
    snprintf(payload, sizeof payload, "%.*s", (int)(o2 - o1 - 1), o1 + 1);
    forged = join3(header, payload, g2 + 1);
    memset(&c, 'x', sizeof c);
    ck_assert_jwt(co_jwt_verify(forged, SECRET, NOW, &c), CO_JWT_BAD_SIGNATURE);
    /* A failed verify leaves no claims behind. */
    ck_assert_str_eq(c.sub, "");
    ck_assert_str_eq(c.role, "");
    ck_assert_int_eq(c.exp, 0);
    free(forged);
    free(good);
    free(other);
}
END_TEST

START_TEST(test_tampered_signature)
{
    char *t = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);
    char *sig = strrchr(t, '.') + 1;
    size_t n = strlen(t);
    char *shorter;
    char *longer;

    ck_assert_uint_eq(strlen(sig), 43);
    /* One bit of the first byte. */
    sig[0] = sig[0] == 'A' ? 'B' : 'A';
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_BAD_SIGNATURE);
    free(t);

    /* 30 and 34 bytes: right prefix, wrong length. */
    t = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);
    shorter = strndup(t, n - 3);    /* 40 chars = 30 bytes */
    ck_assert_jwt(co_jwt_verify(shorter, SECRET, NOW, NULL), CO_JWT_BAD_SIGNATURE);
    longer = malloc(n + 4);
    memcpy(longer, t, n);
    memcpy(longer + n - 1, "AAAA", 5); /* 46 chars, canonical: 34 bytes */
    ck_assert_jwt(co_jwt_verify(longer, SECRET, NOW, NULL), CO_JWT_BAD_SIGNATURE);
    free(longer);
    free(shorter);

    /* Empty signature on an HS256 header. */
    *(strrchr(t, '.') + 1) = '\0';
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_BAD_SIGNATURE);
    free(t);
}
END_TEST

/* Every single-character change to a valid token must fail somewhere: it
 * alters the signing input, the signature, or the shape. This also pins the
 * canonical-base64 rule (no second spelling of the last signature char). */
START_TEST(test_every_mutation_rejected)
{
    static const char subst[] = {'A', 'B', 'Q', 'g', 'w', '_', '-', '.', '=', '+', ' ', '\x80'};
    char *t = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);
    size_t n = strlen(t);

    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_OK);
    for (size_t i = 0; i < n; i++) {
        char orig = t[i];
        for (size_t k = 0; k < sizeof subst; k++) {
            if (subst[k] == orig)
                continue;
            t[i] = subst[k];
            ck_assert_msg(co_jwt_verify(t, SECRET, NOW, NULL) != CO_JWT_OK,
                          "accepted with '%c' at %zu", subst[k], i);
        }
        t[i] = orig;
    }
    free(t);
}
END_TEST

/* ------------------------------------------------------------- algorithm */

START_TEST(test_alg_none)
{
    char *h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    char *p = b64(PAYLOAD);
    char *t = join3(h, p, "");

    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_BAD_ALG);
    free(t);
    free(h);
    free(p);
    /* Even with a correct HMAC attached, and in other spellings. */
    ck_assert_jwt(verify_json("{\"alg\":\"none\"}", PAYLOAD, NULL), CO_JWT_BAD_ALG);
    ck_assert_jwt(verify_json("{\"alg\":\"None\"}", PAYLOAD, NULL), CO_JWT_BAD_ALG);
    ck_assert_jwt(verify_json("{\"alg\":\"NONE\"}", PAYLOAD, NULL), CO_JWT_BAD_ALG);
}
END_TEST

START_TEST(test_alg_other)
{
    /* Each correctly HMAC'd with SECRET, so only the alg can be the reason. */
    static const char *const headers[] = {
        "{\"alg\":\"HS512\",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"ES256\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"alg\":\"HS2560\"}",
        "{\"alg\":\"HS25\"}",
        "{\"alg\":\"\"}",
        "{\"typ\":\"JWT\"}",
        "{}",
        "{\"alg\":256}",
        "{\"alg\":null}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":{\"name\":\"HS256\"}}",
        "{\"ALG\":\"HS256\"}",
    };

    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        ck_assert_msg(verify_json(headers[i], PAYLOAD, NULL) == CO_JWT_BAD_ALG, "%s",
                      headers[i]);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\"}", PAYLOAD, NULL), CO_JWT_OK);
}
END_TEST

START_TEST(test_typ_and_crit)
{
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", PAYLOAD, NULL), CO_JWT_OK);
    ck_assert_jwt(verify_json("{\"typ\":\"Jwt\",\"alg\":\"HS256\",\"kid\":\"k1\"}", PAYLOAD,
                              NULL),
                  CO_JWT_OK);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", PAYLOAD, NULL),
                  CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\",\"typ\":\"JWTX\"}", PAYLOAD, NULL),
                  CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\",\"typ\":1}", PAYLOAD, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", PAYLOAD, NULL),
                  CO_JWT_MALFORMED);
}
END_TEST

/* --------------------------------------------------------- malformed input */

START_TEST(test_malformed_json)
{
    /* Header not JSON, not an object, duplicate keys. */
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\"", PAYLOAD, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("alg=HS256", PAYLOAD, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("", PAYLOAD, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("[\"HS256\"]", PAYLOAD, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("\"HS256\"", PAYLOAD, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\",\"alg\":\"none\"}", PAYLOAD, NULL),
                  CO_JWT_MALFORMED);
    ck_assert_jwt(verify_json("{\"alg\":\"HS256\"} trailing", PAYLOAD, NULL), CO_JWT_MALFORMED);
    /* Payload not JSON (correctly signed, so the payload parse is what fails). */
    ck_assert_jwt(verify_payload("{\"sub\":", NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_payload("", NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_payload("[1,2]", NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_payload("null", NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_payload("\xff\xfe{}", NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1700003600,"
                                 "\"sub\":\"00000000-0000-4000-8000-000000000001\"}", NULL),
                  CO_JWT_MALFORMED);
}
END_TEST

START_TEST(test_malformed_shape)
{
    char *good = co_jwt_sign(SECRET, SUB, (long long)NOW + 3600, NOW);
    char buf[1024];
    const char *last_dot = strrchr(good, '.');

    ck_assert_jwt(co_jwt_verify(NULL, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(co_jwt_verify("", SECRET, NOW, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(co_jwt_verify(".", SECRET, NOW, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(co_jwt_verify("..", SECRET, NOW, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(co_jwt_verify("...", SECRET, NOW, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(co_jwt_verify("abc", SECRET, NOW, NULL), CO_JWT_MALFORMED);
    /* Two parts: the token without its signature. */
    snprintf(buf, sizeof buf, "%.*s", (int)(last_dot - good), good);
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    /* Four parts. */
    snprintf(buf, sizeof buf, "%s.AAAA", good);
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s.", good);
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    /* "Bearer " left on, whitespace, padding, standard base64 characters. */
    snprintf(buf, sizeof buf, "Bearer %s", good);
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s\n", good);
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s=", good); /* 43 + '=' is valid RFC 4648 padding */
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    snprintf(buf, sizeof buf, "%s", good);
    buf[strlen(buf) - 2] = '+';
    ck_assert_jwt(co_jwt_verify(buf, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    /* Control: the unaltered token. */
    ck_assert_jwt(co_jwt_verify(good, SECRET, NOW, NULL), CO_JWT_OK);
    free(good);
}
END_TEST

START_TEST(test_huge_tokens)
{
    const size_t big = 100 * 1024;
    char *t = malloc(big + 1);
    char *payload = malloc(8192);
    char header[8192];

    /* 100 KB of one base64url character; then split into three huge parts. */
    memset(t, 'A', big);
    t[big] = '\0';
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    t[big / 3] = '.';
    t[2 * big / 3] = '.';
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    /* 100 KB of dots. */
    memset(t, '.', big);
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    free(t);

    /* The 8 KiB bound itself: a header of 5,900 bytes of kid encodes to about
     * 7,900 characters and passes; 6,200 bytes (about 8,300) does not. */
    for (int round = 0; round < 2; round++) {
        size_t kid = round == 0 ? 5900 : 6200;
        int n = snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"kid\":\"%0*d\"}",
                         (int)kid, 0);
        char *h64;

        ck_assert_int_lt(n, (int)sizeof header);
        h64 = b64(header);
        ck_assert_int_eq(strlen(h64) <= 8192, round == 0);
        free(h64);
        ck_assert_jwt(verify_json(header, PAYLOAD, NULL),
                      round == 0 ? CO_JWT_OK : CO_JWT_MALFORMED);
    }
    /* And the same for the payload. */
    snprintf(payload, 8192, "{\"sub\":\"" SUB "\",\"exp\":1700003600,\"pad\":\"%05900d\"}", 0);
    ck_assert_jwt(verify_payload(payload, NULL), CO_JWT_OK);
    snprintf(payload, 8192, "{\"sub\":\"" SUB "\",\"exp\":1700003600,\"pad\":\"%06200d\"}", 0);
    ck_assert_jwt(verify_payload(payload, NULL), CO_JWT_MALFORMED);
    free(payload);
}
END_TEST

/* Never crash, never accept: random bytes (no NUL), random base64url with
 * dots, and random JSON-ish text correctly wrapped and signed. */
START_TEST(test_random_garbage)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_...";
    static const char jsonish[] = "{}[]\":,0123456789.eE+-truefalsnl\\u subexpnbfalgHS256 ";
    unsigned int seed = 20240601;
    char buf[1024];

    for (int iter = 0; iter < 3000; iter++) {
        size_t len = (size_t)rand_r(&seed) % (sizeof buf - 1);
        int kind = iter % 3;

        for (size_t i = 0; i < len; i++) {
            if (kind == 0)
                buf[i] = (char)(1 + rand_r(&seed) % 255);
            else if (kind == 1)
                buf[i] = alphabet[(size_t)rand_r(&seed) % (sizeof alphabet - 1)];
            else
                buf[i] = jsonish[(size_t)rand_r(&seed) % (sizeof jsonish - 1)];
        }
        buf[len] = '\0';
        if (kind == 2) {
            ck_assert_msg(verify_payload(buf, NULL) != CO_JWT_OK, "accepted payload %s", buf);
            ck_assert_msg(verify_json(buf, PAYLOAD, NULL) != CO_JWT_OK, "accepted header %s",
                          buf);
        } else {
            ck_assert_msg(co_jwt_verify(buf, SECRET, NOW, NULL) != CO_JWT_OK, "accepted %s", buf);
        }
    }
    /* A few hand-picked ones. */
    ck_assert_jwt(co_jwt_verify("\x01\x02.\xff\xfe.\x80", SECRET, NOW, NULL), CO_JWT_MALFORMED);
    ck_assert_jwt(co_jwt_verify("e30.e30.", SECRET, NOW, NULL), CO_JWT_BAD_ALG); /* {} . {} */
    ck_assert_jwt(co_jwt_verify("\xc3\xa9.\xc3\xa9.\xc3\xa9", SECRET, NOW, NULL),
                  CO_JWT_MALFORMED);
}
END_TEST

/* ------------------------------------------------------------------- sub */

START_TEST(test_sub_not_uuid)
{
    static const char *const payloads[] = {
        "{\"exp\":1700003600}",
        "{\"sub\":\"\",\"exp\":1700003600}",
        "{\"sub\":\"not-a-uuid\",\"exp\":1700003600}",
        "{\"sub\":\"shopper@example.com\",\"exp\":1700003600}",
        "{\"sub\":\"6f1c2a3e9b7d4c1e8f2a0d3b5e7c9a11\",\"exp\":1700003600}",
        "{\"sub\":\"{" SUB "}\",\"exp\":1700003600}",
        "{\"sub\":\"" SUB " \",\"exp\":1700003600}",
        "{\"sub\":\" " SUB "\",\"exp\":1700003600}",
        "{\"sub\":\"" SUB "0\",\"exp\":1700003600}",
        "{\"sub\":\"6f1c2a3e-9b7d-4c1e-8f2a-0d3b5e7c9a1g\",\"exp\":1700003600}",
        "{\"sub\":\"6f1c2a3e9-b7d-4c1e-8f2a-0d3b5e7c9a11\",\"exp\":1700003600}",
        "{\"sub\":\"6f1c2a3e-9b7d-4c1e-8f2a-0d3b5e7c9a1\\u0000\",\"exp\":1700003600}",
        "{\"sub\":42,\"exp\":1700003600}",
        "{\"sub\":null,\"exp\":1700003600}",
        "{\"sub\":[\"" SUB "\"],\"exp\":1700003600}",
    };

    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++)
        ck_assert_msg(verify_payload(payloads[i], NULL) == CO_JWT_MALFORMED, "%s", payloads[i]);
}
END_TEST

START_TEST(test_sub_uppercase_normalised)
{
    co_jwt_claims c;

    ck_assert_jwt(verify_payload("{\"sub\":\"6F1C2A3E-9B7D-4C1E-8F2A-0D3B5E7C9A11\","
                                 "\"exp\":1700003600}", &c),
                  CO_JWT_OK);
    ck_assert_str_eq(c.sub, SUB);
    ck_assert_jwt(verify_payload("{\"sub\":\"6f1C2a3E-9b7D-4c1E-8f2A-0d3B5e7C9a11\","
                                 "\"exp\":1700003600}", &c),
                  CO_JWT_OK);
    ck_assert_str_eq(c.sub, SUB);
}
END_TEST

/* ------------------------------------------------------------------ role */

START_TEST(test_role)
{
    co_jwt_claims c;

    ck_assert_jwt(verify_payload(PAYLOAD, &c), CO_JWT_OK);
    ck_assert_str_eq(c.role, "");
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1700003600,"
                                 "\"role\":\"service_role\"}", &c),
                  CO_JWT_OK);
    ck_assert_str_eq(c.role, "service_role");
    /* 31 bytes fit, 32 do not; non-strings are refused. */
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1700003600,"
                                 "\"role\":\"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\"}", &c),
                  CO_JWT_OK);
    ck_assert_uint_eq(strlen(c.role), 31);
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1700003600,"
                                 "\"role\":\"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr\"}", NULL),
                  CO_JWT_MALFORMED);
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1700003600,\"role\":1}", NULL),
                  CO_JWT_MALFORMED);
}
END_TEST

/* ---------------------------------------------------------------- order */

/* The first failing check wins, in the documented order: shape, alg,
 * signature, then the payload (never read before the signature matched). */
START_TEST(test_check_order)
{
    char *h = b64("{\"alg\":\"HS512\"}");
    char *p = b64("not json at all");
    char *t = join3(h, p, "AAAA");

    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_BAD_ALG);
    free(t);
    free(h);
    h = b64(HDR);
    t = join3(h, p, "AAAA");
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_BAD_SIGNATURE);
    free(t);
    t = join3(h, p, "AAB"); /* AAB is not canonical base64url: shape comes first */
    ck_assert_jwt(co_jwt_verify(t, SECRET, NOW, NULL), CO_JWT_MALFORMED);
    free(t);
    free(h);
    free(p);
    /* Expired and not a uuid: sub is checked first. */
    ck_assert_jwt(verify_payload("{\"sub\":\"x\",\"exp\":1}", NULL), CO_JWT_MALFORMED);
    /* Expired and nbf in the future: expiry first. */
    ck_assert_jwt(verify_payload("{\"sub\":\"" SUB "\",\"exp\":1,\"nbf\":1800000000}", NULL),
                  CO_JWT_EXPIRED);
}
END_TEST

START_TEST(test_result_names)
{
    ck_assert_str_eq(co_jwt_result_name(CO_JWT_OK), "ok");
    ck_assert_str_eq(co_jwt_result_name(CO_JWT_MALFORMED), "malformed");
    ck_assert_str_eq(co_jwt_result_name(CO_JWT_BAD_ALG), "bad_alg");
    ck_assert_str_eq(co_jwt_result_name(CO_JWT_BAD_SIGNATURE), "bad_signature");
    ck_assert_str_eq(co_jwt_result_name(CO_JWT_EXPIRED), "expired");
    ck_assert_str_eq(co_jwt_result_name(CO_JWT_NOT_YET_VALID), "not_yet_valid");
    ck_assert_str_eq(co_jwt_result_name((co_jwt_result)99), "unknown");
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *b = co_test_tcase(s, "base64url", 0);
    TCase *v = co_test_tcase(s, "verify", 30);

    tcase_add_test(b, test_b64url_known_vectors);
    tcase_add_test(b, test_b64url_round_trip);
    tcase_add_test(b, test_b64url_rejects_invalid);

    tcase_add_test(v, test_round_trip);
    tcase_add_test(v, test_sign_matches_node_vector);
    tcase_add_test(v, test_known_vector_from_node);
    tcase_add_test(v, test_sign_refuses_bad_input);
    tcase_add_test(v, test_expired);
    tcase_add_test(v, test_exp_huge_values);
    tcase_add_test(v, test_missing_exp);
    tcase_add_test(v, test_nbf);
    tcase_add_test(v, test_wrong_secret);
    tcase_add_test(v, test_tampered_payload);
    tcase_add_test(v, test_tampered_signature);
    tcase_add_test(v, test_every_mutation_rejected);
    tcase_add_test(v, test_alg_none);
    tcase_add_test(v, test_alg_other);
    tcase_add_test(v, test_typ_and_crit);
    tcase_add_test(v, test_malformed_json);
    tcase_add_test(v, test_malformed_shape);
    tcase_add_test(v, test_huge_tokens);
    tcase_add_test(v, test_random_garbage);
    tcase_add_test(v, test_sub_not_uuid);
    tcase_add_test(v, test_sub_uppercase_normalised);
    tcase_add_test(v, test_role);
    tcase_add_test(v, test_check_order);
    tcase_add_test(v, test_result_names);
    return s;
}

int main(void)
{
    return co_test_run(jwt_suite());
}

/* Shopper authentication: HS256 JSON Web Tokens in Supabase's convention
 * (RFC 7519 claims, RFC 7515 compact serialisation, shared-secret HMAC), and
 * the base64url helpers they are built on. The HTTP layer strips "Bearer "
 * from the Authorization header and hands the rest to co_jwt_verify. */
#ifndef CO_JWT_H
#define CO_JWT_H

#include <stddef.h>
#include <time.h>

/* Each of the three dot-separated parts may be at most this many characters;
 * longer tokens are rejected before anything is decoded. */
#define CO_JWT_PART_MAX 8192
/* Seconds an "nbf" may lie in the future (clock skew between issuer and us). */
#define CO_JWT_NBF_LEEWAY 30

typedef enum {
    CO_JWT_OK = 0,
    CO_JWT_MALFORMED,     /* not three parts, bad base64url, bad JSON, missing/invalid sub,
                           * exp/nbf/role of the wrong type, bad typ, "crit" present */
    CO_JWT_BAD_ALG,       /* alg not HS256 (incl. none, missing, not a string) */
    CO_JWT_BAD_SIGNATURE, /* HMAC mismatch, signature not 32 bytes, or no secret */
    CO_JWT_EXPIRED,       /* exp <= now, or missing exp */
    CO_JWT_NOT_YET_VALID, /* nbf > now + CO_JWT_NBF_LEEWAY */
} co_jwt_result;

typedef struct {
    char sub[37];   /* lower-case uuid */
    long long exp;  /* a real exp is truncated (and clamped to LLONG_MAX) */
    char role[32];  /* "" when the token has no role */
} co_jwt_claims;

/* Verifies a compact JWS (the token itself, without "Bearer ") against secret
 * at time now. Checks run in this order and the first failure is returned:
 * shape (three unpadded base64url parts, each <= CO_JWT_PART_MAX), header
 * (JSON object, alg exactly "HS256", typ "JWT" in any case if present, no
 * "crit"), signature (32 bytes, constant-time compare), payload (JSON object,
 * sub a uuid, exp a number > now, nbf if present a number <= now + leeway,
 * role if present a string of at most 31 bytes). The payload is parsed only
 * after the signature matched. Duplicate JSON keys are malformed.
 * Safe on any input: token may be NULL, of any length, of any bytes. out may
 * be NULL; otherwise it is zeroed first and filled only on CO_JWT_OK. An
 * empty or NULL secret verifies nothing (CO_JWT_BAD_SIGNATURE). */
co_jwt_result co_jwt_verify(const char *token, const char *secret, time_t now,
                            co_jwt_claims *out);

/* "ok", "malformed", "bad_alg", "bad_signature", "expired", "not_yet_valid"
 * (static strings, for log lines and error messages); "unknown" otherwise. */
const char *co_jwt_result_name(co_jwt_result r);

/* Makes a token for `checkoutd token`, the demo and the tests: header
 * {"alg":"HS256","typ":"JWT"}, payload {"sub":sub,"exp":exp,"iat":now,
 * "role":"authenticated"} (compact, in that order). Returns a malloc'd string
 * the caller frees, or NULL if secret is NULL/empty, sub is not a uuid (it is
 * copied as given, not re-cased), or memory ran out. */
char *co_jwt_sign(const char *secret, const char *sub, long long exp, time_t now);

/* base64url (RFC 4648 section 5) of len bytes, without padding. Returns a
 * malloc'd NUL-terminated string the caller frees, or NULL when out of
 * memory. in may be NULL when len is 0. */
char *co_b64url_encode(const void *in, size_t len);

/* Decodes in_len characters of base64url. Padding is optional but, if
 * present, must be exactly what RFC 4648 puts there ('=' up to a multiple of
 * 4, only at the end). Rejects any other character (including '+', '/',
 * whitespace and NUL), a length of 1 mod 4, and non-zero unused bits in the
 * last character, so each byte string has exactly one unpadded encoding.
 * Returns a malloc'd buffer of *out_len bytes plus a NUL (for convenience)
 * that the caller frees, or NULL if the input is invalid or memory ran out.
 * out_len may be NULL. */
void *co_b64url_decode(const char *in, size_t in_len, size_t *out_len);

#endif

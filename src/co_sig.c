#include "co_sig.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The 32 bytes of a SHA-256 digest as 64 lower-case hex digits. */
static void hex32(const unsigned char *md, char out[65])
{
    static const char hex[] = "0123456789abcdef";

    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

void co_hmac_sha256_hex(const char *key, size_t key_len,
                        const void *data, size_t data_len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE] = {0};
    unsigned int mac_len = 0;

    HMAC(EVP_sha256(), key, (int)key_len, data, data_len, mac, &mac_len);
    hex32(mac, out);
}

void co_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE] = {0};
    unsigned int n = 0;

    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    hex32(md, out);
}

bool co_const_eq(const void *a, size_t a_len, const void *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

/* HMAC over "<t>.<body>". */
static void sign_ts(const char *secret, long long ts, const void *body, size_t body_len,
                    char out[65])
{
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "%lld.", ts);
    char *msg = malloc((size_t)n + body_len + 1);

    if (msg == NULL)
        abort();
    memcpy(msg, prefix, (size_t)n);
    if (body_len > 0)
        memcpy(msg + n, body, body_len);
    co_hmac_sha256_hex(secret, strlen(secret), msg, (size_t)n + body_len, out);
    free(msg);
}

void co_sig_header(const char *secret, time_t now, const void *body, size_t body_len,
                   char out[CO_SIG_HEADER_MAX])
{
    char hex[65];

    sign_ts(secret, (long long)now, body, body_len, hex);
    snprintf(out, CO_SIG_HEADER_MAX, "t=%lld,v1=%s", (long long)now, hex);
}

co_sig_result co_sig_verify(const char *header, const char *secret, time_t now,
                            long tolerance, const void *body, size_t body_len)
{
    long long ts = -1;
    const char *v1[CO_SIG_MAX_V1];
    size_t v1_len[CO_SIG_MAX_V1];
    size_t nv1 = 0;
    char expect[65];
    bool matched = false;

    if (header == NULL || header[0] == '\0')
        return CO_SIG_MISSING;
    /* Walk comma-separated key=value pairs without modifying the header. */
    for (const char *p = header; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        if (len > 2 && p[0] == 't' && p[1] == '=') {
            char buf[24];
            char *stop = NULL;
            if (len - 2 >= sizeof buf)
                return CO_SIG_MALFORMED;
            memcpy(buf, p + 2, len - 2);
            buf[len - 2] = '\0';
            ts = strtoll(buf, &stop, 10);
            if (stop == buf || *stop != '\0' || ts < 0)
                return CO_SIG_MALFORMED;
        } else if (len > 3 && p[0] == 'v' && p[1] == '1' && p[2] == '=') {
            if (nv1 == CO_SIG_MAX_V1)
                return CO_SIG_MALFORMED; /* more than any rotation needs: refuse, do not skip */
            v1[nv1] = p + 3;
            v1_len[nv1] = len - 3;
            nv1++;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    if (ts < 0 || nv1 == 0)
        return CO_SIG_MALFORMED;
    sign_ts(secret, ts, body, body_len, expect);
    /* Try every v1 so the time taken does not tell which one matched. */
    for (size_t i = 0; i < nv1; i++)
        matched |= co_const_eq(v1[i], v1_len[i], expect, 64);
    if (!matched)
        return CO_SIG_MISMATCH;
    if (tolerance > 0 && llabs((long long)now - ts) > tolerance)
        return CO_SIG_STALE;
    return CO_SIG_OK;
}

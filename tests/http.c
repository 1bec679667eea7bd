/* See http.h. */
#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* A growable NUL-terminated buffer; oom is sticky. */
typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} buf;

static void buf_add(buf *b, const char *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *nd;

        while (cap < b->len + n + 1)
            cap *= 2;
        nd = realloc(b->data, cap);
        if (nd == NULL) {
            b->oom = true;
            return;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;

    buf_add(b, data, size * nmemb);
    return b->oom ? 0 : size * nmemb;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
    buf *b = ud;
    size_t n = size * nitems;

    /* Keep only the final response's block (after a 100 Continue, say). */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        b->len = 0;
    buf_add(b, data, n);
    return b->oom ? 0 : n;
}

bool co_http_timeout(const char *method, const char *url, const char *const headers[],
                     const char *body, size_t body_len, long timeout_ms, co_http_resp *resp)
{
    CURL *c;
    struct curl_slist *hl = NULL, *h;
    buf b = {0}, hb = {0};
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    char errbuf[CURL_ERROR_SIZE] = "";

    memset(resp, 0, sizeof *resp);
    c = curl_easy_init();
    if (c == NULL)
        goto fail;
    /* Never wait for "100 Continue" on a larger body. */
    h = curl_slist_append(hl, "Expect:");
    if (h == NULL)
        goto fail;
    hl = h;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        h = curl_slist_append(hl, headers[i]);
        if (h == NULL)
            goto fail;
        hl = h;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (body != NULL || strcmp(method, "POST") == 0) {
        /* curl keeps pointers to POSTFIELDS: body outlives the perform below. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);

fail:
    if (rc != CURLE_OK) {
        /* Leave the reason where a failing test can print it. */
        b.len = 0;
        buf_add(&b, errbuf[0] ? errbuf : curl_easy_strerror(rc),
                strlen(errbuf[0] ? errbuf : curl_easy_strerror(rc)));
        resp->status = 0;
    }
    /* body is never NULL for the caller's convenience (strstr on it). */
    buf_add(&b, "", 0);
    buf_add(&hb, "", 0);
    resp->body = b.data;
    resp->body_len = b.len;
    resp->headers = hb.data;
    curl_slist_free_all(hl);
    if (c != NULL)
        curl_easy_cleanup(c);
    return rc == CURLE_OK && !b.oom && !hb.oom;
}

bool co_http(const char *method, const char *url, const char *const headers[],
             const char *body, size_t body_len, co_http_resp *resp)
{
    return co_http_timeout(method, url, headers, body, body_len, 30000L, resp);
}

void co_http_resp_free(co_http_resp *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    free(resp->headers);
    memset(resp, 0, sizeof *resp);
}

bool co_http_header(const co_http_resp *resp, const char *name, char *out, size_t out_len)
{
    size_t nl = strlen(name);
    const char *line = resp->headers;

    if (line == NULL || out_len == 0)
        return false;
    while (*line != '\0') {
        const char *eol = strchr(line, '\n');
        const char *end = eol != NULL ? eol : line + strlen(line);

        if ((size_t)(end - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            size_t n;

            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            n = (size_t)(end - v);
            if (n >= out_len)
                n = out_len - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        if (eol == NULL)
            break;
        line = eol + 1;
    }
    return false;
}

json_t *co_http_json(const co_http_resp *resp)
{
    if (resp->body == NULL || resp->body_len == 0)
        return NULL;
    return json_loadb(resp->body, resp->body_len, 0, NULL);
}

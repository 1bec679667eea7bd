/* A tiny HTTP client for tests: calls the server and the mocks with libcurl.
 * A fresh CURL handle per call (no connection reuse), so every call is
 * independent; curl_global_init must have run (the test's main()). */
#ifndef CO_TEST_HTTP_H
#define CO_TEST_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct {
    long status;   /* 0 on transport failure */
    char *body;    /* malloc'ed, NUL-terminated (the NUL is not in body_len); never NULL
                    * after co_http returned true */
    size_t body_len;
    char *headers; /* raw header block of the final response ("Name: value\r\n"...) */
} co_http_resp;

/* method ("GET", "POST", "DELETE", ...), url, headers ("Name: value", NULL-terminated,
 * may be NULL), body (may be NULL), body_len. Waits up to 30 s.
 * Returns false only on transport failure (resp->status 0; resp->body may hold the
 * error text). resp must always be freed with co_http_resp_free. */
bool co_http(const char *method, const char *url, const char *const headers[],
             const char *body, size_t body_len, co_http_resp *resp);
/* The same with a transfer timeout of timeout_ms (>0). */
bool co_http_timeout(const char *method, const char *url, const char *const headers[],
                     const char *body, size_t body_len, long timeout_ms, co_http_resp *resp);
/* Frees what resp holds and zeroes it (safe on a zeroed or already freed resp). */
void co_http_resp_free(co_http_resp *resp);
/* Value of a response header (case-insensitive name, first occurrence, trimmed)
 * copied into out (truncated to out_len - 1); false if absent. */
bool co_http_header(const co_http_resp *resp, const char *name, char *out, size_t out_len);
/* Convenience: parse resp->body as JSON (caller json_decref's); NULL if not JSON. */
json_t *co_http_json(const co_http_resp *resp);

#endif

/* mock-shop: the demo shop's backend, as a mobile shop's own server would be.
 *
 * checkoutd trusts shopper JWTs that the shop's backend issues (AUTH_JWT_SECRET); this
 * is that backend for the local demo (make run) and the page tests. It serves the
 * storefront page (web/shop/, compiled in), signs a demo shopper in (a new user id and
 * its token, one per "phone"), puts a limited drop of one unit on sale (through
 * checkoutd's admin API, as the shop's back office would), and passes the shoppers'
 * calls through to checkoutd, so the page needs no CORS from checkoutd. The page
 * confirms mobile payments at the provider itself, with the publishable key and the
 * intent's client_secret, exactly as an app would.
 *
 *   GET  /                    the storefront (web/shop/index.html)
 *   GET  /shop/FILE           its script and style
 *   GET  /demo/config         {"stripe_api_base","publishable_key"}: what the page's
 *                             payment step needs (both public)
 *   POST /demo/session        {"user_id","token"}: a new demo shopper (token valid 1 h)
 *   POST /demo/drop           {"stock":n} (1..5, default 1): a new item on sale, as
 *                             POST /v1/admin/items answers it
 *   ANY  /api/v1/...          passed to checkoutd's /v1/... with the shopper's
 *                             Authorization, Idempotency-Key and Content-Type (no query
 *                             string; /v1/admin/ is not passed)
 *
 * Environment: MOCK_SHOP_LISTEN (127.0.0.1:8081), MOCK_SHOP_API_URL (checkoutd,
 * http://127.0.0.1:8080), MOCK_SHOP_STRIPE_URL (the provider the page pays at,
 * http://127.0.0.1:12111), MOCK_SHOP_PUBLISHABLE_KEY (pk_test_checkout_local),
 * AUTH_JWT_SECRET (required), ADMIN_API_KEY (for /demo/drop; without it drops are
 * refused). Secrets come from the environment only, never from flags. */
#include "co_jwt.h"
#include "co_web.h"
#include "../common/mockhttp.h"

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#define SHOP_BODY_MAX (64 * 1024)
#define SHOP_TOKEN_TTL 3600

static struct {
    const char *listen, *api, *stripe, *pk, *jwt_secret, *admin_key;
    char csp[512];
} g;

/* ================================================================ answers */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const void *body, size_t len, bool page)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (page) {
        MHD_add_response_header(r, "Content-Security-Policy", g.csp);
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    }
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Takes root. */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *root)
{
    char *text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
    enum MHD_Result ret;

    json_decref(root);
    if (text == NULL)
        mh_oom();
    ret = reply(c, status, "application/json", text, strlen(text), false);
    free(text);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *msg)
{
    return reply_json(c, status, json_pack("{s:{s:s,s:s}}", "error", "code", code,
                                           "message", msg));
}

static enum MHD_Result reply_file(struct MHD_Connection *c, const char *path)
{
    const co_web_asset *a = co_web_find(path);

    if (a == NULL)
        return reply_error(c, 404, "not_found", "No such file.");
    return reply(c, 200, a->content_type, a->data, a->len, true);
}

/* ================================================================ checkoutd */

typedef struct {
    co_buf body;
    char type[128];
} upstream;

static size_t on_body(char *p, size_t size, size_t n, void *cls)
{
    upstream *u = cls;

    if (!co_buf_append(&u->body, p, size * n, 4 * SHOP_BODY_MAX))
        return 0;
    return size * n;
}

/* Sends method path (under checkoutd's base) with body and the given headers; on
 * success *status and u hold checkoutd's answer. */
static bool call_api(const char *method, const char *path, const char *body, size_t len,
                     struct curl_slist *hdrs, long *status, upstream *u)
{
    CURL *h = curl_easy_init();
    char url[2048];
    char *ct = NULL;
    CURLcode rc;

    if (h == NULL)
        return false;
    snprintf(url, sizeof url, "%s%s", g.api, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, u);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(u->type, sizeof u->type, "%s", ct != NULL ? ct : "application/json");
    }
    curl_easy_cleanup(h);
    return rc == CURLE_OK;
}

static struct curl_slist *add_header(struct curl_slist *l, struct MHD_Connection *c,
                                     const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    char line[1024];

    if (v == NULL || strlen(v) > 900 || strpbrk(v, "\r\n") != NULL)
        return l;
    snprintf(line, sizeof line, "%s: %s", name, v);
    return curl_slist_append(l, line);
}

/* ANY /api/v1/...: the shopper's call, passed through. */
static enum MHD_Result proxy(struct MHD_Connection *c, const char *url, const char *method,
                             const mh_conn *cx)
{
    const char *path = url + 4;     /* "/v1/..." */
    struct curl_slist *hdrs = NULL;
    upstream u;
    long status = 0;
    bool ok;
    enum MHD_Result ret;

    if (strncmp(path, "/v1/", 4) != 0 || strncmp(path, "/v1/admin", 9) == 0 ||
        strpbrk(path, "?#\r\n ") != NULL || strstr(path, "..") != NULL)
        return reply_error(c, 404, "not_found", "The shop passes shopper calls only.");
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return reply_error(c, 405, "method_not_allowed", "GET or POST.");
    memset(&u, 0, sizeof u);
    hdrs = add_header(hdrs, c, MHD_HTTP_HEADER_AUTHORIZATION);
    hdrs = add_header(hdrs, c, "Idempotency-Key");
    hdrs = add_header(hdrs, c, MHD_HTTP_HEADER_CONTENT_TYPE);
    hdrs = curl_slist_append(hdrs, "Expect:");
    ok = call_api(method, path, cx->in.body, cx->in.len, hdrs, &status, &u);
    curl_slist_free_all(hdrs);
    if (!ok)
        ret = reply_error(c, 502, "shop_upstream_unreachable", "checkoutd did not answer.");
    else
        ret = reply(c, (unsigned)status, u.type, u.body.body != NULL ? u.body.body : "",
                    u.body.len, false);
    co_buf_free(&u.body);
    return ret;
}

/* ================================================================ demo endpoints */

static enum MHD_Result session_new(struct MHD_Connection *c)
{
    uuid_t id;
    char user[37];
    char *token;
    time_t now = time(NULL);

    uuid_generate_random(id);
    uuid_unparse_lower(id, user);
    token = co_jwt_sign(g.jwt_secret, user, (long long)now + SHOP_TOKEN_TTL, now);
    if (token == NULL)
        return reply_error(c, 500, "internal_error", "Could not sign a token.");
    {
        enum MHD_Result ret = reply_json(c, 201, json_pack("{s:s,s:s,s:I}", "user_id", user,
                                                           "token", token, "expires_in",
                                                           (json_int_t)SHOP_TOKEN_TTL));
        free(token);
        return ret;
    }
}

static enum MHD_Result drop_new(struct MHD_Connection *c, const mh_conn *cx)
{
    json_int_t stock = 1;
    json_t *in = NULL, *item;
    struct curl_slist *hdrs = NULL;
    char auth[600], sku[32], name[64], *body;
    unsigned char rnd[4];
    upstream u;
    long status = 0;
    bool ok;
    enum MHD_Result ret;
    FILE *f;

    if (g.admin_key == NULL)
        return reply_error(c, 503, "shop_not_configured",
                           "The shop has no ADMIN_API_KEY to put items on sale.");
    if (cx->in.len > 0) {
        in = json_loadb(cx->in.body, cx->in.len, 0, NULL);
        if (!json_is_object(in) ||
            (json_object_get(in, "stock") != NULL &&
             (!json_is_integer(json_object_get(in, "stock")) ||
              json_integer_value(json_object_get(in, "stock")) < 1 ||
              json_integer_value(json_object_get(in, "stock")) > 5))) {
            json_decref(in);
            return reply_error(c, 400, "invalid_request", "Send {\"stock\": 1 to 5}.");
        }
        if (json_object_get(in, "stock") != NULL)
            stock = json_integer_value(json_object_get(in, "stock"));
        json_decref(in);
    }
    f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(rnd, 1, sizeof rnd, f) != sizeof rnd) {
        if (f != NULL)
            fclose(f);
        return reply_error(c, 500, "internal_error", "No randomness.");
    }
    fclose(f);
    snprintf(sku, sizeof sku, "DROP-%02X%02X%02X%02X", rnd[0], rnd[1], rnd[2], rnd[3]);
    snprintf(name, sizeof name, "Phone Pro, limited drop %02X%02X", rnd[0], rnd[1]);
    item = json_pack("{s:s,s:s,s:I,s:s,s:I}", "sku", sku, "name", name, "price",
                     (json_int_t)119900, "currency", "usd", "stock", stock);
    body = item != NULL ? json_dumps(item, JSON_COMPACT) : NULL;
    json_decref(item);
    if (body == NULL)
        mh_oom();
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", g.admin_key);
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    memset(&u, 0, sizeof u);
    ok = call_api("POST", "/v1/admin/items", body, strlen(body), hdrs, &status, &u);
    curl_slist_free_all(hdrs);
    free(body);
    if (!ok)
        ret = reply_error(c, 502, "shop_upstream_unreachable", "checkoutd did not answer.");
    else
        ret = reply(c, (unsigned)status, u.type, u.body.body != NULL ? u.body.body : "",
                    u.body.len, false);
    co_buf_free(&u.body);
    return ret;
}

/* ================================================================ routing */

static enum MHD_Result handle(struct MHD_Connection *c, const char *url, const char *method,
                              const mh_conn *cx)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;

    if (cx->in.too_big)
        return reply_error(c, 413, "payload_too_large", "The body is over 64 KiB.");
    if (strncmp(url, "/api/", 5) == 0)
        return proxy(c, url, method, cx);
    if (get && (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0))
        return reply_file(c, "shop/index.html");
    if (get && strncmp(url, "/shop/", 6) == 0 && strchr(url + 6, '/') == NULL)
        return reply_file(c, url + 1);
    if (get && strcmp(url, "/demo/config") == 0)
        return reply_json(c, 200, json_pack("{s:s,s:s}", "stripe_api_base", g.stripe,
                                            "publishable_key", g.pk));
    if (post && strcmp(url, "/demo/session") == 0)
        return session_new(c);
    if (post && strcmp(url, "/demo/drop") == 0)
        return drop_new(c, cx);
    if (get && strcmp(url, "/healthz") == 0)
        return reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
    return reply_error(c, 404, "not_found", "No such page.");
}

static const mh_handler http = {
    .body_max = SHOP_BODY_MAX,
    .drop_too_big = true,
    .headers = NULL,
    .complete = handle,
};

/* The provider's origin for connect-src: scheme://host[:port] of MOCK_SHOP_STRIPE_URL. */
static bool make_csp(void)
{
    const char *s = g.stripe, *p = strstr(s, "://");
    size_t n;

    if (p == NULL || (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0))
        return false;
    n = (size_t)(p + 3 - s) + strcspn(p + 3, "/?#");
    if (strcspn(s, " ;'\"\r\n") < n)
        return false;
    snprintf(g.csp, sizeof g.csp,
             "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
             "connect-src 'self' %.*s; base-uri 'none'; form-action 'none'; "
             "frame-ancestors 'none'", (int)n, s);
    return true;
}

int main(int argc, char **argv)
{
    mh_listen l;
    sigset_t sigs;
    struct MHD_Daemon *d;
    static char stripe[512];
    size_t n;

    mh_init("mock-shop");
    if (argc > 1) {
        fputs("usage: AUTH_JWT_SECRET=... [ADMIN_API_KEY=...] mock-shop\n"
              "settings: MOCK_SHOP_LISTEN, MOCK_SHOP_API_URL, MOCK_SHOP_STRIPE_URL,\n"
              "MOCK_SHOP_PUBLISHABLE_KEY (see mocks/shop/shop.c)\n",
              strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    g.listen = mh_env_or("MOCK_SHOP_LISTEN", "127.0.0.1:8081");
    g.api = mh_env_or("MOCK_SHOP_API_URL", "http://127.0.0.1:8080");
    g.stripe = mh_env_or("MOCK_SHOP_STRIPE_URL", "http://127.0.0.1:12111");
    g.pk = mh_env_or("MOCK_SHOP_PUBLISHABLE_KEY", "pk_test_checkout_local");
    g.jwt_secret = mh_env_or("AUTH_JWT_SECRET", NULL);
    g.admin_key = mh_env_or("ADMIN_API_KEY", NULL);
    if (g.jwt_secret == NULL) {
        fputs("mock-shop: AUTH_JWT_SECRET is required (it signs the demo shoppers' tokens)\n",
              stderr);
        return 2;
    }
    n = strlen(g.stripe);
    if (n == 0 || n >= sizeof stripe)
        n = 0;
    memcpy(stripe, g.stripe, n);
    while (n > 0 && stripe[n - 1] == '/')
        n--;
    stripe[n] = '\0';
    g.stripe = stripe;
    if (!make_csp()) {
        fputs("mock-shop: MOCK_SHOP_STRIPE_URL must be an http(s) URL\n", stderr);
        return 2;
    }
    if (!mh_parse_listen(g.listen, &l))
        return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    json_object_seed(0);
    mh_block_signals(&sigs);
    /* A shopper's call waits on checkoutd: a thread per connection keeps that local. */
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_POLL | MHD_USE_ERROR_LOG | (l.v6 ? MHD_USE_IPv6 : 0),
                         0, NULL, NULL, mh_on_request, (void *)&http,
                         MHD_OPTION_EXTERNAL_LOGGER, mh_log, NULL,      /* must be first */
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&l.addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                         MHD_OPTION_NOTIFY_COMPLETED, mh_completed, NULL,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mock-shop: cannot listen on %s\n", g.listen);
        curl_global_cleanup();
        return 1;
    }
    mh_announce(d, &l);
    mh_wait_signal(&sigs);
    MHD_stop_daemon(d);
    curl_global_cleanup();
    return 0;
}

/* The operators' page: GET /admin (the page), GET /admin/{file} (its script and
 * style, compiled in from web/admin/), and GET /v1/admin/overview (the JSON it polls).
 *
 * A browser cannot put a bearer on a navigation, so the page is served under HTTP
 * Basic auth: any user name, ADMIN_API_KEY as the password (the browser asks once,
 * keeps it for the tab, and sends it again with the page's own same-origin requests).
 * The key is never in a URL, in the page or in its storage. Only these three GETs
 * take Basic; they change nothing, and the overview answers no other origin (no CORS),
 * so a page elsewhere that makes the browser send them learns nothing. Every other
 * admin endpoint still takes the bearer only. The page's files carry a strict
 * Content-Security-Policy (co_web.c): no inline script or style, nothing from
 * another origin, no framing. */
#include "co_app.h"
#include "co_sig.h"
#include "co_web.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OVERVIEW_ORDERS 25
#define OVERVIEW_ITEMS 50
#define OVERVIEW_EVENTS 15

static const char *const challenge[] = {
    "WWW-Authenticate", "Basic realm=\"checkoutd admin\", charset=\"UTF-8\"",
    "Cache-Control", "no-store",
    NULL,
};
static const char *const no_store[] = {"Cache-Control", "no-store", NULL};

/* True when Authorization is Basic with ADMIN_API_KEY as the password. */
static bool basic_is_admin(co_worker *w, const co_req *req)
{
    const char *key = w->app->cfg.admin_api_key;
    const char *b64;
    size_t n, len;
    unsigned char *dec;
    const char *colon;
    bool ok = false;
    int got;

    if (req->authorization == NULL || strncasecmp(req->authorization, "Basic ", 6) != 0)
        return false;
    b64 = req->authorization + 6;
    n = strlen(b64);
    if (n == 0 || n % 4 != 0 || n > 4096)
        return false;
    dec = malloc(n / 4 * 3 + 1);
    if (dec == NULL)
        return false;
    got = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (got >= 0) {
        len = (size_t)got;
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        for (size_t i = n; i > n - 2 && b64[i - 1] == '=' && len > 0; i--)
            len--;
        dec[len] = '\0';
        colon = memchr(dec, ':', len);
        if (colon != NULL) {
            const char *pass = colon + 1;
            size_t plen = len - (size_t)(pass - (const char *)dec);

            ok = co_const_eq(pass, plen, key, strlen(key));
        }
    }
    OPENSSL_cleanse(dec, n / 4 * 3 + 1);
    free(dec);
    return ok;
}

static bool page_auth(co_worker *w, const co_req *req, co_resp *resp)
{
    if (co_api_is_admin(w, req) || basic_is_admin(w, req))
        return true;
    co_resp_error(resp, CO_ERR_unauthenticated,
                  "Send Authorization: Bearer <ADMIN_API_KEY>, or sign in (Basic) with the "
                  "user name admin and ADMIN_API_KEY as the password.", NULL);
    resp->headers = challenge;
    return false;
}

static void send_file(co_resp *resp, const char *path)
{
    const co_web_asset *a = co_web_find(path);

    if (a == NULL) {
        co_resp_error(resp, CO_ERR_not_found, NULL, NULL);
        return;
    }
    co_resp_raw(resp, 200, (const char *)a->data, a->len);
    resp->content_type = a->content_type;
    resp->headers = co_web_headers;
}

/* GET /admin */
void co_api_admin_page(co_worker *w, const co_req *req, co_resp *resp)
{
    if (page_auth(w, req, resp))
        send_file(resp, "admin/index.html");
}

/* GET /admin/{file}: the page's script and style. */
void co_api_admin_asset(co_worker *w, const co_req *req, co_resp *resp)
{
    char path[96];

    if (!page_auth(w, req, resp))
        return;
    if (req->param == NULL || strlen(req->param) > 64 || strchr(req->param, '/') != NULL ||
        strcmp(req->param, "index.html") == 0) {
        co_resp_error(resp, CO_ERR_not_found, NULL, NULL);
        return;
    }
    memcpy(path, "admin/", 6);
    memcpy(path + 6, req->param, strlen(req->param) + 1);
    send_file(resp, path);
}

/* GET /v1/admin/overview */
void co_api_admin_overview(co_worker *w, const co_req *req, co_resp *resp)
{
    char *json = NULL;
    co_store_rc rc;

    if (!page_auth(w, req, resp))
        return;
    rc = co_store_admin_overview(w->db, OVERVIEW_ORDERS, OVERVIEW_ITEMS, OVERVIEW_EVENTS, &json);
    if (rc == CO_STORE_OK && json != NULL) {
        co_resp_raw(resp, 200, json, strlen(json));
        resp->headers = no_store;
    } else {
        co_api_store_error(resp, rc);
    }
    free(json);
}

/* GET /admin, its files and GET /v1/admin/overview over HTTP, against a real
 * checkoutd, mock-stripe and Postgres: who may read them (the bearer, or HTTP
 * Basic with the admin key as the password, on these read-only routes only), the
 * page's headers (strict CSP), and what the overview holds after a mobile-flow
 * order. What the page shows in a browser is the suite "pages" (tests/pages). */
#include "server.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_test_server srv;

/* "Authorization: Basic base64(user:pass)" into out. */
static void basic(char *out, size_t n, const char *user, const char *pass)
{
    char plain[256];
    unsigned char b64[400];

    snprintf(plain, sizeof plain, "%s:%s", user, pass);
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
    snprintf(out, n, "Authorization: Basic %s", (const char *)b64);
}

static long get(const char *path, const char *auth_header, co_http_resp *r)
{
    char url[512];
    const char *h[] = {auth_header, NULL};

    co_http_resp_free(r);
    snprintf(url, sizeof url, "%s%s", srv.url, path);
    ck_assert(co_http("GET", url, auth_header != NULL ? h : NULL, NULL, 0, r));
    return r->status;
}

/* co_test_call into r, which may hold an earlier answer. */
static long call(const char *method, const char *path, const char *bearer, const char *body,
                 co_http_resp *r)
{
    co_http_resp_free(r);
    return co_test_call(&srv, method, path, bearer, body, r);
}

START_TEST(page_and_overview_need_the_admin_key)
{
    co_http_resp r = {0};
    char ok[512], wrong[512], bearer[256], hdr[512], user[37];
    char *tok;

    basic(ok, sizeof ok, "admin", CO_TEST_ADMIN_KEY);
    basic(wrong, sizeof wrong, "admin", "adm_not_the_key");
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", CO_TEST_ADMIN_KEY);
    co_test_uuid(user);
    tok = co_test_token(user, 600);

    /* Nothing, a wrong password, a shopper's token: 401 with a Basic challenge. */
    ck_assert_int_eq(get("/admin", NULL, &r), 401);
    ck_assert(co_http_header(&r, "WWW-Authenticate", hdr, sizeof hdr));
    ck_assert_str_eq(hdr, "Basic realm=\"checkoutd admin\", charset=\"UTF-8\"");
    ck_assert_int_eq(get("/admin", wrong, &r), 401);
    ck_assert_int_eq(get("/admin/app.js", wrong, &r), 401);
    ck_assert_int_eq(get("/v1/admin/overview", wrong, &r), 401);
    ck_assert_int_eq(call("GET", "/v1/admin/overview", tok, NULL, &r), 401);
    ck_assert_int_eq(call("GET", "/admin", tok, NULL, &r), 401);

    /* The page and its files, with Basic or the bearer. */
    ck_assert_int_eq(get("/admin", ok, &r), 200);
    ck_assert(co_http_header(&r, "Content-Type", hdr, sizeof hdr));
    ck_assert_str_eq(hdr, "text/html; charset=utf-8");
    ck_assert(strstr(r.body, "<script src=\"/admin/app.js\" defer></script>") != NULL);
    ck_assert(strstr(r.body, CO_TEST_ADMIN_KEY) == NULL);
    ck_assert(co_http_header(&r, "Content-Security-Policy", hdr, sizeof hdr));
    ck_assert(strstr(hdr, "default-src 'none'") != NULL);
    ck_assert(strstr(hdr, "script-src 'self'") != NULL);
    ck_assert(strstr(hdr, "frame-ancestors 'none'") != NULL);
    ck_assert(co_http_header(&r, "X-Frame-Options", hdr, sizeof hdr));
    ck_assert_str_eq(hdr, "DENY");
    ck_assert(co_http_header(&r, "Cache-Control", hdr, sizeof hdr));
    ck_assert_str_eq(hdr, "no-store");
    ck_assert_int_eq(get("/admin/app.js", bearer, &r), 200);
    ck_assert(co_http_header(&r, "Content-Type", hdr, sizeof hdr));
    ck_assert_str_eq(hdr, "text/javascript; charset=utf-8");
    ck_assert(strstr(r.body, "/v1/admin/overview") != NULL);
    ck_assert_int_eq(get("/admin/app.css", ok, &r), 200);
    ck_assert_int_eq(get("/admin/no-such.js", ok, &r), 404);
    ck_assert_int_eq(get("/admin/index.html", ok, &r), 404);
    ck_assert_int_eq(get("/v1/admin/overview", ok, &r), 200);
    ck_assert_int_eq(get("/v1/admin/overview", bearer, &r), 200);

    /* Basic opens these read-only routes only: the rest of the admin API wants the bearer. */
    ck_assert_int_eq(get("/v1/admin/orders", ok, &r), 401);
    ck_assert_int_eq(get("/v1/admin/orders", bearer, &r), 200);
    co_http_resp_free(&r);
    free(tok);
}
END_TEST

static json_t *find(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        if (strcmp(co_test_jstr(v, key, NULL), value) == 0)
            return v;
    }
    return NULL;
}

START_TEST(overview_shows_the_order_its_timeline_and_the_stock)
{
    co_http_resp r = {0};
    char item[37], user[37], order[37], pi[64], body[256];
    json_t *j, *o, *it, *hist, *h;
    size_t i;
    bool awaiting = false, confirmed = false;

    ck_assert_int_eq(call("POST", "/v1/admin/items", CO_TEST_ADMIN_KEY,
                                  "{\"sku\":\"OVW-1\",\"name\":\"Overview item\",\"price\":700,"
                                  "\"currency\":\"usd\",\"stock\":3}", &r), 201);
    j = co_http_json(&r);
    snprintf(item, sizeof item, "%s", co_test_jstr(j, "id", NULL));
    json_decref(j);

    /* The mobile flow: 202, the app confirms at the provider, then tells us. */
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 2, NULL);
    co_test_checkout_order(&srv, user, "ovw-1", body, 202, order, pi);
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);

    ck_assert_int_eq(call("GET", "/v1/admin/overview", CO_TEST_ADMIN_KEY, NULL,
                                  &r), 200);
    j = co_http_json(&r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(co_test_jstr(j, "object", NULL), "admin_overview");
    ck_assert(strlen(co_test_jstr(j, "generated_at", NULL)) > 0);
    o = json_array_get(json_object_get(j, "orders"), 0);
    ck_assert_msg(o != NULL, "no orders in %s", r.body);
    ck_assert_str_eq(co_test_jstr(o, "id", NULL), order);     /* the latest activity */
    ck_assert_str_eq(co_test_jstr(o, "status", NULL), "confirmed");
    ck_assert_str_eq(co_test_jstr(o, "flow", NULL), "mobile");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "amount")), 1400);
    hist = json_object_get(o, "history");
    json_array_foreach(hist, i, h) {
        awaiting = awaiting || strcmp(co_test_jstr(h, "to", NULL), "awaiting_payment") == 0;
        confirmed = confirmed || strcmp(co_test_jstr(h, "to", NULL), "confirmed") == 0;
    }
    ck_assert_msg(awaiting && confirmed, "the timeline lacks a hop: %s", r.body);
    it = find(json_object_get(j, "items"), "sku", "OVW-1");
    ck_assert_ptr_nonnull(it);
    ck_assert_str_eq(co_test_jstr(it, "id", NULL), item);
    ck_assert_int_eq(json_integer_value(json_object_get(it, "stock_available")), 1);
    ck_assert(json_is_object(json_object_get(j, "live_orders")));
    ck_assert(json_is_array(json_object_get(j, "payment_events")));
    ck_assert(json_is_array(json_object_get(j, "restock_events")));
    ck_assert(json_is_integer(json_object_get(json_object_get(j, "outbox"), "pending")));
    ck_assert(json_is_array(json_object_get(json_object_get(j, "outbox"), "recent")));
    json_decref(j);

    /* A live order is counted by its status. */
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, NULL);
    co_test_checkout_order(&srv, user, "ovw-2", body, 202, order, pi);
    ck_assert_int_eq(call("GET", "/v1/admin/overview", CO_TEST_ADMIN_KEY, NULL,
                                  &r), 200);
    j = co_http_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "live_orders"),
                                                        "awaiting_payment")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         find(json_object_get(j, "items"), "sku", "OVW-1"), "stock_available")),
                     0);
    ck_assert_str_eq(co_test_jstr(json_array_get(json_object_get(j, "orders"), 0), "id", NULL),
                     order);
    json_decref(j);
    co_http_resp_free(&r);
}
END_TEST

static Suite *admin_page_suite(void)
{
    Suite *s = suite_create("admin_page");
    TCase *tc = co_test_tcase(s, "http", 60);

    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_add_test(tc, page_and_overview_need_the_admin_key);
    tcase_add_test(tc, overview_shows_the_order_its_timeline_and_the_stock);
    return s;
}

int main(void)
{
    return co_test_run_http(admin_page_suite());
}

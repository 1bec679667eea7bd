/* The log lines (src/log/co_log.c): JSON with the keys, the thread's context,
 * escaping, folding, scrubbing of secrets, and the rate limit of warnings.
 * Each test sends stderr to a file and reads back what was written. */
#include "harness.h"

#include "co_log.c"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out_path[64];
static int saved_err = -1;

static void capture(void)
{
    int fd;

    snprintf(out_path, sizeof out_path, "/tmp/co_test_log_XXXXXX");
    fd = mkstemp(out_path);
    ck_assert_int_ge(fd, 0);
    saved_err = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    min_level = CO_LOG_DEBUG;
}

/* What was written since capture(), one parsed line each (a json array);
 * fails on a line that is not a JSON object. */
static json_t *captured(void)
{
    FILE *f = fopen(out_path, "r");
    char line[65536];
    json_t *all = json_array();

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f) != NULL) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);

        ck_assert_msg(j != NULL && json_is_object(j), "not JSON (%s): %s", err.text, line);
        json_array_append_new(all, j);
    }
    fclose(f);
    return all;
}

static void uncapture(void)
{
    if (saved_err >= 0) {
        dup2(saved_err, STDERR_FILENO);
        close(saved_err);
        saved_err = -1;
    }
    unlink(out_path);
}

static const char *s_of(json_t *line, const char *key)
{
    const char *v = json_string_value(json_object_get(line, key));

    return v != NULL ? v : "";
}

START_TEST(a_line_is_one_json_object_with_the_keys)
{
    json_t *lines, *l;
    const char *ts;

    capture();
    CO_INFO("http", "hello %d", 42);
    lines = captured();
    ck_assert_int_eq(json_array_size(lines), 1);
    l = json_array_get(lines, 0);
    ck_assert_str_eq(s_of(l, "level"), "info");
    ck_assert_str_eq(s_of(l, "component"), "http");
    ck_assert_str_eq(s_of(l, "msg"), "hello 42");
    ts = s_of(l, "ts");
    /* RFC 3339 UTC with milliseconds: 2026-12-01T12:00:00.123Z */
    ck_assert_int_eq(strlen(ts), 24);
    ck_assert_msg(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z', "%s", ts);
    ck_assert_ptr_null(json_object_get(l, "request_id"));
    json_decref(lines);
    uncapture();
}
END_TEST

START_TEST(the_threads_context_and_fields_are_keys)
{
    json_t *lines, *l;
    co_log_field f[] = {CO_LOG_STR("order_id", "o-explicit"), CO_LOG_INT("status", 201),
                        CO_LOG_MS("duration_ms", 1.5), CO_LOG_BOOL("replayed", true),
                        CO_LOG_STR("absent", NULL)};

    capture();
    co_log_ctx_request("req_1");
    co_log_ctx_order("o-ctx");
    co_log_ctx_step("reserved");
    CO_WARN("saga", "with context");
    CO_LOGF(CO_LOG_INFO, "http", f, "with fields");
    co_log_ctx_clear();
    CO_INFO("saga", "cleared");
    lines = captured();
    ck_assert_int_eq(json_array_size(lines), 3);
    l = json_array_get(lines, 0);
    ck_assert_str_eq(s_of(l, "request_id"), "req_1");
    ck_assert_str_eq(s_of(l, "order_id"), "o-ctx");
    ck_assert_str_eq(s_of(l, "step"), "reserved");
    l = json_array_get(lines, 1);
    ck_assert_str_eq(s_of(l, "request_id"), "req_1");
    ck_assert_str_eq(s_of(l, "order_id"), "o-explicit"); /* the field wins, no duplicate key */
    ck_assert_int_eq(json_integer_value(json_object_get(l, "status")), 201);
    ck_assert(json_real_value(json_object_get(l, "duration_ms")) == 1.5);
    ck_assert(json_is_true(json_object_get(l, "replayed")));
    ck_assert_ptr_null(json_object_get(l, "absent"));
    l = json_array_get(lines, 2);
    ck_assert_ptr_null(json_object_get(l, "request_id"));
    ck_assert_ptr_null(json_object_get(l, "order_id"));
    json_decref(lines);
    uncapture();
}
END_TEST

START_TEST(everything_is_escaped_and_messages_folded)
{
    json_t *lines;
    const char *msg, *v;
    co_log_field f[] = {CO_LOG_STR("raw", "a\nb\"c\\\x01\x7f")};

    capture();
    /* What PQerrorMessage gives: several lines, a tab, a trailing newline. */
    CO_ERROR("db", "%s", "FATAL:  terminating connection\nDETAIL:  the admin\n\tsaid so\n");
    CO_LOGF(CO_LOG_INFO, "x", f, "quote \" backslash \\ bell \x07 bad \xff\xfe utf8 \xc3\xa9 "
                                 "overlong \xc0\xaf surrogate \xed\xa0\x80 end");
    lines = captured();
    ck_assert_int_eq(json_array_size(lines), 2);
    ck_assert_str_eq(s_of(json_array_get(lines, 0), "msg"),
                     "FATAL: terminating connection DETAIL: the admin said so");
    msg = s_of(json_array_get(lines, 1), "msg");
    ck_assert_str_eq(msg, "quote \" backslash \\ bell \x07 bad \xef\xbf\xbd\xef\xbf\xbd utf8 "
                          "\xc3\xa9 overlong \xef\xbf\xbd\xef\xbf\xbd surrogate "
                          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    v = s_of(json_array_get(lines, 1), "raw");
    ck_assert_str_eq(v, "a\nb\"c\\\x01\x7f"); /* values are escaped, not folded */
    json_decref(lines);
    uncapture();
}
END_TEST

START_TEST(secrets_and_card_numbers_never_reach_a_line)
{
    static const char *const secret[] = {
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "whsec_abcdef0123456789",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "Bearer adm_live_key_1234",
        "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
        "4242424242424242",
        "4000 0000 0000 3220",
        "5555-5555-5555-4444",
        "restock-super-secret",
    };
    json_t *lines;
    co_log_field f[] = {CO_LOG_STR("auth", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x")};

    capture();
    co_log_secret("restock-super-secret");
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        CO_INFO("x", "value <%s> end", secret[i]);
    CO_LOGF(CO_LOG_INFO, "x", f, "field");
    /* Look-alikes that are not secrets stay. */
    CO_INFO("x", "order 123e4567-e89b-12d3-a456-426614174000 amount 1999 at 1733059200123 "
                 "pi_3MtwBwLkdIwHu7ix28a3tqPa card 4242");
    lines = captured();
    ck_assert_int_eq(json_array_size(lines), sizeof secret / sizeof secret[0] + 2);
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++) {
        const char *msg = s_of(json_array_get(lines, i), "msg");
        const char *keep = strncmp(secret[i], "pi_", 3) == 0 ? "pi_3MtwBwLkdIwHu7ix28a3tqPa" : "";

        ck_assert_msg(strstr(msg, REDACTED) != NULL, "not redacted: %s", msg);
        ck_assert_msg(strstr(msg, secret[i]) == NULL, "leaked: %s", msg);
        ck_assert_msg(strstr(msg, keep) != NULL, "%s", msg);
    }
    ck_assert_str_eq(s_of(json_array_get(lines, sizeof secret / sizeof secret[0]), "auth"),
                     "Authorization: Bearer " REDACTED);
    ck_assert_str_eq(s_of(json_array_get(lines, sizeof secret / sizeof secret[0] + 1), "msg"),
                     "order 123e4567-e89b-12d3-a456-426614174000 amount 1999 at 1733059200123 "
                     "pi_3MtwBwLkdIwHu7ix28a3tqPa card 4242");
    json_decref(lines);
    uncapture();
}
END_TEST

START_TEST(warnings_of_one_site_are_rate_limited_then_counted)
{
    json_t *lines, *last;
    int from_site = 0;

    capture();
    for (int i = 0; i < 100; i++) {
        CO_WARN("db", "connect failed: attempt %d", i);
        if (i % 10 == 0)
            CO_ERROR("stripe", "another site %d", i);
        CO_INFO("http", "info is never limited %d", i);
    }
    co_log_flush();
    lines = captured();
    for (size_t i = 0; i < json_array_size(lines); i++)
        if (strncmp(s_of(json_array_get(lines, i), "msg"), "connect failed", 14) == 0)
            from_site++;
    ck_assert_int_eq(from_site, CO_LOG_BURST);
    /* 5 warnings + 5 errors + 100 infos + two summaries (95 and 5 suppressed). */
    ck_assert_int_eq(json_array_size(lines), CO_LOG_BURST * 2 + 100 + 2);
    /* The two summaries come last, in either order. */
    for (size_t i = json_array_size(lines) - 2; i < json_array_size(lines); i++) {
        bool db;

        last = json_array_get(lines, i);
        db = strcmp(s_of(last, "component"), "db") == 0;
        ck_assert_str_eq(s_of(last, "component"), db ? "db" : "stripe");
        ck_assert_str_eq(s_of(last, "level"), "warn");
        ck_assert_int_eq(json_integer_value(json_object_get(last, "suppressed")),
                         db ? 100 - CO_LOG_BURST : 10 - CO_LOG_BURST);
        ck_assert_msg(strstr(s_of(last, "site"), "test_co_log.c:") != NULL, "%s",
                      s_of(last, "site"));
    }
    json_decref(lines);
    uncapture();
}
END_TEST

static int evaluated;

static int touch(void)
{
    return ++evaluated;
}

START_TEST(levels_below_the_minimum_print_nothing_and_cost_nothing)
{
    json_t *lines;

    capture();
    min_level = CO_LOG_INFO;
    CO_DEBUG("x", "never %d", touch());
    CO_INFO("x", "shown %d", touch());
    lines = captured();
    ck_assert_int_eq(json_array_size(lines), 1);
    ck_assert_int_eq(evaluated, 1);
    json_decref(lines);
    uncapture();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/src/co_log");
    TCase *tc = co_test_tcase(s, "co_log", 0);

    tcase_add_test(tc, a_line_is_one_json_object_with_the_keys);
    tcase_add_test(tc, the_threads_context_and_fields_are_keys);
    tcase_add_test(tc, everything_is_escaped_and_messages_folded);
    tcase_add_test(tc, secrets_and_card_numbers_never_reach_a_line);
    tcase_add_test(tc, warnings_of_one_site_are_rate_limited_then_counted);
    tcase_add_test(tc, levels_below_the_minimum_print_nothing_and_cost_nothing);
    return co_test_run(s);
}

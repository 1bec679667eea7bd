/* The store's one SQLSTATE table (src/store_db.c): each SQLSTATE our SQL
 * functions raise becomes one refusal, and each refusal one API error. */
#include "harness.h"
#include "store.h"

#include <stdio.h>
#include <string.h>

static co_store_refusal refusal_of(co_db_status st, const char *sqlstate, const char *detail)
{
    co_dbr r;
    co_store_refusal out;

    memset(&r, 0, sizeof r);
    r.status = st;
    snprintf(r.sqlstate, sizeof r.sqlstate, "%s", sqlstate);
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    co_store_refusal_of(&r, &out);
    return out;
}

START_TEST(our_sqlstates_map_to_refusals_and_errors)
{
    static const struct {
        const char *sqlstate;
        co_refusal kind;
        const char *code; /* the wire code of the API error */
    } rows[] = {
        {"CK400", CO_REFUSAL_INVALID, "invalid_request"},
        {"CK404", CO_REFUSAL_NOT_FOUND, "item_not_found"},
        {"CK409", CO_REFUSAL_SHORT, "out_of_stock"},
        {"CK410", CO_REFUSAL_GONE, "order_state_conflict"},
        {"23505", CO_REFUSAL_DUPLICATE, "sku_exists"},
        {"22003", CO_REFUSAL_RANGE, "invalid_request"},
        {"42P01", CO_REFUSAL_OTHER, "internal_error"},
    };

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        co_store_refusal f = refusal_of(CO_DB_HARD, rows[i].sqlstate, "items[0].item_id");

        ck_assert_int_eq(f.kind, rows[i].kind);
        ck_assert_str_eq(f.detail, "items[0].item_id");
        ck_assert_str_eq(co_err_get(co_store_refusal_err(f.kind))->code, rows[i].code);
    }
}
END_TEST

START_TEST(only_hard_errors_are_refusals)
{
    ck_assert_int_eq(refusal_of(CO_DB_SOFT, "40001", "").kind, CO_REFUSAL_NONE);
    ck_assert_int_eq(refusal_of(CO_DB_ROWS, "", "").kind, CO_REFUSAL_NONE);
    ck_assert_int_eq(co_store_refusal_err(CO_REFUSAL_NONE), CO_OK);
}
END_TEST

START_TEST(four_values_map_one_to_one)
{
    ck_assert_int_eq(co_store_rc_of(CO_DB_ROWS), CO_STORE_OK);
    ck_assert_int_eq(co_store_rc_of(CO_DB_NONE), CO_STORE_NONE);
    ck_assert_int_eq(co_store_rc_of(CO_DB_SOFT), CO_STORE_RETRY);
    ck_assert_int_eq(co_store_rc_of(CO_DB_HARD), CO_STORE_FAILED);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/src/store_db");
    TCase *tc = tcase_create("store_db");

    tcase_add_test(tc, our_sqlstates_map_to_refusals_and_errors);
    tcase_add_test(tc, only_hard_errors_are_refusals);
    tcase_add_test(tc, four_values_map_one_to_one);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

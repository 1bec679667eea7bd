/* The saga through its ports: a scripted payment port (no provider, no HTTP)
 * and the real store on a real PostgreSQL database. Each case checks the
 * order's end state, the answer, the stock and the exact provider calls. */
#include "harness.h"
#include "steps.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_test_db db;
static PGconn *conn;
static co_db *store_db;

/* ------------------------------------------------- a scripted payment port */

typedef struct {
    co_payment_result create, retrieve, capture, cancel, refund;
    co_intent_status create_status, retrieve_status;
    char calls[16][96]; /* "create <key>", "capture <key>", ... */
    int n_calls;
} fake_pay;

static void note(fake_pay *f, const char *what, const char *key)
{
    if (f->n_calls < 16)
        snprintf(f->calls[f->n_calls++], sizeof f->calls[0], "%s %s", what, key ? key : "-");
}

static co_payment_result answer(co_payment_result r, co_intent_status st, co_payment *out)
{
    memset(out, 0, sizeof *out);
    out->result = r;
    out->status = st;
    snprintf(out->intent, sizeof out->intent, "pi_fake");
    snprintf(out->client_secret, sizeof out->client_secret, "pi_fake_secret_x");
    if (r == CO_PAYMENT_DECLINED) {
        snprintf(out->code, sizeof out->code, "card_declined");
        snprintf(out->decline_code, sizeof out->decline_code, "insufficient_funds");
    }
    return r;
}

static co_payment_result f_create(void *impl, const co_intent_params *p, const char *key,
                                  co_payment *out)
{
    fake_pay *f = impl;

    (void)p;
    note(f, "create", key);
    return answer(f->create, f->create_status, out);
}

static co_payment_result f_retrieve(void *impl, const char *intent, co_payment *out)
{
    fake_pay *f = impl;

    note(f, "retrieve", intent);
    return answer(f->retrieve, f->retrieve_status, out);
}

static co_payment_result f_capture(void *impl, const char *intent, const char *key,
                                   co_payment *out)
{
    fake_pay *f = impl;

    (void)intent;
    note(f, "capture", key);
    return answer(f->capture, CO_INTENT_SUCCEEDED, out);
}

static co_payment_result f_cancel(void *impl, const char *intent, const char *key,
                                  co_payment *out)
{
    fake_pay *f = impl;

    (void)intent;
    note(f, "cancel", key);
    return answer(f->cancel, CO_INTENT_CANCELED, out);
}

static co_payment_result f_refund(void *impl, const char *intent, const char *key,
                                  co_payment *out)
{
    fake_pay *f = impl;

    (void)intent;
    note(f, "refund", key);
    return answer(f->refund, CO_INTENT_SUCCEEDED, out);
}

static fake_pay pay;
static co_saga saga;
static char item[37];

static void setup(void)
{
    co_test_db_create(&db);
    conn = co_test_connect(&db);
    store_db = co_db_open(db.url);
    co_test_item(conn, "UNIT-1", 1200, 1, item);
    memset(&pay, 0, sizeof pay);
    pay.create_status = CO_INTENT_REQUIRES_CAPTURE;
    pay.retrieve_status = CO_INTENT_REQUIRES_CAPTURE;
    saga = (co_saga){
        .store = co_store_port_pg(store_db),
        .pay = {.impl = &pay, .create = f_create, .retrieve = f_retrieve, .capture = f_capture,
                .cancel = f_cancel, .refund = f_refund},
        .owner = "unit-test", .lease_seconds = 60,
    };
}

static void teardown(void)
{
    co_db_close(store_db);
    PQfinish(conn);
    co_test_db_drop(&db);
}

/* --------------------------------------------------------------- helpers */

static char order_id[37], user[37], cart[128];

/* One checkout of the item (server flow with pm, else mobile) under key. */
static void checkout(const char *pm, const char *key, co_checkout_result *out)
{
    co_checkout_args a = {
        .user_id = user, .idempotency_key = key, .request_hash = "h1", .order_id = order_id,
        .items_json = cart, .mobile = pm == NULL, .payment_method = pm, .ttl_seconds = 900,
        .lease_seconds = 60, .owner = "unit-test",
    };

    co_saga_checkout(&saga, &a, out);
}

static void fresh_order(void)
{
    co_test_uuid(order_id);
    co_test_uuid(user);
    snprintf(cart, sizeof cart, "[{\"item_id\":\"%s\",\"quantity\":1}]", item);
}

static void status_of(char *out, size_t n)
{
    const char *p[1] = {order_id};

    co_test_strp(conn, out, n, "SELECT status FROM orders WHERE id = $1", 1, p);
}

static long long stock(void)
{
    const char *p[1] = {item};

    return co_test_llp(conn, "SELECT co_item_available($1)", 1, p);
}

static void assert_calls(const char *const *want, int n)
{
    char key[96];

    ck_assert_int_eq(pay.n_calls, n);
    for (int i = 0; i < n; i++) {
        const char *sp = strchr(want[i], ' ');
        /* "capture :capture" stands for "capture <order>:capture" */
        if (sp != NULL && sp[1] == ':')
            snprintf(key, sizeof key, "%.*s %s%s", (int)(sp - want[i]), want[i], order_id,
                     sp + 1);
        else
            snprintf(key, sizeof key, "%s", want[i]);
        ck_assert_str_eq(pay.calls[i], key);
    }
}

/* ------------------------------------------------------------------ cases */

START_TEST(approved_card_is_authorized_captured_and_confirmed)
{
    co_checkout_result r;
    char st[32];
    const char *want[] = {"create :authorize", "capture :capture"};

    fresh_order();
    checkout("pm_card_visa", "k1", &r);
    ck_assert_int_eq(r.kind, CO_CHECKOUT_ANSWERED);
    ck_assert_uint_eq(r.answer.code, 201);
    ck_assert_ptr_nonnull(strstr(r.answer.body, "\"status\":\"confirmed\""));
    ck_assert(!r.replayed);
    status_of(st, sizeof st);
    ck_assert_str_eq(st, "confirmed");
    ck_assert_int_eq(stock(), 0);
    assert_calls(want, 2);
    co_checkout_result_clear(&r);
}
END_TEST

START_TEST(the_same_key_replays_the_first_answer_byte_for_byte)
{
    co_checkout_result first, again;

    fresh_order();
    checkout("pm_card_visa", "k1", &first);
    co_test_uuid(order_id); /* a retry makes a new id; the key leads back to the first */
    checkout("pm_card_visa", "k1", &again);
    ck_assert_int_eq(again.kind, CO_CHECKOUT_ANSWERED);
    ck_assert(again.replayed);
    ck_assert_uint_eq(again.answer.code, first.answer.code);
    ck_assert_str_eq(again.answer.body, first.answer.body);
    ck_assert_int_eq(pay.n_calls, 2); /* nothing charged twice */
    co_checkout_result_clear(&first);
    co_checkout_result_clear(&again);
}
END_TEST

START_TEST(declined_card_fails_with_its_decline_code_and_gives_the_stock_back)
{
    co_checkout_result r;
    char st[32];
    const char *want[] = {"create :authorize"};

    pay.create = CO_PAYMENT_DECLINED;
    fresh_order();
    checkout("pm_card_visa_chargeDeclinedInsufficientFunds", "k1", &r);
    ck_assert_int_eq(r.kind, CO_CHECKOUT_ANSWERED);
    ck_assert_uint_eq(r.answer.code, 402);
    ck_assert_ptr_nonnull(strstr(r.answer.body, "\"decline_code\":\"insufficient_funds\""));
    status_of(st, sizeof st);
    ck_assert_str_eq(st, "failed");
    ck_assert_int_eq(stock(), 1);
    assert_calls(want, 1);
    co_checkout_result_clear(&r);
}
END_TEST

START_TEST(capture_with_no_answer_voids_the_authorization)
{
    co_checkout_result r;
    char st[32];
    const char *want[] = {"create :authorize", "capture :capture", "cancel :cancel"};

    pay.capture = CO_PAYMENT_UNKNOWN;
    fresh_order();
    checkout("pm_card_visa", "k1", &r);
    ck_assert_int_eq(r.kind, CO_CHECKOUT_ANSWERED);
    ck_assert_uint_eq(r.answer.code, 503);
    status_of(st, sizeof st);
    ck_assert_str_eq(st, "failed");
    ck_assert_int_eq(stock(), 1);
    assert_calls(want, 3);
    co_checkout_result_clear(&r);
}
END_TEST

START_TEST(a_call_in_use_elsewhere_is_left_to_its_driver)
{
    co_checkout_result r;
    char st[32];
    const char *want[] = {"create :authorize"};

    pay.create = CO_PAYMENT_IN_USE;
    fresh_order();
    checkout("pm_card_visa", "k1", &r);
    ck_assert_int_eq(r.kind, CO_CHECKOUT_UNDECIDED);
    status_of(st, sizeof st);
    ck_assert_str_eq(st, "reserved"); /* not compensated: someone else is driving it */
    ck_assert_int_eq(stock(), 0);
    assert_calls(want, 1);
    co_checkout_result_clear(&r);
}
END_TEST

START_TEST(out_of_stock_is_answered_without_a_provider_call)
{
    co_checkout_result r, second;

    fresh_order();
    checkout("pm_card_visa", "k1", &r);
    pay.n_calls = 0;
    fresh_order();
    checkout("pm_card_visa", "k2", &second);
    ck_assert_int_eq(second.kind, CO_CHECKOUT_ANSWERED);
    ck_assert(second.out_of_stock);
    ck_assert_uint_eq(second.answer.code, 409);
    ck_assert_ptr_nonnull(strstr(second.answer.body, item));
    ck_assert_int_eq(pay.n_calls, 0);
    co_checkout_result_clear(&r);
    co_checkout_result_clear(&second);
}
END_TEST

START_TEST(mobile_flow_waits_then_captures_on_confirm)
{
    co_checkout_result r;
    co_order o;
    const char *want[] = {"create :create", "retrieve pi_fake", "capture :capture"};

    pay.create_status = CO_INTENT_REQUIRES_PAYMENT_METHOD;
    fresh_order();
    checkout(NULL, "k1", &r);
    ck_assert_int_eq(r.kind, CO_CHECKOUT_ANSWERED);
    ck_assert_uint_eq(r.answer.code, 202);
    ck_assert_ptr_nonnull(strstr(r.answer.body, "pi_fake_secret_x"));
    ck_assert_int_eq(co_saga_confirm(&saga, order_id, "00000000-0000-0000-0000-000000000000",
                                     &o),
                     CO_ORDER_NOT_FOUND); /* not the owner */
    ck_assert_int_eq(co_saga_confirm(&saga, order_id, user, &o), CO_ORDER_DONE);
    ck_assert_int_eq(o.status, CO_ST_CONFIRMED);
    assert_calls(want, 3);
    co_checkout_result_clear(&r);
}
END_TEST

START_TEST(cancel_of_a_confirmed_order_refunds_and_releases)
{
    co_checkout_result r;
    co_order o;
    const char *want[] = {"create :authorize", "capture :capture", "refund :refund"};

    fresh_order();
    checkout("pm_card_visa", "k1", &r);
    ck_assert_int_eq(co_saga_cancel(&saga, order_id, user, &o), CO_ORDER_DONE);
    ck_assert_int_eq(o.status, CO_ST_REFUNDED);
    ck_assert_int_eq(stock(), 1);
    ck_assert_int_eq(co_test_audit(conn), 0);
    assert_calls(want, 3);
    co_checkout_result_clear(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit/states/saga");
    TCase *tc = tcase_create("saga");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, approved_card_is_authorized_captured_and_confirmed);
    tcase_add_test(tc, the_same_key_replays_the_first_answer_byte_for_byte);
    tcase_add_test(tc, declined_card_fails_with_its_decline_code_and_gives_the_stock_back);
    tcase_add_test(tc, capture_with_no_answer_voids_the_authorization);
    tcase_add_test(tc, a_call_in_use_elsewhere_is_left_to_its_driver);
    tcase_add_test(tc, out_of_stock_is_answered_without_a_provider_call);
    tcase_add_test(tc, mobile_flow_waits_then_captures_on_confirm);
    tcase_add_test(tc, cancel_of_a_confirmed_order_refunds_and_releases);
    suite_add_tcase(s, tc);
    return co_test_run(s);
}

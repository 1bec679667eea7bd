/* Crash recovery: checkoutd is SIGKILLed at each step boundary of the saga
 * (CHECKOUTD_CRASH_AT, states/saga.c co_saga_crash_point), restarted on the same
 * database and mock-stripe, and every order must then reach the terminal state
 * the saga promises, with money and stock matching (SPEC 6 and 8).
 *
 * Shape of each test: restart with the crash point -> the request dies at
 * transport level -> reap the killed process -> check the order stalled where
 * the crash point says (so the test proves it crashed there, not elsewhere) ->
 * restart without it -> recovery (lease 2 s, sweep every 100 ms: server.c)
 * finishes the order -> assert the end state, the provider's counters, the
 * stock ledger, the stored first answer, and the invariants. */
#include "server.h"

#include "race.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RECOVERY_MS 15000

static co_test_server srv;

/* ------------------------------------------------------------- helpers */

static long long db_ll(const char *sql)
{
    return co_test_ll(srv.conn, sql);
}

/* A column of the order (sql selects it WHERE id = $1) as text, into out. */
static void order_str(char *out, size_t n, const char *sql, const char *order)
{
    const char *p[1] = {order};

    co_test_strp(srv.conn, out, n, sql, 1, p);
}

/* Restarts checkoutd with CHECKOUTD_CRASH_AT=point; NULL clears it (an empty
 * value is unset for co_config). The setting stays for later restarts. */
static void restart_at(const char *point)
{
    char kv[96];
    const char *env[2] = {kv, NULL};

    snprintf(kv, sizeof kv, "CHECKOUTD_CRASH_AT=%s", point ? point : "");
    ck_assert_msg(co_test_server_restart(&srv, env), "checkoutd did not start (%s)", kv);
}

/* checkoutd must die of its own SIGKILL. Reaps it: srv.server.pid is 0 after,
 * so the next co_test_server_restart starts a fresh one without stopping. */
static void expect_killed(void)
{
    int status = 0;

    ck_assert_msg(co_proc_wait(&srv.server, 10000, &status),
                  "checkoutd did not die at its crash point");
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "checkoutd ended otherwise than by SIGKILL (wait status %d)", status);
    ck_assert_int_eq(srv.server.pid, 0);
}

/* The order a checkout created, from its Idempotency-Key record. */
static void order_of(const char *user, const char *key, char order[37])
{
    const char *p[2] = {user, key};

    co_test_strp(srv.conn, order, 37, "SELECT order_id FROM checkout_requests"
                                      " WHERE user_id = $1 AND idempotency_key = $2", 2, p);
    ck_assert_msg(order[0] != '\0', "no order for key %s", key);
}

/* A checkout that runs into the crash point: no answer (transport failure),
 * the process is gone, the order exists. */
static void checkout_into_crash(const char *user, const char *key, const char *body,
                                char order[37])
{
    co_http_resp r = {0};

    ck_assert_msg(co_test_checkout(&srv, user, key, body, &r) == 0,
                  "the checkout was answered (%ld %s): no crash", r.status, r.body);
    co_http_resp_free(&r);
    expect_killed();
    order_of(user, key, order);
}

/* The shopper's cancel of order runs into the crash point: no answer, the
 * process is gone. */
static void cancel_into_crash(const char *user, const char *order)
{
    co_http_resp r = {0};

    ck_assert_msg(co_test_order_post(&srv, user, order, "cancel", &r) == 0,
                  "the cancel was answered (%ld %s): no crash", r.status, r.body);
    co_http_resp_free(&r);
    expect_killed();
}

/* Waits for the order to end; asserts it ended in want. */
static void expect_end(const char *order, const char *want)
{
    const char *got = co_test_wait_status(&srv, order, CO_TEST_TERMINAL, RECOVERY_MS);

    ck_assert_msg(strcmp(got, want) == 0, "order %s ended %s, expected %s", order, got, want);
}

/* No transition was made twice (had two drivers both made one, it would show
 * here), and every order's history ends where the order is. */
static void expect_clean_history(void)
{
    ck_assert_int_eq(db_ll("SELECT count(*) FROM (SELECT order_id, to_status"
                           " FROM order_history GROUP BY 1, 2 HAVING count(*) > 1) d"), 0);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders o WHERE o.status <>"
                           " (SELECT h.to_status FROM order_history h"
                           "   WHERE h.order_id = o.id ORDER BY h.id DESC LIMIT 1)"), 0);
}

/* Orders that entered a terminal state other than exactly once (for sagas
 * with no later cancel: a confirmed order refunded ends twice, rightly). */
static long long ended_not_once(void)
{
    return co_test_ll1(srv.conn, "SELECT count(*) FROM orders o"
                                 " WHERE (SELECT count(*) FROM order_history h"
                                 "   WHERE h.order_id = o.id"
                                 "   AND h.to_status = ANY (string_to_array($1, ' '))) <> 1",
                       CO_TEST_TERMINAL);
}

/* Stock moves of an order in the ledger, by kind ('reserve' or 'release'). */
static long long ledger(const char *order, const char *kind)
{
    const char *p[2] = {order, kind};

    return co_test_llp(srv.conn, "SELECT count(*) FROM stock_ledger"
                                 " WHERE order_id = $1 AND kind = $2", 2, p);
}

/* The same checkout again: the stored first answer, marked as a replay. The
 * caller json_decref's the body. */
static json_t *replay(const char *user, const char *key, const char *body, long want)
{
    co_http_resp r = {0};
    char replayed[16] = "";
    json_t *j;

    ck_assert_msg(co_test_checkout(&srv, user, key, body, &r) == want,
                  "retry answered %ld %s, expected %ld", r.status, r.body, want);
    ck_assert_msg(co_http_header(&r, "Idempotent-Replayed", replayed, sizeof replayed) &&
                      strcmp(replayed, "true") == 0,
                  "retry is not a replay: %s", r.headers);
    j = co_http_json(&r);
    ck_assert_msg(j != NULL, "retry body: %s", r.body);
    co_http_resp_free(&r);
    return j;
}

/* ------------------------------------------------------ the crash table */

/* A counter and the number it must show: a mock-stripe stat, or the order's
 * stock moves of one kind in the ledger. */
typedef struct {
    const char *name;
    long long n;
} count;

/* In an answer field, what stands for the order's id and for its PaymentIntent. */
static const char THE_ORDER[] = "(the order)";
static const char ITS_PI[] = "(its payment intent)";

/* A field of the replayed answer, co_test_jstr(j, k1, k2), and what it must be. */
typedef struct {
    const char *k1, *k2, *want;
} field;

/* One crash case: a shop that crashes at point, a restart, and the end that
 * recovery must reach. Whatever a row leaves out (NULL, 0, an empty list) is
 * not checked; the counter lists end at the first empty name. */
typedef struct {
    const char *name;  /* the Check test's name */
    const char *point; /* CHECKOUTD_CRASH_AT */
    /* The shop: an item sku of stock units (4200 each), and a cart of qty paid
     * with pm (NULL: the mobile flow) under Idempotency-Key key. */
    const char *sku;
    int stock, qty;
    const char *pm, *key;
    const char *capture_fault; /* what every capture does (co_test_fault), or NULL */
    /* 0: the checkout runs into the crash point. Else the checkout answers
     * this first (stock then stock_answered, when > 0), and the shopper's
     * cancel runs into it. */
    long answered;
    long long stock_answered;
    /* Where the crash leaves the order. */
    const char *stalled;
    long long stock_stalled;
    count mock_stalled[2];
    /* Where recovery takes it. */
    const char *end;
    long long stock_end;
    count mock_end[3];
    count ledger[2];
    const char *failure_code;
    /* A second cancel: answered 200 with this status; then these counters. */
    const char *cancel_again;
    count mock_again[1];
    /* The checkout with the same key: a replay that answers this, with these
     * fields and, when > 0, this amount. */
    long replay;
    field answer[3];
    long long amount;
    long long orders; /* orders in the database at the end, when > 0 */
    /* Confirmed, then refunded: the order rightly ends twice, so "every order
     * ended once" is not checked. */
    bool ends_twice;
} crash_case;

/* A pm_card_visa checkout of 2 units (of 5) that crashes at point, where the
 * order is stalled_in with pis PaymentIntents created and captured captures
 * made; after a restart it must end confirmed, captured once, stock taken
 * once, and the retry must replay the 201 recovery stored. */
#define CONFIRMS(point_, stalled_in, pis, captured)                                            \
    .point = point_, .sku = point_, .stock = 5, .qty = 2, .pm = "pm_card_visa",                \
    .key = "crash-key", .stalled = stalled_in, .stock_stalled = 3,                             \
    .mock_stalled = {{"payment_intents", pis}, {"captured", captured}},                        \
    .end = "confirmed", .stock_end = 3,                                                        \
    .mock_end = {{"payment_intents", 1}, {"captured", 1}, {"canceled", 0}},                    \
    .ledger = {{"reserve", 1}, {"release", 0}}, .replay = 201,                                 \
    .answer = {{"order_id", NULL, THE_ORDER}, {"status", NULL, "confirmed"},                   \
               {"payment_intent", NULL, ITS_PI}},                                              \
    .amount = 8400, .orders = 1

static const crash_case crash_cases[] = {
    /* ---------------------------------------------- server flow: confirmed */
    {
        /* Stock held, the provider never called. */
        .name = "crash_after_reserve_confirms",
        CONFIRMS("after_reserve", "reserved", 0, 0),
    },
    {
        /* Authorized at the provider, not recorded: the repeated authorize (same
         * key) must replay, not authorize a second PaymentIntent. */
        .name = "crash_after_authorize_call_confirms",
        CONFIRMS("after_authorize_call", "reserved", 1, 0),
    },
    {
        /* Authorized and captured at the provider, neither recorded (the server
         * flow commits the authorization with the capture's outcome): the
         * repeated authorize and capture must replay, not charge twice nor be
         * mistaken for a failure. */
        .name = "crash_after_capture_call_confirms",
        CONFIRMS("after_capture_call", "reserved", 1, 1),
    },
    {
        /* Confirmed in the DB with its answer stored; only the HTTP answer was lost. */
        .name = "crash_before_answer_replays_the_stored_answer",
        CONFIRMS("before_answer", "confirmed", 1, 1),
    },
    /* ---------------------------------------------------- declined card */
    {
        /* The repeated authorize is the provider's replay of the decline, not a
         * second attempt; the order fails and gives its unit back. */
        .name = "crash_after_declined_authorize_fails_and_releases",
        .point = "after_authorize_call",
        .sku = "declined", .stock = 3, .qty = 1, .pm = "pm_card_visa_chargeDeclined",
        .key = "declined-key",
        .stalled = "reserved", .stock_stalled = 2, .mock_stalled = {{"declines", 1}},
        .end = "failed", .stock_end = 3, .mock_end = {{"captured", 0}, {"declines", 1}},
        .ledger = {{"reserve", 1}, {"release", 1}}, .failure_code = "payment_declined",
        .replay = 402,
        .answer = {{"error", "code", "payment_declined"},
                   {"error", "decline_code", "generic_decline"},
                   {"error", "order_id", THE_ORDER}},
    },
    /* ----------------------------------------------------- compensation */
    {
        /* The capture fails for good, so the saga voids the authorization; the
         * answer decided when voiding began was stored before the crash. */
        .name = "crash_after_cancel_call_fails_and_releases",
        .point = "after_cancel_call",
        .sku = "void", .stock = 3, .qty = 2, .pm = "pm_card_visa", .key = "void-key",
        .capture_fault = "status_500",
        .stalled = "voiding", .stock_stalled = 1, .mock_stalled = {{"canceled", 1}},
        .end = "failed", .stock_end = 3, .mock_end = {{"canceled", 1}, {"captured", 0}},
        .ledger = {{"release", 1}},
        .replay = 503,
        .answer = {{"error", "code", "payment_provider_unavailable"},
                   {"error", "order_id", THE_ORDER}},
    },
    {
        /* A mobile order the shopper cancels; the checkout's first answer (202)
         * stays what it was. */
        .name = "crash_after_cancel_call_of_a_shopper_cancel_ends_cancelled",
        .point = "after_cancel_call",
        .sku = "mcancel", .stock = 3, .qty = 1, .pm = NULL, .key = "mcancel-key",
        .answered = 202,
        .stalled = "voiding", .stock_stalled = 2, .mock_stalled = {{"canceled", 1}},
        .end = "cancelled", .stock_end = 3, .mock_end = {{"canceled", 1}, {"captured", 0}},
        .ledger = {{"release", 1}},
        .cancel_again = "cancelled",
        .replay = 202, .answer = {{"order_id", NULL, THE_ORDER}},
    },
    {
        /* A confirmed order the shopper cancels: cancelling again answers where
         * it is and refunds nothing more. */
        .name = "crash_after_refund_call_refunds_once",
        .point = "after_refund_call",
        .sku = "refund", .stock = 3, .qty = 2, .pm = "pm_card_visa", .key = "refund-key",
        .answered = 201, .stock_answered = 1,
        .stalled = "refunding", .stock_stalled = 1, .mock_stalled = {{"refunds", 1}},
        .end = "refunded", .stock_end = 3, .mock_end = {{"refunds", 1}, {"captured", 1}},
        .ledger = {{"release", 1}},
        .cancel_again = "refunded", .mock_again = {{"refunds", 1}},
        .ends_twice = true,
    },
};

#define N_CRASH_CASES ((int)(sizeof crash_cases / sizeof crash_cases[0]))
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Asserts the counters of want (n entries at most, up to an empty name): from
 * the mock, or with order set, the order's ledger moves of each kind. */
static void expect_counts(const crash_case *c, const count *want, size_t n, const char *order)
{
    for (size_t k = 0; k < n && want[k].name != NULL; k++) {
        long long got = order != NULL ? ledger(order, want[k].name)
                                      : co_test_mock_stat(&srv, want[k].name);

        ck_assert_msg(got == want[k].n, "%s: %s %s is %lld, expected %lld", c->name,
                      order != NULL ? "ledger" : "mock", want[k].name, got, want[k].n);
    }
}

/* The replayed answer's fields as the row wants them. */
static void expect_answer(const crash_case *c, json_t *j, const char *order)
{
    char pi[64];

    for (size_t k = 0; k < N_OF(c->answer) && c->answer[k].k1 != NULL; k++) {
        const field *f = &c->answer[k];
        const char *want = f->want;

        if (want == THE_ORDER) {
            want = order;
        } else if (want == ITS_PI) {
            order_str(pi, sizeof pi, "SELECT payment_intent FROM orders WHERE id = $1", order);
            want = pi;
        }
        ck_assert_msg(strcmp(co_test_jstr(j, f->k1, f->k2), want) == 0,
                      "%s: answer %s%s%s is \"%s\", expected \"%s\"", c->name, f->k1,
                      f->k2 ? "." : "", f->k2 ? f->k2 : "", co_test_jstr(j, f->k1, f->k2), want);
    }
    if (c->amount > 0)
        ck_assert_int_eq(json_integer_value(json_object_get(j, "amount")), c->amount);
}

/* The body of every row's test: the loop test registered for row i runs i alone. */
static void crash_case_test(int i)
{
    const crash_case *c = &crash_cases[i];
    char item[37], user[37], order[37], body[256];
    co_http_resp r = {0};

    co_test_item(srv.conn, c->sku, 4200, c->stock, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, c->qty, c->pm);
    if (c->capture_fault != NULL)
        co_test_fault(&srv, "POST /v1/payment_intents/*/capture", c->capture_fault, 1000, 0);
    if (c->answered == 0) {
        restart_at(c->point);
        checkout_into_crash(user, c->key, body, order);
    } else {
        co_test_checkout_order(&srv, user, c->key, body, c->answered, order, NULL);
        if (c->stock_answered > 0)
            ck_assert_int_eq(co_test_stock(&srv, item), c->stock_answered);
        restart_at(c->point);
        cancel_into_crash(user, order);
    }
    ck_assert_str_eq(co_test_status(&srv, order), c->stalled);
    expect_counts(c, c->mock_stalled, N_OF(c->mock_stalled), NULL);
    ck_assert_int_eq(co_test_stock(&srv, item), c->stock_stalled);

    restart_at(NULL);
    expect_end(order, c->end);
    expect_counts(c, c->mock_end, N_OF(c->mock_end), NULL);
    ck_assert_int_eq(co_test_stock(&srv, item), c->stock_end);
    expect_counts(c, c->ledger, N_OF(c->ledger), order);
    if (c->failure_code != NULL) {
        const char *p[2] = {order, c->failure_code};

        ck_assert_int_eq(co_test_llp(srv.conn, "SELECT count(*) FROM orders WHERE id = $1"
                                               " AND failure_code = $2", 2, p),
                         1);
    }

    if (c->cancel_again != NULL) {
        char want[40];

        snprintf(want, sizeof want, "\"%s\"", c->cancel_again);
        ck_assert_int_eq(co_test_order_post(&srv, user, order, "cancel", &r), 200);
        ck_assert_ptr_nonnull(strstr(r.body, want));
        co_http_resp_free(&r);
        expect_counts(c, c->mock_again, N_OF(c->mock_again), NULL);
    }
    if (c->replay != 0) {
        json_t *j = replay(user, c->key, body, c->replay);

        expect_answer(c, j, order);
        json_decref(j);
    }
    if (c->orders > 0)
        ck_assert_int_eq(db_ll("SELECT count(*) FROM orders"), c->orders);
    expect_clean_history();
    if (!c->ends_twice)
        ck_assert_int_eq(ended_not_once(), 0);
    co_test_invariants(&srv, true);
}

/* One Check test per row, named after it (a loop test over that row alone,
 * so Check reports the row's index as the iteration). */
static void add_crash_cases(TCase *tc)
{
    static TTest tests[N_CRASH_CASES];

    for (int i = 0; i < N_CRASH_CASES; i++) {
        tests[i] = (TTest){crash_cases[i].name, crash_case_test, __FILE__, __LINE__};
        tcase_add_loop_test(tc, &tests[i], i, i + 1);
    }
}

/* -------------------------------------------------------- mobile flow */

START_TEST(crash_after_create_call_awaits_payment)
{
    char item[37], user[37], order[37], body[256], pi[64], secret[160];
    const char *key = "mobile-key";
    co_http_resp r = {0};
    json_t *j;

    co_test_item(srv.conn, "mobile", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, NULL);
    restart_at("after_create_call");
    checkout_into_crash(user, key, body, order);
    ck_assert_str_eq(co_test_status(&srv, order), "reserved");
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);

    restart_at(NULL);
    ck_assert_str_eq(co_test_wait_status(&srv, order, "awaiting_payment " CO_TEST_TERMINAL,
                                         RECOVERY_MS),
                     "awaiting_payment");
    /* The PaymentIntent created before the crash is the one recorded. */
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), 1);
    order_str(pi, sizeof pi, "SELECT payment_intent FROM orders WHERE id = $1", order);
    order_str(secret, sizeof secret, "SELECT client_secret FROM orders WHERE id = $1", order);
    ck_assert_msg(strncmp(pi, "pi_", 3) == 0, "payment_intent %s", pi);
    ck_assert_msg(strncmp(secret, pi, strlen(pi)) == 0 && strstr(secret, "_secret_") != NULL,
                  "client_secret %s for %s", secret, pi);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);

    j = replay(user, key, body, 202);
    ck_assert_str_eq(co_test_jstr(j, "order_id", NULL), order);
    ck_assert_str_eq(co_test_jstr(j, "status", NULL), "awaiting_payment");
    ck_assert_str_eq(co_test_jstr(j, "client_secret", NULL), secret);
    ck_assert_str_eq(co_test_jstr(j, "payment_intent", NULL), pi);
    json_decref(j);
    co_test_invariants(&srv, false);

    /* The recovered PaymentIntent is usable: the app pays, the order confirms. */
    ck_assert_int_eq(co_test_confirm_at_mock(&srv, pi, "pm_card_visa"), 200);
    ck_assert_int_eq(co_test_order_post(&srv, user, order, "confirm", &r), 200);
    co_http_resp_free(&r);
    ck_assert_str_eq(co_test_status(&srv, order), "confirmed");
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_stock(&srv, item), 2);
    expect_clean_history();
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------------ two instances */

#define STALLED 8

typedef struct {
    char user[37], key[37], body[256];
    long status;
} shopper;

static void *shop(void *p)
{
    shopper *s = p;
    co_http_resp r = {0};

    co_test_race_wait();
    s->status = co_test_checkout(&srv, s->user, s->key, s->body, &r);
    co_http_resp_free(&r);
    return NULL;
}

/* STALLED server-flow checkouts of one unit each (every fourth with a declined
 * card) stall together in reserved: every authorize is held 1 s at the
 * provider, so all of them are reserved and inside their authorize call when
 * the first one returns and the process kills itself (after_authorize_call).
 * Fills sh[] (user, key, body; their orders in order[]). Returns the number
 * of declined cards. The server is left dead (reaped). */
static int stall_checkouts(const char *item, shopper sh[STALLED], char order[STALLED][37])
{
    int declined = 0;

    co_test_fault(&srv, "POST /v1/payment_intents", "delay", STALLED, 1000);
    restart_at("after_authorize_call");
    for (int i = 0; i < STALLED; i++) {
        bool decline = i % 4 == 3;

        co_test_uuid(sh[i].user);
        snprintf(sh[i].key, sizeof sh[i].key, "stalled-%d", i);
        co_test_cart(sh[i].body, sizeof sh[i].body, item, 1,
                     decline ? "pm_card_visa_chargeDeclined" : "pm_card_visa");
        declined += decline;
    }
    co_test_race(STALLED, shop, sh, sizeof sh[0]);
    for (int i = 0; i < STALLED; i++)
        ck_assert_msg(sh[i].status == 0, "checkout %d was answered %ld before the crash", i,
                      sh[i].status);
    expect_killed();
    for (int i = 0; i < STALLED; i++)
        order_of(sh[i].user, sh[i].key, order[i]);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders WHERE status = 'reserved'"),
                     STALLED);
    return declined;
}

START_TEST(two_servers_recover_each_order_once)
{
    char item[37], order[STALLED][37];
    static shopper sh[STALLED];
    co_proc other;
    int declined;

    co_test_item(srv.conn, "two", 4200, 20, item);
    declined = stall_checkouts(item, sh, order);

    /* Two instances on one database and one provider, both recovering. */
    restart_at(NULL);
    ck_assert_msg(co_test_server_start_another(&srv, &other), "second checkoutd did not start");
    for (int i = 0; i < STALLED; i++)
        expect_end(order[i], i % 4 == 3 ? "failed" : "confirmed");
    /* Both quiet before looking: a late driver must not slip past the checks (a
     * graceful stop lets recovery finish the drive in hand). */
    co_test_stop_clean(&other, "second checkoutd");
    co_test_stop_clean(&srv.server, "checkoutd");
    /* Each was finished by recovery (co_claim_stalled counts its claims). */
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders WHERE attempts = 0"), 0);

    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), STALLED);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), STALLED - declined);
    ck_assert_int_eq(co_test_mock_stat(&srv, "declines"), declined);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM orders WHERE status = 'confirmed'"),
                     STALLED - declined);
    ck_assert_int_eq(co_test_stock(&srv, item), 20 - (STALLED - declined));
    ck_assert_int_eq(db_ll("SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'"),
                     STALLED);
    ck_assert_int_eq(db_ll("SELECT count(*) FROM stock_ledger WHERE kind = 'release'"),
                     declined);
    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    restart_at(NULL);
    for (int i = 0; i < STALLED; i++) {
        json_t *j = replay(sh[i].user, sh[i].key, sh[i].body, i % 4 == 3 ? 402 : 201);

        ck_assert_str_eq(i % 4 == 3 ? co_test_jstr(j, "error", "order_id")
                                    : co_test_jstr(j, "order_id", NULL),
                         order[i]);
        json_decref(j);
    }
    co_test_invariants(&srv, true);
}
END_TEST

/* The provider holds a capture longer than the lease (2 s), so while one
 * instance waits on it the other claims the same order and drives it too: two
 * drivers of one order at once, the case leases cannot exclude. The
 * transition's compare-and-set and the step idempotency keys must still leave
 * one history, one outcome per order, and money matching goods. */
START_TEST(two_servers_lease_lapses_mid_capture)
{
    char item[37], order[STALLED][37];
    static shopper sh[STALLED];
    co_proc other;
    int declined;

    co_test_item(srv.conn, "lapse", 4200, 20, item);
    declined = stall_checkouts(item, sh, order);
    /* One capture (the first made) is held past the lease; the rest are quick,
     * so whichever instance is not stuck in it is free to claim it again. */
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "delay", 1, 2600);

    restart_at(NULL);
    ck_assert_msg(co_test_server_start_another(&srv, &other), "second checkoutd did not start");
    for (int i = 0; i < STALLED; i++) {
        const char *end = co_test_wait_status(&srv, order[i], CO_TEST_TERMINAL, 30000);

        /* The driver that meets the other's capture in flight (409
         * idempotency_key_in_use) must leave the order to it, not void it:
         * a good card ends confirmed, a declined one failed. */
        ck_assert_msg(strcmp(end, i % 4 == 3 ? "failed" : "confirmed") == 0, "order %s ended %s",
                      order[i], end);
    }
    /* The driver that lost the race may still be inside its capture call:
     * let both finish (a graceful stop waits for it) before looking. */
    co_test_stop_clean(&other, "second checkoutd");
    co_test_stop_clean(&srv.server, "checkoutd");
    /* The slow capture outlived its lease, so its order was claimed again while
     * its first driver was still at it: the overlap this test is for. */
    ck_assert_int_ge(db_ll("SELECT max(attempts) FROM orders"), 2);

    expect_clean_history();
    ck_assert_int_eq(ended_not_once(), 0);
    ck_assert_int_eq(co_test_mock_stat(&srv, "payment_intents"), STALLED);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"),
                     db_ll("SELECT count(*) FROM orders"
                           " WHERE status IN ('confirmed', 'refunded')"));
    ck_assert_int_eq(co_test_mock_stat(&srv, "refunds"),
                     db_ll("SELECT count(*) FROM orders WHERE status = 'refunded'"));
    ck_assert_int_eq(db_ll("SELECT count(*) FROM stock_ledger WHERE kind = 'reserve'"),
                     STALLED);
    ck_assert_int_eq(co_test_stock(&srv, item),
                     20 - db_ll("SELECT count(*) FROM orders WHERE status = 'confirmed'"));
    ck_assert_int_ge(db_ll("SELECT count(*) FROM orders WHERE status = 'failed'"),
                     declined);
    co_test_invariants(&srv, true);
}
END_TEST

/* ------------------------------------------------- a call past the lease */

/* A provider call that outlives the saga lease lets recovery claim the order
 * while the request is still driving it. One server, no crash: the capture
 * takes 4 s, the lease is 2 s. At 2 s recovery claims the order and repeats
 * the capture; the provider answers 409 idempotency_key_in_use (the request's
 * capture is in flight). Recovery must leave the order to the request, not
 * take the 409 for "provider unavailable" and void it (which cancelled the
 * authorization under the slow capture: a good card failed, answered 503).
 * Production defaults now size the lease past a step's worst case; this
 * covers a lease set shorter by hand. */
START_TEST(slow_capture_outliving_the_lease_still_confirms)
{
    const char *env[] = {"STRIPE_TIMEOUT_MS=10000", NULL};
    char item[37], user[37], body[256], order[37];
    co_http_resp r = {0};

    ck_assert(co_test_server_restart(&srv, env));
    co_test_item(srv.conn, "slow", 4200, 3, item);
    co_test_uuid(user);
    co_test_cart(body, sizeof body, item, 1, "pm_card_visa");
    co_test_fault(&srv, "POST /v1/payment_intents/*/capture", "delay", 1, 4000);
    (void)co_test_checkout(&srv, user, "slow-key", body, &r);
    order_of(user, "slow-key", order);
    expect_end(order, "confirmed");
    ck_assert_msg(r.status == 201, "the checkout answered %ld %s", r.status, r.body);
    co_http_resp_free(&r);
    ck_assert_int_eq(co_test_mock_stat(&srv, "captured"), 1);
    ck_assert_int_eq(co_test_mock_stat(&srv, "canceled"), 0);
    co_test_invariants(&srv, true);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = co_test_tcase(s, "sigkill", 60);

    co_test_server_fixture(tc, &srv, NULL, false);
    add_crash_cases(tc);
    tcase_add_test(tc, crash_after_create_call_awaits_payment);
    tcase_add_test(tc, two_servers_recover_each_order_once);
    tcase_add_test(tc, two_servers_lease_lapses_mid_capture);

    tc = co_test_tcase(s, "slow_provider", 60);
    co_test_server_fixture(tc, &srv, NULL, false);
    tcase_add_test(tc, slow_capture_outliving_the_lease_still_confirms);
    return s;
}

int main(void)
{
    return co_test_run_http(crash_suite());
}

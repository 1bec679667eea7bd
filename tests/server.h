/* A whole server for HTTP tests: a fresh database, a real mock-stripe, and a
 * real bin/checkoutd (the sanitizer build) talking to both. Start it in a
 * checked fixture or the test itself (proc.h: from the test's main thread). */
#ifndef CO_TEST_SERVER_H
#define CO_TEST_SERVER_H

#include "harness.h"
#include "http.h"
#include "proc.h"

#include <jansson.h>

#define CO_TEST_JWT_SECRET "test-jwt-secret-0123456789abcdef"
#define CO_TEST_ADMIN_KEY "adm_test_key"
#define CO_TEST_WHSEC "whsec_test_secret"
#define CO_TEST_RESTOCK_SECRET "restock-test-secret"
#define CO_TEST_NOTIFY_SECRET "notify-test-secret"

typedef struct {
    co_test_db db;
    PGconn *conn;          /* the test's own connection to the database */
    co_proc mock;          /* mock-stripe */
    co_proc server;        /* checkoutd */
    char url[256];         /* the server's base URL */
    char *env[32];         /* checkoutd's environment additions (owned) */
    int nenv;
    co_proc notify;        /* mock-notify, when co_test_server_start_notify started one */
    char mock_dir[256];    /* the mock's --state-dir, a fresh temporary directory */
    char mock_url[256];    /* where the mock listens, the same after co_test_mock_restart */
    char *mock_args[20];   /* the mock's extra args as given (owned), for its restarts */
} co_test_server;

/* Creates the database, starts mock-stripe (extra args may be NULL; its webhook
 * secret is CO_TEST_WHSEC, passed in its environment, so "--webhook-url URL" is
 * all a suite adds for signed events; its state is journaled in s->mock_dir, a
 * new directory under $TMPDIR or /tmp, removed by co_test_server_stop) and
 * checkoutd with the test environment
 * plus extra_env ("K=V", NULL-terminated, may be NULL; later entries win).
 * Aborts the test on failure. No secret is put on a command line. */
void co_test_server_start(co_test_server *s, const char *const extra_env[],
                          const char *const mock_args[]);
/* co_test_server_start with the mock's own webhooks on: checkoutd on a port
 * chosen first, the mock's --webhook-url pointing at it (no other arguments,
 * no extra environment). */
void co_test_server_start_hooked(co_test_server *s);
/* The same, plus a mock-notify (s->notify, checking signatures with
 * CO_TEST_NOTIFY_SECRET) that checkoutd's NOTIFY_URL points at; extra_env may
 * still override NOTIFY_* (e.g. NOTIFY_MAX_ATTEMPTS, NOTIFY_BACKOFF_MS). */
void co_test_server_start_notify(co_test_server *s, const char *const extra_env[],
                                 const char *const mock_args[]);
/* (Re)starts only checkoutd, with the environment of co_test_server_start plus
 * extra_env; false when it did not come up (e.g. it crashed at once). */
bool co_test_server_restart(co_test_server *s, const char *const extra_env[]);
void co_test_server_stop(co_test_server *s);

/* The provider's outage: co_test_mock_kill SIGKILLs mock-stripe;
 * co_test_mock_start_again starts it with the same arguments on the same port
 * (checkoutd keeps its STRIPE_API_BASE) and the same state dir, so it comes back
 * with what its journal kept (false: it did not come up); co_test_mock_restart
 * does both and asserts it came back. */
void co_test_mock_kill(co_test_server *s);
bool co_test_mock_start_again(co_test_server *s);
void co_test_mock_restart(co_test_server *s);

/* A shopper token for user (a uuid) valid for ttl seconds (may be negative). */
char *co_test_token(const char *user, long ttl);

/* POST /v1/checkout as user with key and body; returns the status. */
long co_test_checkout(co_test_server *s, const char *user, const char *key, const char *body,
                      co_http_resp *resp);
/* A request to the server with a bearer (NULL for none). */
long co_test_call(co_test_server *s, const char *method, const char *path, const char *bearer,
                  const char *body, co_http_resp *resp);
/* A request to the mock (its secret key is sent). */
long co_test_mock(co_test_server *s, const char *method, const char *path, const char *body,
                  const char *content_type, co_http_resp *resp);
/* Registers a fault on the mock: match, action, count, delay_ms. */
void co_test_fault(co_test_server *s, const char *match, const char *action, int count,
                   int delay_ms);
/* A counter from the mock's /_mock/stats. */
long long co_test_mock_stat(co_test_server *s, const char *name);

/* The mock's deliveries of events of type (GET /_mock/webhooks) in status
 * ("pending", "delivered", "dropped", ...): how many, and the most attempts any
 * of them made into *attempts (may be NULL). The wait form polls up to
 * timeout_ms until want of them are there (a delivery is marked only once the
 * mock has read checkoutd's answer, after the order has moved) and returns the
 * count last seen. */
int co_test_mock_deliveries(co_test_server *s, const char *type, const char *status,
                            long long *attempts);
int co_test_mock_wait_deliveries(co_test_server *s, const char *type, const char *status,
                                 int want, int timeout_ms);

/* Waits until the order's status is one of the names (space-separated), up to
 * timeout_ms; returns the status reached (static buffer) or the last seen. */
const char *co_test_wait_status(co_test_server *s, const char *order_id, const char *statuses,
                                int timeout_ms);

/* checkoutd_events_total{event="name"} from the server's GET /metrics (0 when
 * the event never happened). */
long long co_test_event_count(co_test_server *s, const char *name);

/* The statuses an order ends in, space-separated as co_test_wait_status
 * takes them; co_test_unended and the suites' SQL read the same list. */
#define CO_TEST_TERMINAL "confirmed failed expired cancelled refunded"

/* How many orders have not ended (status not in CO_TEST_TERMINAL). */
long long co_test_unended(co_test_server *s);

/* SPEC invariants 1-3 across the database and the mock, the one checker the
 * HTTP suites share: co_test_stock_invariant; every confirmed order has
 * exactly its amount captured at the provider and not refunded; every other
 * ended order holds no stock, has no captured money left and no
 * authorization open; with all_terminal, every order has ended
 * (co_test_unended is 0). */
void co_test_invariants(co_test_server *s, bool all_terminal);

/* A cart of one item. */
void co_test_cart(char *out, size_t n, const char *item, int qty, const char *pm);

/* Starts one more checkoutd on s's database and mock, with s's environment as
 * the last co_test_server_start/_restart left it (its own port: p->url), e.g. a
 * second instance recovering beside the first. Stop it with co_proc_stop.
 * False when it did not come up. */
bool co_test_server_start_another(co_test_server *s, co_proc *p);

/* ---------------------------------------------------------------- shared by the suites */

/* The checked fixture of an HTTP suite, added to tc: before each test
 * co_test_server_start (co_test_server_start_notify when notify) starts *s
 * with extra_env (kept by pointer: a static array); after it
 * co_test_server_teardown stops it. One server per test program: every call
 * must name the same s, extra_env and notify. Call it before the runner forks
 * (the suite's constructor). */
void co_test_server_fixture(TCase *tc, co_test_server *s, const char *const extra_env[],
                            bool notify);
/* The fixture's teardown alone, for a tcase whose tests start the server
 * themselves: tcase_add_checked_fixture(tc, NULL, co_test_server_teardown). */
void co_test_server_teardown(void);

/* j[k1] (k2 NULL) or j[k1][k2] as a string; "" when absent or not a string. The
 * pointer lives as long as j. */
const char *co_test_jstr(json_t *j, const char *k1, const char *k2);

/* An order's status now ("" when there is no such order); a static buffer. */
const char *co_test_status(co_test_server *s, const char *order);
/* An item's free units now (co_item_available: its row plus any hot-item buckets). */
long long co_test_stock(co_test_server *s, const char *item);

/* co_test_checkout that must answer want (a 201 or 202); copies the answer's
 * order_id into order (37 bytes) and, when pi is not NULL, its payment_intent
 * into pi (64 bytes). */
void co_test_checkout_order(co_test_server *s, const char *user, const char *key,
                            const char *body, long want, char order[37], char pi[64]);
/* POST /v1/orders/{order}/{action} ("confirm", "cancel") as user, with a fresh
 * token; returns the status, the answer in resp (the caller frees it). */
long co_test_order_post(co_test_server *s, const char *user, const char *order,
                        const char *action, co_http_resp *resp);
/* What the shopper's app does: confirms the PaymentIntent pi at the mock with
 * pm; returns the mock's status. */
long co_test_confirm_at_mock(co_test_server *s, const char *pi, const char *pm);

/* Stops p (a checkoutd) with SIGTERM and asserts it exited 0; what names it
 * in the failure. */
void co_test_stop_clean(co_proc *p, const char *what);

/* co_test_run for a suite that speaks HTTP: curl_global_init first (before
 * any thread starts), SIGPIPE ignored (a peer that closes must not kill the
 * test), curl_global_cleanup after. The test's main() returns what it returns. */
int co_test_run_http(Suite *s);

/* A loopback port that was free a moment ago: bound, never listened on,
 * closed (so a small race, fine for tests; a connection to it is refused). */
unsigned co_test_free_port(void);

/* One shopper of a race (race.h): a fresh user and key, then, right after
 * the starting line, the checkout of body on s; its status and error code. */
typedef struct {
    co_test_server *s;
    const char *body;
    long status;
    char code[48];
} co_test_racer;
/* co_test_race's function for an array of co_test_racer. */
void *co_test_race_checkout(void *racer);
/* n shoppers (rs, n of them) at once for one unit of item each, paid with
 * pm_card_visa; how many were answered 201 into *created and 409
 * out_of_stock into *out. */
void co_test_race_units(co_test_server *s, const char *item, co_test_racer *rs, int n,
                        int *created, int *out);

#endif

/* The typed store: every SQL statement of the server, by subject
 *   store_orders.c     orders, transitions, checkout requests, recovery claims
 *   store_events.c     provider events
 *   store_catalogue.c  items, restocks, back-in-stock subscriptions
 *   store_admin.c      operator reads (pages of orders)
 *   store_outbox.c     the notification outbox
 *   store_health.c     what the probes read (/metrics gauges, /readyz)
 * Each call is one round trip to one SQL function or statement of sql/,
 * results are read by column name, outcomes come back as C enums, and our
 * SQLSTATEs (CK400/404/409/410, 23505) are mapped in one place
 * (co_store_refusal_of, store_db.c). The saga reaches the orders and events
 * part through its store port (states/store_port.h); handlers call the rest. */
#ifndef CO_STORE_H
#define CO_STORE_H

#include "co_db.h"
#include "co_errors.h"
#include "store_port.h"

/* The saga's store port over db (one connection: one thread). */
co_store_port co_store_port_pg(co_db *db);
/* Group commit of the checkout's first commit (store_checkout.c) and of the
 * common move (store_orders.c): at most max_batch of them in one transaction
 * (1: each alone), max_inflight such transactions of each kind at once.
 * Process-wide; before the first checkout. */
void co_store_batching(int max_batch, int max_inflight);

/* co_db's four values as the store port's. */
co_store_rc co_store_rc_of(co_db_status st);
/* The refusal a failed statement stands for (by its SQLSTATE), with detail. */
void co_store_refusal_of(const co_dbr *r, co_store_refusal *out);
/* The API error a refusal answers with (CO_OK for CO_REFUSAL_NONE). */
co_err co_store_refusal_err(co_refusal kind);

/* ---------------------------------------------------------- orders */

/* The order's JSON text (co_order_json) into *json (malloc'd); user_id NULL:
 * any owner. CO_STORE_NONE when there is no such order (of that user). */
co_store_rc co_store_order_json(co_db *db, const char *order_id, const char *user_id,
                                char **json);

/* A Stripe-style page of the shopper's own orders, newest first
 * (co_user_orders_page) into *json (malloc'd); starting_after may be NULL;
 * refusal INVALID when it names no order of this shopper. */
co_store_rc co_store_user_orders_page(co_db *db, const char *user_id, int limit,
                                      const char *starting_after, char **json,
                                      co_store_refusal *refusal);

/* ---------------------------------------------------------- catalogue */

/* A Stripe-style page of the catalogue by sku (co_items_page) into *json
 * (malloc'd); refusal INVALID when starting_after names no item. */
co_store_rc co_store_items_page(co_db *db, int limit, const char *starting_after, char **json,
                                co_store_refusal *refusal);

/* The item's JSON text (co_item_json) into *json (malloc'd). */
co_store_rc co_store_item_json(co_db *db, const char *item_id, char **json);

typedef struct {
    const char *sku, *name, *currency;
    long long price, stock;
} co_item_new;

/* Creates an item; *json gets it. CO_STORE_FAILED with refusal DUPLICATE when
 * the sku exists. */
co_store_rc co_store_item_create(co_db *db, const co_item_new *item, char **json,
                                 co_store_refusal *refusal);

typedef enum {
    CO_SUBSCRIBED_NEW,      /* the shopper now waits for the item */
    CO_SUBSCRIBED_ALREADY,  /* was waiting already */
    CO_SUBSCRIBED_NO_ITEM,  /* no such item */
    CO_SUBSCRIBED_IN_STOCK, /* the item has units free: nothing stored */
} co_subscribed;

co_store_rc co_store_subscribe(co_db *db, const char *item_id, const char *user_id,
                               co_subscribed *out);

typedef struct {
    bool applied;           /* false: this event id was applied before */
    bool became_available;
    long long stock;
    long long notified;     /* notifications queued */
} co_restocked;

/* Adds units once per event id (co_restock); refusal NOT_FOUND / INVALID. */
co_store_rc co_store_restock(co_db *db, const char *event_id, const char *item_id,
                             long long quantity, co_restocked *out, co_store_refusal *refusal);

/* The item and quantity restock event event_id was applied with;
 * CO_STORE_NONE when there is none. */
co_store_rc co_store_restock_event(co_db *db, const char *event_id, char item_id[37],
                                   long long *quantity);

/* Hot-item mode (sql/0007): co_hot_set switches the item to buckets bucket
 * rows (0: off, merged back; the same number again: an even rebalance), and
 * *json gets the mode afterwards (co_hot_json plus previous_buckets); refusal
 * NOT_FOUND (no such item) or INVALID (buckets out of range). */
co_store_rc co_store_item_hot_set(co_db *db, const char *item_id, int buckets, char **json,
                                  co_store_refusal *refusal);
/* The item's hot-item mode (co_hot_json) into *json; CO_STORE_NONE for no item. */
co_store_rc co_store_item_hot_get(co_db *db, const char *item_id, char **json);

/* ---------------------------------------------------------- admin */

/* What a page of every order is filtered by; NULL members filter nothing. */
typedef struct {
    const char *statuses;       /* text[] literal of status names: {"voiding","refunding"} */
    const char *created_before; /* a timestamptz the orders were created before */
    const char *lease;          /* "held", "lapsed" or "none" */
    const char *starting_after; /* an order id: the page after it */
    int limit;
} co_orders_filter;

/* A Stripe-style page of admin orders (co_admin_orders_page: the order and
 * its lease) into *json (malloc'd); refusal INVALID when starting_after names
 * no order. */
co_store_rc co_store_orders_page(co_db *db, const co_orders_filter *f, char **json,
                                 co_store_refusal *refusal);

/* The admin page's overview (co_admin_overview) into *json (malloc'd): the orders
 * with the latest activity, items by sku, the newest webhooks and notifications. */
co_store_rc co_store_admin_overview(co_db *db, int orders, int items, int events, char **json);
/* The admin order (co_admin_order_json: the order and its lease) into *json
 * (malloc'd); CO_STORE_NONE when there is no such order. */
co_store_rc co_store_admin_order_json(co_db *db, const char *order_id, char **json);

/* ---------------------------------------------------------- outbox */

typedef struct {
    char id[24];
    char item_id[37], user_id[37];
    char restock_event_id[256];
    char created_at[40];
    int attempts;
} co_notification;

/* Leases up to max due notifications (co_notify_claim) into rows; *n of them. */
co_store_rc co_store_notify_claim(co_db *db, int lease_seconds, int max, co_notification *rows,
                                  int *n);

typedef struct {
    int max_attempts, backoff_ms;
    bool unclaim;           /* given back untried */
    const char *error;      /* NULL: delivered */
} co_notify_outcome;

/* Records one attempt (co_notify_result); *dead when it was the last. */
co_store_rc co_store_notify_result(co_db *db, const co_notification *row,
                                   const co_notify_outcome *oc, bool *dead);

/* ---------------------------------------------------------- health */

/* The states of orders in flight, as the gauges list them. */
#define CO_STORE_LIVE_STATES 7
extern const char *const co_store_live_states[CO_STORE_LIVE_STATES];

typedef struct {
    long long orders[CO_STORE_LIVE_STATES]; /* by co_store_live_states */
    long long lease_lapsed;     /* driven states whose lease lapsed: recovery's to take */
    long long units_held;       /* units held by orders in flight (not yet sold or released) */
    long long outbox_pending;   /* notifications not delivered (nor dead) yet */
    double outbox_oldest_seconds; /* age of the oldest of them; 0 when none */
} co_store_gauges;

/* The gauges in one statement, within timeout_ms. */
co_store_rc co_store_read_gauges(co_db *db, int timeout_ms, co_store_gauges *out);
/* How many migrations compiled in (co_migrations) schema_migrations lacks,
 * within timeout_ms; CO_STORE_OK with *pending (rows of newer servers are
 * not counted: their migrations are additive). */
co_store_rc co_store_migrations_pending(co_db *db, int timeout_ms, int *pending);

#endif

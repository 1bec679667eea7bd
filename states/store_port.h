/* The store port: Postgres as the saga needs it, one round trip per call. The
 * saga owns this interface; src/store_orders.c and src/store_events.c
 * implement it over libpq (every call is one SQL function of sql/). Calls
 * answer in four values, like the database layer underneath. */
#ifndef CO_STORE_PORT_H
#define CO_STORE_PORT_H

#include "order.h"

#include <stdbool.h>

typedef enum {
    CO_STORE_FAILED = -2, /* an error a retry will not fix, or a refusal (see co_refusal) */
    CO_STORE_RETRY = -1,  /* unreachable, deadlock, serialization: try again later */
    CO_STORE_NONE = 0,    /* done, nothing found */
    CO_STORE_OK = 1,      /* done, found */
} co_store_rc;

/* Why the store refused (raised by the stock functions with our SQLSTATEs). */
typedef enum {
    CO_REFUSAL_NONE = 0,
    CO_REFUSAL_INVALID,   /* CK400: detail names the field */
    CO_REFUSAL_NOT_FOUND, /* CK404: detail names the item */
    CO_REFUSAL_SHORT,     /* CK409: too few units; detail names the item */
    CO_REFUSAL_GONE,      /* CK410: the order cannot do this any more */
    CO_REFUSAL_DUPLICATE, /* 23505: it exists already */
    CO_REFUSAL_RANGE,     /* 22003: a number past what the column holds */
    CO_REFUSAL_OTHER,     /* any other hard error */
} co_refusal;

typedef struct {
    co_refusal kind;
    char detail[256];
} co_store_refusal;

/* A checkout's answer as stored with the order: rendered by the store's
 * adapter from the order, opaque to the saga, replayed byte for byte. */
typedef struct {
    unsigned code;
    char *body;             /* malloc'd; NULL when there is none */
} co_answer;

/* Frees a->body and empties *a. */
void co_answer_clear(co_answer *a);

/* One move of an order (co_saga_transition builds it). */
typedef struct {
    const co_order *order;      /* as it is now: id and status (the from-state) */
    const co_state *path;       /* the states entered, in order (via, captured, to) */
    const char *const *reasons; /* the history reason of each hop (hops of them) */
    int hops;
    const co_change *change;
    int lease_seconds;          /* > 0: the mover keeps the order leased; 0: lease dropped */
    const char *owner;
    const co_order *answer_for; /* non-NULL: store the checkout's answer for this order */
    const char *event_id;       /* the provider event that caused the move, or NULL */
    const char *event_type;
} co_move;

typedef enum {
    CO_MOVE_MADE,   /* written */
    CO_MOVE_STALE,  /* the order was no longer in the from-state (or the event was applied
                     * before): nothing written */
    CO_MOVE_SHORT,  /* change->take found too few units: nothing written */
} co_move_outcome;

typedef struct {
    const char *user_id, *idempotency_key, *request_hash, *order_id;
    const char *items_json;     /* the normalised cart: [{"item_id","quantity"}] */
    bool mobile;
    const char *payment_method; /* NULL in the mobile flow */
    int ttl_seconds, lease_seconds;
    const char *owner;
    int max_unpaid_units;       /* mobile flow: units one shopper may hold unpaid; 0: no cap */
} co_checkout_args;

typedef enum {
    CO_BEGUN_RESERVED,     /* order written, stock held, key recorded */
    CO_BEGUN_OUT_OF_STOCK, /* order written as failed; short_item names the item */
    CO_BEGUN_REPLAY,       /* the key was answered before: answer is that answer */
    CO_BEGUN_IN_PROGRESS,  /* the key's first request has not been answered */
    CO_BEGUN_REUSED,       /* the key was used with another body */
    CO_BEGUN_LIMITED,      /* the shopper holds too many unpaid units: nothing written */
} co_begun_outcome;

typedef struct {
    co_begun_outcome outcome;
    char order_id[37];
    co_answer answer;       /* REPLAY only; the caller clears it */
    char short_item[37];
    long long amount;
    char currency[8];
    char expires_at[32];
    int retry_after;        /* LIMITED: seconds until the soonest unpaid one lapses; 0 unknown */
    co_store_refusal refusal; /* a bad cart (CO_STORE_FAILED) */
} co_checkout_begun;

/* What claiming one order (to drive it now) found. */
typedef enum {
    CO_CLAIM_TAKEN,  /* leased to the caller */
    CO_CLAIM_HELD,   /* another owner's lease has not lapsed: nothing changed */
    CO_CLAIM_IDLE,   /* nothing to drive (ended, pending, unpaid and not expired) */
    CO_CLAIM_NONE,   /* no such order */
} co_claim;

/* A provider event that moved nothing, as recorded. */
typedef struct {
    const char *event_id, *type, *payment_intent, *order_id, *outcome;
} co_event_record;

/* Reconciliation with the provider (states/reconcile.c, sql/0015). */
typedef struct {
    bool acquired;          /* false: another pass holds the lease (holder) */
    char run_id[37];
    long long watermark;    /* list the intents created since then (Unix seconds) */
    long long started;      /* the database's clock at the start: the next watermark */
    char holder[96];
} co_recon_begun;

/* An order as reconciliation sees it. */
typedef struct {
    co_order order;
    bool is_intents;        /* the intent asked about is the order's own */
    long long idle_seconds; /* since its last move */
    bool leased;            /* someone holds a live lease on it */
} co_recon_order;

/* One finding of a pass, as recorded (reconcile_log, and the order's history). */
typedef struct {
    const char *run_id, *intent, *order_id; /* order_id NULL: no order */
    const char *finding, *action, *result;
    bool failed;
} co_recon_record;

typedef struct {
    void *impl;
    co_store_rc (*load_order)(void *impl, const char *order_id, co_order *o);
    /* Makes m in one transaction with its history rows, stock release or
     * take, lease, event record and stored answer (*answer gets it). */
    co_store_rc (*transition)(void *impl, const co_move *m, co_move_outcome *outcome,
                              co_answer *answer);
    /* Idempotency key, order and reservation in one transaction. */
    co_store_rc (*checkout_begin)(void *impl, const co_checkout_args *a, co_checkout_begun *out);
    /* Stores o's answer as its checkout's first answer; *answer gets it. */
    co_store_rc (*checkout_respond)(void *impl, const co_order *o, co_answer *answer);
    /* The stored first answer (CO_STORE_NONE when there is none yet). */
    co_store_rc (*checkout_answer)(void *impl, const char *order_id, co_answer *answer);
    /* *fresh is false when the event id was recorded before. */
    co_store_rc (*record_event)(void *impl, const co_event_record *e, bool *fresh);
    /* In one read: *seen when the event id was recorded before, and the order
     * it concerns into *o (CO_STORE_NONE when none): order_hint (may be NULL)
     * if that order exists and has no other intent, else the order whose
     * intent is intent. */
    co_store_rc (*event_order)(void *impl, const char *event_id, const char *order_hint,
                               const char *intent, bool *seen, co_order *o);
    /* Leases up to max stalled orders to owner. */
    co_store_rc (*claim_stalled)(void *impl, const char *owner, int lease_seconds, int max,
                                 char (*ids)[37], int *n);
    /* Leases one order to owner as claim_stalled would, whatever its lease's
     * age but another owner's that has not lapsed (*claim says which). */
    co_store_rc (*claim_order)(void *impl, const char *order_id, const char *owner,
                               int lease_seconds, co_claim *claim);

    /* Starts a pass for owner (a lease of lease_seconds on the watermark). */
    co_store_rc (*recon_begin)(void *impl, const char *owner, int lease_seconds,
                               co_recon_begun *out);
    /* Ends owner's pass, the watermark moved to watermark (< 0: left). */
    co_store_rc (*recon_end)(void *impl, const char *owner, long long watermark);
    /* The order whose intent is intent, else the one order_hint (a uuid or
     * NULL) names; CO_STORE_NONE when neither exists. */
    co_store_rc (*recon_order)(void *impl, const char *order_hint, const char *intent,
                               co_recon_order *out);
    /* Up to max ids of orders waiting on the provider with an intent, idle for
     * min_idle_seconds, after the id after (NULL: from the first), by id. */
    co_store_rc (*recon_waiting)(void *impl, int min_idle_seconds, const char *after, int max,
                                 char (*ids)[37], int *n);
    /* Takes the order, still in status, for owner to drive: CO_STORE_NONE when
     * it moved or another holds a live lease on it. */
    co_store_rc (*recon_claim)(void *impl, const char *order_id, co_state status,
                               const char *owner, int lease_seconds);
    co_store_rc (*recon_record)(void *impl, const co_recon_record *r);
} co_store_port;

#endif

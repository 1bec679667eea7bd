/* The saga's store: every SQL call the saga makes, one round trip each (the
 * functions are in sql/0003_saga.sql). Returns follow co_db's four values. */
#ifndef CO_STORE_H
#define CO_STORE_H

#include "co_db.h"
#include "saga.h"

co_db_status co_store_load_order(co_db *db, const char *order_id, co_order *o);

typedef struct {
    const char *user_id, *idempotency_key, *request_hash, *order_id;
    const char *items_json;
    bool mobile;
    const char *payment_method;
    int ttl_seconds, lease_seconds;
    const char *owner;
} co_checkout_args;

typedef struct {
    char outcome[16];       /* reserved | out_of_stock | replay | in_progress | reused */
    char order_id[37];
    unsigned response_status;
    char *response_body;    /* malloc'd (replay only) */
    char short_item[37];
    long long amount;
    char currency[8];
    char expires_at[32];
    char sqlstate[6];       /* CK400/CK404 on a bad cart (status HARD) */
    char detail[256];
} co_checkout_begun;

co_db_status co_store_checkout_begin(co_db *db, const co_checkout_args *a, co_checkout_begun *out);
co_db_status co_store_checkout_respond(co_db *db, const char *order_id, unsigned status,
                                       const char *body);
/* The stored first answer of an order's checkout; *body malloc'd (NULL and
 * CO_DB_NONE when there is none yet). */
co_db_status co_store_checkout_answer(co_db *db, const char *order_id, unsigned *status,
                                      char **body);

/* result: "ok", "moved" or "short" (see co_transition in sql/0003_saga.sql). */
co_db_status co_store_transition(co_db *db, const co_order *o, const char *const *path, int hops,
                                 const co_change *ch, int lease_seconds, const char *owner,
                                 unsigned answer_status, const char *answer_body,
                                 const char *event_id, const char *event_type, char result[12]);

/* Records a provider event that changed nothing; *fresh is false when the
 * event id was seen before. */
co_db_status co_store_record_event(co_db *db, const char *event_id, const char *type,
                                   const char *payment_intent, const char *order_id,
                                   const char *outcome, bool *fresh);

/* Before a provider event is acted on: *seen when its id was recorded before,
 * and the order it concerns into order_id ("" when none): order_hint (the
 * event's metadata.order_id, may be NULL) if that order exists and has no other
 * PaymentIntent, else the order whose PaymentIntent is payment_intent (may be NULL). */
co_db_status co_store_event_lookup(co_db *db, const char *event_id, const char *order_hint,
                                   const char *payment_intent, bool *seen, char order_id[37]);

/* Claims up to max stalled sagas for owner; ids[i] get the order ids. */
co_db_status co_store_claim_stalled(co_db *db, const char *owner, int lease_seconds, int max,
                                    char (*ids)[37], int *n);

#endif

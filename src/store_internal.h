/* Inside the store: the saga port's functions (each in the file of its
 * subject) and what the store files share. Only src/store_*.c include this. */
#ifndef CO_STORE_INTERNAL_H
#define CO_STORE_INTERNAL_H

#include "store.h"

#include <stddef.h>

/* store_orders.c */
co_store_rc co_store_load_order(void *db, const char *order_id, co_order *o);
co_store_rc co_store_transition(void *db, const co_move *m, co_move_outcome *outcome,
                                co_answer *answer);
co_store_rc co_store_checkout_begin(void *db, const co_checkout_args *a, co_checkout_begun *out);
/* Group commit of the common move (sql/0018); co_store_batching sets it. */
void co_store_moves_batching(int max_batch, int max_inflight);
co_store_rc co_store_checkout_respond(void *db, const co_order *o, co_answer *answer);
co_store_rc co_store_checkout_answer(void *db, const char *order_id, co_answer *answer);
co_store_rc co_store_claim_stalled(void *db, const char *owner, int lease_seconds, int max,
                                   char (*ids)[37], int *n);
co_store_rc co_store_claim_order(void *db, const char *order_id, const char *owner,
                                 int lease_seconds, co_claim *claim);
/* store_events.c */
co_store_rc co_store_record_event(void *db, const co_event_record *e, bool *fresh);
co_store_rc co_store_event_order(void *db, const char *event_id, const char *order_hint,
                                 const char *intent, bool *seen, co_order *o);
/* store_reconcile.c */
co_store_rc co_store_recon_begin(void *db, const char *owner, int lease_seconds,
                                 co_recon_begun *out);
co_store_rc co_store_recon_end(void *db, const char *owner, long long watermark);
co_store_rc co_store_recon_order(void *db, const char *order_hint, const char *intent,
                                 co_recon_order *out);
co_store_rc co_store_recon_waiting(void *db, int min_idle_seconds, const char *after, int max,
                                   char (*ids)[37], int *n);
co_store_rc co_store_recon_claim(void *db, const char *order_id, co_state status,
                                 const char *owner, int lease_seconds);
co_store_rc co_store_recon_record(void *db, const co_recon_record *rec);
/* The order of row 0 of r, read by the column names of load_order. */
void co_store_read_order(const co_dbr *r, co_order *o);

/* Runs one statement whose answer is one text column col (a JSON document):
 * *text gets it (malloc'd; NULL without a row); refusal (may be NULL) what a
 * failure stands for. */
co_store_rc co_store_text(co_db *db, const char *sql, int nparams, const char *const *params,
                          const char *col, char **text, co_store_refusal *refusal);

/* Copies src (NULL: "") into dst of n bytes, truncating. */
void co_store_copy(char *dst, size_t n, const char *src);
/* A fresh random uuid: the id a write chooses once, so that running it again
 * after a lost connection finds its own first run (sql/0013_in_doubt.sql). */
void co_store_new_id(char out[37]);

#endif

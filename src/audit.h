/* checkoutd audit: an independent check of SPEC section 8 on a live system,
 * from Postgres, the provider's list API and (optionally) the notification
 * sink's deliveries. Read-only everywhere. README, "Auditing". */
#ifndef CO_AUDIT_H
#define CO_AUDIT_H

#include "co_db.h"

#include <stdbool.h>
#include <stddef.h>

/* The subcommand: argv[0] is "audit". Returns the exit status: 0 when every
 * anomaly is 0, 1 when one is not, 2 when something could not be read (or
 * the arguments are wrong). */
int co_audit_main(int argc, char **argv);

/* ---------------------------------------------------------------- store_audit.c */

/* The anomalies, in the order the table lists them. */
typedef enum {
    CO_AUDIT_OVERSOLD_UNITS,
    CO_AUDIT_LEDGER_MISMATCHES,
    CO_AUDIT_DOUBLE_CHARGES,
    CO_AUDIT_CAPTURED_WITHOUT_CONFIRMED,
    CO_AUDIT_CONFIRMED_WITHOUT_CAPTURE,
    CO_AUDIT_DANGLING_AUTHORIZATIONS,
    CO_AUDIT_NON_TERMINAL_ORDERS,
    CO_AUDIT_DUPLICATE_WEBHOOK_EFFECTS,
    CO_AUDIT_MISSED_NOTIFICATIONS,
    CO_AUDIT_DUPLICATED_NOTIFICATIONS,
    CO_AUDIT_N
} co_audit_check;

#define CO_AUDIT_EXAMPLES 5

/* What the checks read besides the database. intents: a JSON array of
 * {"id","status","amount","received","kept","order_id","created"} (kept:
 * captured and not refunded); deliveries: mock-notify's "data" array, or NULL
 * when there is no sink (the notification checks then read the outbox alone).
 * since: an RFC 3339 time or NULL; settle_seconds: what is younger is in
 * flight. */
typedef struct {
    int settle_seconds;
    const char *since;
    const char *intents;
    const char *deliveries;
} co_audit_inputs;

typedef struct {
    long long count;
    int n_examples;
    char examples[CO_AUDIT_EXAMPLES][80];
} co_audit_result;

/* One status count of the orders in scope. */
typedef struct {
    char flow[16];
    char status[24];
    long long n;
} co_audit_outcome;

/* The name of a check as the table and the JSON print it. */
const char *co_audit_check_name(co_audit_check c);

/* Opens the read-only snapshot every later query sees (REPEATABLE READ READ
 * ONLY, its first statement run now): taken before the provider is read, so
 * the database is never ahead of what the provider was seen to have done. */
bool co_audit_snapshot(co_db *db, char *err, size_t n);
/* Orders in scope per flow and status; *out is malloc'd (caller frees), *n rows. */
bool co_audit_outcomes(co_db *db, const co_audit_inputs *in, co_audit_outcome **out, int *n,
                       char *err, size_t errn);
/* Runs every check into res[CO_AUDIT_N]. */
bool co_audit_checks(co_db *db, const co_audit_inputs *in, co_audit_result *res, char *err,
                     size_t n);
/* Ends the snapshot (it wrote nothing). */
void co_audit_snapshot_end(co_db *db);

#endif

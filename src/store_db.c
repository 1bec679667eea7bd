/* What every store file shares: the SQLSTATEs our SQL functions raise, mapped
 * to refusals and to API errors in one table, and the saga's store port. */
#include "store_internal.h"

#include <uuid/uuid.h>

#include <stdio.h>
#include <string.h>

/* Our SQLSTATEs (sql/0002, sql/0003) and the unique violation, in one table. */
static const struct {
    const char *sqlstate;
    co_refusal kind;
    co_err err;
} refusals[] = {
    {"CK400", CO_REFUSAL_INVALID, CO_ERR_invalid_request},
    {"CK404", CO_REFUSAL_NOT_FOUND, CO_ERR_item_not_found},
    {"CK409", CO_REFUSAL_SHORT, CO_ERR_out_of_stock},
    {"CK410", CO_REFUSAL_GONE, CO_ERR_order_state_conflict},
    {"23505", CO_REFUSAL_DUPLICATE, CO_ERR_sku_exists},
    {"22003", CO_REFUSAL_RANGE, CO_ERR_invalid_request},
};

co_store_rc co_store_rc_of(co_db_status st)
{
    switch (st) {
    case CO_DB_ROWS:
        return CO_STORE_OK;
    case CO_DB_NONE:
        return CO_STORE_NONE;
    case CO_DB_SOFT:
        return CO_STORE_RETRY;
    default:
        return CO_STORE_FAILED;
    }
}

void co_store_refusal_of(const co_dbr *r, co_store_refusal *out)
{
    memset(out, 0, sizeof *out);
    if (r->status != CO_DB_HARD)
        return;
    out->kind = CO_REFUSAL_OTHER;
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
        if (strcmp(r->sqlstate, refusals[i].sqlstate) == 0)
            out->kind = refusals[i].kind;
    snprintf(out->detail, sizeof out->detail, "%s", r->detail);
}

void co_store_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void co_store_new_id(char out[37])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

co_store_rc co_store_text(co_db *db, const char *sql, int nparams, const char *const *params,
                          const char *col, char **text, co_store_refusal *refusal)
{
    co_dbr r;
    co_db_status st = co_db_call(db, &r, sql, nparams, params);
    const char *v = st == CO_DB_ROWS ? co_dbr_str(&r, 0, col) : NULL;

    *text = v != NULL ? strdup(v) : NULL;
    if (refusal != NULL)
        co_store_refusal_of(&r, refusal);
    co_dbr_clear(&r);
    if (st == CO_DB_ROWS && *text == NULL)
        return CO_STORE_FAILED; /* out of memory, or no such column: never sent half */
    return co_store_rc_of(st);
}

co_err co_store_refusal_err(co_refusal kind)
{
    if (kind == CO_REFUSAL_NONE)
        return CO_OK;
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
        if (refusals[i].kind == kind)
            return refusals[i].err;
    return CO_ERR_internal_error;
}

co_store_port co_store_port_pg(co_db *db)
{
    return (co_store_port){
        .impl = db,
        .load_order = co_store_load_order,
        .transition = co_store_transition,
        .checkout_begin = co_store_checkout_begin,
        .checkout_respond = co_store_checkout_respond,
        .checkout_answer = co_store_checkout_answer,
        .record_event = co_store_record_event,
        .event_order = co_store_event_order,
        .claim_stalled = co_store_claim_stalled,
        .claim_order = co_store_claim_order,
        .recon_begin = co_store_recon_begin,
        .recon_end = co_store_recon_end,
        .recon_order = co_store_recon_order,
        .recon_waiting = co_store_recon_waiting,
        .recon_claim = co_store_recon_claim,
        .recon_record = co_store_recon_record,
    };
}

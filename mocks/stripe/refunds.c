/* mock-stripe's refunds (create, retrieve, list) and charges (retrieve): a refund
 * belongs to a PaymentIntent's latest, succeeded charge. */
#include "stripe.h"

#include <stdlib.h>
#include <string.h>

static const char *const refund_reasons[] = {
    "duplicate", "fraudulent", "requested_by_customer", NULL,
};

static void fail_no_charge(ms_resp *r, const char *id, const char *param, int status)
{
    ms_fail(r, status, "invalid_request_error", "resource_missing", param,
            "No such charge: '%.100s'", id);
    r->no_store = true;
}

/* The PaymentIntent named by payment_intent= or charge= (which must agree). */
static ms_pi *refund_target(const char *pi_id, const char *ch_id, ms_resp *r)
{
    ms_pi *pi = NULL, *by_charge = NULL;

    if (pi_id == NULL && ch_id == NULL) {
        ms_fail_param(r, "parameter_missing", "payment_intent",
                      "One of the following params should be provided for this request: "
                      "payment_intent or charge.");
        return NULL;
    }
    if (pi_id != NULL) {
        pi = ms_pi_find(pi_id);
        if (pi == NULL) {
            ms_fail_no_pi(r, pi_id, "payment_intent", 404);
            return NULL;
        }
    }
    if (ch_id != NULL) {
        by_charge = ms_charge_find(ch_id);
        if (by_charge == NULL) {
            fail_no_charge(r, ch_id, "charge", 404);
            return NULL;
        }
        if (pi != NULL && pi != by_charge) {
            ms_fail_param(r, NULL, "charge", "The charge %.60s does not belong to the "
                          "PaymentIntent %.60s.", ch_id, pi_id);
            return NULL;
        }
    }
    return pi != NULL ? pi : by_charge;
}

/* POST /v1/refunds */
void ms_h_refund_create(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"payment_intent", P_SCALAR}, {"charge", P_SCALAR}, {"amount", P_SCALAR},
        {"reason", P_SCALAR}, {"metadata", P_HASH}, {"expand", P_ARRAY},
        {"refund_application_fee", P_SCALAR}, {"reverse_transfer", P_SCALAR},
        {"instructions_email", P_SCALAR}, {"origin", P_SCALAR}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    const char *ch_id = ms_form_get(f, "charge");
    long long amt, remaining;
    bool has_amt;
    int reason = -1;
    ms_meta meta = {0};
    ms_refund *rf;
    ms_pi *pi;

    (void)id;
    if (!ms_check_params(f, params, r) || !ms_parse_amount(f, "amount", false, &has_amt, &amt, r) ||
        !ms_get_enum(f, "reason", refund_reasons, &reason, r) || !ms_apply_metadata(f, &meta, r))
        return;
    pi = refund_target(ms_form_get(f, "payment_intent"), ch_id, r);
    if (pi == NULL)
        goto fail;
    pthread_mutex_lock(&pi->mu);
    if (ch_id != NULL && strcmp(ch_id, pi->ch_id) != 0) {
        ms_fail_param(r, "charge_not_refundable", "charge", "Charge %.60s did not succeed and "
                      "cannot be refunded.", ch_id);
        goto unlock;
    }
    if (pi->status != ST_SUCCEEDED) {
        ms_fail_state(r, pi, "This PaymentIntent (%s) does not have a successful charge to refund "
                      "(status: %s).%s", pi->id, ms_status_names[pi->status],
                      pi->status == ST_REQUIRES_CAPTURE ?
                      " Cancel the PaymentIntent to release an uncaptured payment." : "");
        goto unlock;
    }
    remaining = pi->received - pi->refunded;
    if (remaining <= 0) {
        ms_fail(r, 400, "invalid_request_error", "charge_already_refunded", NULL,
                "Charge %s has already been refunded.", pi->ch_id);
        goto unlock;
    }
    if (!has_amt) {
        amt = remaining;
    } else if (amt > remaining) {
        ms_fail(r, 400, "invalid_request_error", "amount_too_large", "amount",
                "Refund amount ($%lld.%02lld) is greater than unrefunded amount on charge "
                "($%lld.%02lld)", amt / 100, amt % 100, remaining / 100, remaining % 100);
        goto unlock;
    }
    rf = ms_xcalloc(1, sizeof *rf);
    ms_new_id(rf->id, sizeof rf->id, "re_", 24);
    memcpy(rf->pi_id, pi->id, sizeof rf->pi_id);
    memcpy(rf->ch_id, pi->ch_id, sizeof rf->ch_id);
    memcpy(rf->currency, pi->currency, sizeof rf->currency);
    rf->amount = amt;
    rf->reason = reason >= 0 ? refund_reasons[reason] : NULL;
    rf->meta = meta;
    meta.n = 0;
    meta.k = NULL;
    meta.v = NULL;
    rf->created = time(NULL);
    rf->next_for_pi = pi->refunds;
    pi->refunds = rf;
    pi->refunded += amt;
    pthread_mutex_lock(&g_refunds.mu);
    if (g_refunds.n == g_refunds.cap) {
        g_refunds.cap = g_refunds.cap > 0 ? 2 * g_refunds.cap : 256;
        g_refunds.v = mh_xrealloc(g_refunds.v, g_refunds.cap * sizeof *g_refunds.v);
    }
    rf->idx = g_refunds.n;
    g_refunds.v[g_refunds.n++] = rf;
    pthread_mutex_unlock(&g_refunds.mu);
    ms_map_put(&g_objs, rf->id, rf);
    atomic_fetch_add(&st_refunds, 1);
    ms_ev_add(rq, "charge.refunded", pi->ch_id, ms_charge_json(pi));
    ms_journal_refund(pi, rf);
    ms_resp_json(r, 200, ms_refund_json(rf));
unlock:
    pthread_mutex_unlock(&pi->mu);
fail:
    ms_meta_free(&meta);
}

/* GET /v1/refunds/:id */
void ms_h_refund_retrieve(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {{"expand", P_ARRAY}, {NULL, P_ANY}};
    ms_refund *rf = strncmp(id, "re_", 3) == 0 ? ms_map_get(&g_objs, id) : NULL;

    if (!ms_check_params(&rq->form, params, r))
        return;
    if (rf == NULL) {
        ms_fail(r, 404, "invalid_request_error", "resource_missing", "id",
                "No such refund: '%.100s'", id);
        r->no_store = true;
        return;
    }
    ms_resp_json(r, 200, ms_refund_json(rf));
}

/* GET /v1/refunds?payment_intent=&charge=&limit=&starting_after=&ending_before= */
void ms_h_refund_list(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"payment_intent", P_SCALAR}, {"charge", P_SCALAR}, {"limit", P_SCALAR},
        {"starting_after", P_SCALAR}, {"ending_before", P_SCALAR}, {"expand", P_ARRAY},
        {"created", P_ANY}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    const char *pi_id = ms_form_get(f, "payment_intent"), *ch_id = ms_form_get(f, "charge");
    const char *sa, *eb;
    long long limit;
    ms_refund **all = NULL;
    size_t n = 0, lo, hi;
    long anchor = -1;
    bool more;
    json_t *data;

    (void)id;
    if (!ms_check_params(f, params, r) || !ms_list_args(f, &limit, &sa, &eb, r))
        return;
    if (pi_id != NULL || ch_id != NULL) {
        ms_pi *pi = refund_target(pi_id, ch_id, r);
        size_t k = 0;

        if (pi == NULL)
            return;
        pthread_mutex_lock(&pi->mu);
        for (ms_refund *x = pi->refunds; x != NULL; x = x->next_for_pi)
            n++;
        all = ms_xcalloc(n, sizeof *all);
        for (ms_refund *x = pi->refunds; x != NULL; x = x->next_for_pi)
            all[n - ++k] = x;   /* oldest first, like g_refunds */
        pthread_mutex_unlock(&pi->mu);
    } else {
        pthread_mutex_lock(&g_refunds.mu);
        n = g_refunds.n;
        all = ms_xcalloc(n, sizeof *all);
        if (n > 0)
            memcpy(all, g_refunds.v, n * sizeof *all);
        pthread_mutex_unlock(&g_refunds.mu);
    }
    if (sa != NULL || eb != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(all[i]->id, sa != NULL ? sa : eb) == 0)
                anchor = (long)i;
        }
        if (anchor < 0) {
            ms_fail(r, 400, "invalid_request_error", "resource_missing",
                    sa != NULL ? "starting_after" : "ending_before", "No such refund: '%.100s'",
                    sa != NULL ? sa : eb);
            r->no_store = true;
            free(all);
            return;
        }
    }
    ms_page_bounds(n, anchor, eb != NULL, (size_t)limit, &lo, &hi, &more);
    data = json_array();
    for (size_t i = hi; i > lo; i--)
        json_array_append_new(data, ms_refund_json(all[i - 1]));
    free(all);
    ms_resp_json(r, 200, ms_list_json(data, more, "/v1/refunds"));
}

/* GET /v1/charges/:id (only a PaymentIntent's latest charge is kept) */
void ms_h_charge_retrieve(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {{"expand", P_ARRAY}, {NULL, P_ANY}};
    ms_pi *pi;

    if (!ms_check_params(&rq->form, params, r))
        return;
    pi = ms_charge_find(id);
    if (pi == NULL) {
        fail_no_charge(r, id, "id", 404);
        return;
    }
    pthread_mutex_lock(&pi->mu);
    if (strcmp(pi->ch_id, id) == 0)
        ms_resp_json(r, 200, ms_charge_json(pi));
    else
        fail_no_charge(r, id, "id", 404);
    pthread_mutex_unlock(&pi->mu);
}

/* mock-stripe's PaymentIntent transitions: confirm with a test card (authorize,
 * decline, or 3-D Secure), its completion through /_mock/, capture and cancel. Each runs
 * with the PaymentIntent locked and records the webhook events it causes. */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cancel_reasons[] = {
    "abandoned", "duplicate", "fraudulent", "requested_by_customer", NULL,
};

/* ================================================================ confirming */

/* The 402 Stripe answers for a declined card: the error carries the whole PaymentIntent
 * (now requires_payment_method with last_payment_error) and the failed charge. */
static void reply_card_error(ms_resp *r, const ms_req *rq, const ms_pi *pi)
{
    json_t *err = ms_err_new("card_error", pi->err.code, NULL, pi->err.msg);
    char url[160];

    if (pi->err.has_charge)
        ms_jset(err, "charge", json_string(pi->ch_id));
    ms_jset(err, "decline_code", ms_jstr_opt(pi->err.decline));
    ms_jset(err, "payment_intent", ms_pi_json(pi));
    if (pi->err.pm != NULL)
        ms_jset(err, "payment_method", ms_pm_json(pi->err.pm, pi->created));
    snprintf(url, sizeof url, "https://dashboard.stripe.com/test/logs/%s?t=%lld", rq->req_id,
             (long long)time(NULL));
    ms_jset(err, "request_log_url", json_string(url));
    ms_reply_error(r, 402, err);
    r->retry = 0;
}

/* A new latest charge, made with payment method pm. */
static void pi_new_charge_locked(ms_pi *pi, bool ok, const char *pm)
{
    ms_new_id(pi->ch_id, sizeof pi->ch_id, "ch_", 24);
    pi->ch_ok = ok;
    pi->ch_created = time(NULL);
    free(pi->ch_pm);
    pi->ch_pm = ms_xstrdup_opt(pm);
    ms_map_put(&g_objs, pi->ch_id, pi);
}

static void pi_clear_error_locked(ms_pi *pi)
{
    free(pi->err.pm);
    memset(&pi->err, 0, sizeof pi->err);
}

/* The card authorized: manual capture waits in requires_capture, automatic captures now. */
static void pi_authorized_locked(ms_pi *pi, ms_req *rq)
{
    pi_clear_error_locked(pi);
    pi_new_charge_locked(pi, true, pi->pm);
    if (pi->capture == CAP_MANUAL) {
        pi->status = ST_REQUIRES_CAPTURE;
        pi->capturable = pi->amount;
        ms_ev_add(rq, "payment_intent.amount_capturable_updated", pi->id, ms_pi_json(pi));
    } else {
        pi->status = ST_SUCCEEDED;
        pi->received = pi->amount;
        atomic_fetch_add(&st_captured, 1);
        ms_ev_add(rq, "payment_intent.succeeded", pi->id, ms_pi_json(pi));
    }
}

/* The attempt failed: Stripe detaches the payment method and goes back to
 * requires_payment_method, recording why in last_payment_error. */
static void pi_failed_locked(ms_pi *pi, ms_req *rq, const char *type, const ms_decline *d,
                             bool with_charge)
{
    char *pm = pi->pm;         /* moves to last_payment_error */

    pi->pm = NULL;
    if (with_charge)
        pi_new_charge_locked(pi, false, pm);
    pi_clear_error_locked(pi);
    pi->err.set = true;
    pi->err.type = type;
    pi->err.code = d->code;
    pi->err.decline = d->decline;
    pi->err.msg = d->msg;
    pi->err.pm = pm;
    pi->err.has_charge = with_charge;
    pi->status = ST_REQUIRES_PAYMENT_METHOD;
    atomic_fetch_add(&st_declines, 1);
    ms_ev_add(rq, "payment_intent.payment_failed", pi->id, ms_pi_json(pi));
}

/* Confirms with pi->pm (known to be a test card). pi is locked. */
void ms_pi_confirm_locked(ms_pi *pi, ms_req *rq, bool off_session, ms_resp *r)
{
    const ms_decline *d;

    switch (ms_pm_classify(pi->pm, &d)) {
    case PM_SUCCEEDS:
        pi_authorized_locked(pi, rq);
        ms_reply_pi(r, pi);
        return;
    case PM_DECLINES:
        pi_failed_locked(pi, rq, "card_error", d, true);
        reply_card_error(r, rq, pi);
        return;
    case PM_NEEDS_3DS:
        if (off_session) {
            /* Nobody is there to authenticate: Stripe declines at once. */
            pi_failed_locked(pi, rq, "card_error", &ms_auth_required, true);
            reply_card_error(r, rq, pi);
            return;
        }
        pi_clear_error_locked(pi);
        pi->status = ST_REQUIRES_ACTION;
        ms_ev_add(rq, "payment_intent.requires_action", pi->id, ms_pi_json(pi));
        ms_reply_pi(r, pi);
        return;
    case PM_UNKNOWN:
        break;
    }
    abort();                    /* callers check the payment method first */
}

/* ================================================================ endpoints */

/* POST /v1/payment_intents/:id/confirm */
void ms_h_pi_confirm(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"payment_method", P_SCALAR}, {"capture_method", P_SCALAR}, {"return_url", P_SCALAR},
        {"off_session", P_SCALAR}, {"error_on_requires_action", P_SCALAR},
        {"receipt_email", P_SCALAR}, {"setup_future_usage", P_SCALAR},
        {"payment_method_types", P_ARRAY}, {"payment_method_options", P_ANY},
        {"payment_method_data", P_ANY}, {"mandate_data", P_ANY}, {"expand", P_ARRAY},
        {"use_stripe_sdk", P_SCALAR}, {"shipping", P_ANY}, {"radar_options", P_ANY},
        {"client_secret", P_SCALAR}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    const char *pm = ms_form_get(f, "payment_method"), *email;
    bool off_session = false, error_on_action = false;
    int capture = -1;
    ms_pi *pi;

    if (!ms_check_params(f, params, r) || !ms_get_bool(f, "off_session", &off_session, r) ||
        !ms_get_bool(f, "error_on_requires_action", &error_on_action, r) ||
        !ms_get_enum(f, "capture_method", ms_capture_names, &capture, r) ||
        !ms_get_string(f, "receipt_email", 800, &email, r) || !ms_check_pm(pm, r))
        return;
    pi = ms_pi_lock(id, r);
    if (pi == NULL)
        return;
    if (pi->status == ST_SUCCEEDED) {
        ms_fail_state(r, pi, "You cannot confirm this PaymentIntent because it has already "
                      "succeeded after being previously confirmed.");
        goto out;
    }
    if (!ms_pi_is_mutable(pi)) {
        ms_fail_state(r, pi, "You cannot confirm this PaymentIntent because it has a status of "
                      "%s. Only a PaymentIntent with one of the following statuses may be "
                      "confirmed: requires_payment_method, requires_confirmation, "
                      "requires_action.", ms_status_names[pi->status]);
        goto out;
    }
    if (pm == NULL && pi->pm == NULL) {
        ms_fail_param(r, "parameter_missing", "payment_method",
                      "You cannot confirm this PaymentIntent because it's missing a payment "
                      "method. Update the PaymentIntent with a payment method and then confirm "
                      "it again.");
        goto out;
    }
    if (pm != NULL) {
        free(pi->pm);
        pi->pm = ms_xstrdup(pm);
    }
    if (capture >= 0)
        pi->capture = capture;
    if (email != NULL)
        ms_set_opt_str(&pi->receipt_email, email);
    ms_pi_confirm_locked(pi, rq, off_session || error_on_action, r);
    ms_journal_pi(pi);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* POST /v1/payment_intents/:id/capture */
void ms_h_pi_capture(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"amount_to_capture", P_SCALAR}, {"metadata", P_HASH}, {"expand", P_ARRAY},
        {"statement_descriptor", P_SCALAR}, {"statement_descriptor_suffix", P_SCALAR},
        {"final_capture", P_SCALAR}, {"application_fee_amount", P_SCALAR},
        {"transfer_data", P_ANY}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    long long amt;
    bool has_amt;
    ms_pi *pi;

    if (!ms_check_params(f, params, r) ||
        !ms_parse_amount(f, "amount_to_capture", false, &has_amt, &amt, r))
        return;
    pi = ms_pi_lock(id, r);
    if (pi == NULL)
        return;
    if (pi->status != ST_REQUIRES_CAPTURE) {
        ms_fail_state(r, pi, "This PaymentIntent could not be captured because it has a status "
                      "of %s. Only a PaymentIntent with one of the following statuses may be "
                      "captured: requires_capture.", ms_status_names[pi->status]);
        goto out;
    }
    if (!has_amt) {
        amt = pi->capturable;
    } else if (amt > pi->capturable) {
        ms_fail_param(r, "amount_too_large", "amount_to_capture",
                      "The amount_to_capture of %lld must be less than or equal to the "
                      "PaymentIntent's amount_capturable of %lld.", amt, pi->capturable);
        goto out;
    }
    if (!ms_apply_metadata(f, &pi->meta, r))
        goto out;
    pi->status = ST_SUCCEEDED;
    pi->received = amt;
    pi->capturable = 0;
    atomic_fetch_add(&st_captured, 1);
    ms_ev_add(rq, "payment_intent.succeeded", pi->id, ms_pi_json(pi));
    ms_journal_pi(pi);
    ms_reply_pi(r, pi);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* POST /v1/payment_intents/:id/cancel */
void ms_h_pi_cancel(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"cancellation_reason", P_SCALAR}, {"expand", P_ARRAY}, {NULL, P_ANY},
    };
    int reason = -1;
    ms_pi *pi;

    if (!ms_check_params(&rq->form, params, r) ||
        !ms_get_enum(&rq->form, "cancellation_reason", cancel_reasons, &reason, r))
        return;
    pi = ms_pi_lock(id, r);
    if (pi == NULL)
        return;
    if (pi->status == ST_SUCCEEDED || pi->status == ST_CANCELED) {
        ms_fail_state(r, pi, "You cannot cancel this PaymentIntent because it has a status of "
                      "%s. Only a PaymentIntent with one of the following statuses may be "
                      "canceled: requires_payment_method, requires_capture, "
                      "requires_confirmation, requires_action, processing.",
                      ms_status_names[pi->status]);
        goto out;
    }
    pi->status = ST_CANCELED;
    pi->capturable = 0;
    pi->canceled_at = time(NULL);
    pi->cancel_reason = reason >= 0 ? cancel_reasons[reason] : NULL;
    atomic_fetch_add(&st_canceled, 1);
    ms_ev_add(rq, "payment_intent.canceled", pi->id, ms_pi_json(pi));
    ms_journal_pi(pi);
    ms_reply_pi(r, pi);
out:
    pthread_mutex_unlock(&pi->mu);
}

/* POST /_mock/payment_intents/:id/authenticate: what the shopper's 3-D Secure challenge
 * does at Stripe. Body (form or JSON) "outcome": "succeed" (default) or "fail". */
void ms_mock_authenticate(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_decline auth_failed = {
        NULL, "payment_intent_authentication_failure", NULL,
        "The provided PaymentMethod has failed authentication. You can provide "
        "payment_method_data or a new PaymentMethod to attempt to fulfill this "
        "PaymentIntent again.", NULL,
    };
    const char *outcome = NULL;
    json_t *j = NULL;
    ms_pi *pi;

    if (rq->body_len > 0 && rq->body[0] == '{') {
        j = json_loadb(rq->body, rq->body_len, 0, NULL);
        outcome = json_string_value(json_object_get(j, "outcome"));
    } else {
        outcome = ms_form_get(&rq->form, "outcome");
    }
    if (outcome != NULL && strcmp(outcome, "succeed") != 0 && strcmp(outcome, "fail") != 0) {
        ms_fail_mock(r, "outcome must be \"succeed\" or \"fail\"");
        goto out;
    }
    pi = ms_pi_lock(id, r);
    if (pi == NULL)
        goto out;
    if (pi->status != ST_REQUIRES_ACTION) {
        ms_fail_state(r, pi, "This PaymentIntent has a status of %s; only one that "
                      "requires_action can be authenticated.", ms_status_names[pi->status]);
    } else if (outcome != NULL && strcmp(outcome, "fail") == 0) {
        pi_failed_locked(pi, rq, "invalid_request_error", &auth_failed, false);
        ms_journal_pi(pi);
        ms_reply_pi(r, pi);
    } else {
        pi_authorized_locked(pi, rq);
        ms_journal_pi(pi);
        ms_reply_pi(r, pi);
    }
    pthread_mutex_unlock(&pi->mu);
out:
    json_decref(j);
}

/* mock-stripe's JSON: Stripe's error bodies (every error reply is built here), the
 * objects as the API returns them (PaymentIntent, charge, refund, metadata), and lists.
 * Callers hold the lock of the object they render. */
#include "stripe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ responses and errors */

void ms_jset(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v != NULL ? v : json_null());
}

json_t *ms_jstr_opt(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* Takes root. */
void ms_resp_json(ms_resp *r, int status, json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);

    json_decref(root);
    free(r->body);
    if (s == NULL)
        mh_oom();
    r->status = status;
    r->body = s;
    r->len = strlen(s);
}

/* Stripe's page for an error code: card_declined -> .../error-codes/card-declined */
static void doc_url(const char *code, char *out, size_t cap)
{
    static const char base[] = "https://stripe.com/docs/error-codes/";

    snprintf(out, cap, "%s%s", base, code);
    for (char *p = out + strlen(out) - strlen(code); *p != '\0'; p++) {
        if (*p == '_')
            *p = '-';
    }
}

json_t *ms_err_new(const char *type, const char *code, const char *param, const char *msg)
{
    json_t *e = json_object();
    char url[160];

    if (code != NULL) {
        ms_jset(e, "code", json_string(code));
        doc_url(code, url, sizeof url);
        ms_jset(e, "doc_url", json_string(url));
    }
    ms_jset(e, "message", json_string(msg));
    if (param != NULL)
        ms_jset(e, "param", json_string(param));
    ms_jset(e, "type", json_string(type));
    return e;
}

/* Takes err; wraps it as {"error": err}. */
void ms_reply_error(ms_resp *r, int status, json_t *err)
{
    json_t *root = json_object();

    json_object_set_new(root, "error", err);
    ms_resp_json(r, status, root);
}

/* Messages quote client input; bytes that are not UTF-8 become '?' so jansson takes them. */
static void vformat_msg(char *msg, size_t cap, const char *fmt, va_list ap)
{
    vsnprintf(msg, cap, fmt, ap);
    if (!ms_utf8_ok(msg, strlen(msg))) {
        for (char *p = msg; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        }
    }
}

__attribute__((format(printf, 6, 0)))
static void vfail(ms_resp *r, int status, const char *type, const char *code,
                  const char *param, const char *fmt, va_list ap)
{
    char msg[1024];

    vformat_msg(msg, sizeof msg, fmt, ap);
    ms_reply_error(r, status, ms_err_new(type, code, param, msg));
}

__attribute__((format(printf, 6, 7)))
void ms_fail(ms_resp *r, int status, const char *type, const char *code,
             const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(r, status, type, code, param, fmt, ap);
    va_end(ap);
}

/* A 400 for bad parameters: validation, so no idempotent result is saved. */
__attribute__((format(printf, 4, 5)))
void ms_fail_param(ms_resp *r, const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(r, 400, "invalid_request_error", code, param, fmt, ap);
    va_end(ap);
    r->no_store = true;
}

__attribute__((format(printf, 2, 3)))
void ms_fail_mock(ms_resp *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(r, 400, "invalid_request_error", NULL, NULL, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4)))
void ms_fail_state(ms_resp *r, const ms_pi *pi, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *err;

    va_start(ap, fmt);
    vformat_msg(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err = ms_err_new("invalid_request_error", "payment_intent_unexpected_state", NULL, msg);
    ms_jset(err, "payment_intent", ms_pi_json(pi));
    ms_reply_error(r, 400, err);
}

void ms_fail_no_pi(ms_resp *r, const char *id, const char *param, int status)
{
    ms_fail(r, status, "invalid_request_error", "resource_missing", param,
            "No such payment_intent: '%.100s'", id);
    r->no_store = true;
}

/* ================================================================ objects */

const char *const ms_status_names[] = {
    "requires_payment_method", "requires_confirmation", "requires_action", "processing",
    "requires_capture", "canceled", "succeeded",
};

const char *const ms_capture_names[] = {"automatic", "automatic_async", "manual", NULL};

json_t *ms_meta_json(const ms_meta *m)
{
    json_t *o = json_object();

    for (size_t i = 0; i < m->n; i++)
        json_object_set_new(o, m->k[i], json_string(m->v[i]));
    return o;
}

static json_t *payerr_json(const ms_pi *pi)
{
    const ms_payerr *e = &pi->err;
    json_t *o;

    if (!e->set)
        return json_null();
    o = ms_err_new(e->type, e->code, NULL, e->msg);
    if (e->has_charge)
        ms_jset(o, "charge", json_string(pi->ch_id));
    if (e->decline != NULL)
        ms_jset(o, "decline_code", json_string(e->decline));
    if (e->pm != NULL)
        ms_jset(o, "payment_method", ms_pm_json(e->pm, pi->created));
    return o;
}

json_t *ms_pi_json(const ms_pi *pi)
{
    json_t *o = json_object();
    json_t *types = json_array();

    ms_jset(o, "id", json_string(pi->id));
    ms_jset(o, "object", json_string("payment_intent"));
    ms_jset(o, "amount", json_integer(pi->amount));
    ms_jset(o, "amount_capturable", json_integer(pi->capturable));
    ms_jset(o, "amount_details", json_pack("{s:{}}", "tip"));
    ms_jset(o, "amount_received", json_integer(pi->received));
    ms_jset(o, "application", NULL);
    ms_jset(o, "application_fee_amount", NULL);
    ms_jset(o, "automatic_payment_methods", NULL);
    ms_jset(o, "canceled_at", pi->canceled_at != 0 ? json_integer(pi->canceled_at) : NULL);
    ms_jset(o, "cancellation_reason", ms_jstr_opt(pi->cancel_reason));
    ms_jset(o, "capture_method", json_string(ms_capture_names[pi->capture]));
    ms_jset(o, "client_secret", json_string(pi->secret));
    ms_jset(o, "confirmation_method", json_string("automatic"));
    ms_jset(o, "created", json_integer(pi->created));
    ms_jset(o, "currency", json_string(pi->currency));
    ms_jset(o, "customer", NULL);
    ms_jset(o, "description", ms_jstr_opt(pi->description));
    ms_jset(o, "invoice", NULL);
    ms_jset(o, "last_payment_error", payerr_json(pi));
    ms_jset(o, "latest_charge", pi->ch_id[0] != '\0' ? json_string(pi->ch_id) : NULL);
    ms_jset(o, "livemode", json_false());
    ms_jset(o, "metadata", ms_meta_json(&pi->meta));
    if (pi->status == ST_REQUIRES_ACTION)
        ms_jset(o, "next_action",
                json_pack("{s:s, s:{s:s, s:s}}", "type", "use_stripe_sdk", "use_stripe_sdk",
                          "type", "three_d_secure_redirect", "stripe_js",
                          "https://hooks.stripe.com/3d_secure_2/hosted"));
    else
        ms_jset(o, "next_action", NULL);
    ms_jset(o, "on_behalf_of", NULL);
    ms_jset(o, "payment_method", ms_jstr_opt(pi->pm));
    ms_jset(o, "payment_method_configuration_details", NULL);
    ms_jset(o, "payment_method_options",
            json_pack("{s:{s:n, s:n, s:n, s:s}}", "card", "installments", "mandate_options",
                      "network", "request_three_d_secure", "automatic"));
    for (size_t i = 0; i < pi->n_pm_types; i++)
        json_array_append_new(types, json_string(pi->pm_types[i]));
    ms_jset(o, "payment_method_types", types);
    ms_jset(o, "processing", NULL);
    ms_jset(o, "receipt_email", ms_jstr_opt(pi->receipt_email));
    ms_jset(o, "review", NULL);
    ms_jset(o, "setup_future_usage", NULL);
    ms_jset(o, "shipping", NULL);
    ms_jset(o, "source", NULL);
    ms_jset(o, "statement_descriptor", NULL);
    ms_jset(o, "statement_descriptor_suffix", NULL);
    ms_jset(o, "status", json_string(ms_status_names[pi->status]));
    ms_jset(o, "transfer_data", NULL);
    ms_jset(o, "transfer_group", NULL);
    return o;
}

/* What the latest charge has given back: refunds, the part a partial capture released,
 * or everything when an authorization was voided. */
static long long charge_refunded(const ms_pi *pi)
{
    if (!pi->ch_ok)
        return 0;
    if (pi->status == ST_SUCCEEDED)
        return pi->refunded + (pi->amount - pi->received);
    if (pi->status == ST_CANCELED)
        return pi->amount;
    return 0;
}

/* Where a charge's card came from: the card part of its payment method as Stripe puts
 * it under payment_method_details (no CVC or address is taken, so no check ran). */
static json_t *charge_pm_details(const ms_pi *pi)
{
    json_t *pm, *card, *details;

    if (pi->ch_pm == NULL)
        return json_null();
    pm = ms_pm_json(pi->ch_pm, pi->ch_created);
    card = json_deep_copy(json_object_get(pm, "card"));
    json_decref(pm);
    if (card == NULL)
        mh_oom();
    ms_jset(card, "amount_authorized", pi->ch_ok ? json_integer(pi->amount) : NULL);
    ms_jset(card, "authorization_code", NULL);
    ms_jset(card, "checks", json_pack("{s:n, s:n, s:n}", "address_line1_check",
                                      "address_postal_code_check", "cvc_check"));
    ms_jset(card, "installments", NULL);
    ms_jset(card, "mandate", NULL);
    ms_jset(card, "network", json_incref(json_object_get(card, "brand")));
    ms_jset(card, "three_d_secure", NULL);
    ms_jset(card, "wallet", NULL);
    details = json_object();
    ms_jset(details, "card", card);
    ms_jset(details, "type", json_string("card"));
    return details;
}

/* A charge as API version MS_API_VERSION renders it: every field its schema requires
 * (tests/sdk/stripe_required.json), null where Stripe sends null for a card charge
 * made through a PaymentIntent without a customer, Connect or invoice. */
json_t *ms_charge_json(const ms_pi *pi)
{
    json_t *o = json_object();
    bool captured = pi->ch_ok && pi->status == ST_SUCCEEDED;
    long long refunded = charge_refunded(pi);
    char url[128];

    snprintf(url, sizeof url, "https://pay.stripe.com/receipts/payment/%s", pi->ch_id);
    ms_jset(o, "id", json_string(pi->ch_id));
    ms_jset(o, "object", json_string("charge"));
    ms_jset(o, "amount", json_integer(pi->amount));
    ms_jset(o, "amount_captured", json_integer(captured ? pi->received : 0));
    ms_jset(o, "amount_refunded", json_integer(refunded));
    ms_jset(o, "application", NULL);
    ms_jset(o, "application_fee", NULL);
    ms_jset(o, "application_fee_amount", NULL);
    ms_jset(o, "balance_transaction", NULL);
    ms_jset(o, "billing_details",
            json_pack("{s:{s:n, s:n, s:n, s:n, s:n, s:n}, s:n, s:n, s:n}", "address", "city",
                      "country", "line1", "line2", "postal_code", "state", "email", "name",
                      "phone"));
    ms_jset(o, "calculated_statement_descriptor", pi->ch_ok ? json_string("MOCK-STRIPE") : NULL);
    ms_jset(o, "captured", json_boolean(captured));
    ms_jset(o, "created", json_integer(pi->ch_created));
    ms_jset(o, "currency", json_string(pi->currency));
    ms_jset(o, "customer", NULL);
    ms_jset(o, "description", ms_jstr_opt(pi->description));
    ms_jset(o, "disputed", json_false());
    ms_jset(o, "failure_balance_transaction", NULL);
    ms_jset(o, "failure_code", pi->ch_ok ? NULL : ms_jstr_opt(pi->err.code));
    ms_jset(o, "failure_message", pi->ch_ok ? NULL : ms_jstr_opt(pi->err.msg));
    ms_jset(o, "fraud_details", json_object());
    ms_jset(o, "invoice", NULL);
    ms_jset(o, "livemode", json_false());
    ms_jset(o, "metadata", ms_meta_json(&pi->meta));
    ms_jset(o, "on_behalf_of", NULL);
    ms_jset(o, "outcome",
            pi->ch_ok ? json_pack("{s:s, s:n, s:s, s:s, s:s}", "network_status",
                                  "approved_by_network", "reason", "risk_level", "normal",
                                  "seller_message", "Payment complete.", "type", "authorized")
                      : json_pack("{s:s, s:s?, s:s, s:s, s:s}", "network_status",
                                  "declined_by_network", "reason", pi->err.decline,
                                  "risk_level", "normal", "seller_message",
                                  "The bank did not return any further details with this decline.",
                                  "type", "issuer_declined"));
    ms_jset(o, "paid", json_boolean(pi->ch_ok));
    ms_jset(o, "payment_intent", json_string(pi->id));
    ms_jset(o, "payment_method", ms_jstr_opt(pi->ch_pm));
    ms_jset(o, "payment_method_details", charge_pm_details(pi));
    ms_jset(o, "receipt_email", ms_jstr_opt(pi->receipt_email));
    ms_jset(o, "receipt_number", NULL);
    ms_jset(o, "receipt_url", pi->ch_ok ? json_string(url) : NULL);
    ms_jset(o, "refunded", json_boolean(pi->ch_ok && refunded == pi->amount));
    ms_jset(o, "review", NULL);
    ms_jset(o, "shipping", NULL);
    ms_jset(o, "source", NULL);
    ms_jset(o, "source_transfer", NULL);
    ms_jset(o, "statement_descriptor", NULL);
    ms_jset(o, "statement_descriptor_suffix", NULL);
    ms_jset(o, "status", json_string(pi->ch_ok ? "succeeded" : "failed"));
    ms_jset(o, "transfer_data", NULL);
    ms_jset(o, "transfer_group", NULL);
    return o;
}

json_t *ms_refund_json(const ms_refund *rf)
{
    json_t *o = json_object();

    ms_jset(o, "id", json_string(rf->id));
    ms_jset(o, "object", json_string("refund"));
    ms_jset(o, "amount", json_integer(rf->amount));
    ms_jset(o, "balance_transaction", NULL);
    ms_jset(o, "charge", json_string(rf->ch_id));
    ms_jset(o, "created", json_integer(rf->created));
    ms_jset(o, "currency", json_string(rf->currency));
    ms_jset(o, "metadata", ms_meta_json(&rf->meta));
    ms_jset(o, "payment_intent", json_string(rf->pi_id));
    ms_jset(o, "reason", ms_jstr_opt(rf->reason));
    ms_jset(o, "receipt_number", NULL);
    ms_jset(o, "source_transfer_reversal", NULL);
    ms_jset(o, "status", json_string("succeeded"));
    ms_jset(o, "transfer_reversal", NULL);
    return o;
}

void ms_reply_pi(ms_resp *r, const ms_pi *pi)
{
    ms_resp_json(r, 200, ms_pi_json(pi));
}

/* ================================================================ lists */

/* The page of a newest-first list over items kept oldest first: [lo, hi) of indexes,
 * emitted from hi-1 down to lo. anchor is the index of starting_after/ending_before. */
void ms_page_bounds(size_t total, long anchor, bool ending_before, size_t limit,
                    size_t *lo, size_t *hi, bool *more)
{
    if (anchor >= 0 && ending_before) {
        *lo = (size_t)anchor + 1;
        *hi = *lo + limit < total ? *lo + limit : total;
        *more = *hi < total;
    } else {
        *hi = anchor >= 0 ? (size_t)anchor : total;
        *lo = *hi > limit ? *hi - limit : 0;
        *more = *lo > 0;
    }
}

json_t *ms_list_json(json_t *data, bool more, const char *url)
{
    return json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data", data, "has_more", more,
                     "url", url);
}

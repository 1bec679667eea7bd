/* mock-stripe's test payment methods: Stripe's pm_card_* names, which of them succeed,
 * decline (and with which code) or ask for 3-D Secure, and the payment_method object. */
#include "stripe.h"

#include <string.h>

static const ms_decline declines[] = {
    {"chargeDeclined", "card_declined", "generic_decline", "Your card was declined.", "0002"},
    {"chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds",
     "Your card has insufficient funds.", "9995"},
    {"chargeDeclinedExpiredCard", "expired_card", "expired_card", "Your card has expired.",
     "0069"},
    {"chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc",
     "Your card's security code is incorrect.", "0127"},
    {"chargeDeclinedProcessingError", "processing_error", "processing_error",
     "An error occurred while processing your card. Try again in a little bit.", "0119"},
    {"chargeDeclinedFraudulent", "card_declined", "fraudulent", "Your card was declined.",
     "0019"},
    {"chargeDeclinedLostCard", "card_declined", "lost_card", "Your card was declined.", "9987"},
    {"chargeDeclinedStolenCard", "card_declined", "stolen_card", "Your card was declined.",
     "9979"},
    {NULL, NULL, NULL, NULL, NULL},
};

const ms_decline ms_auth_required = {
    "authenticationRequired", "authentication_required", "authentication_required",
    "Your card was declined. This transaction requires authentication.", "3184",
};

static const char *pm_suffix(const char *pm)
{
    if (strncmp(pm, "pm_card_visa_", 13) == 0)
        return pm + 13;
    if (strncmp(pm, "pm_card_", 8) == 0)
        return pm + 8;
    return NULL;
}

ms_pm_kind ms_pm_classify(const char *pm, const ms_decline **d)
{
    const char *sfx = pm_suffix(pm);

    *d = NULL;
    if (sfx == NULL || *sfx == '\0')
        return PM_UNKNOWN;
    for (const ms_decline *x = declines; x->suffix != NULL; x++) {
        if (strcmp(sfx, x->suffix) == 0) {
            *d = x;
            return PM_DECLINES;
        }
    }
    if (strcmp(sfx, "authenticationRequired") == 0 || strcmp(sfx, "threeDSecureRequired") == 0 ||
        strcmp(sfx, "threeDSecure2Required") == 0)
        return PM_NEEDS_3DS;
    return PM_SUCCEEDS;
}

json_t *ms_pm_json(const char *pm, time_t created)
{
    const ms_decline *d;
    const char *brand = "visa", *last4 = "4242";
    json_t *o = json_object();

    if (ms_pm_classify(pm, &d) == PM_DECLINES) {
        last4 = d->last4;
    } else if (strstr(pm, "mastercard") != NULL) {
        brand = "mastercard";
        last4 = "4444";
    } else if (strstr(pm, "amex") != NULL) {
        brand = "amex";
        last4 = "8431";
    } else if (strstr(pm, "discover") != NULL) {
        brand = "discover";
        last4 = "1117";
    } else if (strstr(pm, "threeDSecure") != NULL) {
        last4 = "3063";
    } else if (strstr(pm, "authenticationRequired") != NULL) {
        last4 = "3184";
    }
    ms_jset(o, "id", json_string(pm));
    ms_jset(o, "object", json_string("payment_method"));
    ms_jset(o, "billing_details", json_pack("{s:n, s:n, s:n, s:n}", "address", "email", "name",
                                            "phone"));
    ms_jset(o, "card", json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "brand", brand, "country", "US",
                                 "exp_month", 12, "exp_year", 2034, "funding", "credit",
                                 "last4", last4));
    ms_jset(o, "created", json_integer(created));
    ms_jset(o, "customer", NULL);
    ms_jset(o, "livemode", json_false());
    ms_jset(o, "metadata", json_object());
    ms_jset(o, "type", json_string("card"));
    return o;
}

static void fail_unknown_pm(ms_resp *r, const char *pm)
{
    ms_fail_param(r, "resource_missing", "payment_method", "No such PaymentMethod: '%.100s'", pm);
}

bool ms_check_pm(const char *pm, ms_resp *r)
{
    const ms_decline *d;

    if (pm != NULL && ms_pm_classify(pm, &d) == PM_UNKNOWN) {
        fail_unknown_pm(r, pm);
        return false;
    }
    return true;
}

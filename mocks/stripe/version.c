/* Stripe-Version: the API version a request is answered in.
 *
 * mock-stripe renders one version, MS_API_VERSION (the one stripe-node 16.12.0 pins and
 * checkoutd sends, CO_STRIPE_API_VERSION). A request without the header is answered in
 * it, as a real account answers in its default version; every answer names it in its
 * own Stripe-Version header (routing.c). A version the mock cannot be is refused the way
 * Stripe refuses an invalid one: 400 invalid_request_error, "Invalid Stripe API version:
 * <value>", before anything is applied. A well-formed date of another version gets the
 * same refusal with a word on why, rather than an answer in a shape it does not have. */
#include "stripe.h"

#include <ctype.h>
#include <string.h>

/* YYYY-MM-DD, optionally followed by ".name" (the releases from 2024-09-30.acacia on). */
static bool well_formed(const char *v)
{
    static const char shape[] = "dddd-dd-dd";

    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)v[i]) : v[i] != shape[i])
            return false;
    }
    v += sizeof shape - 1;
    if (*v == '\0')
        return true;
    if (*v++ != '.' || *v == '\0')
        return false;
    for (; *v != '\0'; v++) {
        if (!islower((unsigned char)*v))
            return false;
    }
    return true;
}

bool ms_version_check(const ms_req *rq, ms_resp *r)
{
    const char *v = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Stripe-Version");

    if (v == NULL || strcmp(v, MS_API_VERSION) == 0)
        return true;
    if (well_formed(v))
        ms_fail(r, 400, "invalid_request_error", NULL, NULL,
                "Invalid Stripe API version: %.100s (mock-stripe answers in " MS_API_VERSION
                " only)", v);
    else
        ms_fail(r, 400, "invalid_request_error", NULL, NULL,
                "Invalid Stripe API version: %.100s", v);
    return false;
}

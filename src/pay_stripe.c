/* The saga's payment port (states/pay_port.h) on the libcurl Stripe client:
 * Stripe's statuses and error kinds become the port's enums, and a 409 that
 * outlived the client's retries (idempotency_key_in_use: the same keyed call
 * is running elsewhere) becomes CO_PAYMENT_IN_USE. */
#include "pay_stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static co_intent_status intent_status(const char *s)
{
    static const struct {
        const char *name;
        co_intent_status st;
    } names[] = {
        {"requires_payment_method", CO_INTENT_REQUIRES_PAYMENT_METHOD},
        {"requires_confirmation", CO_INTENT_REQUIRES_CONFIRMATION},
        {"requires_action", CO_INTENT_REQUIRES_ACTION},
        {"processing", CO_INTENT_PROCESSING},
        {"requires_capture", CO_INTENT_REQUIRES_CAPTURE},
        {"succeeded", CO_INTENT_SUCCEEDED},
        {"canceled", CO_INTENT_CANCELED},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, s) == 0)
            return names[i].st;
    return CO_INTENT_OTHER;
}

static co_payment_result result_of(const co_pay_result *res)
{
    switch (res->status) {
    case CO_PAY_OK:
        return CO_PAYMENT_OK;
    case CO_PAY_DECLINED:
        return CO_PAYMENT_DECLINED;
    case CO_PAY_UNEXPECTED_STATE:
        return CO_PAYMENT_WRONG_STATE;
    case CO_PAY_NOT_FOUND:
        return CO_PAYMENT_NOT_FOUND;
    case CO_PAY_ALREADY_REFUNDED:
        return CO_PAYMENT_ALREADY_REFUNDED;
    case CO_PAY_REJECTED:
        return CO_PAYMENT_REFUSED;
    default:
        return res->http_status == 409 ? CO_PAYMENT_IN_USE : CO_PAYMENT_UNKNOWN;
    }
}

/* The client's answer as the port's; returns out->result. */
static co_payment_result convert(const co_pay_result *res, co_payment *out)
{
    memset(out, 0, sizeof *out);
    out->result = result_of(res);
    out->status = intent_status(res->pi.status);
    snprintf(out->intent, sizeof out->intent, "%s", res->pi.id);
    snprintf(out->client_secret, sizeof out->client_secret, "%s", res->pi.client_secret);
    snprintf(out->code, sizeof out->code, "%s", res->code);
    snprintf(out->decline_code, sizeof out->decline_code, "%s", res->decline_code);
    snprintf(out->message, sizeof out->message, "%s", res->message);
    out->amount = res->pi.amount;
    snprintf(out->currency, sizeof out->currency, "%s", res->pi.currency);
    snprintf(out->order_id, sizeof out->order_id, "%s", res->pi.order_id);
    out->created = res->pi.created;
    return out->result;
}

static co_payment_result port_create(void *impl, const co_intent_params *p, const char *key,
                                     co_payment *out)
{
    co_pay_result res;
    co_pi_create_params cp = {
        .amount = p->amount,
        .currency = p->currency,
        .payment_method = p->payment_method,
        .confirm = p->confirm,
        .manual_capture = true,
        .order_id = p->order_id,
    };

    (void)co_stripe_create_intent(impl, &cp, key, &res);
    return convert(&res, out);
}

static co_payment_result port_retrieve(void *impl, const char *pi, co_payment *out)
{
    co_pay_result res;

    (void)co_stripe_retrieve_intent(impl, pi, &res);
    return convert(&res, out);
}

static co_payment_result port_capture(void *impl, const char *pi, const char *key,
                                      co_payment *out)
{
    co_pay_result res;

    (void)co_stripe_capture(impl, pi, -1, key, &res);
    return convert(&res, out);
}

static co_payment_result port_cancel(void *impl, const char *pi, const char *key,
                                     co_payment *out)
{
    co_pay_result res;

    (void)co_stripe_cancel(impl, pi, key, &res);
    return convert(&res, out);
}

static co_payment_result port_refund(void *impl, const char *pi, const char *key,
                                     co_payment *out)
{
    co_pay_result res;

    (void)co_stripe_refund(impl, pi, -1, key, &res);
    return convert(&res, out);
}

/* The intent, then its latest charge: the refunds are the charge's. */
static co_payment_result port_refunded(void *impl, const char *pi, co_payment *out)
{
    co_pay_result res, ch;

    (void)co_stripe_retrieve_intent(impl, pi, &res);
    if (convert(&res, out) != CO_PAYMENT_OK || res.pi.latest_charge[0] == '\0')
        return out->result; /* never captured: nothing refunded (0) */
    (void)co_stripe_retrieve_charge(impl, res.pi.latest_charge, &ch);
    if (ch.status != CO_PAY_OK || strcmp(ch.pi.id, res.pi.id) != 0) {
        co_intent_status st = out->status;

        (void)convert(&ch, out);
        out->status = st;
        if (out->result == CO_PAYMENT_OK) /* a charge of another intent: cannot be */
            out->result = CO_PAYMENT_REFUSED;
        return out->result;
    }
    out->amount_refunded = ch.charge_amount_refunded;
    return out->result;
}

/* A page of the list: each intent as retrieve would have it. */
static co_payment_result port_list(void *impl, long long created_gte, const char *starting_after,
                                   co_payment *rows, int max, int *n, bool *more)
{
    co_pay_result res, one;
    co_payment_intent *page = calloc(100, sizeof *page); /* 70 KB: not on a thread's stack */
    co_payment head;
    int got = 0;

    *n = 0;
    *more = false;
    if (page == NULL)
        return CO_PAYMENT_UNKNOWN;
    (void)co_stripe_list_intents(impl, created_gte, starting_after, max < 100 ? max : 100, page,
                                 100, &got, more, &res);
    if (convert(&res, &head) != CO_PAYMENT_OK) {
        free(page);
        return head.result;
    }
    for (int i = 0; i < got && i < max; i++) {
        memset(&one, 0, sizeof one);
        one.status = CO_PAY_OK;
        one.pi = page[i];
        (void)convert(&one, &rows[(*n)++]);
    }
    free(page);
    return CO_PAYMENT_OK;
}

co_pay_port co_pay_port_stripe(co_stripe *client)
{
    return (co_pay_port){.impl = client, .create = port_create, .retrieve = port_retrieve,
                         .capture = port_capture, .cancel = port_cancel, .refund = port_refund,
                         .refunded = port_refunded, .list = port_list};
}

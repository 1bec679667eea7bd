/* POST /webhooks/stripe: payment provider events.
 *
 * verify Stripe-Signature over the raw body (STRIPE_WEBHOOK_SECRET) -> parse
 * the event -> the saga decides (co_saga_event, states/events.c) -> answer.
 * Nothing is applied before the signature and the body are known good.
 *
 * Answers: 400 (signature_*, invalid_json, invalid_request) for a request we
 * will never accept; 200 {"received":true,...} for every well-signed event we
 * applied, ignored (unknown type or intent, an order already past it) or saw
 * before ("duplicate":true), so the provider stops sending it; 503 only when
 * the event could not take effect now because Postgres or the provider is
 * unreachable -- it is then not recorded, and the provider's retry applies it. */
#include "co_app.h"
#include "co_log.h"
#include "signature.h"

#include <string.h>

#define ID_MAX 255

static const char *str_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key)); /* NULL unless a string */
}

/* A provider id or type: 1 to ID_MAX printable ASCII characters. */
static bool id_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return false;
    return true;
}

/* The PaymentIntent an event's object is about: the object itself for
 * payment_intent.* events, its payment_intent field for charges and refunds. */
static const char *intent_of(json_t *obj)
{
    const char *kind = str_at(obj, "object");
    const char *id = str_at(obj, "id");
    const char *pi;

    if ((kind != NULL && strcmp(kind, "payment_intent") == 0) ||
        (kind == NULL && id != NULL && strncmp(id, "pi_", 3) == 0))
        pi = id;
    else
        pi = str_at(obj, "payment_intent");
    return id_ok(pi) ? pi : NULL;
}

/* The event's fields into *ev (strings borrowed from body; order holds the
 * order id when metadata.order_id is a uuid). On a body we will never accept
 * answers 400 naming the field and returns false. */
static bool parse_event(json_t *body, co_resp *resp, co_pay_event *ev, char order[37])
{
    json_t *obj, *err;
    const char *s;

    memset(ev, 0, sizeof *ev);
    ev->id = str_at(body, "id");
    ev->type = str_at(body, "type");
    obj = json_object_get(json_object_get(body, "data"), "object");
    if (!id_ok(ev->id) || strncmp(ev->id, "evt_", 4) != 0) {
        co_api_bad_field(resp, "id", "id must be the event's id (evt_...).");
        return false;
    }
    if (!id_ok(ev->type)) {
        co_api_bad_field(resp, "type", "type must be the event's type.");
        return false;
    }
    if (!json_is_object(obj)) {
        co_api_bad_field(resp, "data.object", "data.object must be an object.");
        return false;
    }
    ev->payment_intent = intent_of(obj);
    s = str_at(json_object_get(obj, "metadata"), "order_id");
    if (s != NULL && co_api_uuid(s, order))
        ev->order_id = order;
    err = json_object_get(obj, "last_payment_error");
    s = str_at(err, "decline_code") != NULL ? str_at(err, "decline_code") : str_at(err, "code");
    if (s != NULL && id_ok(s) && strlen(s) < 64)
        ev->decline_code = s;
    return true;
}

/* The debug line of an event: its id, type and what it did. */
static void log_event(const co_pay_event *ev, co_event_result r, const co_event_outcome *out)
{
    static const char *const results[] = {
        [CO_EVENT_APPLIED] = "applied", [CO_EVENT_IGNORED] = "ignored",
        [CO_EVENT_DUPLICATE] = "duplicate", [CO_EVENT_RETRY] = "retry",
    };
    const char *result = (unsigned)r < sizeof results / sizeof results[0] ? results[r] : "?";
    co_log_field f[] = {
        CO_LOG_STR("event_id", ev->id), CO_LOG_STR("event_type", ev->type),
        CO_LOG_STR("result", result), CO_LOG_STR("outcome", out->outcome[0] ? out->outcome : NULL),
        CO_LOG_STR("order_id", out->order_id[0] ? out->order_id : NULL),
    };

    CO_LOGF(CO_LOG_DEBUG, "webhook", f, "event %s %s: %s", ev->id, ev->type,
            out->outcome[0] ? out->outcome : result);
}

void co_webhook_stripe(co_worker *w, const co_req *req, co_resp *resp)
{
    json_t *body = NULL;
    co_pay_event ev;
    co_event_outcome out;
    co_event_result r;
    char order[37];
    /* What /metrics counts: a type only once the signature and the body are good. */
    const char *type = "unverified";
    const char *counted = "rejected";

    if (!co_webhook_signed(req, "Stripe-Signature", req->stripe_signature,
                           w->app->cfg.stripe_webhook_secret, resp))
        goto done;
    body = co_api_body(req, resp);
    if (body == NULL || !parse_event(body, resp, &ev, order))
        goto done;
    type = ev.type;

    r = co_saga_event(&w->saga, &ev, &out);
    log_event(&ev, r, &out);
    switch (r) {
    case CO_EVENT_DUPLICATE:
        counted = "duplicate";
        co_metric_add("webhook_stripe_duplicate", 1);
        co_resp_json(resp, 200, json_pack("{s:b, s:b}", "received", 1, "duplicate", 1));
        break;
    case CO_EVENT_RETRY:
        counted = "retry";
        co_resp_error(resp, CO_ERR_service_unavailable,
                      "The event could not be applied now; deliver it again later.", NULL);
        break;
    default:
        counted = r == CO_EVENT_APPLIED ? "applied" : "ignored";
        co_metric_add(r == CO_EVENT_APPLIED ? "webhook_stripe_applied" : "webhook_stripe_ignored",
                      1);
        co_resp_json(resp, 200,
                     json_pack("{s:b, s:s, s:s?}", "received", 1, "outcome", out.outcome,
                               "order_id", out.order_id[0] ? out.order_id : NULL));
        break;
    }
done:
    co_metric_webhook(type, counted);
    json_decref(body);
}

/* The checkout's answer for each deciding state:
 *   confirmed          201 {"id","order_id","status","amount","currency","payment_intent"}
 *   awaiting_payment   202 {"id","order_id","status","client_secret","reservation_expires_at",...}
 * "id" is the order's id as the order object names it; "order_id" is the same
 * value under its first name, kept for clients that read it (deprecated).
 *   failed             the error of its failure code (out_of_stock names the item,
 *                      payment_declined carries the decline_code) */
#include "render.h"

#include "co_errors.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static co_err failure_err(const char *code)
{
    static const co_err known[] = {CO_ERR_out_of_stock, CO_ERR_payment_declined,
                                   CO_ERR_authentication_required,
                                   CO_ERR_payment_provider_unavailable,
                                   CO_ERR_payment_provider_error};

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(co_err_get(known[i])->code, code) == 0)
            return known[i];
    return CO_ERR_internal_error;
}

bool co_render_checkout_answer(const co_order *o, unsigned *status, char **body)
{
    json_t *j;
    co_err err;
    char msg[160];

    switch (o->status) {
    case CO_ST_CONFIRMED:
        j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "id", o->id, "order_id", o->id,
                      "status", "confirmed",
                      "amount", (json_int_t)o->amount, "currency", o->currency,
                      "payment_intent", o->payment_intent);
        *status = 201;
        break;
    case CO_ST_AWAITING_PAYMENT:
        j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "id", o->id, "order_id",
                      o->id, "status", "awaiting_payment", "client_secret", o->client_secret,
                      "reservation_expires_at", o->expires_at, "payment_intent",
                      o->payment_intent, "amount", (json_int_t)o->amount, "currency",
                      o->currency);
        *status = 202;
        break;
    case CO_ST_FAILED:
    case CO_ST_VOIDING:
        if (o->status == CO_ST_VOIDING && o->compensate_to != CO_ST_FAILED)
            return false;
        err = failure_err(o->failure_code);
        j = json_pack("{s:s}", "order_id", o->id);
        msg[0] = '\0';
        if (err == CO_ERR_out_of_stock && o->failure_detail[0] != '\0') {
            json_object_set_new(j, "item_id", json_string(o->failure_detail));
            snprintf(msg, sizeof msg, "Item %s does not have enough units left.",
                     o->failure_detail);
        }
        if (err == CO_ERR_payment_declined && o->decline_code[0] != '\0')
            json_object_set_new(j, "decline_code", json_string(o->decline_code));
        *body = co_error_body(err, msg[0] ? msg : NULL, j);
        *status = co_err_get(err)->status;
        return *body != NULL;
    default:
        return false;
    }
    *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return *body != NULL;
}


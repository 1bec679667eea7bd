#include "signature.h"

#include "co_sig.h"

#include <stdio.h>
#include <time.h>

bool co_webhook_signed(const co_req *req, const char *name, const char *value,
                       const char *secret, co_resp *resp)
{
    char msg[160];
    co_err err;

    switch (co_sig_verify(value, secret, time(NULL), CO_SIG_TOLERANCE_SECONDS, req->body,
                          req->body_len)) {
    case CO_SIG_OK:
        return true;
    case CO_SIG_MISSING:
        err = CO_ERR_signature_missing;
        snprintf(msg, sizeof msg, "Send the %s header.", name);
        break;
    case CO_SIG_MALFORMED:
        err = CO_ERR_signature_invalid;
        snprintf(msg, sizeof msg, "The %s header must be t=<unix time>,v1=<hex HMAC-SHA256>.",
                 name);
        break;
    case CO_SIG_STALE:
        err = CO_ERR_signature_expired;
        snprintf(msg, sizeof msg, "The %s timestamp is more than %d seconds from now.", name,
                 CO_SIG_TOLERANCE_SECONDS);
        break;
    default:
        err = CO_ERR_signature_invalid;
        snprintf(msg, sizeof msg, "No v1 signature in %s matches the body.", name);
        break;
    }
    co_resp_error(resp, err, msg, json_pack("{s:s}", "param", name));
    return false;
}

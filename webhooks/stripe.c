/* POST /webhooks/stripe */
#include "co_app.h"

void co_webhook_stripe(co_worker *w, const co_req *req, co_resp *resp)
{
    (void)w;
    (void)req;
    co_resp_error(resp, CO_ERR_not_found, NULL, NULL);
}

/* The saga's payment port backed by the libcurl Stripe client (co_stripe.h). */
#ifndef CO_PAY_STRIPE_H
#define CO_PAY_STRIPE_H

#include "co_stripe.h"
#include "pay_port.h"

/* The port over client (one per thread, like the client). */
co_pay_port co_pay_port_stripe(co_stripe *client);

#endif

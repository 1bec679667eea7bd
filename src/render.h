/* Rendering: the checkout's answer for an order, in one place. The store
 * stores it with the move that decided it; the handler sends exactly that. */
#ifndef CO_RENDER_H
#define CO_RENDER_H

#include "order.h"

#include <stdbool.h>

/* The checkout's answer for o (co_order_answer_decided(o) must hold): HTTP
 * status and a malloc'd JSON body. False when o decides nothing, or on OOM. */
bool co_render_checkout_answer(const co_order *o, unsigned *status, char **body);

#endif

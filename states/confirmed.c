/* confirmed: terminal success. Only a cancel (refund) moves it. */
#include "steps.h"

co_step co_step_confirmed(co_run *r, co_order *o, co_drive_mode mode)
{
    co_change ch = CO_CHANGE_INIT;

    if (mode != CO_DRIVE_CANCEL)
        return CO_STEP_WAIT;
    ch.reason = "cancelled_by_shopper";
    ch.compensate_to = CO_ST_REFUNDED;
    return co_saga_transition(r, o, CO_ST_REFUNDING, &ch);
}

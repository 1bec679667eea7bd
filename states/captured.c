/* captured: money taken. Confirming is a DB step only (usually made in the
 * same commit as the capture's record; this covers a captured order left so). */
#include "steps.h"

co_step co_step_captured(co_run *r, co_order *o)
{
    co_change ch = CO_CHANGE_INIT;

    ch.reason = "confirmed";
    return co_saga_transition(r, o, CO_ST_CONFIRMED, &ch);
}

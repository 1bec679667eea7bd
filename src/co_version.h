/* The release of checkoutd: `checkoutd --version` prints it, and the payment client
 * names it in its User-Agent. Defined here only. */
#ifndef CO_VERSION_H
#define CO_VERSION_H

#define CO_VERSION "1.0.0"

#endif

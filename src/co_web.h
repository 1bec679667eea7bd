/* The web pages' files (web/), compiled in by scripts/embed_web.sh: the admin page
 * that checkoutd serves at /admin and the demo storefront that mock-shop serves. */
#ifndef CO_WEB_H
#define CO_WEB_H

#include <stddef.h>

typedef struct {
    const char *path;           /* under web/: "admin/index.html" */
    const char *content_type;
    const unsigned char *data;  /* len bytes, then a NUL */
    size_t len;
} co_web_asset;

/* Ends with a {NULL} entry. */
extern const co_web_asset co_web_assets[];

/* The file at path under web/, or NULL. */
const co_web_asset *co_web_find(const char *path);

/* The Content-Security-Policy and the other headers every page file is served with:
 * only this origin's own scripts, styles and API, no inline code, no framing. A
 * static name, value, ..., NULL list (co_resp.headers). */
extern const char *const co_web_headers[];

#endif

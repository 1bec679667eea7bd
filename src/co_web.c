/* Looking up the files scripts/embed_web.sh compiled in, and the headers they go with. */
#include "co_web.h"

#include <string.h>

const char *const co_web_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options", "nosniff",
    "X-Frame-Options", "DENY",
    "Referrer-Policy", "no-referrer",
    "Cache-Control", "no-store",
    NULL,
};

const co_web_asset *co_web_find(const char *path)
{
    for (const co_web_asset *a = co_web_assets; a->path != NULL; a++) {
        if (strcmp(a->path, path) == 0)
            return a;
    }
    return NULL;
}

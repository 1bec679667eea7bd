/* A request body collected piece by piece under a cap: the server's HTTP
 * layer and the mocks' share it. */
#ifndef CO_BUF_H
#define CO_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *body;             /* NUL-terminated; NULL until a byte arrives */
    size_t len, cap;
    bool too_big;           /* more than the cap arrived: the bytes past it were dropped */
} co_buf;

/* Appends n bytes unless that would pass max bytes: then sets too_big and
 * keeps what came before (and drops every later piece). False only when out
 * of memory (b unchanged). */
bool co_buf_append(co_buf *b, const void *data, size_t n, size_t max);
/* Frees the bytes kept; too_big stays as it is. */
void co_buf_free(co_buf *b);

#endif

#include "co_buf.h"

#include <stdlib.h>
#include <string.h>

bool co_buf_append(co_buf *b, const void *data, size_t n, size_t max)
{
    if (b->too_big)
        return true;
    if (b->len + n > max) {
        b->too_big = true;
        return true;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *nb;

        while (cap < b->len + n + 1)
            cap *= 2;
        nb = realloc(b->body, cap);
        if (nb == NULL)
            return false;
        b->body = nb;
        b->cap = cap;
    }
    memcpy(b->body + b->len, data, n);
    b->len += n;
    b->body[b->len] = '\0';
    return true;
}

void co_buf_free(co_buf *b)
{
    free(b->body);
    b->body = NULL;
    b->len = b->cap = 0;
}

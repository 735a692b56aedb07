/* Refcounted frame buffers with transport headroom, one allocation each. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/buf.h"
#include "chanc/error.h"
#include "ledger_internal.h"

static unsigned char *storage(chanc_buf_t *b) { return (unsigned char *)(b + 1); }

chanc_buf_t *chanc_buf_with_capacity(size_t cap) {
    chanc_buf_t *b = malloc(sizeof *b + CHANC_BUF_HEADROOM + cap + 1);
    if (!b)
        return NULL;
    CHANC__COUNT(bufs_created);
    b->refcount = 1;
    b->flags = 0;
    b->len = 0;
    b->cap = cap;
    b->data = storage(b) + CHANC_BUF_HEADROOM;
    b->data[0] = '\0';
    b->wire = NULL;
    return b;
}

chanc_buf_t *chanc_buf_new(const void *data, size_t len) {
    chanc_buf_t *b = chanc_buf_with_capacity(len);
    if (b && len) {
        memcpy(b->data, data, len);
        b->len = len;
        b->data[len] = '\0';
    }
    return b;
}

int chanc_buf_append(chanc_buf_t **bp, const void *data, size_t len) {
    chanc_buf_t *b = *bp;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len)
            cap *= 2;
        chanc_buf_t *nb = realloc(b, sizeof *b + CHANC_BUF_HEADROOM + cap + 1);
        if (!nb)
            return CHANC_ENOMEM;
        nb->cap = cap;
        nb->data = storage(nb) + CHANC_BUF_HEADROOM;
        *bp = b = nb;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0'; /* always NUL-terminated: handy for logs/tests */
    return 0;
}

chanc_buf_t *chanc_buf_ref(chanc_buf_t *b) {
    if (b && b->refcount != UINT32_MAX)
        b->refcount++;
    return b;
}

void chanc_buf_unref(chanc_buf_t *b) {
    if (!b || b->refcount == UINT32_MAX)
        return;
    if (--b->refcount == 0) {
        chanc_buf_unref(b->wire);
        CHANC__COUNT(bufs_freed);
        free(b);
    }
}

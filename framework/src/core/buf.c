/* Refcounted frame buffers with transport headroom, one allocation each. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/buf.h"
#include "chanc/error.h"
#include "ledger_internal.h"

/* One allocation: the public struct, what only this file and the
 * accessors see, the headroom, the data and a NUL. */
typedef struct block {
    chanc_buf_t pub;
    chanc_buf_t *wire; /* chanc_buf_set_wire; freed with the buffer */
} block_t;

static block_t *block(const chanc_buf_t *b) { return (block_t *)b; }
static unsigned char *storage(chanc_buf_t *b) { return (unsigned char *)(block(b) + 1); }

chanc_buf_t *chanc_buf_with_capacity(size_t cap) {
    block_t *k = chanc__malloc(sizeof *k + CHANC_BUF_HEADROOM + cap + 1);
    if (!k)
        return NULL;
    chanc_buf_t *b = &k->pub;
    CHANC__COUNT(bufs_created);
    b->refcount = 1;
    b->flags = 0;
    b->len = 0;
    b->cap = cap;
    b->data = storage(b) + CHANC_BUF_HEADROOM;
    b->data[0] = '\0';
    k->wire = NULL;
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
        block_t *k = chanc__realloc(block(b), sizeof *k + CHANC_BUF_HEADROOM + cap + 1);
        if (!k)
            return CHANC_ENOMEM;
        chanc_buf_t *nb = &k->pub;
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
        chanc_buf_unref(block(b)->wire);
        CHANC__COUNT(bufs_freed);
        free(block(b));
    }
}

chanc_buf_t *chanc_buf_wire(const chanc_buf_t *b) { return block(b)->wire; }

chanc_buf_t *chanc_buf_set_wire(chanc_buf_t *b, chanc_buf_t *wire) {
    chanc_buf_unref(block(b)->wire);
    return block(b)->wire = wire;
}

/* Reference-counted byte buffers: an encoded frame is made once and the same
 * buffer is handed to every recipient. Each buffer keeps CHANC_BUF_HEADROOM
 * writable bytes before its data so a transport can prepend its framing
 * header in place (libwebsockets needs LWS_PRE). */
#ifndef CHANC_BUF_H
#define CHANC_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CHANC_BUF_HEADROOM 32

typedef struct chanc_buf {
    uint32_t refcount; /* UINT32_MAX: static, never freed */
    uint32_t flags;    /* CHANC_BUF_BINARY, CHANC_BUF_COMPLETION */
    size_t len;        /* bytes in data */
    size_t cap;        /* bytes available after data */
    unsigned char *data; /* points into storage, after the headroom */
} chanc_buf_t; /* made only by chanc_buf_new / _with_capacity (never by value) */

#define CHANC_BUF_BINARY 0x1u
/* The frame is `complete` or `group_complete` (lets a harness drop them
 * without parsing). */
#define CHANC_BUF_COMPLETION 0x2u

/* New buffer holding a copy of len bytes (refcount 1); NULL on OOM. */
CHANC_API chanc_buf_t *chanc_buf_new(const void *data, size_t len);
/* New empty buffer with room for cap bytes. */
CHANC_API chanc_buf_t *chanc_buf_with_capacity(size_t cap);
/* Append bytes, growing as needed; 0 or CHANC_ENOMEM. Only while the
 * buffer has a single owner. */
CHANC_API int chanc_buf_append(chanc_buf_t **b, const void *data, size_t len);
/* Take / drop a reference. chanc_buf_unref(NULL) is a no-op. Loop thread. */
CHANC_API chanc_buf_t *chanc_buf_ref(chanc_buf_t *b);
CHANC_API void chanc_buf_unref(chanc_buf_t *b);

/* For transports: a buffer can carry one more buffer, its ready-to-send
 * form (framed, with what always follows it), built on first use and
 * shared like the frame itself. chanc_buf_wire: the one attached, or NULL.
 * chanc_buf_set_wire: attach `wire` (the buffer takes the caller's
 * reference and drops it when it is freed); returns wire. Loop thread. */
CHANC_API chanc_buf_t *chanc_buf_wire(const chanc_buf_t *b);
CHANC_API chanc_buf_t *chanc_buf_set_wire(chanc_buf_t *b, chanc_buf_t *wire);

#ifdef __cplusplus
}
#endif
#endif

/* The channel layer: how group messages travel between processes.
 * Group membership of local connections lives in the app; a layer only
 * carries published messages. The in-memory layer (default) hands them back
 * on the next loop iteration; a Redis layer publishes them, one subscription
 * per group per process. Loop thread only. */
#ifndef CHANC_LAYER_H
#define CHANC_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "chanc/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_app chanc_app_t;
typedef struct chanc_layer chanc_layer_t;

/* A published message: the encoded frame (an object, without the
 * per-recipient flags) and who sent it. Refcounted; shared by every
 * local recipient. */
typedef struct chanc_envelope {
    uint32_t refcount;
    uint32_t flags;        /* CHANC_EXCLUDE_CURRENT; CHANC_ENV_NO_FLAGS */
    chanc_buf_t *frame;    /* owned reference */
    char *sender_user;     /* NULL: anonymous or no sender */
    uint64_t sender_node;  /* process identity of the sender */
    uint64_t sender_conn;  /* 0: no sending connection */
    /* Lazily built per-recipient variants: [0] neither flag,
     * [1] is_mine only, [2] is_mine and is_current, [3] no flags added. */
    chanc_buf_t *variant[4];
} chanc_envelope_t;

/* Channel messages: deliver the frame as is, without is_mine/is_current. */
#define CHANC_ENV_NO_FLAGS 0x100u

/* New envelope: frame referenced (not stolen), sender_user copied. */
chanc_envelope_t *chanc_envelope_new(chanc_buf_t *frame, const char *sender_user,
                                     uint64_t sender_node, uint64_t sender_conn,
                                     uint32_t flags);
chanc_envelope_t *chanc_envelope_ref(chanc_envelope_t *e);
void chanc_envelope_unref(chanc_envelope_t *e);

typedef struct chanc_layer_ops {
    const char *name;
    /* The first local member joined / the last one left `group`. */
    int (*subscribe)(chanc_layer_t *l, const char *group);
    int (*unsubscribe)(chanc_layer_t *l, const char *group);
    /* Carry env to every process subscribed to `group` (or owning
     * `channel`); each calls chanc_layer_deliver_group (or _channel) on
     * its own loop. Must not deliver synchronously. The layer takes its
     * own reference to env if it keeps it. */
    int (*publish_group)(chanc_layer_t *l, const char *group, chanc_envelope_t *env);
    int (*publish_channel)(chanc_layer_t *l, const char *channel, chanc_envelope_t *env);
    /* Release the layer (the app calls this from chanc_app_destroy). */
    void (*destroy)(chanc_layer_t *l);
} chanc_layer_ops_t;

struct chanc_layer {
    const chanc_layer_ops_t *ops;
    chanc_app_t *app; /* set by chanc_app_create */
};

/* Called by a layer when a message for `group` / `channel` arrives:
 * deliver to local members. */
void chanc_layer_deliver_group(chanc_app_t *app, const char *group,
                               chanc_envelope_t *env);
void chanc_layer_deliver_channel(chanc_app_t *app, const char *channel,
                                 chanc_envelope_t *env);

/* The in-memory layer: one process, delivery on the next loop turn. */
chanc_layer_t *chanc_layer_memory_create(void);

#ifdef __cplusplus
}
#endif
#endif

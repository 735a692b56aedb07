/* The channel layer: how group messages travel between processes.
 * Group membership of local connections lives in the app; a layer only
 * carries published messages. The in-memory layer (default) hands them back
 * on the next loop iteration; a Redis layer publishes them, one subscription
 * per group per process. Loop thread only. */
#ifndef CHANC_LAYER_H
#define CHANC_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/buf.h"
#include "chanc/error.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_app chanc_app_t;
typedef struct chanc_layer chanc_layer_t;

/* A published message: the encoded frame (an object, without the
 * per-recipient flags) and who sent it. Refcounted; shared by every
 * local recipient. Read-only for a layer; made only by chanc_envelope_new
 * (the framework keeps its per-recipient variants beside it, out of
 * sight), never declared or copied by value. */
typedef struct chanc_envelope {
    uint32_t refcount;
    uint32_t flags;        /* CHANC_EXCLUDE_CURRENT; CHANC_ENV_NO_FLAGS; CHANC_ENV_EVENT */
    chanc_buf_t *frame;    /* owned reference */
    char *sender_user;     /* NULL: anonymous or no sender */
    uint64_t sender_node;  /* process identity of the sender (chanc_app_node_id) */
    uint64_t sender_conn;  /* 0: no sending connection */
} chanc_envelope_t;

/* Channel messages: deliver the frame as is, without is_mine/is_current. */
#define CHANC_ENV_NO_FLAGS 0x100u
/* An internal event (chanc_app_group_event): for the members' consumers,
 * never written to a client. The sending process has delivered it to its
 * own members already: chanc_layer_deliver_group skips it there. */
#define CHANC_ENV_EVENT 0x200u

/* New envelope: frame referenced (not stolen), sender_user copied. */
CHANC_API chanc_envelope_t *chanc_envelope_new(chanc_buf_t *frame, const char *sender_user,
                                               uint64_t sender_node, uint64_t sender_conn,
                                               uint32_t flags);
CHANC_API chanc_envelope_t *chanc_envelope_ref(chanc_envelope_t *e);
CHANC_API void chanc_envelope_unref(chanc_envelope_t *e);

/* Counters of a layer since it was created (for logs and /metrics). */
typedef struct chanc_layer_stats {
    uint64_t published;  /* messages handed to the broker (group + channel) */
    uint64_t received;   /* messages that came back from it */
    uint64_t dropped;    /* publishes dropped: broker unreachable (at-most-once) */
    uint64_t reconnects; /* connections re-established after a loss */
    uint64_t malformed;  /* received payloads that were not ours; ignored */
    bool connected;      /* every broker connection is up (memory: true) */
} chanc_layer_stats_t;

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
    /* Optional: called once by chanc_app_create, after l->app is set (a
     * layer that talks to a broker starts connecting here). */
    void (*attach)(chanc_layer_t *l);
    /* Optional: fill the counters (see chanc_layer_stats). */
    void (*stats)(const chanc_layer_t *l, struct chanc_layer_stats *out);
} chanc_layer_ops_t;

struct chanc_layer {
    const chanc_layer_ops_t *ops;
    chanc_app_t *app; /* set by chanc_app_create */
};

/* Called by a layer when a message for `group` / `channel` arrives:
 * deliver to local members. */
CHANC_API void chanc_layer_deliver_group(chanc_app_t *app, const char *group,
                                         chanc_envelope_t *env);
CHANC_API void chanc_layer_deliver_channel(chanc_app_t *app, const char *channel,
                                           chanc_envelope_t *env);

/* Destroy a layer that was never given to an app (an app destroys its
 * own). destroy(NULL) is a no-op. */
CHANC_API void chanc_layer_destroy(chanc_layer_t *l);

/* The layer's counters into out (zeros for a layer that keeps none).
 * 0 or CHANC_EINVAL. Loop thread. */
CHANC_API int chanc_layer_stats(const chanc_layer_t *l, chanc_layer_stats_t *out);

/* The in-memory layer: one process, delivery on the next loop turn. */
CHANC_API chanc_layer_t *chanc_layer_memory_create(void);

/* The Redis layer: pub/sub through a Redis server, so that several
 * processes (one app each) share groups. hiredis's asynchronous API on
 * the app's loop, two connections (subscriber, publisher); one SUBSCRIBE per group
 * per process; a group message is published once with its sender's
 * identity and each process builds the is_mine/is_current variants
 * locally. Delivery is at-most-once: while Redis is unreachable, publishes
 * are dropped and counted, connections stay up and the layer reconnects
 * with exponential backoff, re-subscribing to its groups. */
typedef struct chanc_layer_redis_options {
    /* Channel name prefix (copied); NULL: "chanc:<db>:" (Redis pub/sub
     * ignores the database number, so the prefix keeps /0 and /1 apart). */
    const char *prefix;
    uint32_t backoff_min_ms; /* first retry delay; 0: 100 */
    uint32_t backoff_max_ms; /* delay cap; 0: 5000 */
    /* Hold the app (chanc_app_hold) while a publish, a SUBSCRIBE or the
     * first connection is on its way, so that an in-process test's
     * "settled" covers the Redis round trip. Off in servers. */
    bool track_settled;
} chanc_layer_redis_options_t;

/* New Redis layer for url "redis://[[user]:password@]host[:port][/db]"
 * (port 6379, db 0 by default); opts may be NULL. Give it to
 * chanc_app_config_t.layer: it connects on the app's loop as soon as the
 * app is created (host names go through uv_getaddrinfo, never blocking the
 * loop); the app destroys it. NULL on a bad URL or OOM, with err saying
 * why. Loop thread. */
CHANC_API chanc_layer_t *chanc_layer_redis_create(const char *url,
                                                  const chanc_layer_redis_options_t *opts,
                                                  chanc_error_t *err);
/* True when l is a Redis layer. */
CHANC_API bool chanc_layer_is_redis(const chanc_layer_t *l);
/* A barrier for tests: hold the app until every message that any process
 * published before this call has reached this process (a marker published
 * to this process's own channel comes back after them). Released at once
 * when Redis is down. 0, CHANC_EINVAL (not a Redis layer). */
CHANC_API int chanc_layer_redis_sync(chanc_layer_t *l);

#ifdef __cplusplus
}
#endif
#endif

/* Private structures shared by the core's files (app.c, conn.c, groups.c,
 * delivery.c). Nothing outside framework/src/core includes it: the layers
 * and the transport use the public headers. */
#ifndef CHANC_APP_INTERNAL_H
#define CHANC_APP_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chanc/app.h"
#include "chanc/layer.h"
#include "chanc/schedule.h"
#include "chanc/transport.h"
#include "map_internal.h"
#include "../protocol/router_internal.h"

typedef struct chanc__deferred {
    void (*fn)(void *arg);
    void *arg;
    const void *order; /* its lane (chanc/schedule.h); NULL: the app's */
} chanc__deferred_t;

/* A group's local members; swap-remove keeps leave O(groups of the conn). */
typedef struct chanc__group {
    char *name;
    chanc_conn_t **members;
    size_t n, cap;
} chanc__group_t;

typedef struct chanc__membership {
    chanc__group_t *group;
    size_t index; /* position in group->members */
} chanc__membership_t;

struct chanc_app {
    uv_loop_t *loop;
    chanc_layer_t *layer;
    chanc_clock_t clock;
    size_t max_frame;
    uint32_t rate_limit, rate_burst; /* frames/s, frames; UNLIMITED: none */
    uint64_t keepalive_ms, keepalive_timeout_ms;
    uint64_t node_id; /* random: tells this process's connections apart */
    uint64_t next_conn_id;

    chanc__route_t *routes;
    chanc__route_t **routes_tail;

    chanc__map_t groups;   /* name → chanc__group_t */
    chanc__map_t channels; /* channel name → chanc_conn_t */
    chanc_conn_t *conns;   /* doubly linked list of open connections */
    size_t nconns;

    /* Deferred work: a ring of {fn,arg}, drained by an idle handle. */
    chanc__deferred_t *dq;
    size_t dq_cap, dq_head, dq_len;
    uv_idle_t idle;
    uv_timer_t settle_timer;
    size_t holds;
    /* A test's scheduler (schedule.c); exploring: one is installed. */
    chanc_scheduler_t scheduler;
    bool exploring;

    /* Frames every connection may get, encoded once per app. */
    chanc_buf_t *complete_buf;
    chanc_buf_t *group_complete_buf;
    chanc_buf_t *auth_ok_buf;
    chanc_buf_t *rate_limited_buf; /* the error frame in place of a refused frame */

    /* Timers on the app clock: a binary min-heap by (due, start order); a
     * libuv timer wakes the loop for the first one (real clock). */
    chanc_timer_t **timers;
    size_t ntimers, captimers;
    uint64_t timer_seq;
    uv_timer_t timer_handle;

    int closing_handles;
    chanc_app_stats_t stats;

    /* chanc_app_on_destroy, run latest first. */
    chanc__deferred_t *on_destroy;
    size_t n_on_destroy;

    /* chanc_app_post_event: events from other threads, queued under
     * post_lock, sent on the loop when post_async fires (delivery.c).
     * posts_pending counts those not sent yet (chanc_app_settled). */
    uv_async_t post_async;
    uv_mutex_t post_lock;
    struct chanc__post *posts, **posts_tail; /* under post_lock */
    bool posts_closed;                       /* under post_lock: destroy began */
    _Atomic size_t posts_pending;

    /* The event a receive_event hook is handling (chanc_conn_pass_event);
     * NULL outside one. */
    struct chanc__event_delivery *event;
};

struct chanc_timer {
    chanc_app_t *app;
    uint64_t due, seq;
    size_t index; /* in app->timers */
    void (*fn)(void *arg);
    void *arg;
};

struct chanc_conn {
    chanc_app_t *app;
    chanc_conn_t *prev, *next;
    uint64_t id;
    char channel[48];

    const chanc__route_t *route;
    const chanc_consumer_t *consumer;
    char *path;  /* without query */
    char *query; /* NULL if none */
    chanc_header_t *headers; /* one block with path, query and params (copy_request) */
    size_t nheaders;
    chanc_header_t *params;  /* the route's parameters: name (the route's), value */
    size_t nparams;

    const chanc_transport_ops_t *ops;
    void *tctx;

    bool started;       /* chanc_transport_opened ran */
    bool admitted;      /* passed the auth pipeline: hooks may run, disconnect will */
    bool closing;       /* we asked the transport to close */
    bool rate_limited;  /* the last frame was refused (log once per episode) */

    /* Token bucket in thousandths of a frame, refilled from the app clock. */
    uint64_t rate_tokens, rate_last_ms;

    char *user_id, *username;
    uint64_t user_hash; /* chanc__user_hash(user_id): is_mine compares it first */
    void *user_data;
    void (*free_user_data)(void *);

    void *object;
    void *state;

    chanc__membership_t *groups;
    size_t ngroups, capgroups;

    /* chanc_conn_defer: the frame (or prepare) waiting for resume; the
     * frames that arrived meanwhile, in order. */
    bool in_hook;       /* inside receive_message/prepare: defer allowed */
    bool deferred;      /* waiting for chanc_conn_resume */
    bool preparing;     /* the deferred step is prepare */
    bool resumed_early; /* resumed from inside the hook that deferred */
    bool close_pending; /* the transport reported the close while deferred */
    bool paused;        /* ops->pause(true) is in force */
    int early_rc, close_code;
    /* The action handler whose frame is in progress (from its call until
     * the frame ends: chanc_conn_reply allowed), and whether that frame's
     * handler error frame went already (a bad reply). */
    const chanc_action_t *action;
    bool frame_failed;
    struct chanc__rx *rxq, **rxq_tail;
    size_t rxq_len;

    /* Keepalive: last time the client sent anything; the pending check. */
    uint64_t last_rx;
    chanc_timer_t *keepalive;
    bool ping_out; /* a ping is waiting for its answer */
};

/* FNV-1a of a user id (0 for NULL): is_mine compares hashes before strings,
 * so a group message costs no strcmp per recipient of another user. */
uint64_t chanc__user_hash(const char *user_id);
/* Encode a JSON value compactly into a new buffer; NULL on failure. */
chanc_buf_t *chanc__encode(const json_t *value);
/* A group name chanc accepts: 1 to 100 of [A-Za-z0-9._-] (groups.c). */
bool chanc__group_name_valid(const char *group);
/* Write a buffer to the client; closes a slow client on CHANC_EBUSY. */
int chanc__conn_write(chanc_conn_t *c, chanc_buf_t *buf);
/* buf then `then` (always the same for a given buf), in one write where
 * the transport can. */
int chanc__conn_write_pair(chanc_conn_t *c, chanc_buf_t *buf, chanc_buf_t *then);
/* Encode frame (stolen; must be an object) into a new envelope; NULL when
 * it is not an object or on OOM. */
chanc_envelope_t *chanc__make_envelope(chanc_app_t *app, json_t *frame, const char *user,
                                       uint64_t conn, uint32_t flags);
/* Release closed connections whose deferred work never finished (app
 * destroy, after the on_destroy hooks). */
void chanc__conn_abandon_deferred(chanc_app_t *app);
/* Leave every group (used on close). */
void chanc__conn_leave_all(chanc_conn_t *c);
/* Send the events other threads posted (post_async's callback). */
void chanc__posts_run(uv_async_t *h);
/* Free the events still queued, and refuse new ones (app destroy). */
void chanc__posts_discard(chanc_app_t *app);

/* schedule.c, under a scheduler only (app->exploring): take the deferred
 * item the scheduler picks among the lanes' first items (false: queue
 * empty); a random tie-break for a new timer; the order in which the n
 * members of a group get a message (idx: 0..n-1 permuted). */
bool chanc__schedule_take(chanc_app_t *app, chanc__deferred_t *out);
uint64_t chanc__schedule_timer_seq(chanc_app_t *app);
void chanc__schedule_shuffle(chanc_app_t *app, size_t *idx, size_t n);

#endif

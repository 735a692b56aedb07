/* The app: routes to consumers, the channel layer, the clock, and the
 * deferred-work queue on one libuv loop. Loop thread only unless stated. */
#ifndef CHANC_APP_H
#define CHANC_APP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "chanc/consumer.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_layer chanc_layer_t;

/* The one clock the framework reads. mono_ms: loop/timer time;
 * wall_ms: milliseconds since the Unix epoch, for message timestamps.
 * A test swaps in a virtual clock and moves it explicitly. */
typedef struct chanc_clock {
    uint64_t (*mono_ms)(void *ud);
    int64_t (*wall_ms)(void *ud);
    void *ud;
} chanc_clock_t;

#define CHANC_DEFAULT_MAX_FRAME (64u * 1024u)
/* Per-connection message rate limit (a token bucket): frames per second
 * sustained, and the burst a connection may send at once. A frame over the
 * limit is not processed; the client gets a `rate_limited` error frame
 * (and `complete`) in its place, so it knows which frame to resend. The
 * default bounds what one client can take from the loop while no person
 * or ordinary program reaches it. */
#define CHANC_DEFAULT_RATE_LIMIT 200u
#define CHANC_RATE_UNLIMITED UINT32_MAX

typedef struct chanc_app_config {
    uv_loop_t *loop;            /* borrowed, required */
    chanc_layer_t *layer;       /* stolen; NULL: the in-memory layer */
    const chanc_clock_t *clock; /* copied; NULL: system clock */
    size_t max_frame;           /* bytes; 0: CHANC_DEFAULT_MAX_FRAME */
    uint32_t rate_limit;        /* frames/s per connection; 0: CHANC_DEFAULT_RATE_LIMIT;
                                   CHANC_RATE_UNLIMITED: no limit */
    uint32_t rate_burst;        /* frames; 0: 2 x rate_limit */
    /* Keepalive (off when 0): a connection that has sent nothing for
     * keepalive_ms gets a ping (on transports that have ops->ping); without
     * an answer (pong or any frame) within keepalive_timeout_ms (0: 10 s)
     * it is closed with 4408 (CHANC_CLOSE_KEEPALIVE). Timed on the clock. */
    uint64_t keepalive_ms;
    uint64_t keepalive_timeout_ms;
} chanc_app_config_t;

/* New app; NULL on failure (err says why when non-NULL). */
CHANC_API chanc_app_t *chanc_app_create(const chanc_app_config_t *cfg, chanc_error_t *err);
/* Close every connection with 1001 and release the app. The memory goes
 * once the loop has run the close callbacks: keep running the loop until
 * uv_run returns. destroy(NULL) is a no-op. */
CHANC_API void chanc_app_destroy(chanc_app_t *app);

/* Route a pattern to a consumer. Patterns are paths without the leading
 * slash, with typed params: "ws/chat/{pk:int}/", "ws/{slug:slug}/",
 * "{name}" (str: no '/'), "{rest:path}" (anything). consumer and data are
 * borrowed and must outlive the app. 0, CHANC_EINVAL (bad pattern; or an
 * action table listing a type twice or one its `incoming` lacks: logged)
 * or CHANC_ENOMEM. First matching route wins. */
CHANC_API int chanc_app_route(chanc_app_t *app, const char *pattern,
                              const chanc_consumer_t *consumer, void *data);

CHANC_API uv_loop_t *chanc_app_loop(const chanc_app_t *app);
CHANC_API chanc_layer_t *chanc_app_layer(const chanc_app_t *app);
CHANC_API size_t chanc_app_max_frame(const chanc_app_t *app);
/* The effective rate limit (CHANC_RATE_UNLIMITED: none) and burst. */
CHANC_API uint32_t chanc_app_rate_limit(const chanc_app_t *app);
CHANC_API uint32_t chanc_app_rate_burst(const chanc_app_t *app);
/* Number of open connections. */
CHANC_API size_t chanc_app_connections(const chanc_app_t *app);
/* This process's identity among the apps sharing a layer (random, fixed
 * for the app's life): envelopes carry it as sender_node, and a layer
 * compares it to recognise what it published itself. */
CHANC_API uint64_t chanc_app_node_id(const chanc_app_t *app);

/* Counters since the app was created (for metrics endpoints and tests). */
typedef struct chanc_app_stats {
    uint64_t connections;       /* opened in all */
    uint64_t frames_in;         /* frames received from clients */
    uint64_t frames_out;        /* frames written, completions included */
    uint64_t bytes_out;         /* their payload bytes */
    uint64_t encodes;           /* JSON documents serialised */
    uint64_t variants;          /* is_mine/is_current variants built (a splice,
                                 * not an encode; at most 3 per group message) */
    uint64_t group_messages;    /* group and channel messages published */
    uint64_t group_deliveries;  /* ... delivered to one local connection */
    uint64_t validation_errors; /* frames answered with a validation error */
    uint64_t handler_errors;    /* receive_message failed */
    uint64_t rate_limited;      /* frames refused by the rate limit */
    uint64_t slow_clients;      /* connections closed with 1008 (queue full) */
} chanc_app_stats_t;
CHANC_API void chanc_app_stats(const chanc_app_t *app, chanc_app_stats_t *out);

CHANC_API uint64_t chanc_app_mono_ms(const chanc_app_t *app);
CHANC_API int64_t chanc_app_wall_ms(const chanc_app_t *app);
/* The app's clock (borrowed, lives as long as the app): give it to other
 * parts of the application (a store's session expiry) so that a test's
 * virtual clock moves them all. */
CHANC_API const chanc_clock_t *chanc_app_clock(const chanc_app_t *app);
/* The system clock (what an app without a clock of its own reads):
 * mono_ms from libuv's high-resolution time, wall_ms from CLOCK_REALTIME.
 * For code beside the app that keeps the same kind of clock (a store's
 * timestamps). Any thread. */
CHANC_API const chanc_clock_t *chanc_clock_system(void);
/* Format wall time as ISO 8601 UTC with milliseconds
 * ("2026-11-25T10:00:00.123Z") into out (at least 25 bytes). */
CHANC_API void chanc_format_timestamp(int64_t wall_ms, char out[32]);

/* Run fn(arg) on the loop soon, in FIFO order with other work queued so
 * (the in-memory layer's deliveries included). Under a test's scheduler
 * (chanc/schedule.h) that order still holds, but other lanes — client
 * frames, chanc_app_call_soon_ordered work — may run in between.
 * 0 or CHANC_ENOMEM. (Not chanc_conn_defer, which postpones a frame's
 * outcome.) */
CHANC_API int chanc_app_call_soon(chanc_app_t *app, void (*fn)(void *arg), void *arg);

/* Timers on the app's clock (mono_ms). With the system clock a libuv
 * timer runs them; with a test's virtual clock nothing runs them but the
 * test moving the clock (chanc_test_advance calls
 * chanc_app_run_due_timers at each due time, in order). Loop thread. */
typedef struct chanc_timer chanc_timer_t;
/* Call fn(arg) once, when the clock reaches now + delay_ms (timers due at
 * the same time run in start order; under a test's scheduler, in the
 * order it draws: with a real clock "the same millisecond" is rounding).
 * NULL on OOM. The timer is freed after it ran or when cancelled. */
CHANC_API chanc_timer_t *chanc_app_timer_start(chanc_app_t *app, uint64_t delay_ms,
                                               void (*fn)(void *arg), void *arg);
/* Cancel a timer that has not run yet; NULL is a no-op. */
CHANC_API void chanc_timer_cancel(chanc_timer_t *timer);
/* The earliest due time (clock mono ms) of a pending timer; false if none. */
CHANC_API bool chanc_app_next_timer(const chanc_app_t *app, uint64_t *due_ms);
/* Run every timer due by the clock's now, in due order; how many ran. */
CHANC_API size_t chanc_app_run_due_timers(chanc_app_t *app);

/* Work the app is waiting for outside the deferred queue (a database
 * write on another thread, a layer round trip): hold before starting it,
 * release when its result has been handled. The app is "settled" when no
 * deferred work is queued and no hold is outstanding. */
CHANC_API void chanc_app_hold(chanc_app_t *app);
CHANC_API void chanc_app_release(chanc_app_t *app);
CHANC_API bool chanc_app_settled(const chanc_app_t *app);

/* Run the loop until settled or timeout_ms of real time has passed.
 * 0 or CHANC_ETIMEDOUT. For tests and tools; a server just runs the loop. */
CHANC_API int chanc_app_run_until_settled(chanc_app_t *app, uint64_t timeout_ms);

/* Call fn(arg) at the start of chanc_app_destroy, before anything is
 * released (latest registered first): the place for application parts
 * that finish deferred connections (chanc_conn_resume) to stop their
 * threads and run what they still owe. 0 or CHANC_ENOMEM. */
CHANC_API int chanc_app_on_destroy(chanc_app_t *app, void (*fn)(void *arg), void *arg);
/* Send a frame (stolen, an object) to a group from outside any connection;
 * recipients get "is_mine": false, "is_current": false. */
CHANC_API int chanc_app_group_send(chanc_app_t *app, const char *group, json_t *frame);
/* Send a typed event to every member of `group`, in every process: each
 * member's consumer gets it in its receive_event hook (see
 * chanc_consumer_t.events); a client hears of it only if its hook passes
 * it on (chanc_conn_pass_event) or sends something. payload is stolen
 * and validated against type (NULL: null). Members in this process get it
 * before this returns — so that, say, a logout can close its sessions'
 * connections before it answers, and nothing already queued for them is
 * delivered afterwards; other processes get it through the channel layer
 * (at-most-once, like any group message: while Redis is unreachable it is
 * dropped). 0, CHANC_EINVAL (bad group name), CHANC_EVALIDATION (the
 * payload does not match type), CHANC_ENOMEM, or the layer's error. */
CHANC_API int chanc_app_group_event(chanc_app_t *app, const char *group,
                                    const chanc_message_type_t *type, json_t *payload);
/* Send a frame (stolen) to one connection by channel name (see
 * chanc_conn_channel); delivered like a group message, without the
 * is_mine/is_current flags. */
CHANC_API int chanc_app_channel_send(chanc_app_t *app, const char *channel, json_t *frame);
/* Send a typed event to one connection by channel name (see
 * chanc_conn_channel), in whichever process it lives: its consumer gets
 * it in receive_event exactly as a group event (which may pass it on to
 * the client: chanc_conn_pass_event). payload is stolen and validated
 * against type (NULL: null). A connection of this process gets it before
 * this returns; another process's through the channel layer (at-most-once).
 * A channel nobody owns (any more) is no error: nothing happens. 0,
 * CHANC_EINVAL (not a channel name as chanc_conn_channel gives it, or no
 * type), CHANC_EVALIDATION, CHANC_ENOMEM, or the layer's error. */
CHANC_API int chanc_app_channel_event(chanc_app_t *app, const char *channel,
                                      const chanc_message_type_t *type, json_t *payload);

/* Where chanc_app_post_event sends: a group (chanc_app_group_event) or one
 * connection's channel (chanc_app_channel_event). */
typedef enum chanc_event_target {
    CHANC_EVENT_GROUP = 1,
    CHANC_EVENT_CHANNEL = 2
} chanc_event_target_t;

/* ANY THREAD: send a typed event to a group or a channel from a thread
 * that is not the loop's (a worker, a queue consumer). payload is stolen
 * in every case, success or error (NULL: null): the caller must not touch
 * it afterwards. The target's name and the payload (against type, which
 * must outlive the delivery) are checked on the calling thread: 0, or
 * CHANC_EINVAL (no app, bad kind or name, no type), CHANC_EVALIDATION, or
 * CHANC_ENOMEM; CHANC_ECLOSED once chanc_app_destroy has begun. Accepted
 * events are queued (mutex) and the loop is woken (uv_async_send); the
 * loop sends them in posting order as chanc_app_group_event /
 * chanc_app_channel_event would. Until then the app is not settled
 * (chanc_app_settled), so tests settle and see them delivered; events
 * still queued when the app is destroyed are freed undelivered. The app
 * must outlive every call: stop the posting threads before
 * chanc_app_destroy returns (an on_destroy hook is the place). */
CHANC_API int chanc_app_post_event(chanc_app_t *app, chanc_event_target_t kind,
                                   const char *name, const chanc_message_type_t *type,
                                   json_t *payload);

#ifdef __cplusplus
}
#endif
#endif

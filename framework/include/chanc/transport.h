/* The transport interface: what carries frames between clients and the
 * app. chanc ships the in-process transport (testing library) and the
 * libwebsockets one. Loop thread only. */
#ifndef CHANC_TRANSPORT_H
#define CHANC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "chanc/app.h"
#include "chanc/buf.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_header {
    const char *name; /* case-insensitive */
    const char *value;
} chanc_header_t;

/* The handshake request; everything borrowed for the open call only. */
typedef struct chanc_request {
    const char *path; /* may include "?query" */
    const chanc_header_t *headers;
    size_t nheaders;
} chanc_request_t;

typedef struct chanc_transport_ops {
    /* Queue one text frame for the client. The transport takes its own
     * reference (chanc_buf_ref) when it keeps the buffer past the call,
     * and must not call back into the app from here. Returns 0, or
     * CHANC_EBUSY when the client's queue is full (the app then closes it
     * as a slow client, 1008), or another negative code when the frame
     * cannot be sent (the app closes it with 1011 "delivery failed"). */
    int (*write)(void *tctx, chanc_buf_t *frame);
    /* Start the closing handshake with code/reason. Later the transport
     * calls chanc_transport_closed (never from inside this call). */
    void (*close)(void *tctx, int code, const char *reason);
    /* Send a WebSocket ping (keepalive); the transport reports the answer
     * with chanc_conn_pong. NULL: the transport cannot, keepalive is off
     * for its connections. */
    void (*ping)(void *tctx);
    /* Optional: two frames back to back (a group message and the
     * group_complete after it), which a transport may send in one write.
     * For a given frame, `then` is always the same buffer, so a transport
     * may cache the pair's wire form on the frame (chanc_buf_set_wire). Returns as write does
     * (a failure means neither was sent). NULL: two writes. */
    int (*write_pair)(void *tctx, chanc_buf_t *frame, chanc_buf_t *then);
    /* Optional: stop (true) or resume (false) reading the client's frames.
     * The app pauses a client whose frames pile up behind a deferred one
     * (CHANC_RX_QUEUE_MAX) and resumes it when they have run. NULL: the
     * frames keep queuing (the in-process test transport). */
    void (*pause)(void *tctx, bool paused);
} chanc_transport_ops_t;

/* Frames queued behind a deferred frame (chanc_conn_defer) before the app
 * pauses reading the client. */
#define CHANC_RX_QUEUE_MAX 64

/* What a transport calls, in order: chanc_conn_open, chanc_transport_opened,
 * chanc_transport_received (per frame) and chanc_conn_pong, then
 * chanc_transport_closed once. */

/* A new client: route the path and create the connection.
 * Returns 0 and sets *out, or CHANC_ENOROUTE (refuse the handshake: HTTP
 * 404 / close 4404), or CHANC_ENOMEM. Nothing is sent yet. */
CHANC_API int chanc_conn_open(chanc_app_t *app, const chanc_request_t *req,
                              const chanc_transport_ops_t *ops, void *tctx,
                              chanc_conn_t **out);
/* The handshake completed: authenticate, send the authentication frame,
 * join groups, run post_authentication (or close on failure). */
CHANC_API void chanc_transport_opened(chanc_conn_t *c);
/* One complete frame from the client. Size, UTF-8 and JSON checks, then
 * validation and the consumer's receive_message. */
CHANC_API void chanc_transport_received(chanc_conn_t *c, const void *data, size_t len,
                                        bool binary);
/* A pong came from the client (any frame also counts as alive). */
CHANC_API void chanc_conn_pong(chanc_conn_t *c);
/* The connection is gone (client close, our close completed, network
 * failure). Runs the disconnect hook, leaves groups, frees c: the
 * transport must not use c afterwards. */
CHANC_API void chanc_transport_closed(chanc_conn_t *c, int code);

#ifdef __cplusplus
}
#endif
#endif

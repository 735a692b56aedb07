/* Private to the server (server.c, server_ws.c, server_http.c): the
 * network transport, libwebsockets 4.1 on the app's libuv loop (a foreign
 * loop), carrying WebSocket connections to the app and plain HTTP requests
 * to one handler. These are the only files that include libwebsockets.h. */
#ifndef CHANC_SERVER_INTERNAL_H
#define CHANC_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "chanc/server.h"

/* Per-connection receive buffer lws allocates (plus LWS_PRE), for the
 * connection's life. Measured with chanc-bench idle (2,000 connections,
 * fresh server): 7.1 KiB of RSS per connection with 4096, 4.2 with 1024,
 * 3.7 with 512; a heap profile at 10,000 idle connections (heaptrack,
 * docs/performance.md) had it at 528 of lws's 1,960 bytes each. A control
 * frame's payload (at most 125 bytes) must arrive whole; bigger frames
 * arrive in pieces, reassembled in a buffer freed after the message
 * (ws_receive). Not 128: lws 4.1.6 parses one buffer's worth of a
 * connection's input per loop turn, and with 128 a chat message (~150
 * bytes) took two turns: closed-loop chat fell from ~40,000 to ~18,000
 * messages/s, for 0.1 KiB less per idle connection (2.88 against 2.98 at
 * 10,000). */
#define RX_BUFFER_SIZE 256

/* One coalesced write (the frames queued for a connection, framed and
 * joined into one lws_write) takes frames up to this many bytes; a single
 * bigger frame goes alone. */
#define TX_COALESCE_MAX (16 * 1024)

/* A transport-private flag on a chanc_buf_t: its bytes are already framed
 * (a group message and its group_complete, wire_pair in server_ws.c). */
#define TX_FRAMED 0x80000000u

/* --- types ----------------------------------------------------------------- */

typedef struct http_txn {
    int method;           /* LWSHUMETH_* */
    char method_name[12];
    char *path, *query;
    chanc_header_t headers[12];
    size_t nheaders;
    char *body;           /* request body, NUL-terminated */
    size_t body_len, body_cap;
    bool reading_body;    /* a Content-Length body is coming: dispatched at
                           * its end (HTTP_BODY_COMPLETION), not before */
    bool responded;       /* headers sent */
    bool close_after;     /* close the connection once the answer is out */
    char *out;            /* response body (malloc'd) */
    size_t out_len, out_off;
    struct chanc_http_deferred *deferred; /* the handler answers later */
    chanc_http_response_t later;          /* its answer, strings copied */
    bool has_later;
} http_txn_t;

/* A deferred answer's handle; t is NULL once the client has gone. */
struct chanc_http_deferred {
    struct tconn *t;
};

/* One per lws connection we have dealt with (HTTP or WebSocket), kept as
 * the wsi's opaque user data: lws reallocates its own per-session data
 * when an HTTP connection upgrades, this survives that. */
typedef struct tconn {
    chanc_server_t *s;
    struct lws *wsi;      /* NULL once lws has let go */
    struct tconn *prev, *next;

    chanc_conn_t *conn;   /* WebSocket: from the upgrade until reported closed */
    bool established;
    bool close_wanted;    /* the app asked to close: flush, then close */
    bool write_failed;    /* lws_write failed: close from the next callback */
    bool ping_wanted;     /* keepalive: send a ping from WRITEABLE */
    bool in_msg, rx_binary, rx_discard;
    bool late_close;      /* chanc_transport_closed deferred: that call frees us */
    bool close_started;   /* lws has our close frame: wait for the answer */
    bool peer_closed;     /* the client's close frame came: lws answers it */
    bool lws_closing;     /* lws is closing it on its own (a protocol error) */
    int close_code;       /* first close code either side gave; 0: none */
    char *close_reason;   /* the app's (at most 123 bytes), malloc'd at its
                           * close: not kept by every idle connection */

    unsigned char *rx;    /* reassembly of a fragmented / chunked message */
    size_t rx_len, rx_cap;

    /* Ring of frames waiting (references): written together at the end
     * of the loop turn (flush_dirty, server_ws.c), or, once the socket
     * pushed back, from WRITEABLE. */
    chanc_buf_t **q;      /* &q_one, or malloc'd past one frame; NULL: empty */
    chanc_buf_t *q_one;
    size_t q_head, q_n, q_cap;
    size_t q_bytes;
    bool dirty;           /* in s->dirty: frames queued this turn */
    bool backlogged;      /* a write did not go out whole: waiting for
                           * WRITEABLE, max_queue applies */

    http_txn_t *http;
} tconn_t;

struct chanc_server {
    chanc_app_t *app;
    uv_loop_t *loop;         /* the app's; kept: the app may be gone at destroy */
    struct lws_context *ctx; /* NULLed by lws (pcontext) once destroyed */
    struct lws_protocols protocols[2];
    struct lws_protocol_vhost_options canned[2]; /* headers on every response */
    void *foreign_loops[1];
    char *host;
    int port;
    char **origins;
    size_t norigins;
    size_t max_queue, max_body, max_connections, max_headers;
    chanc_http_handler_fn http;
    void *http_ud;

    /* client faults logged at info, rate-limited (chanc__client_fault) */
    struct fault_log {
        uint64_t last_ms; /* 0: never logged */
        size_t unlogged;  /* since the last line */
    } log_431, log_dropped;

    tconn_t *conns;      /* every tconn_t alive */
    size_t open_conns;   /* tconns with a chanc_conn_t not yet reported closed */
    chanc_server_stats_t stats;
    int in_write;        /* depth of ops->write: no app callbacks in there */

    /* Write coalescing: the connections with frames queued this loop turn,
     * flushed once each from a prepare handle (after the turn's work,
     * before the loop waits for I/O); the buffer their frames are joined
     * in. */
    tconn_t **dirty;
    size_t ndirty, capdirty;
    uv_prepare_t flush;
    bool flush_live;     /* flush initialised (closed at destroy) */
    unsigned char *scratch;
    size_t scratch_cap;

    /* graceful shutdown */
    bool shutting_down, ctx_destroy_called, timer_live;
    bool failed;         /* create failed: tearing down alone, the app may be gone */
    int destroy_calls;
    uv_timer_t timer;
    uint64_t deadline;
    void (*done)(void *ud);
    void *done_ud;

    /* reuse_port: our own SO_REUSEPORT listening socket; accepted
     * connections are handed to lws (lws 4.1.6 sets SO_REUSEPORT only for
     * several service threads, which this build does not have). */
    int listen_fd;       /* -1: lws listens itself */
    bool listen_live;
    uv_poll_t listen_poll;
    struct lws_vhost *vhost;
};

/* --- server_ws.c ---------------------------------------------------------------- */

/* The lws protocol callback (protocols[0]). */
int chanc__server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len);
/* The wsi's tconn; a new one when create and there is none (NULL: out of
 * memory). */
tconn_t *chanc__tconn_get(chanc_server_t *s, struct lws *wsi, bool create);
void chanc__tconn_unlink(tconn_t *t);
/* Frees an unlinked tconn (its queue already empty). */
void chanc__tconn_release(tconn_t *t);
/* The WebSocket is gone: tell the app (once). */
void chanc__report_closed(tconn_t *t, int code);
/* Close the flush handle and free the coalescing buffers (destroy). */
void chanc__flush_dispose(chanc_server_t *s);

/* --- server_http.c -------------------------------------------------------------- */

/* A header lws parsed, as a new string; NULL when absent. */
char *chanc__hdr_dup(struct lws *wsi, enum lws_token_indexes tok);
/* The query string, re-encoded; NULL when there is none. */
char *chanc__query_dup(struct lws *wsi);
void chanc__http_txn_free(http_txn_t *h);
/* A client's fault, counted and logged at info, rate-limited. */
void chanc__client_fault(chanc_server_t *s, struct fault_log *fl, const char *what);
/* Are the request's headers over max_headers? (counted and logged) */
bool chanc__headers_too_large(chanc_server_t *s, struct lws *wsi, const char *kind);
/* Status line and headers, written at once. 0 or -1. */
int chanc__write_head(struct lws *wsi, int status, const char *ctype, size_t body_len,
                      const chanc_header_t *extra, size_t nextra, bool close);
/* A short text/plain answer written in one go. 0 or -1. */
int chanc__write_simple_response(struct lws *wsi, int status, const char *text);
/* The lws callbacks of a plain HTTP request: what they return is what the
 * protocol callback returns. */
int chanc__http_begin(chanc_server_t *s, struct lws *wsi);
int chanc__http_body(tconn_t *t, const void *in, size_t len);
int chanc__http_dispatch(tconn_t *t);
int chanc__http_writeable(tconn_t *t);

#endif

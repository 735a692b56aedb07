/* The network server: WebSocket and plain HTTP on one port, carried by
 * libwebsockets on the app's libuv loop (library chanc_server, target
 * chanc::server). Nothing here exposes libwebsockets. Loop thread only
 * unless stated.
 *
 * Every WebSocket upgrade goes through the app's router (no route: HTTP
 * 404; foreign Origin: HTTP 403); every other request goes to the HTTP
 * handler. One server per loop: with libwebsockets 4.1.6, tearing one
 * context down while another on the same loop accepts connections crashed
 * libuv in our tests.
 *
 * SIGPIPE: a peer that vanishes mid-write must not kill the process. The
 * library does not touch signal dispositions; the program ignores SIGPIPE
 * (signal(SIGPIPE, SIG_IGN) in main, before the loop runs). */
#ifndef CHANC_SERVER_H
#define CHANC_SERVER_H

#include <stddef.h>

#include "chanc/app.h"
#include "chanc/error.h"
#include "chanc/export.h"
#include "chanc/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_server chanc_server_t;

/* One HTTP request as the handler sees it; everything borrowed for the
 * handler call only. */
typedef struct chanc_http_request {
    const char *method;            /* "GET", "POST", "HEAD" … */
    const char *path;              /* path without the query, as libwebsockets
                                    * parsed it: percent-decoded, "/../"
                                    * segments resolved */
    const char *query;             /* after '?', NULL if none: the arguments
                                    * (decoded by libwebsockets) re-encoded
                                    * and joined with '&' */
    const chanc_header_t *headers; /* cookie (several Cookie headers joined
                                    * with "; "), content-type, content-length,
                                    * origin, host, user-agent, authorization,
                                    * accept, referer, x-forwarded-for: those
                                    * present, names in lower case */
    size_t nheaders;
    const char *body;              /* request body (NUL-terminated copy) when
                                    * the request had one, else NULL */
    size_t body_len;
    const char *peer;              /* the client's address ("127.0.0.1",
                                    * "::1" …); "" when unknown */
    void *priv_;                   /* the server's; see chanc_http_defer */
} chanc_http_request_t;

#define CHANC_HTTP_MAX_HEADERS 8

/* What the handler answers; the server zeroes it before the call. */
typedef struct chanc_http_response {
    int status;                    /* 200, 302, 401, 404 … (0: 200) */
    const char *content_type;      /* NULL: "text/html; charset=utf-8";
                                    * copied before the handler's next call */
    char *body;                    /* malloc'd; the server frees it (also when
                                    * the handler fails) */
    size_t body_len;
    chanc_header_t headers[CHANC_HTTP_MAX_HEADERS]; /* extra: Location,
                                    * Set-Cookie … (names and values copied by
                                    * the server before the handler's next
                                    * call; a header may repeat) */
    size_t nheaders;
} chanc_http_response_t;

/* Fill resp (zeroed by the server) and return 0; a negative return → 500
 * (resp->body is still freed). Loop thread. Every response also carries
 * "X-Content-Type-Options: nosniff" and "Referrer-Policy: same-origin";
 * a HEAD request gets the headers of the answer without its body. */
typedef int (*chanc_http_handler_fn)(void *ud, const chanc_http_request_t *req,
                                     chanc_http_response_t *resp);

/* Answering later: work that must not run on the loop thread (a password
 * hash: ~100 ms of CPU) goes to a thread, and the answer comes back on the
 * loop. Inside the handler: d = chanc_http_defer(req), start the work
 * (copying what it needs from req: req is gone after the handler returns),
 * return CHANC_HTTP_DEFERRED. Later, on the loop thread:
 * chanc_http_complete(d, &resp) with resp filled as a handler would (body
 * taken; strings copied). If the client went away meanwhile, complete
 * just frees; it frees d either way. A request is deferred at most once;
 * chanc_http_defer returns NULL otherwise (or on OOM). Hold the app
 * (chanc_app_hold/release) around the work so a graceful shutdown waits
 * for it. */
#define CHANC_HTTP_DEFERRED 1
typedef struct chanc_http_deferred chanc_http_deferred_t;
CHANC_API chanc_http_deferred_t *chanc_http_defer(const chanc_http_request_t *req);
CHANC_API void chanc_http_complete(chanc_http_deferred_t *d, chanc_http_response_t *resp);

/* Outgoing bytes queued per WebSocket before it is a slow client, when
 * the configuration says 0 (the test fixture judges alike). */
#define CHANC_DEFAULT_MAX_QUEUE (1024u * 1024u)

typedef struct chanc_server_config {
    chanc_app_t *app;                   /* borrowed; its loop is the loop the
                                         * server runs on (libwebsockets on a
                                         * foreign libuv loop) */
    const char *host;                   /* bind address; NULL: "127.0.0.1" */
    int port;                           /* 0: an ephemeral port
                                         * (chanc_server_port tells) */
    const char *const *allowed_origins; /* NULL-terminated extra allowed Origin
                                         * values ("http://example.com:8000",
                                         * compared case-insensitively); the
                                         * server's own host:port (the Host
                                         * header, with http:// or https://) is
                                         * always allowed; no Origin header
                                         * (non-browser clients) is allowed */
    size_t max_queue;                   /* outgoing bytes queued per WebSocket
                                         * before it is a slow client (the app
                                         * closes it with 1008); 0:
                                         * CHANC_DEFAULT_MAX_QUEUE */
    size_t max_connections;             /* open WebSockets; past it a handshake
                                         * gets HTTP 503; 0: 10,000 */
    size_t max_body;                    /* HTTP request body limit; 0: 64 KiB;
                                         * over it → 413 and the connection
                                         * closes */
    size_t max_headers;                 /* request headers (the request line
                                         * and the headers libwebsockets
                                         * knows, added up); 0: 8 KiB; over
                                         * it → 431 and the connection closes.
                                         * Up to twice as much is answered;
                                         * beyond that libwebsockets 4.1.6
                                         * drops the request unanswered
                                         * (counted, logged at info once a
                                         * minute at most) */
    bool reuse_port;                    /* listen with SO_REUSEPORT, so that
                                         * several processes share host:port
                                         * and the kernel spreads the
                                         * connections (port must not be 0) */
    chanc_http_handler_fn http;         /* NULL: every HTTP request 404 */
    void *http_ud;
} chanc_server_config_t;

/* Listen and serve on the app's loop. NULL on failure (err says why when
 * non-NULL: CHANC_EINVAL for a bad config, CHANC_EIO when the address
 * cannot be bound, e.g. the port is taken, or libwebsockets could not
 * start). Routes libwebsockets' own error and warning lines into chanc_log
 * (a process-wide setting). The config is copied (allowed_origins too).
 * Loop thread, before or while the loop runs. */
CHANC_API chanc_server_t *chanc_server_create(const chanc_server_config_t *cfg,
                                              chanc_error_t *err);

/* The port the server listens (or listened) on: the ephemeral one when
 * config.port was 0. */
CHANC_API int chanc_server_port(const chanc_server_t *s);

/* Graceful stop: stop accepting (new TCP connections are closed at once),
 * close every WebSocket with 1001 "server shutting down" (frames already
 * queued go first), wait for the closing handshakes (at most a few
 * seconds) and for the app to settle, destroy the libwebsockets context
 * while the loop runs, then call done(ud) on the loop (done may be NULL).
 * The app must outlive done; after it, nothing of the server is left on
 * the loop, so destroying the app then lets uv_run return. A second call
 * is a no-op. Loop thread, while the loop runs. */
CHANC_API void chanc_server_shutdown(chanc_server_t *s, void (*done)(void *ud), void *ud);

/* Free what is left. Call it after shutdown's done (from done itself or
 * later), or after the loop stopped without a shutdown: then it tears
 * libwebsockets down itself, reporting every open WebSocket closed (1006)
 * to the app (which must still exist) and running the loop until
 * libwebsockets has let go of it. destroy(NULL) is a no-op. */
CHANC_API void chanc_server_destroy(chanc_server_t *s);

/* The server's counters, for tests and monitoring (/metrics). Copies them
 * into *out. Loop thread. */
typedef struct chanc_server_stats {
    size_t websockets;        /* open WebSocket connections */
    size_t queued_bytes;      /* bytes waiting in the per-connection queues:
                               * a loop turn's frames until the turn's end
                               * (at most 16 KiB each), then what a socket
                               * did not take */
    size_t queued_bytes_peak; /* largest queued_bytes of any one connection so
                               * far (stays <= max_queue) */
    size_t slow_clients;      /* writes refused with CHANC_EBUSY */
    size_t refused_full;      /* handshakes refused (503): max_connections */
    size_t headers_too_large; /* requests answered 431: max_headers */
    size_t headers_dropped;   /* requests dropped by libwebsockets: headers
                               * over twice max_headers */
    size_t frame_writes;      /* writes of WebSocket data frames to sockets:
                               * the frames queued for one connection in a
                               * loop turn go in one (up to 16 KiB) */
} chanc_server_stats_t;

CHANC_API void chanc_server_stats(const chanc_server_t *s, chanc_server_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif

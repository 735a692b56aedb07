/* chanc testing: a small blocking WebSocket (RFC 6455) and HTTP/1.1 client
 * for tests that talk to a live server over loopback (127.0.0.1).
 *
 * The remote communicator (chanc_test_create_remote in chanc/testing.h) is
 * built on it; use it directly when a test needs the wire itself: frames
 * built by hand, a handshake with odd headers, a peer that stops answering
 * pings, plain HTTP requests beside the WebSocket.
 *
 *   int status;
 *   chanc_ws_client_t *c = chanc_ws_client_connect(port, "/ws/echo/", NULL, &status);
 *   assert_non_null(c);  // else status is the HTTP answer (403, 404, ...)
 *   chanc_ws_client_send_text(c, "{\"action\":\"echo\",\"payload\":\"hi\"}");
 *   json_t *reply = chanc_ws_client_receive_json(c, true, 5000); // completions skipped
 *   ...
 *   json_decref(reply);
 *   assert_int_equal(chanc_ws_client_close(c, 1000, 2000), 1000);
 *   chanc_ws_client_free(c);
 *
 * Every wait is a poll() bounded by a timeout that only catches a hung
 * server; nothing sleeps. Not thread-safe: one thread per client. Part of
 * libchanc_testing. */
#ifndef CHANC_WS_CLIENT_H
#define CHANC_WS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Frame opcodes (RFC 6455 section 5.2). */
enum {
    CHANC_WS_OP_CONT = 0x0,
    CHANC_WS_OP_TEXT = 0x1,
    CHANC_WS_OP_BINARY = 0x2,
    CHANC_WS_OP_CLOSE = 0x8,
    CHANC_WS_OP_PING = 0x9,
    CHANC_WS_OP_PONG = 0xA
};

typedef struct chanc_ws_client chanc_ws_client_t;

/* One frame from the server. */
typedef struct chanc_ws_frame {
    int opcode;
    bool fin;
    unsigned char *data; /* malloc'd, NUL-terminated; free with chanc_ws_frame_dispose */
    size_t len;
    int close_code;      /* close frames: the code, 1005 when none */
    char close_reason[128];
} chanc_ws_frame_t;

typedef struct chanc_ws_client_options {
    const char *const *headers; /* NULL-terminated "Name: value" lines */
    int rcvbuf;                 /* >0: SO_RCVBUF before connecting */
    int timeout_ms;             /* 0: 5000 */
    const void *early;          /* bytes sent in the same write as the
                                 * handshake, before its answer */
    size_t early_len;
} chanc_ws_client_options_t;

/* --- WebSocket ------------------------------------------------------------ */

/* Open a WebSocket to 127.0.0.1:port/path (opts may be NULL). Returns the
 * client on "101" (with a verified Sec-WebSocket-Accept), else NULL with
 * *status set to the HTTP status (or -1 when the connection failed or the
 * server hung up). */
CHANC_API chanc_ws_client_t *chanc_ws_client_connect(int port, const char *path,
                                                     const chanc_ws_client_options_t *opts,
                                                     int *status);
/* Close the socket and free the client; NULL is a no-op. */
CHANC_API void chanc_ws_client_free(chanc_ws_client_t *c);

/* Send one masked frame; 0 or -1. */
CHANC_API int chanc_ws_client_send_frame(chanc_ws_client_t *c, int opcode, bool fin,
                                         const void *data, size_t len);
/* Send a NUL-terminated string as one text frame; 0 or -1. */
CHANC_API int chanc_ws_client_send_text(chanc_ws_client_t *c, const char *text);
/* Send bytes as they are (frames built by the test: unmasked, reserved
 * bits, bad lengths, …); 0 or -1. Bytes starting with a close frame count
 * as our close: the server's answer to it is not echoed. */
CHANC_API int chanc_ws_client_send_raw(chanc_ws_client_t *c, const void *data, size_t len);
/* Send a close frame with code/reason (code 0: no payload). */
CHANC_API int chanc_ws_client_send_close(chanc_ws_client_t *c, int code, const char *reason);

/* Next frame from the server (pings are answered and skipped). On a close
 * frame, the close is echoed (unless ours went first) and the client marked
 * closed. 0, or -1 on timeout / EOF / error (chanc_ws_client_eof tells
 * which). A timeout in the middle of a frame loses nothing: the next call
 * resumes it. */
CHANC_API int chanc_ws_client_receive_frame(chanc_ws_client_t *c, chanc_ws_frame_t *f,
                                            int timeout_ms);
CHANC_API void chanc_ws_frame_dispose(chanc_ws_frame_t *f);

/* Next text frame as JSON (new reference). With skip_completions, frames
 * with action "complete"/"group_complete" are dropped. NULL on close,
 * timeout or a non-JSON frame. */
CHANC_API json_t *chanc_ws_client_receive_json(chanc_ws_client_t *c, bool skip_completions,
                                               int timeout_ms);
/* Read until a frame whose "action" equals action; returns it (new
 * reference), dropping the ones before. NULL if the connection closed or
 * timed out first. */
CHANC_API json_t *chanc_ws_client_receive_action(chanc_ws_client_t *c, const char *action,
                                                 int timeout_ms);
/* Read (and drop) data frames until the server's close frame; returns its
 * code, or -1. *data_frames (may be NULL) counts the frames dropped. */
CHANC_API int chanc_ws_client_wait_close(chanc_ws_client_t *c, int timeout_ms,
                                         size_t *data_frames);
/* Read (and drop) whatever still comes until the server closes the TCP
 * connection: 0 then, -1 if it is still open after timeout_ms. */
CHANC_API int chanc_ws_client_wait_eof(chanc_ws_client_t *c, int timeout_ms);
/* True once a close frame came; the code and reason the server sent. */
CHANC_API bool chanc_ws_client_closed(const chanc_ws_client_t *c);
/* True once the connection is gone at the TCP level (EOF, reset, a failed
 * send), as opposed to a receive that merely timed out. */
CHANC_API bool chanc_ws_client_eof(const chanc_ws_client_t *c);
CHANC_API int chanc_ws_client_close_code(const chanc_ws_client_t *c);
CHANC_API const char *chanc_ws_client_close_reason(const chanc_ws_client_t *c);
/* Pings: answered (the default) or ignored like a dead peer; how many came. */
CHANC_API void chanc_ws_client_answer_pings(chanc_ws_client_t *c, bool answer);
CHANC_API size_t chanc_ws_client_pings(const chanc_ws_client_t *c);
/* Send a close and wait for the server's (returns its code, or -1). */
CHANC_API int chanc_ws_client_close(chanc_ws_client_t *c, int code, int timeout_ms);

/* --- plain HTTP ------------------------------------------------------------- */

typedef struct chanc_http_client_response {
    int status;
    char *head;      /* status line and headers, NUL-terminated */
    char *body;      /* NUL-terminated */
    size_t body_len;
    bool closed;     /* the server closed the connection after the answer */
} chanc_http_client_response_t;

/* Send raw request bytes on a new connection and read one response
 * (Content-Length framed, or up to EOF). head_only: the request was HEAD
 * (no body follows whatever Content-Length says). 0 or -1. */
CHANC_API int chanc_http_client_exchange(int port, const void *request, size_t len,
                                         bool head_only, chanc_http_client_response_t *out,
                                         int timeout_ms);
/* The same for n pipelined requests in one buffer: n responses (GET/POST
 * only) read from one connection. */
CHANC_API int chanc_http_client_exchange_many(int port, const void *requests, size_t len,
                                              chanc_http_client_response_t *out, size_t n,
                                              int timeout_ms);
/* n requests on one keep-alive connection, each sent once the answer to
 * the one before has come (as browsers do: libwebsockets 4.1.6 does not
 * read a request pipelined behind one with a body). 0 or -1; a connection
 * the server closes early fails the exchange. */
CHANC_API int chanc_http_client_exchange_seq(int port, const char *const *requests,
                                             chanc_http_client_response_t *out, size_t n,
                                             int timeout_ms);
/* A response header's value (first match, case-insensitive) copied into
 * out; NULL if absent. */
CHANC_API const char *chanc_http_client_header(const chanc_http_client_response_t *r,
                                               const char *name, char *out, size_t outlen);
/* How many times a header occurs. */
CHANC_API int chanc_http_client_header_count(const chanc_http_client_response_t *r,
                                             const char *name);
CHANC_API void chanc_http_client_response_dispose(chanc_http_client_response_t *r);

#ifdef __cplusplus
}
#endif
#endif

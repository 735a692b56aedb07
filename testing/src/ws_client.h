/* A small blocking WebSocket (RFC 6455) and HTTP/1.1 client for tests that
 * talk to a real server over loopback. Every wait is a poll() bounded by a
 * timeout that only catches a hung server; nothing sleeps. Not thread-safe:
 * one thread per client. */
#ifndef WS_CLIENT_H
#define WS_CLIENT_H

/* Part of libchanc_testing (the remote communicator uses it) but not its
 * public API: the symbols carry the library's private prefix. */
#define http_exchange chanc__http_exchange
#define http_exchange_many chanc__http_exchange_many
#define http_exchange_seq chanc__http_exchange_seq
#define http_header chanc__http_header
#define http_header_count chanc__http_header_count
#define http_resp_dispose chanc__http_resp_dispose
#define ws_close chanc__ws_close
#define ws_close_code chanc__ws_close_code
#define ws_close_reason chanc__ws_close_reason
#define ws_closed chanc__ws_closed
#define ws_connect chanc__ws_connect
#define ws_eof chanc__ws_eof
#define ws_frame_dispose chanc__ws_frame_dispose
#define ws_free chanc__ws_free
#define ws_recv_action chanc__ws_recv_action
#define ws_recv_frame chanc__ws_recv_frame
#define ws_recv_json chanc__ws_recv_json
#define ws_send_close chanc__ws_send_close
#define ws_send_frame chanc__ws_send_frame
#define ws_send_raw chanc__ws_send_raw
#define ws_send_text chanc__ws_send_text
#define ws_wait_close chanc__ws_wait_close
#define ws_wait_eof chanc__ws_wait_eof
#define ws_answer_pings chanc__ws_answer_pings
#define ws_pings chanc__ws_pings

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA
};

typedef struct ws_client ws_client_t;

typedef struct ws_frame {
    int opcode;
    bool fin;
    unsigned char *data; /* malloc'd, NUL-terminated; free with ws_frame_dispose */
    size_t len;
    int close_code;      /* close frames: the code, 1005 when none */
    char close_reason[128];
} ws_frame_t;

typedef struct ws_connect_opts {
    const char *const *headers; /* NULL-terminated "Name: value" lines */
    int rcvbuf;                 /* >0: SO_RCVBUF before connecting */
    int timeout_ms;             /* 0: 5000 */
    const void *early;          /* bytes sent in the same write as the
                                 * handshake, before its answer */
    size_t early_len;
} ws_connect_opts_t;

/* Open a WebSocket to 127.0.0.1:port/path. Returns the client on "101"
 * (with a verified Sec-WebSocket-Accept), else NULL with *status set to the
 * HTTP status (or -1 when the connection failed or the server hung up). */
ws_client_t *ws_connect(int port, const char *path, const ws_connect_opts_t *opts, int *status);
void ws_free(ws_client_t *c); /* closes the socket; NULL is a no-op */

/* Send one masked frame; 0 or -1. */
int ws_send_frame(ws_client_t *c, int opcode, bool fin, const void *data, size_t len);
int ws_send_text(ws_client_t *c, const char *text);
/* Send bytes as they are (frames built by the test: unmasked, reserved
 * bits, bad lengths, …); 0 or -1. Bytes starting with a close frame count
 * as our close: the server's answer to it is not echoed. */
int ws_send_raw(ws_client_t *c, const void *data, size_t len);
/* Send a close frame with code/reason (code 0: no payload). */
int ws_send_close(ws_client_t *c, int code, const char *reason);

/* Next frame from the server (pings are answered and skipped). On a close
 * frame, the close is echoed (unless ours went first) and the client marked
 * closed. 0, or -1 on timeout / EOF / error (ws_eof tells which). A timeout
 * in the middle of a frame loses nothing: the next call resumes it. */
int ws_recv_frame(ws_client_t *c, ws_frame_t *f, int timeout_ms);
void ws_frame_dispose(ws_frame_t *f);

/* Next text frame as JSON (new reference). With skip_completions, frames
 * with action "complete"/"group_complete" are dropped. NULL on close,
 * timeout or a non-JSON frame. */
json_t *ws_recv_json(ws_client_t *c, bool skip_completions, int timeout_ms);
/* Read until a frame whose "action" equals action; returns it (new
 * reference), dropping the ones before. NULL if the connection closed or
 * timed out first. */
json_t *ws_recv_action(ws_client_t *c, const char *action, int timeout_ms);
/* Read (and drop) data frames until the server's close frame; returns its
 * code, or -1. *data_frames (may be NULL) counts the frames dropped. */
int ws_wait_close(ws_client_t *c, int timeout_ms, size_t *data_frames);
/* Read (and drop) whatever still comes until the server closes the TCP
 * connection: 0 then, -1 if it is still open after timeout_ms. */
int ws_wait_eof(ws_client_t *c, int timeout_ms);
/* True once a close frame came; the code and reason the server sent. */
bool ws_closed(const ws_client_t *c);
/* True once the connection is gone at the TCP level (EOF, reset, a failed
 * send), as opposed to a receive that merely timed out. */
bool ws_eof(const ws_client_t *c);
int ws_close_code(const ws_client_t *c);
const char *ws_close_reason(const ws_client_t *c);
/* Pings: answered (the default) or ignored like a dead peer; how many came. */
void ws_answer_pings(ws_client_t *c, bool answer);
size_t ws_pings(const ws_client_t *c);
/* Send a close and wait for the server's (returns its code, or -1). */
int ws_close(ws_client_t *c, int code, int timeout_ms);

/* --- plain HTTP -------------------------------------------------------- */

typedef struct http_resp {
    int status;
    char *head;      /* status line and headers, NUL-terminated */
    char *body;      /* NUL-terminated */
    size_t body_len;
    bool closed;     /* the server closed the connection after the answer */
} http_resp_t;

/* Send raw request bytes on a new connection and read one response
 * (Content-Length framed, or up to EOF). head_only: the request was HEAD
 * (no body follows whatever Content-Length says). 0 or -1. */
int http_exchange(int port, const void *request, size_t len, bool head_only, http_resp_t *out,
                  int timeout_ms);
/* The same for n pipelined requests in one buffer: n responses (GET/POST
 * only) read from one connection. */
int http_exchange_many(int port, const void *requests, size_t len, http_resp_t *out, size_t n,
                       int timeout_ms);
/* n requests on one keep-alive connection, each sent once the answer to
 * the one before has come (as browsers do: libwebsockets 4.1.6 does not
 * read a request pipelined behind one with a body). 0 or -1; a connection
 * the server closes early fails the exchange. */
int http_exchange_seq(int port, const char *const *requests, http_resp_t *out, size_t n,
                      int timeout_ms);
/* A response header's value (first match, case-insensitive) copied into
 * out; NULL if absent. */
const char *http_header(const http_resp_t *r, const char *name, char *out, size_t outlen);
/* How many times a header occurs. */
int http_header_count(const http_resp_t *r, const char *name);
void http_resp_dispose(http_resp_t *r);

#endif

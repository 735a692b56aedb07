/* The network transport: libwebsockets 4.1 on the app's libuv loop (a
 * foreign loop), carrying WebSocket connections to the app and plain HTTP
 * requests to one handler. The only file that includes libwebsockets.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "chanc/log.h"
#include "chanc/server.h"
#include "chanc/utf8.h"

/* lws writes the WebSocket frame header in place, in the LWS_PRE bytes
 * before the payload: the shared buffers reserve that much. */
_Static_assert(LWS_PRE <= CHANC_BUF_HEADROOM, "CHANC_BUF_HEADROOM must cover LWS_PRE");

#define DEFAULT_MAX_QUEUE (1024u * 1024u)
#define DEFAULT_MAX_BODY (64u * 1024u)
#define DEFAULT_MAX_CONNECTIONS 10000u
/* Per-connection receive buffer lws allocates. Measured with chanc-bench
 * idle (2,000 connections, fresh server): 7.1 KiB of RSS per connection
 * with 4096, 4.2 with 1024, 3.7 with 512. Bigger frames arrive in pieces
 * and are reassembled in a buffer freed after the message. */
#define RX_BUFFER_SIZE 512
#define TX_PACKET_SIZE (64 * 1024)
/* A closing WebSocket gets this long to take its queued frames and answer
 * our close frame before lws drops it. */
#define CLOSE_FLUSH_SECS 10
/* Shutdown waits at most this long for the closing handshakes and the
 * app to settle, then as long again for lws to let go of the loop. */
#define SHUTDOWN_WAIT_MS 5000
#define SHUTDOWN_POLL_MS 2
#define HTTP_CHUNK 4096
#define MAX_QUERY_ARGS 64
/* Request headers: a request whose headers add up to more than max_headers
 * (default 8 KiB) is answered 431 and closed. lws 4.1.6 itself cannot
 * answer: a request that overflows its header space (max_http_header_data)
 * is dropped from inside its parser, the socket shut down before any
 * callback. So lws gets twice our limit: everything between is answered. */
#define DEFAULT_MAX_HEADERS (8u * 1024u)
#define MAX_MAX_HEADERS (256u * 1024u)
/* A client's fault is logged at info, at most once a minute per kind (the
 * next line says how many were not logged). */
#define CLIENT_FAULT_LOG_MS 60000

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
    bool late_close;      /* chanc_conn_closed deferred: that call frees us */
    bool close_started;   /* lws has our close frame: wait for the answer */
    bool peer_closed;     /* the client's close frame came: lws answers it */
    bool lws_closing;     /* lws is closing it on its own (a protocol error) */
    int close_code;       /* first close code either side gave; 0: none */
    char close_reason[124];

    unsigned char *rx;    /* reassembly of a fragmented / chunked message */
    size_t rx_len, rx_cap;

    chanc_buf_t **q;      /* ring of queued frames (references) */
    size_t q_head, q_n, q_cap;
    size_t q_bytes;

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

    /* client faults logged at info, rate-limited (client_fault) */
    struct fault_log {
        uint64_t last_ms; /* 0: never logged */
        size_t unlogged;  /* since the last line */
    } log_431, log_dropped;

    tconn_t *conns;      /* every tconn_t alive */
    size_t open_conns;   /* tconns with a chanc_conn_t not yet reported closed */
    chanc_server_stats_t stats;
    int in_write;        /* depth of ops->write: no app callbacks in there */

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

/* --- small helpers ---------------------------------------------------------- */

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Every Cookie header of the request joined with "; " (RFC 6265 §5.4: one
 * header; HTTP/1.1 proxies may send several). lws 4.1.6 keeps each as a
 * fragment of WSI_TOKEN_HTTP_COOKIE and lws_hdr_copy glues them together
 * with no separator at all ("a=1  sessionid=x": the session lost). NULL
 * when there is none. */
static char *cookie_dup(struct lws *wsi) {
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
    if (total <= 0)
        return NULL;
    size_t cap = (size_t)total + 1;
    char *frag = malloc(cap), *out = malloc(cap * 2 + 1);
    size_t o = 0;
    if (!frag || !out)
        goto fail;
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)cap, WSI_TOKEN_HTTP_COOKIE, i);
        if (n < 0)
            break;
        const char *v = frag;
        while (*v == ' ' || *v == '\t')
            v++, n--;
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == ';'))
            n--;
        if (n <= 0)
            continue;
        if (o) {
            memcpy(out + o, "; ", 2);
            o += 2;
        }
        memcpy(out + o, v, (size_t)n);
        o += (size_t)n;
    }
    if (!o)
        goto fail;
    out[o] = '\0';
    free(frag);
    return out;
fail:
    free(frag);
    free(out);
    return NULL;
}

/* A header lws parsed, as a new string; NULL when absent. */
static char *hdr_dup(struct lws *wsi, enum lws_token_indexes tok) {
    if (tok == WSI_TOKEN_HTTP_COOKIE)
        return cookie_dup(wsi);
    int n = lws_hdr_total_length(wsi, tok);
    if (n <= 0)
        return NULL;
    char *v = malloc((size_t)n + 1);
    if (v && lws_hdr_copy(wsi, v, n + 1, tok) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

/* lws splits the query into its '&'-separated arguments and percent-decodes
 * each one; put them back together, re-encoding what would be ambiguous
 * ('&', '#', '%', '+', a second '=', controls, spaces, non-ASCII). */
static char *query_dup(struct lws *wsi) {
    size_t cap = (size_t)lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (cap == 0)
        return NULL;
    char *frag = malloc(cap + 1);
    char *out = malloc(cap * 3 + MAX_QUERY_ARGS + 1);
    size_t o = 0;
    if (!frag || !out)
        goto fail;
    int nfrags = 0;
    while (nfrags < MAX_QUERY_ARGS &&
           lws_hdr_copy_fragment(wsi, frag, (int)cap + 1, WSI_TOKEN_HTTP_URI_ARGS, nfrags) >= 0)
        nfrags++;
    /* lws 4.1 turns an empty last argument ("/p?", "/p?a&") into "/". */
    if (nfrags && lws_hdr_copy_fragment(wsi, frag, (int)cap + 1, WSI_TOKEN_HTTP_URI_ARGS,
                                        nfrags - 1) == 1 && frag[0] == '/')
        nfrags--;
    if (nfrags == 0)
        goto fail;
    for (int i = 0; i < nfrags; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)cap + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (i)
            out[o++] = '&';
        bool seen_eq = false;
        for (int k = 0; k < n; k++) {
            unsigned char ch = (unsigned char)frag[k];
            if (ch == '=' && !seen_eq) {
                seen_eq = true;
                out[o++] = '=';
            } else if (isalnum(ch) || strchr("-._~!$'()*,;:@/?", ch)) {
                out[o++] = (char)ch;
            } else {
                static const char hex[] = "0123456789ABCDEF";
                out[o++] = '%';
                out[o++] = hex[ch >> 4];
                out[o++] = hex[ch & 15];
            }
        }
    }
    out[o] = '\0';
    free(frag);
    return out;
fail:
    free(frag);
    free(out);
    return NULL;
}

static tconn_t *tconn_get(chanc_server_t *s, struct lws *wsi, bool create) {
    tconn_t *t = lws_get_opaque_user_data(wsi);
    if (t || !create)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->s = s;
    t->wsi = wsi;
    t->next = s->conns;
    if (s->conns)
        s->conns->prev = t;
    s->conns = t;
    lws_set_opaque_user_data(wsi, t);
    return t;
}

static void later_dispose(chanc_http_response_t *r) {
    free((char *)r->content_type);
    for (size_t i = 0; i < r->nheaders; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

static void http_txn_free(http_txn_t *h) {
    if (!h)
        return;
    if (h->deferred)
        h->deferred->t = NULL; /* chanc_http_complete will just drop it */
    if (h->has_later)
        later_dispose(&h->later);
    free(h->path);
    free(h->query);
    for (size_t i = 0; i < h->nheaders; i++)
        free((char *)h->headers[i].value);
    free(h->body);
    free(h->out);
    free(h);
}

static void queue_clear(tconn_t *t) {
    for (size_t i = 0; i < t->q_n; i++)
        chanc_buf_unref(t->q[(t->q_head + i) % t->q_cap]);
    free(t->q);
    t->q = NULL;
    t->q_head = t->q_n = t->q_cap = 0;
    t->s->stats.queued_bytes -= t->q_bytes;
    t->q_bytes = 0;
}

static void tconn_unlink(tconn_t *t) {
    chanc_server_t *s = t->s;
    queue_clear(t);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Frees an unlinked tconn (its queue already empty). */
static void tconn_release(tconn_t *t) {
    free(t->q);
    free(t->rx);
    http_txn_free(t->http);
    free(t);
}

/* --- the WebSocket side: transport ops ------------------------------------------ */

static bool ws_open(const tconn_t *t) {
    return t->wsi && t->conn && t->established && !t->write_failed && !t->close_wanted &&
           !t->peer_closed && !t->lws_closing;
}

/* Nothing queued and nothing partly sent: a write may go to the socket now
 * (FACTS.md: ~40 % less CPU than always queueing); lws keeps an unsent
 * tail itself. */
static bool ws_fast_path(const tconn_t *t) { return t->q_n == 0 && !lws_partial_buffered(t->wsi); }

static int ws_write_now(tconn_t *t, unsigned char *data, size_t len, enum lws_write_protocol wp) {
    t->s->in_write++;
    int n = lws_write(t->wsi, data, len, wp);
    t->s->in_write--;
    if (n < 0) {
        /* No app callbacks from in here: lws closes it from its own turn
         * and LWS_CALLBACK_CLOSED reports it. */
        t->write_failed = true;
        lws_set_timeout(t->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return CHANC_ECLOSED;
    }
    return 0;
}

static int lws_op_write(void *tctx, chanc_buf_t *frame) {
    tconn_t *t = tctx;
    chanc_server_t *s = t->s;
    if (!ws_open(t))
        return CHANC_ECLOSED;
    if (ws_fast_path(t))
        return ws_write_now(t, frame->data, frame->len,
                            (frame->flags & CHANC_BUF_BINARY) ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    if (t->q_bytes + frame->len > s->max_queue) {
        s->stats.slow_clients++;
        return CHANC_EBUSY;
    }
    if (t->q_n == t->q_cap) {
        size_t cap = t->q_cap ? t->q_cap * 2 : 8;
        chanc_buf_t **q = malloc(cap * sizeof *q);
        if (!q)
            return CHANC_ENOMEM;
        for (size_t i = 0; i < t->q_n; i++)
            q[i] = t->q[(t->q_head + i) % t->q_cap];
        free(t->q);
        t->q = q;
        t->q_cap = cap;
        t->q_head = 0;
    }
    t->q[(t->q_head + t->q_n) % t->q_cap] = chanc_buf_ref(frame);
    t->q_n++;
    t->q_bytes += frame->len;
    s->stats.queued_bytes += frame->len;
    if (t->q_bytes > s->stats.queued_bytes_peak)
        s->stats.queued_bytes_peak = t->q_bytes;
    lws_callback_on_writable(t->wsi);
    return 0;
}

/* RFC 6455 server frame header (FIN, no mask) for len bytes; its size. */
static size_t ws_header(unsigned char *h, size_t len, bool binary) {
    h[0] = binary ? 0x82 : 0x81;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* frame then `then`, framed, in one buffer: built once per frame (a group
 * message's variant) and shared by every recipient, like the frame. */
static chanc_buf_t *wire_pair(chanc_buf_t *frame, const chanc_buf_t *then) {
    if (frame->wire)
        return frame->wire;
    chanc_buf_t *w = chanc_buf_with_capacity(frame->len + then->len + 20);
    if (!w)
        return NULL;
    unsigned char h[10];
    size_t n = ws_header(h, frame->len, frame->flags & CHANC_BUF_BINARY);
    chanc_buf_append(&w, h, n);
    chanc_buf_append(&w, frame->data, frame->len);
    n = ws_header(h, then->len, then->flags & CHANC_BUF_BINARY);
    chanc_buf_append(&w, h, n);
    chanc_buf_append(&w, then->data, then->len);
    return frame->wire = w;
}

/* A group message and its group_complete: one send() instead of two when
 * the socket is free (lws sends LWS_WRITE_RAW bytes as they are); queued
 * as two frames otherwise. */
static int lws_op_write_pair(void *tctx, chanc_buf_t *frame, chanc_buf_t *then) {
    tconn_t *t = tctx;
    if (!ws_open(t))
        return CHANC_ECLOSED;
    chanc_buf_t *w = ws_fast_path(t) ? wire_pair(frame, then) : NULL;
    if (w)
        return ws_write_now(t, w->data, w->len, LWS_WRITE_RAW);
    int rc = lws_op_write(t, frame);
    return rc < 0 ? rc : lws_op_write(t, then);
}

static void lws_op_close(void *tctx, int code, const char *reason) {
    tconn_t *t = tctx;
    if (t->close_wanted || t->lws_closing)
        return;
    t->close_wanted = true;
    if (!t->close_code)
        t->close_code = code;
    /* A close reason is at most 123 bytes; do not cut a UTF-8 sequence. */
    size_t n = strlen(reason);
    if (n > sizeof t->close_reason - 1) {
        n = sizeof t->close_reason - 1;
        while (n && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(t->close_reason, reason, n);
    t->close_reason[n] = '\0';
    if (!t->wsi || !t->conn)
        return;
    /* Frames queued before the close go first (WRITEABLE drains them, then
     * sends the close frame); a client that takes none gets dropped. */
    lws_set_timeout(t->wsi, PENDING_TIMEOUT_CLOSE_SEND, CLOSE_FLUSH_SECS);
    lws_callback_on_writable(t->wsi);
}

static void lws_op_ping(void *tctx) {
    tconn_t *t = tctx;
    if (!t->wsi || !t->established || t->close_wanted || t->lws_closing)
        return;
    t->ping_wanted = true;
    lws_callback_on_writable(t->wsi);
}

/* Stop taking the client's frames while the app works through a backlog
 * behind a deferred frame: lws stops reading the socket, TCP pushes back. */
static void lws_op_pause(void *tctx, bool paused) {
    tconn_t *t = tctx;
    if (t->wsi && t->conn && !t->lws_closing)
        lws_rx_flow_control(t->wsi, paused ? 0 : 1);
}

static const chanc_transport_ops_t lws_ops = {.write = lws_op_write,
                                              .close = lws_op_close,
                                              .ping = lws_op_ping,
                                              .write_pair = lws_op_write_pair,
                                              .pause = lws_op_pause};

/* --- reporting a closed WebSocket to the app ------------------------------------ */

typedef struct late_close {
    tconn_t *t;
    chanc_conn_t *conn;
    int code;
} late_close_t;

static void run_late_close(void *arg) {
    late_close_t *lc = arg;
    chanc_conn_closed(lc->conn, lc->code);
    if (lc->t->wsi)
        lc->t->late_close = false; /* lws still has it: WSI_DESTROY frees it */
    else
        tconn_release(lc->t);      /* already unlinked by WSI_DESTROY */
    free(lc);
}

/* The WebSocket is gone: tell the app (once). */
static void report_closed(tconn_t *t, int code) {
    chanc_server_t *s = t->s;
    if (!t->conn)
        return;
    chanc_conn_t *conn = t->conn;
    t->conn = NULL;
    s->open_conns--;
    if (t->established) {
        t->established = false;
        s->stats.websockets--;
    }
    queue_clear(t);
    free(t->rx);
    t->rx = NULL;
    t->rx_len = t->rx_cap = 0;
    if (s->in_write) {
        /* lws closed a connection from inside one of our writes (the app
         * may be walking a group's members): report it on the next turn.
         * The app may still call our ops until then; they see no wsi. */
        late_close_t *lc = malloc(sizeof *lc);
        if (lc) {
            *lc = (late_close_t){t, conn, code};
            if (chanc_app_defer(s->app, run_late_close, lc) == 0) {
                t->late_close = true;
                return;
            }
            free(lc);
        }
    }
    chanc_conn_closed(conn, code);
}

/* --- the WebSocket side: lws callbacks ----------------------------------------- */

static bool origin_allowed(const chanc_server_t *s, const char *origin, const char *host) {
    if (!origin)
        return true; /* not a browser: Origin is a browser's promise, not auth */
    if (host) {
        size_t hl = strlen(host);
        if ((strncasecmp(origin, "http://", 7) == 0 && strlen(origin) == 7 + hl &&
             strcasecmp(origin + 7, host) == 0) ||
            (strncasecmp(origin, "https://", 8) == 0 && strlen(origin) == 8 + hl &&
             strcasecmp(origin + 8, host) == 0))
            return true;
    }
    for (size_t i = 0; i < s->norigins; i++)
        if (strcasecmp(origin, s->origins[i]) == 0)
            return true;
    return false;
}

static int write_simple_response(struct lws *wsi, int status, const char *text);
static int write_head(struct lws *wsi, int status, const char *ctype, size_t body_len,
                      const chanc_header_t *extra, size_t nextra, bool close);

/* A client's fault (oversized headers): counted, and logged at info at
 * most once per CLIENT_FAULT_LOG_MS, so a flood of them cannot flood the
 * log (the next line says how many went unlogged). */
static void client_fault(chanc_server_t *s, struct fault_log *fl, const char *what) {
    uint64_t now = uv_now(s->loop) + 1; /* never 0 */
    if (fl->last_ms && now - fl->last_ms < CLIENT_FAULT_LOG_MS) {
        fl->unlogged++;
        return;
    }
    if (fl->unlogged)
        chanc_log(CHANC_LOG_INFO, "%s (and %zu more since the last such line; at most one "
                  "line a minute)", what, fl->unlogged);
    else
        chanc_log(CHANC_LOG_INFO, "%s", what);
    fl->last_ms = now;
    fl->unlogged = 0;
}

/* The bytes of the request's headers lws kept for us (the request line
 * and every header it knows; libwebsockets 4.1.6 cannot list the others). */
static size_t header_bytes(struct lws *wsi) {
    size_t n = 0;
    for (int tok = 0; tok < (int)WSI_TOKEN_COUNT; tok++) {
        int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)tok);
        if (len > 0)
            n += (size_t)len;
    }
    return n;
}

/* Are the request's headers over max_headers? Then it is counted and
 * logged (the caller answers 431 and closes). */
static bool headers_too_large(chanc_server_t *s, struct lws *wsi, const char *kind) {
    size_t n = header_bytes(wsi);
    if (n <= s->max_headers)
        return false;
    s->stats.headers_too_large++;
    char what[160];
    snprintf(what, sizeof what, "%s with %zu bytes of headers (more than %zu) answered 431",
             kind, n, s->max_headers);
    client_fault(s, &s->log_431, what);
    return true;
}

/* A refused handshake's answer, with Connection: close (lws closes after
 * it). 1, or -1 when it could not be written. */
static int ws_refuse(struct lws *wsi, int status, const char *text, const chanc_header_t *extra,
                     size_t nextra) {
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, text);
    unsigned char out[LWS_PRE + sizeof body];
    memcpy(out + LWS_PRE, body, (size_t)n);
    if (write_head(wsi, status, "text/plain; charset=utf-8", (size_t)n, extra, nextra, true) < 0 ||
        lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    return 1;
}

/* RFC 6455 §4.2.2: a handshake for a version we do not speak is refused
 * with 426 and the version we do; libwebsockets 4.1.6 logs it and goes on
 * as if it were 13 (any value, or none). 0 when it is 13; else what
 * ws_confirm_upgrade returns. */
static int ws_check_version(struct lws *wsi) {
    char v[8];
    int n = lws_hdr_copy(wsi, v, sizeof v, WSI_TOKEN_VERSION);
    if (n == 2 && strcmp(v, "13") == 0)
        return 0;
    if (n <= 0 && lws_hdr_total_length(wsi, WSI_TOKEN_VERSION) == 0)
        /* §4.2.1: the header is required; without it the request is not
         * a WebSocket handshake at all. */
        return ws_refuse(wsi, 400, "Bad Request", NULL, 0);
    const chanc_header_t version = {"Sec-WebSocket-Version", "13"};
    return ws_refuse(wsi, 426, "Upgrade Required", &version, 1);
}

/* An upgrade request: version, header size, Origin check, route, create
 * the app connection. Returns 0 to let lws complete the handshake, 1 when
 * we answered with an HTTP error ourselves, -1 to hang up. */
static int ws_confirm_upgrade(chanc_server_t *s, struct lws *wsi) {
    if (s->shutting_down)
        return write_simple_response(wsi, 503, "Service Unavailable") ? -1 : 1;
    if (headers_too_large(s, wsi, "a WebSocket handshake"))
        return ws_refuse(wsi, 431, "Request Header Fields Too Large", NULL, 0);
    int vrc = ws_check_version(wsi);
    if (vrc)
        return vrc;
    char *uri = NULL;
    int ulen = 0;
    if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || !uri)
        return -1;
    static const struct {
        const char *name;
        enum lws_token_indexes tok;
    } wanted[] = {
        {"cookie", WSI_TOKEN_HTTP_COOKIE},
        {"origin", WSI_TOKEN_ORIGIN},
        {"host", WSI_TOKEN_HOST},
        {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
        {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
        {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR},
    };
    enum { NW = sizeof wanted / sizeof wanted[0] };
    chanc_header_t headers[NW];
    char *values[NW];
    size_t nh = 0;
    const char *origin = NULL, *host = NULL;
    for (size_t i = 0; i < NW; i++) {
        values[i] = hdr_dup(wsi, wanted[i].tok);
        if (values[i]) {
            headers[nh++] = (chanc_header_t){wanted[i].name, values[i]};
            if (wanted[i].tok == WSI_TOKEN_ORIGIN)
                origin = values[i];
            else if (wanted[i].tok == WSI_TOKEN_HOST)
                host = values[i];
        }
    }
    char *query = query_dup(wsi);
    size_t plen = (size_t)ulen + (query ? strlen(query) + 1 : 0);
    char *path = malloc(plen + 1);
    int rc = 0;
    if (!path) {
        rc = write_simple_response(wsi, 500, "Internal Server Error") ? -1 : 1;
        goto out;
    }
    if (query)
        snprintf(path, plen + 1, "%.*s?%s", ulen, uri, query);
    else
        snprintf(path, plen + 1, "%.*s", ulen, uri);

    if (!origin_allowed(s, origin, host)) {
        chanc_log(CHANC_LOG_NOTICE, "WebSocket %.200s refused: foreign Origin %.200s (Host %.200s)",
                  path, origin, host ? host : "none");
        rc = write_simple_response(wsi, 403, "Forbidden") ? -1 : 1;
        goto out;
    }
    if (s->open_conns >= s->max_connections) {
        s->stats.refused_full++;
        chanc_log(CHANC_LOG_WARN, "WebSocket %.200s refused: %zu connections open (the limit)",
                  path, s->open_conns);
        rc = write_simple_response(wsi, 503, "Service Unavailable") ? -1 : 1;
        goto out;
    }
    tconn_t *t = tconn_get(s, wsi, true);
    if (!t || t->conn) {
        rc = write_simple_response(wsi, 500, "Internal Server Error") ? -1 : 1;
        goto out;
    }
    chanc_request_t req = {path, headers, nh};
    int orc = chanc_conn_open(s->app, &req, &lws_ops, t, &t->conn);
    if (orc == CHANC_ENOROUTE) {
        rc = write_simple_response(wsi, 404, "Not Found") ? -1 : 1;
    } else if (orc < 0) {
        chanc_log(CHANC_LOG_ERROR, "WebSocket %.200s: %s", path, chanc_strerror(orc));
        rc = write_simple_response(wsi, 500, "Internal Server Error") ? -1 : 1;
    } else {
        s->open_conns++;
    }
out:
    for (size_t i = 0; i < NW; i++)
        free(values[i]);
    free(query);
    free(path);
    return rc;
}

static int ws_receive(tconn_t *t, const void *in, size_t len) {
    chanc_server_t *s = t->s;
    struct lws *wsi = t->wsi;
    if (!t->conn || t->close_wanted || t->rx_discard)
        return 0; /* closing: drop what is still arriving */
    if (!t->in_msg) {
        t->in_msg = true;
        t->rx_binary = lws_frame_is_binary(wsi) != 0;
        t->rx_len = 0;
    }
    size_t max = chanc_app_max_frame(s->app);
    size_t remaining = lws_remaining_packet_payload(wsi);
    bool last = lws_is_final_fragment(wsi) && remaining == 0;
    /* Never hold more than max_frame of one message: refuse as soon as the
     * frame header announces too much, or the fragments add up past it. */
    if (len > max || t->rx_len > max - len || remaining > max - len - t->rx_len) {
        t->rx_discard = true;
        free(t->rx);
        t->rx = NULL;
        t->rx_len = t->rx_cap = 0;
        chanc_conn_close(t->conn, CHANC_CLOSE_TOO_BIG, "frame too large");
        return 0;
    }
    if (last && t->rx_len == 0) {
        t->in_msg = false;
        chanc_conn_receive(t->conn, in, len, t->rx_binary);
        return 0;
    }
    size_t need = t->rx_len + len + remaining;
    if (need > t->rx_cap) {
        size_t cap = t->rx_cap ? t->rx_cap : 1024;
        while (cap < need)
            cap *= 2;
        if (cap > max)
            cap = max;
        if (cap < need)
            cap = need;
        unsigned char *rx = realloc(t->rx, cap);
        if (!rx) {
            chanc_conn_close(t->conn, CHANC_CLOSE_INTERNAL, "out of memory");
            return 0;
        }
        t->rx = rx;
        t->rx_cap = cap;
    }
    memcpy(t->rx + t->rx_len, in, len);
    t->rx_len += len;
    if (last) {
        t->in_msg = false;
        size_t n = t->rx_len;
        t->rx_len = 0;
        chanc_conn_receive(t->conn, t->rx, n, t->rx_binary);
        /* A big message does not pin its buffer for the connection's life. */
        if (t->conn && t->rx_cap > RX_BUFFER_SIZE) {
            free(t->rx);
            t->rx = NULL;
            t->rx_cap = 0;
        }
    }
    return 0;
}

/* A close code a peer may send (RFC 6455 §7.4: 1000-1003, 1007-1011, the
 * IANA-registered 1012-1014, 3000-4999). libwebsockets 4.1.6 has already
 * turned 0-999, 1004-1006 and 1012-2999 into 1002 in place (and echoes
 * that), but lets 5000 and above through. */
static bool close_code_ok(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* The client's close frame. A valid one: lws echoes it and closes. An
 * invalid one (a 1-byte payload, a code no peer may send, a reason that
 * is not UTF-8; lws 4.1.6 echoes all three as they came): answered here
 * with 1002 or 1007, then lws hangs up at once (-1: no echo, no wait). */
static int ws_peer_close(tconn_t *t, void *in, size_t len) {
    const unsigned char *b = in;
    int code = len >= 2 ? (b[0] << 8) | b[1] : 1005;
    int answer = 0;
    const char *why = "";
    if (len == 1) {
        answer = LWS_CLOSE_STATUS_PROTOCOL_ERR;
        why = "close payload of 1 byte";
    } else if (len >= 2 && !close_code_ok(code)) {
        answer = LWS_CLOSE_STATUS_PROTOCOL_ERR;
        why = "invalid close code";
    } else if (len > 2 && chanc_utf8_length(b + 2, len - 2) < 0) {
        answer = LWS_CLOSE_STATUS_INVALID_PAYLOAD;
        why = "invalid UTF-8 in the close reason";
    }
    t->peer_closed = true;
    if (!t->close_code)
        t->close_code = answer ? answer : code;
    if (!answer)
        return 0; /* lws echoes the close frame */
    if (!t->wsi || t->close_started || t->write_failed)
        return -1;
    /* Our own close frame, written as it is (lws 4.1.6 has no public way
     * to send one and close without waiting for an answer). */
    unsigned char frame[LWS_PRE + 4 + 64];
    unsigned char *f = frame + LWS_PRE;
    size_t n = strlen(why);
    f[0] = 0x88;
    f[1] = (unsigned char)(2 + n);
    f[2] = (unsigned char)(answer >> 8);
    f[3] = (unsigned char)answer;
    memcpy(f + 4, why, n);
    t->close_started = true;
    if (lws_write(t->wsi, f, 4 + n, LWS_WRITE_RAW) < 0)
        t->write_failed = true;
    return -1;
}

/* lws is closing a WebSocket on its own: a frame broke the protocol (a
 * reserved opcode or RSV bit, a fragmented or oversized control frame, a
 * continuation without a start, a new message inside a fragmented one).
 * Called from its first step (LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL), while
 * the socket still takes writes. libwebsockets 4.1.6, left alone:
 * - sends no close frame at all for an oversized control frame (it sets
 *   no close reason), and
 * - for the others sends its 1002 only when the frame came straight off
 *   the socket: when it came from lws's own input buffer (the bytes that
 *   arrived with the handshake, or any held back by lws_rx_flow_control),
 *   that buffer is not consumed, the same bytes are parsed again before
 *   the close frame goes out, and the second failure drops the TCP
 *   connection.
 * So: give it a close reason (1002 either way), and hold its input until
 * our next WRITEABLE, which lws only delivers once the close frame is out
 * (it sends that first). Then the connection is failed (§7.1.7): its
 * parser may be mid-way through the bad frame (after RSV bits or a bad
 * length it reads what follows as a frame header, the client's answering
 * close included, and would wait 5 s for an answer it no longer
 * recognises), so we send our FIN at once and let lws read on until the
 * client's (or until the held bytes fail again): the TCP connection ends
 * as soon as the client has read the close frame and closed its side. */
static void ws_lws_closing(tconn_t *t) {
    if (!t->wsi || !t->conn || !t->established || t->close_wanted || t->close_started ||
        t->peer_closed || t->write_failed || t->lws_closing || t->s->shutting_down)
        return;
    /* A client that hung up (EOF, reset) is closed as it is. */
    char c;
    ssize_t n = recv(lws_get_socket_fd(t->wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        return;
    static const char why[] = "protocol error";
    lws_close_reason(t->wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)why, sizeof why - 1);
    if (!t->close_code)
        t->close_code = LWS_CLOSE_STATUS_PROTOCOL_ERR;
    t->lws_closing = true;
    lws_rx_flow_control(t->wsi, 0);
    lws_callback_on_writable(t->wsi);
    /* The app hears of it now, not once the client has answered: its
     * frames could not go out anyway, and a hook still running (an
     * authentication on a thread) would take the refusal for a failure. */
    report_closed(t, t->close_code);
}

static int ws_writeable(tconn_t *t) {
    chanc_server_t *s = t->s;
    struct lws *wsi = t->wsi;
    if (t->write_failed)
        return -1;
    if (t->lws_closing) {
        /* lws has sent its close frame (see ws_lws_closing). */
        shutdown(lws_get_socket_fd(wsi), SHUT_WR);
        lws_rx_flow_control(wsi, 1);
        return 0;
    }
    if (t->ping_wanted && !t->close_wanted) {
        t->ping_wanted = false;
        /* A payload: lws 4.1.6 does not report an empty pong. */
        unsigned char ping[LWS_PRE + 1] = {[LWS_PRE] = 'k'};
        if (lws_write(wsi, ping + LWS_PRE, 1, LWS_WRITE_PING) < 0) {
            t->write_failed = true;
            return -1;
        }
        if (t->q_n)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (t->q_n) {
        chanc_buf_t *b = t->q[t->q_head];
        t->q_head = (t->q_head + 1) % t->q_cap;
        t->q_n--;
        t->q_bytes -= b->len;
        s->stats.queued_bytes -= b->len;
        int n = lws_write(wsi, b->data, b->len,
                          (b->flags & CHANC_BUF_BINARY) ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        chanc_buf_unref(b);
        if (n < 0) {
            t->write_failed = true;
            return -1;
        }
        if (t->q_n || t->close_wanted)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (t->close_wanted && !t->close_started)
        /* Queue drained: close from the timer callback. lws 4.1 treats a
         * -1 from WRITEABLE as a failed write and drops the socket without
         * a close frame; from LWS_CALLBACK_TIMER it sends lws_close_reason's
         * frame and waits for the client's answer. */
        lws_set_timer_usecs(wsi, 1);
    return 0;
}

static int ws_close_timer(tconn_t *t) {
    struct lws *wsi = t->wsi;
    if (t->write_failed)
        return -1;
    /* Once lws is sending our close frame, a second -1 would drop the
     * connection before the client's answer. */
    if (!t->close_wanted || t->close_started)
        return 0;
    if (t->q_n || lws_partial_buffered(wsi)) {
        /* Not flushed yet: lws would drop the close frame. */
        lws_callback_on_writable(wsi);
        return 0;
    }
    lws_close_reason(wsi, (enum lws_close_status)t->close_code, (unsigned char *)t->close_reason,
                     strlen(t->close_reason));
    t->close_started = true;
    return -1;
}

/* --- the HTTP side ------------------------------------------------------------------ */

static bool header_name_ok(const char *n) {
    if (!*n)
        return false;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && !strchr("!#$%&'*+-.^_`|~", *n))
            return false;
    return true;
}

static bool header_value_ok(const char *v) {
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 && *v != '\t')
            return false;
    return true;
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end) {
    char lname[128];
    size_t n = strlen(name);
    if (n + 2 > sizeof lname)
        return -1;
    for (size_t i = 0; i < n; i++)
        lname[i] = (char)tolower((unsigned char)name[i]);
    lname[n] = ':';
    lname[n + 1] = '\0';
    return lws_add_http_header_by_name(wsi, (const unsigned char *)lname,
                                       (const unsigned char *)value, (int)strlen(value), p, end)
               ? -1
               : 0;
}

/* Status line and headers, written at once. 0 or -1. */
static int write_head(struct lws *wsi, int status, const char *ctype, size_t body_len,
                      const chanc_header_t *extra, size_t nextra, bool close) {
    unsigned char buf[LWS_PRE + 4096];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    /* X-Content-Type-Options and Referrer-Policy come from the vhost's
     * canned headers (lws adds them to every status line it writes, its
     * own error answers included). */
    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, (lws_filepos_t)body_len, &p, end))
        return -1;
    for (size_t i = 0; i < nextra; i++) {
        if (!extra[i].name || !extra[i].value || !header_name_ok(extra[i].name) ||
            !header_value_ok(extra[i].value) || strcasecmp(extra[i].name, "content-length") == 0 ||
            strcasecmp(extra[i].name, "content-type") == 0) {
            chanc_log(CHANC_LOG_ERROR, "HTTP response header %.100s dropped: not allowed",
                      extra[i].name ? extra[i].name : "(null)");
            continue;
        }
        if (add_header(wsi, extra[i].name, extra[i].value, &p, end) < 0) {
            chanc_log(CHANC_LOG_ERROR, "HTTP response headers too large");
            return -1;
        }
    }
    if (close && add_header(wsi, "Connection", "close", &p, end) < 0)
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* A short text/plain answer written in one go (errors, refused upgrades).
 * 0 or -1. */
static int write_simple_response(struct lws *wsi, int status, const char *text) {
    char body[160];
    int n = snprintf(body, sizeof body, "%d %s\n", status, text);
    if (write_head(wsi, status, "text/plain; charset=utf-8", (size_t)n, NULL, 0, false) < 0)
        return -1;
    unsigned char out[LWS_PRE + sizeof body];
    memcpy(out + LWS_PRE, body, (size_t)n);
    return lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
}

/* The transaction is answered: keep the connection for the next request or
 * close it. Returns what the lws callback should return. */
static int http_finish(tconn_t *t) {
    bool close = t->http && t->http->close_after;
    http_txn_free(t->http);
    t->http = NULL;
    if (close)
        return -1;
    return lws_http_transaction_completed(t->wsi) ? -1 : 0;
}

static int http_error(tconn_t *t, int status, const char *text);

/* Send status, headers and (via HTTP_WRITEABLE) body for the current
 * transaction; out (malloc'd, may be NULL) is taken over. */
static int http_respond(tconn_t *t, int status, const char *ctype, char *out, size_t out_len,
                        const chanc_header_t *extra, size_t nextra) {
    http_txn_t *h = t->http;
    h->responded = true;
    h->out = out;
    h->out_len = out_len;
    h->out_off = 0;
    if (write_head(t->wsi, status, ctype ? ctype : "text/html; charset=utf-8", out_len, extra,
                   nextra, h->close_after) < 0) {
        if (nextra && status != 500) {
            /* The handler's headers did not fit: nothing was sent yet. */
            free(h->out);
            h->out = NULL;
            return http_error(t, 500, "Internal Server Error");
        }
        http_txn_free(h);
        t->http = NULL;
        return -1;
    }
    if (h->method == LWSHUMETH_HEAD || out_len == 0)
        return http_finish(t);
    lws_callback_on_writable(t->wsi);
    return 0;
}

static int http_error(tconn_t *t, int status, const char *text) {
    char *body = malloc(160);
    int n = body ? snprintf(body, 160, "%d %s\n", status, text) : 0;
    return http_respond(t, status, "text/plain; charset=utf-8", body, (size_t)n, NULL, 0);
}

/* Check the handler's answer and send it. */
static int http_answer(tconn_t *t, chanc_http_response_t *resp) {
    http_txn_t *h = t->http;
    int status = resp->status ? resp->status : 200;
    if (status < 100 || status > 599 || (resp->content_type && !header_value_ok(resp->content_type))) {
        chanc_log(CHANC_LOG_ERROR, "HTTP %s %.200s: handler answered status %d / a bad content type",
                  h->method_name, h->path, resp->status);
        free(resp->body);
        resp->body = NULL;
        return http_error(t, 500, "Internal Server Error");
    }
    if (resp->nheaders > CHANC_HTTP_MAX_HEADERS)
        resp->nheaders = CHANC_HTTP_MAX_HEADERS;
    /* write_head copies names, values and the content type into the
     * header block before we return to the handler's world. */
    char *body = resp->body;
    resp->body = NULL; /* taken by http_respond */
    return http_respond(t, status, resp->content_type, body, body ? resp->body_len : 0,
                        resp->headers, resp->nheaders);
}

static int http_dispatch(tconn_t *t) {
    chanc_server_t *s = t->s;
    http_txn_t *h = t->http;
    if (!s->http)
        return http_error(t, 404, "Not Found");
    char peer[64] = "";
    if (t->wsi)
        lws_get_peer_simple(t->wsi, peer, sizeof peer);
    chanc_http_request_t req = {
        .peer = peer,
        .method = h->method_name,
        .path = h->path,
        .query = h->query,
        .headers = h->headers,
        .nheaders = h->nheaders,
        .body = h->body,
        .body_len = h->body_len,
        .priv_ = t,
    };
    chanc_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    int rc = s->http(s->http_ud, &req, &resp);
    if (rc == CHANC_HTTP_DEFERRED && h->deferred) {
        free(resp.body);
        return 0; /* chanc_http_complete answers */
    }
    if (rc < 0 || rc == CHANC_HTTP_DEFERRED) {
        chanc_log(CHANC_LOG_ERROR, "HTTP %s %.200s: handler failed: %s", h->method_name, h->path,
                  rc < 0 ? chanc_strerror(rc) : "deferred without chanc_http_defer");
        free(resp.body);
        return http_error(t, 500, "Internal Server Error");
    }
    return http_answer(t, &resp);
}

chanc_http_deferred_t *chanc_http_defer(const chanc_http_request_t *req) {
    tconn_t *t = req ? req->priv_ : NULL;
    if (!t || !t->http || t->http->deferred || t->http->responded) {
        /* Said here: the handler's error (often "out of memory") would not. */
        chanc_log(CHANC_LOG_ERROR, "chanc_http_defer: %s", !t || !t->http ? "no request"
                                   : t->http->responded ? "the request is answered already"
                                                        : "the request is deferred already");
        return NULL;
    }
    chanc_http_deferred_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t = t;
    t->http->deferred = d;
    return d;
}

static char *dup_or_null(const char *v, bool *oom) {
    char *c = v ? strdup(v) : NULL;
    if (v && !c)
        *oom = true;
    return c;
}

void chanc_http_complete(chanc_http_deferred_t *d, chanc_http_response_t *resp) {
    if (!d)
        return;
    tconn_t *t = d->t;
    free(d);
    if (!t || !t->wsi || !t->http) { /* the client went away meanwhile */
        free(resp->body);
        resp->body = NULL;
        return;
    }
    http_txn_t *h = t->http;
    h->deferred = NULL;
    bool oom = false;
    chanc_http_response_t *l = &h->later;
    memset(l, 0, sizeof *l);
    l->status = resp->status;
    l->content_type = dup_or_null(resp->content_type, &oom);
    l->body = resp->body;
    l->body_len = resp->body_len;
    resp->body = NULL;
    size_t n = resp->nheaders > CHANC_HTTP_MAX_HEADERS ? CHANC_HTTP_MAX_HEADERS : resp->nheaders;
    for (size_t i = 0; i < n; i++) {
        l->headers[i].name = dup_or_null(resp->headers[i].name, &oom);
        l->headers[i].value = dup_or_null(resp->headers[i].value, &oom);
    }
    l->nheaders = n;
    if (oom) { /* answer 500 instead */
        later_dispose(l);
        l->status = 500;
    }
    h->has_later = true;
    lws_callback_on_writable(t->wsi);
}

static const struct {
    int method;
    const char *name;
} method_names[] = {
    {LWSHUMETH_GET, "GET"},         {LWSHUMETH_POST, "POST"},     {LWSHUMETH_OPTIONS, "OPTIONS"},
    {LWSHUMETH_PUT, "PUT"},         {LWSHUMETH_PATCH, "PATCH"},   {LWSHUMETH_DELETE, "DELETE"},
    {LWSHUMETH_CONNECT, "CONNECT"}, {LWSHUMETH_HEAD, "HEAD"},
};

/* LWS_CALLBACK_HTTP: a new request (not an upgrade). */
static int http_begin(chanc_server_t *s, struct lws *wsi) {
    tconn_t *t = tconn_get(s, wsi, true);
    if (!t)
        return -1;
    http_txn_free(t->http);
    http_txn_t *h = t->http = calloc(1, sizeof *h);
    if (!h)
        return -1;
    char *uri = NULL;
    int ulen = 0;
    h->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    snprintf(h->method_name, sizeof h->method_name, "UNKNOWN");
    for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
        if (method_names[i].method == h->method)
            snprintf(h->method_name, sizeof h->method_name, "%s", method_names[i].name);
    h->path = uri ? dup_n(uri, (size_t)ulen) : strdup("/");
    if (headers_too_large(s, wsi, "an HTTP request")) {
        h->close_after = true;
        return http_error(t, 431, "Request Header Fields Too Large");
    }
    h->query = query_dup(wsi);
    static const struct {
        const char *name;
        enum lws_token_indexes tok;
    } wanted[] = {
        {"cookie", WSI_TOKEN_HTTP_COOKIE},
        {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
        {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
        {"origin", WSI_TOKEN_ORIGIN},
        {"host", WSI_TOKEN_HOST},
        {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
        {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
        {"accept", WSI_TOKEN_HTTP_ACCEPT},
        {"referer", WSI_TOKEN_HTTP_REFERER},
        {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR},
    };
    _Static_assert(sizeof wanted / sizeof wanted[0] <= sizeof h->headers / sizeof h->headers[0],
                   "room for every collected header");
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        char *v = hdr_dup(wsi, wanted[i].tok);
        if (v)
            h->headers[h->nheaders++] = (chanc_header_t){wanted[i].name, v};
    }
    if (!h->path)
        return -1;

    bool has_body_method = h->method == LWSHUMETH_POST || h->method == LWSHUMETH_PUT ||
                           h->method == LWSHUMETH_PATCH;
    char cl[32];
    long long length = -1;
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char *end = NULL;
        length = strtoll(cl, &end, 10);
        if (end == cl || *end || length < 0) {
            h->close_after = true;
            return http_error(t, 400, "Bad Request");
        }
    }
    if (length < 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        /* lws 4.1 does not decode chunked request bodies. */
        h->close_after = true;
        return http_error(t, 411, "Length Required");
    }
    /* Each request reaches the handler exactly once: here when no body
     * follows, else at the body's end. libwebsockets 4.1.6 reads a body
     * whatever the method, and reports the end of an empty one too (a
     * POST with "Content-Length: 0", as browsers send an empty form):
     * HTTP_BODY_COMPLETION dispatches only a request still waiting for its
     * body, so neither dispatches one twice (a deferred handler's second
     * chanc_http_defer failed: 500). */
    if (length > 0) {
        if ((unsigned long long)length > s->max_body) {
            /* Answer now and close rather than read a body we refuse. */
            h->close_after = true;
            return http_error(t, 413, "Payload Too Large");
        }
        h->body = malloc((size_t)length + 1);
        if (!h->body)
            return -1;
        h->body_cap = (size_t)length;
        h->body[0] = '\0';
        h->reading_body = true;
        return 0; /* the body comes with HTTP_BODY, then HTTP_BODY_COMPLETION */
    }
    if (length < 0 && has_body_method) {
        /* No Content-Length: an empty body (RFC 9112), but libwebsockets
         * 4.1.6 takes whatever follows on the connection as this request's
         * body (up to 100 MiB). Answer, then close. */
        h->close_after = true;
    }
    if (has_body_method) {
        h->body = strdup("");
        if (!h->body)
            return -1;
    }
    return http_dispatch(t);
}

static int http_body(tconn_t *t, const void *in, size_t len) {
    http_txn_t *h = t->http;
    if (!h || h->responded || !h->reading_body)
        return 0; /* no body expected (see http_begin): nothing to keep */
    if (len > h->body_cap - h->body_len) {
        h->close_after = true;
        return http_error(t, 413, "Payload Too Large");
    }
    memcpy(h->body + h->body_len, in, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return 0;
}

static int http_writeable(tconn_t *t) {
    http_txn_t *h = t->http;
    if (h && h->has_later && !h->responded) {
        chanc_http_response_t *l = &h->later;
        if (l->status == 500 && !l->body) {
            h->has_later = false;
            return http_error(t, 500, "Internal Server Error");
        }
        int rc = http_answer(t, l);
        h = t->http; /* http_answer may have finished (and freed) it */
        if (h && h->has_later) {
            later_dispose(&h->later);
            h->has_later = false;
        }
        return rc;
    }
    if (!h || !h->responded || h->out_off >= h->out_len)
        return 0;
    unsigned char buf[LWS_PRE + HTTP_CHUNK];
    size_t n = h->out_len - h->out_off;
    if (n > HTTP_CHUNK)
        n = HTTP_CHUNK;
    memcpy(buf + LWS_PRE, h->out + h->out_off, n);
    h->out_off += n;
    bool last = h->out_off == h->out_len;
    if (lws_write(t->wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
        return -1;
    if (!last) {
        lws_callback_on_writable(t->wsi);
        return 0;
    }
    return http_finish(t);
}

/* --- the protocol callback ----------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    struct lws_context *cx = lws_get_context(wsi);
    chanc_server_t *s = cx ? lws_context_user(cx) : NULL;
    tconn_t *t;
    if (!s)
        return lws_callback_http_dummy(wsi, reason, user, in, len);

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return s->shutting_down ? -1 : 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (!in || strcmp((const char *)in, "websocket") != 0)
            return -1; /* h2c and friends: not offered */
        return ws_confirm_upgrade(s, wsi);

    case LWS_CALLBACK_ESTABLISHED:
        t = tconn_get(s, wsi, false);
        if (!t || !t->conn)
            return -1;
        t->established = true;
        s->stats.websockets++;
        if (s->shutting_down) {
            chanc_conn_close(t->conn, CHANC_CLOSE_GOING_AWAY, "server shutting down");
            return 0;
        }
        chanc_conn_start(t->conn);
        return 0;

    case LWS_CALLBACK_RECEIVE:
        t = tconn_get(s, wsi, false);
        return t ? ws_receive(t, in, len) : -1;

    case LWS_CALLBACK_RECEIVE_PONG:
        t = tconn_get(s, wsi, false);
        if (t && t->conn)
            chanc_conn_pong(t->conn);
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        t = tconn_get(s, wsi, false);
        return t ? ws_writeable(t) : 0;

    case LWS_CALLBACK_TIMER:
        t = tconn_get(s, wsi, false);
        return t ? ws_close_timer(t) : 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        t = tconn_get(s, wsi, false);
        return t ? ws_peer_close(t, in, len) : 0;

    case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
        t = tconn_get(s, wsi, false);
        if (t)
            ws_lws_closing(t);
        return 0;

    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLOSED_HTTP:
        t = tconn_get(s, wsi, false);
        if (t)
            report_closed(t, t->close_code ? t->close_code : 1006);
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        t = tconn_get(s, wsi, false);
        if (t) {
            lws_set_opaque_user_data(wsi, NULL);
            report_closed(t, t->close_code ? t->close_code : 1006);
            t->wsi = NULL;
            tconn_unlink(t);
            if (!t->late_close)
                tconn_release(t);
        }
        return 0;

    case LWS_CALLBACK_HTTP:
        return http_begin(s, wsi);

    case LWS_CALLBACK_HTTP_BODY:
        t = tconn_get(s, wsi, false);
        return t ? http_body(t, in, len) : -1;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        t = tconn_get(s, wsi, false);
        if (!t)
            return -1;
        /* Only a request waiting for its body: an empty one was dispatched
         * (and maybe answered and finished) by http_begin already. */
        if (!t->http || !t->http->reading_body)
            return 0;
        t->http->reading_body = false;
        if (t->http->responded)
            return 0;
        return http_dispatch(t);

    case LWS_CALLBACK_HTTP_WRITEABLE:
        t = tconn_get(s, wsi, false);
        return t ? http_writeable(t) : 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* --- logging -------------------------------------------------------------------------------- */

/* The server on this thread (one per loop: lws calls lws_emit from inside
 * its service calls, on the loop thread, with no context). */
static _Thread_local chanc_server_t *thread_server;

static void lws_emit(int level, const char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    /* A request lws 4.1.6 drops from inside its parser (its header space
     * overflowed, or too many header fragments): the client's fault, not
     * an error of ours; lws logs it at LLL_ERR / LLL_WARN, per request.
     * Counted and logged at info, rate-limited, instead. */
    if (thread_server && (strstr(line, "Ran out of header data space") ||
                          strstr(line, "More hdr frags than we can deal with"))) {
        thread_server->stats.headers_dropped++;
        char what[200];
        snprintf(what, sizeof what, "a request with more than %zu bytes of headers dropped "
                 "unanswered (libwebsockets 4.1.6 cannot answer it): lws: %.*s",
                 2 * thread_server->max_headers, (int)(n > 80 ? 80 : n), line);
        client_fault(thread_server, &thread_server->log_dropped, what);
        return;
    }
    chanc_log_level_t l = (level & LLL_ERR)      ? CHANC_LOG_ERROR
                          : (level & LLL_WARN)   ? CHANC_LOG_WARN
                          : (level & LLL_NOTICE) ? CHANC_LOG_NOTICE
                          : (level & LLL_INFO)   ? CHANC_LOG_INFO
                                                 : CHANC_LOG_DEBUG;
    chanc_log(l, "lws: %.*s", (int)n, line);
}

/* --- create / shutdown / destroy ---------------------------------------------------------- */

static void free_config(chanc_server_t *s) {
    for (size_t i = 0; i < s->norigins; i++)
        free(s->origins[i]);
    free(s->origins);
    free(s->host);
}

static void start_teardown(chanc_server_t *s, void (*done)(void *ud), void *ud);

/* getaddrinfo for a listening socket on host:port (flags: extra AI_*);
 * 0 with *res set, or a getaddrinfo error (EAI_NONAME when no address). */
static int resolve_listen(const char *host, int port, int flags, struct addrinfo **res) {
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, service, &hints, res);
    if (gai == 0 && !*res)
        gai = EAI_NONAME;
    return gai;
}

/* Can host:port be bound? Checked before lws is involved: tearing down a
 * context whose vhost failed to bind crashed libuv (a closed handle's
 * memory reused) when another server was running on the same loop. A
 * host that is not a numeric address is left to lws. 0 or CHANC_EIO. */
static int probe_listen(const char *host, int port, chanc_error_t *err) {
    if (port == 0)
        return 0;
    struct addrinfo *res = NULL;
    if (resolve_listen(host, port, AI_NUMERICHOST, &res) != 0)
        return 0;
    int rc = 0;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as lws does */
        if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
            rc = chanc_error_set(err, CHANC_EIO, "cannot listen on %s:%d: %s", host, port,
                                 strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* A non-blocking SO_REUSEPORT socket listening on host:port; -1 with err. */
static int listen_shared(const char *host, int port, chanc_error_t *err) {
    struct addrinfo *res = NULL;
    int gai = resolve_listen(host, port, 0, &res);
    if (gai != 0) {
        chanc_error_set(err, CHANC_EIO, "cannot listen on %s:%d: %s", host, port,
                        gai ? gai_strerror(gai) : "no address");
        return -1;
    }
    int one = 1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        chanc_error_set(err, CHANC_EIO, "cannot listen on %s:%d (SO_REUSEPORT): %s", host, port,
                        strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void on_accept(uv_poll_t *h, int status, int events) {
    chanc_server_t *s = h->data;
    (void)events;
    if (status < 0 || s->shutting_down)
        return;
    for (;;) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0 && (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
                        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)) {
            close(fd);
            continue;
        }
        if (fd < 0) {
            /* EAGAIN: another process took it, or nothing left */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                chanc_log(CHANC_LOG_WARN, "accept: %s", strerror(errno));
            if (errno != EINTR && errno != ECONNABORTED)
                return;
            continue;
        }
        /* lws closes fd itself if it cannot adopt it. */
        if (!lws_adopt_socket_vhost(s->vhost, fd))
            chanc_log(CHANC_LOG_WARN, "libwebsockets could not adopt a connection");
    }
}

static void on_listen_closed(uv_handle_t *h) {
    chanc_server_t *s = h->data;
    close(s->listen_fd);
    s->listen_fd = -1;
    s->listen_live = false;
}

/* Stop accepting (shutdown, destroy): the handle goes on the next loop turn. */
static void close_listener(chanc_server_t *s) {
    if (s->listen_live && !uv_is_closing((uv_handle_t *)&s->listen_poll))
        uv_close((uv_handle_t *)&s->listen_poll, on_listen_closed);
    else if (!s->listen_live && s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
}

static void free_failed(void *ud) {
    chanc_server_t *s = ud;
    free_config(s);
    free(s);
}

chanc_server_t *chanc_server_create(const chanc_server_config_t *cfg, chanc_error_t *err) {
    if (!cfg || !cfg->app || cfg->port < 0 || cfg->port > 65535) {
        chanc_error_set(err, CHANC_EINVAL, "chanc_server_create: an app and a port 0-65535 are required");
        return NULL;
    }
    chanc_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    s->app = cfg->app;
    s->listen_fd = -1;
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->max_queue = cfg->max_queue ? cfg->max_queue : DEFAULT_MAX_QUEUE;
    s->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    s->max_connections = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
    s->max_headers = cfg->max_headers ? cfg->max_headers : DEFAULT_MAX_HEADERS;
    if (s->max_headers > MAX_MAX_HEADERS)
        s->max_headers = MAX_MAX_HEADERS;
    s->http = cfg->http;
    s->http_ud = cfg->http_ud;
    bool oom = !s->host;
    for (const char *const *o = cfg->allowed_origins; o && *o && !oom; o++) {
        char **grown = realloc(s->origins, (s->norigins + 1) * sizeof *grown);
        if (!grown || !(grown[s->norigins] = strdup(*o)))
            oom = true;
        if (grown) {
            s->origins = grown;
            if (!oom)
                s->norigins++;
        }
    }
    if (oom) {
        free_config(s);
        free(s);
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    if (cfg->reuse_port && cfg->port == 0) {
        chanc_error_set(err, CHANC_EINVAL, "reuse_port needs a fixed port, not 0");
        free_config(s);
        free(s);
        return NULL;
    }
    if (cfg->reuse_port ? (s->listen_fd = listen_shared(s->host, cfg->port, err)) < 0
                        : probe_listen(s->host, cfg->port, err) < 0) {
        chanc_log(CHANC_LOG_ERROR, "%s", err ? err->text : "cannot listen");
        free_config(s);
        free(s);
        return NULL;
    }

    s->protocols[0] = (struct lws_protocols){
        .name = "chanc",
        .callback = callback,
        /* Not used; but lws 4.1.6 reports the first step of closing a
         * connection (WS_SERVER_DROP_PROTOCOL) only to one that has
         * per-session data (see ws_lws_closing). */
        .per_session_data_size = 1,
        .rx_buffer_size = RX_BUFFER_SIZE,
        /* With 0, lws caps each send() at rx_buffer_size, so every frame
         * over 4 KiB went out as a partial write and pushed the frames
         * after it off the direct-write path; this is a cap, not a
         * buffer. */
        .tx_packet_size = TX_PACKET_SIZE,
    };
    s->loop = chanc_app_loop(s->app);
    s->foreign_loops[0] = s->loop;

    s->canned[0] = (struct lws_protocol_vhost_options){
        .next = &s->canned[1], .name = "x-content-type-options:", .value = "nosniff"};
    s->canned[1] = (struct lws_protocol_vhost_options){
        .next = NULL, .name = "referrer-policy:", .value = "same-origin"};

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV;
    if (!strchr(s->host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = s->foreign_loops;
    info.pcontext = &s->ctx;
    info.iface = s->host;
    info.port = cfg->reuse_port ? CONTEXT_PORT_NO_LISTEN_SERVER : cfg->port;
    info.protocols = s->protocols;
    info.headers = &s->canned[0];
    info.user = s;
    info.server_string = "chanc";
    /* lws's header space: twice max_headers (see DEFAULT_MAX_HEADERS) */
    info.max_http_header_data2 = (unsigned int)(2 * s->max_headers);
    info.vhost_name = "default";
    info.gid = -1;
    info.uid = -1;
    /* The vhost (the listening socket) separately: lws 4.1.6 corrupts
     * memory when lws_create_context itself fails on a foreign loop (e.g.
     * the port is taken); a failed lws_create_vhost leaves a context we can
     * tear down properly. */
    info.options |= LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    s->ctx = lws_create_context(&info);
    struct lws_vhost *vh = s->ctx ? lws_create_vhost(s->ctx, &info) : NULL;
    s->vhost = vh;
    s->port = !vh ? -1 : cfg->reuse_port ? cfg->port : lws_get_vhost_listen_port(vh);
    if (vh && s->listen_fd >= 0) {
        uv_poll_init_socket(s->loop, &s->listen_poll, s->listen_fd);
        s->listen_poll.data = s;
        s->listen_live = true;
        uv_poll_start(&s->listen_poll, UV_READABLE, on_accept);
    }
    if (!s->ctx || s->port <= 0) {
        chanc_error_set(err, CHANC_EIO, "libwebsockets could not listen on %s:%d", s->host,
                        cfg->port);
        if (!s->ctx) {
            close_listener(s);
            free_config(s);
            free(s);
            return NULL;
        }
        /* The context has handles on the loop: the loop takes them down
         * (the same steps as a shutdown, without the app) and frees s. */
        s->failed = true;
        start_teardown(s, free_failed, s);
        return NULL;
    }
    chanc_log(CHANC_LOG_INFO, "listening on http://%s:%d/", s->host, s->port);
    thread_server = s;
    return s;
}

int chanc_server_port(const chanc_server_t *s) { return s->port; }

void chanc_server_stats(const chanc_server_t *s, chanc_server_stats_t *out) { *out = s->stats; }

static void on_timer_closed(uv_handle_t *h) {
    chanc_server_t *s = h->data;
    s->timer_live = false;
    if (s->done)
        s->done(s->done_ud);
}

static void count_closing(uv_handle_t *h, void *arg) {
    if (uv_is_closing(h))
        ++*(int *)arg;
}

static void on_shutdown_timer(uv_timer_t *timer) {
    chanc_server_t *s = timer->data;
    uint64_t now = uv_now(timer->loop);
    if (!s->ctx_destroy_called) {
        if ((s->open_conns || (!s->failed && !chanc_app_settled(s->app))) && now < s->deadline)
            return;
        if (s->open_conns)
            chanc_log(CHANC_LOG_WARN, "shutdown: %zu WebSocket(s) did not finish closing in time",
                      s->open_conns);
        /* While the loop runs (FACTS.md): lws closes what is left (each
         * reported to the app as 1006) and then its own handles. */
        s->ctx_destroy_called = true;
        s->deadline = now + SHUTDOWN_WAIT_MS;
        lws_context_destroy(s->ctx);
    }
    if (s->ctx) {
        /* lws 4.1 on a foreign loop finishes in steps: each further
         * lws_context_destroy call advances it once the handles it closed
         * are gone (FACTS.md: "call it again"), until it NULLs s->ctx. */
        int closing = 0;
        uv_walk(timer->loop, count_closing, &closing);
        if (!closing && s->destroy_calls < 4) {
            s->destroy_calls++;
            lws_context_destroy(s->ctx);
        }
    }
    if (s->ctx && now < s->deadline)
        return;
    if (s->ctx)
        chanc_log(CHANC_LOG_WARN, "shutdown: libwebsockets did not finish in time");
    uv_timer_stop(timer);
    uv_close((uv_handle_t *)timer, on_timer_closed);
}

void chanc_server_shutdown(chanc_server_t *s, void (*done)(void *ud), void *ud) {
    if (!s || s->shutting_down)
        return;
    for (tconn_t *t = s->conns; t; t = t->next)
        if (t->conn && t->established)
            chanc_conn_close(t->conn, CHANC_CLOSE_GOING_AWAY, "server shutting down");
    start_teardown(s, done, ud);
}

/* The shutdown steps run from a timer on the loop (on_shutdown_timer). */
static void start_teardown(chanc_server_t *s, void (*done)(void *ud), void *ud) {
    s->shutting_down = true;
    close_listener(s);
    s->done = done;
    s->done_ud = ud;
    uv_loop_t *loop = s->loop;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_live = true;
    s->deadline = uv_now(loop) + SHUTDOWN_WAIT_MS;
    uv_timer_start(&s->timer, on_shutdown_timer, 0, SHUTDOWN_POLL_MS);
}

void chanc_server_destroy(chanc_server_t *s) {
    if (!s)
        return;
    uv_loop_t *loop = s->loop;
    if (s->timer_live && !uv_is_closing((uv_handle_t *)&s->timer)) {
        /* Destroyed in the middle of a shutdown: finish it here. */
        uv_timer_stop(&s->timer);
        s->done = NULL;
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
    if (s->ctx) {
        /* Off the loop (it has stopped): FACTS.md's recipe, destroy, let
         * the loop run out, and once more if lws asked for it. */
        s->shutting_down = true;
        lws_context_destroy(s->ctx);
        for (int i = 0; i < 2 && s->ctx; i++) {
            uv_run(loop, UV_RUN_DEFAULT);
            if (s->ctx)
                lws_context_destroy(s->ctx);
        }
    }
    close_listener(s);
    if (s->timer_live || s->listen_live)
        uv_run(loop, UV_RUN_NOWAIT);
    while (s->conns) {
        tconn_t *t = s->conns;
        report_closed(t, 1006);
        t->wsi = NULL;
        tconn_unlink(t);
        if (!t->late_close)
            tconn_release(t);
    }
    if (thread_server == s)
        thread_server = NULL;
    free_config(s);
    free(s);
}

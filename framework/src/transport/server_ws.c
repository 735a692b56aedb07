/* The WebSocket side of the server: the per-connection records (tconn_t),
 * the transport ops the app writes through, reporting a closed WebSocket
 * to the app, the handshake and frame callbacks, and the lws protocol
 * callback, which hands the HTTP reasons to server_http.c. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "chanc/log.h"
#include "chanc/utf8.h"
#include "server_internal.h"

/* lws writes the WebSocket frame header in place, in the LWS_PRE bytes
 * before the payload: the shared buffers reserve that much. */
_Static_assert(LWS_PRE <= CHANC_BUF_HEADROOM, "CHANC_BUF_HEADROOM must cover LWS_PRE");

/* A closing WebSocket gets this long to take its queued frames and answer
 * our close frame before lws drops it. */
#define CLOSE_FLUSH_SECS 10

/* RFC 6455 §5.5: a close frame's payload is at most 125 bytes, the code's
 * two included. */
#define CLOSE_REASON_MAX 123

/* --- per-connection records ------------------------------------------------- */

tconn_t *chanc__tconn_get(chanc_server_t *s, struct lws *wsi, bool create) {
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

/* Drop the queue's ring (it holds nothing): a malloc'd one is freed, the
 * next frame starts in the one-slot ring inside the tconn again. */
static void queue_release(tconn_t *t) {
    if (t->q != &t->q_one)
        free(t->q);
    t->q = NULL;
    t->q_head = t->q_cap = 0;
}

static void queue_clear(tconn_t *t) {
    for (size_t i = 0; i < t->q_n; i++)
        chanc_buf_unref(t->q[(t->q_head + i) % t->q_cap]);
    queue_release(t);
    t->q_n = 0;
    t->s->stats.queued_bytes -= t->q_bytes;
    t->q_bytes = 0;
}

/* t leaves the turn's flush list (its entry is skipped). */
static void dirty_remove(tconn_t *t) {
    chanc_server_t *s = t->s;
    if (!t->dirty)
        return;
    t->dirty = false;
    for (size_t i = 0; i < s->ndirty; i++)
        if (s->dirty[i] == t) {
            s->dirty[i] = NULL;
            break;
        }
}

void chanc__tconn_unlink(tconn_t *t) {
    chanc_server_t *s = t->s;
    dirty_remove(t);
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
void chanc__tconn_release(tconn_t *t) {
    queue_release(t);
    free(t->rx);
    free(t->close_reason);
    chanc__http_txn_free(t->http);
    free(t);
}

/* --- the WebSocket side: transport ops ------------------------------------------ */

static bool ws_open(const tconn_t *t) {
    return t->wsi && t->conn && t->established && !t->write_failed && !t->close_wanted &&
           !t->peer_closed && !t->lws_closing;
}

static int ws_write_now(tconn_t *t, unsigned char *data, size_t len, enum lws_write_protocol wp) {
    t->s->in_write++;
    t->s->stats.frame_writes++;
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

static chanc_buf_t *queue_at(const tconn_t *t, size_t i) {
    return t->q[(t->q_head + i) % t->q_cap];
}

static void queue_pop(tconn_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        chanc_buf_t *b = t->q[t->q_head];
        t->q_head = (t->q_head + 1) % t->q_cap;
        t->q_n--;
        t->q_bytes -= b->len;
        t->s->stats.queued_bytes -= b->len;
        chanc_buf_unref(b);
    }
}

/* Write what is queued for t, a lws_write at a time while the socket takes
 * it all: one frame as it is, or several (up to TX_COALESCE_MAX bytes)
 * framed and joined in s->scratch and written raw, which lws 4.1.6 sends
 * as they are (one send(); an unsent tail it keeps, sends before the next
 * WRITEABLE, and reports with lws_partial_buffered). What is left then
 * waits for WRITEABLE. -1: the write failed. */
static int tx_drain(tconn_t *t) {
    chanc_server_t *s = t->s;
    struct lws *wsi = t->wsi;
    bool choked = lws_partial_buffered(wsi);
    while (t->q_n && !choked) {
        size_t n = 0, bytes = 0;
        for (; n < t->q_n; n++) {
            const chanc_buf_t *b = queue_at(t, n);
            size_t w = b->len + ((b->flags & TX_FRAMED) ? 0 : 10);
            if (n && bytes + w > TX_COALESCE_MAX)
                break;
            bytes += w;
        }
        if (n > 1 && s->scratch_cap < LWS_PRE + bytes) {
            size_t cap = LWS_PRE + (bytes > TX_COALESCE_MAX ? bytes : TX_COALESCE_MAX);
            unsigned char *p = realloc(s->scratch, cap);
            if (p) {
                s->scratch = p;
                s->scratch_cap = cap;
            } else {
                n = 1; /* out of memory: one frame at a time */
            }
        }
        int rc;
        chanc_buf_t *b = queue_at(t, 0);
        if (n == 1) {
            rc = ws_write_now(t, b->data, b->len,
                              (b->flags & TX_FRAMED)           ? LWS_WRITE_RAW
                              : (b->flags & CHANC_BUF_BINARY) ? LWS_WRITE_BINARY
                                                              : LWS_WRITE_TEXT);
        } else {
            unsigned char *start = s->scratch + LWS_PRE, *p = start;
            for (size_t i = 0; i < n; i++) {
                b = queue_at(t, i);
                if (!(b->flags & TX_FRAMED))
                    p += ws_header(p, b->len, b->flags & CHANC_BUF_BINARY);
                memcpy(p, b->data, b->len);
                p += b->len;
            }
            rc = ws_write_now(t, start, (size_t)(p - start), LWS_WRITE_RAW);
        }
        queue_pop(t, n);
        if (rc < 0)
            return -1;
        choked = lws_partial_buffered(wsi);
    }
    t->backlogged = t->q_n || choked;
    if (t->backlogged) {
        lws_callback_on_writable(wsi);
    } else {
        /* Drained: an idle connection keeps no ring (idle memory). */
        queue_release(t);
    }
    return 0;
}

/* The end of a loop turn (a prepare handle: after the turn's callbacks and
 * deferred work, before the loop waits): each connection that got frames
 * in the turn has them written together. */
static void on_flush(uv_prepare_t *h) {
    chanc_server_t *s = h->data;
    for (size_t i = 0; i < s->ndirty; i++) {
        tconn_t *t = s->dirty[i];
        if (!t)
            continue;
        s->dirty[i] = NULL;
        t->dirty = false;
        if (t->wsi && !t->write_failed && !t->lws_closing && !t->close_started)
            tx_drain(t);
    }
    s->ndirty = 0;
    uv_prepare_stop(h);
}

void chanc__flush_dispose(chanc_server_t *s) {
    if (s->flush_live) {
        uv_prepare_stop(&s->flush);
        uv_close((uv_handle_t *)&s->flush, NULL);
        s->flush_live = false;
    }
    free(s->dirty);
    s->dirty = NULL;
    s->ndirty = s->capdirty = 0;
    free(s->scratch);
    s->scratch = NULL;
    s->scratch_cap = 0;
}

/* t has frames for the end of this turn. Without memory for the list, it
 * waits for WRITEABLE instead (one frame a callback, as before). */
static void mark_dirty(tconn_t *t) {
    chanc_server_t *s = t->s;
    if (t->dirty)
        return;
    if (s->ndirty == s->capdirty) {
        size_t cap = s->capdirty ? s->capdirty * 2 : 64;
        tconn_t **d = realloc(s->dirty, cap * sizeof *d);
        if (!d) {
            lws_callback_on_writable(t->wsi);
            return;
        }
        s->dirty = d;
        s->capdirty = cap;
    }
    if (!s->flush_live) {
        uv_prepare_init(s->loop, &s->flush);
        s->flush.data = s;
        s->flush_live = true;
    }
    if (s->ndirty == 0)
        uv_prepare_start(&s->flush, on_flush);
    s->dirty[s->ndirty++] = t;
    t->dirty = true;
}

/* Queue one buffer (a frame, or TX_FRAMED bytes) behind the others. The
 * queue limit applies to a connection whose socket pushed back; one that
 * keeps up has its turn's frames written at the turn's end, or as soon as
 * they make TX_COALESCE_MAX bytes. */
static int queue_frame(tconn_t *t, chanc_buf_t *frame) {
    chanc_server_t *s = t->s;
    if (t->backlogged && t->q_bytes + frame->len > s->max_queue) {
        s->stats.slow_clients++;
        return CHANC_EBUSY;
    }
    if (t->q_cap == 0) {
        /* The common turn: one buffer (a group message's pair), no malloc. */
        t->q = &t->q_one;
        t->q_cap = 1;
        t->q_head = 0;
    } else if (t->q_n == t->q_cap) {
        size_t cap = t->q_cap == 1 ? 8 : t->q_cap * 2;
        chanc_buf_t **q = malloc(cap * sizeof *q);
        if (!q)
            return CHANC_ENOMEM;
        for (size_t i = 0; i < t->q_n; i++)
            q[i] = queue_at(t, i);
        if (t->q != &t->q_one)
            free(t->q);
        t->q = q;
        t->q_cap = cap;
        t->q_head = 0;
    }
    t->q[(t->q_head + t->q_n) % t->q_cap] = chanc_buf_ref(frame);
    t->q_n++;
    t->q_bytes += frame->len;
    s->stats.queued_bytes += frame->len;
    if (t->backlogged) {
        if (t->q_bytes > s->stats.queued_bytes_peak)
            s->stats.queued_bytes_peak = t->q_bytes;
    } else if (t->q_bytes >= TX_COALESCE_MAX) {
        /* A write's worth already: out now, the turn's frames held back
         * stay small. */
        tx_drain(t);
    } else {
        mark_dirty(t);
    }
    return 0;
}

static int lws_op_write(void *tctx, chanc_buf_t *frame) {
    tconn_t *t = tctx;
    if (!ws_open(t))
        return CHANC_ECLOSED;
    return queue_frame(t, frame);
}

/* frame then `then`, framed, in one buffer: built once per frame (a group
 * message's variant) and shared by every recipient, like the frame. */
static chanc_buf_t *wire_pair(chanc_buf_t *frame, const chanc_buf_t *then) {
    chanc_buf_t *cached = chanc_buf_wire(frame);
    if (cached)
        return cached;
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
    w->flags |= TX_FRAMED;
    return chanc_buf_set_wire(frame, w);
}

/* A group message and its group_complete: queued as one buffer, framed
 * once per variant and shared by every recipient (one send() for both when
 * it is the connection's only write of the turn); as two frames when that
 * buffer cannot be made. */
static int lws_op_write_pair(void *tctx, chanc_buf_t *frame, chanc_buf_t *then) {
    tconn_t *t = tctx;
    if (!ws_open(t))
        return CHANC_ECLOSED;
    chanc_buf_t *w = wire_pair(frame, then);
    if (w)
        return queue_frame(t, w);
    int rc = queue_frame(t, frame);
    return rc < 0 ? rc : queue_frame(t, then);
}

static void lws_op_close(void *tctx, int code, const char *reason) {
    tconn_t *t = tctx;
    if (t->close_wanted || t->lws_closing)
        return;
    t->close_wanted = true;
    if (!t->close_code)
        t->close_code = code;
    /* A close reason is at most 123 bytes; do not cut a UTF-8 sequence.
     * Out of memory: the close frame goes without one. */
    size_t n = strlen(reason);
    if (n > CLOSE_REASON_MAX) {
        n = CLOSE_REASON_MAX;
        while (n && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    t->close_reason = malloc(n + 1);
    if (t->close_reason) {
        memcpy(t->close_reason, reason, n);
        t->close_reason[n] = '\0';
    }
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
    chanc_transport_closed(lc->conn, lc->code);
    if (lc->t->wsi)
        lc->t->late_close = false; /* lws still has it: WSI_DESTROY frees it */
    else
        chanc__tconn_release(lc->t); /* already unlinked by WSI_DESTROY */
    free(lc);
}

/* The WebSocket is gone: tell the app (once). */
void chanc__report_closed(tconn_t *t, int code) {
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
            if (chanc_app_call_soon(s->app, run_late_close, lc) == 0) {
                t->late_close = true;
                return;
            }
            free(lc);
        }
    }
    chanc_transport_closed(conn, code);
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

/* A refused handshake's answer, with Connection: close (lws closes after
 * it). 1, or -1 when it could not be written. */
static int ws_refuse(struct lws *wsi, int status, const char *text, const chanc_header_t *extra,
                     size_t nextra) {
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, text);
    unsigned char out[LWS_PRE + sizeof body];
    memcpy(out + LWS_PRE, body, (size_t)n);
    if (chanc__write_head(wsi, status, "text/plain; charset=utf-8", (size_t)n, extra, nextra,
                          true) < 0 ||
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
        return chanc__write_simple_response(wsi, 503, "Service Unavailable") ? -1 : 1;
    if (chanc__headers_too_large(s, wsi, "a WebSocket handshake"))
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
        values[i] = chanc__hdr_dup(wsi, wanted[i].tok);
        if (values[i]) {
            headers[nh++] = (chanc_header_t){wanted[i].name, values[i]};
            if (wanted[i].tok == WSI_TOKEN_ORIGIN)
                origin = values[i];
            else if (wanted[i].tok == WSI_TOKEN_HOST)
                host = values[i];
        }
    }
    char *query = chanc__query_dup(wsi);
    size_t plen = (size_t)ulen + (query ? strlen(query) + 1 : 0);
    char *path = malloc(plen + 1);
    int rc = 0;
    if (!path) {
        rc = chanc__write_simple_response(wsi, 500, "Internal Server Error") ? -1 : 1;
        goto out;
    }
    if (query)
        snprintf(path, plen + 1, "%.*s?%s", ulen, uri, query);
    else
        snprintf(path, plen + 1, "%.*s", ulen, uri);

    if (!origin_allowed(s, origin, host)) {
        chanc_log(CHANC_LOG_NOTICE, "WebSocket %.200s refused: foreign Origin %.200s (Host %.200s)",
                  path, origin, host ? host : "none");
        rc = chanc__write_simple_response(wsi, 403, "Forbidden") ? -1 : 1;
        goto out;
    }
    if (s->open_conns >= s->max_connections) {
        s->stats.refused_full++;
        chanc_log(CHANC_LOG_WARN, "WebSocket %.200s refused: %zu connections open (the limit)",
                  path, s->open_conns);
        rc = chanc__write_simple_response(wsi, 503, "Service Unavailable") ? -1 : 1;
        goto out;
    }
    tconn_t *t = chanc__tconn_get(s, wsi, true);
    if (!t || t->conn) {
        rc = chanc__write_simple_response(wsi, 500, "Internal Server Error") ? -1 : 1;
        goto out;
    }
    chanc_request_t req = {path, headers, nh};
    int orc = chanc_conn_open(s->app, &req, &lws_ops, t, &t->conn);
    if (orc == CHANC_ENOROUTE) {
        rc = chanc__write_simple_response(wsi, 404, "Not Found") ? -1 : 1;
    } else if (orc < 0) {
        chanc_log(CHANC_LOG_ERROR, "WebSocket %.200s: %s", path, chanc_strerror(orc));
        rc = chanc__write_simple_response(wsi, 500, "Internal Server Error") ? -1 : 1;
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
        chanc_transport_received(t->conn, in, len, t->rx_binary);
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
        chanc_transport_received(t->conn, t->rx, n, t->rx_binary);
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
    chanc__report_closed(t, t->close_code);
}

static int ws_writeable(tconn_t *t) {
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
        /* Everything queued, coalesced (tx_drain asks for the next
         * WRITEABLE when some is left). */
        if (tx_drain(t) < 0)
            return -1;
        if (t->close_wanted)
            lws_callback_on_writable(wsi);
        return 0;
    }
    t->backlogged = false;
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
                     t->close_reason ? strlen(t->close_reason) : 0);
    t->close_started = true;
    return -1;
}

/* --- the protocol callback ----------------------------------------------------------- */

/* The handshake is done: the app authenticates (or, while shutting down,
 * the connection is closed at once). */
static int ws_established(chanc_server_t *s, tconn_t *t) {
    t->established = true;
    s->stats.websockets++;
    if (s->shutting_down) {
        chanc_conn_close(t->conn, CHANC_CLOSE_GOING_AWAY, "server shutting down");
        return 0;
    }
    chanc_transport_opened(t->conn);
    return 0;
}

/* lws frees wsi after this: the last word on the connection. */
static void wsi_destroyed(tconn_t *t, struct lws *wsi) {
    lws_set_opaque_user_data(wsi, NULL);
    chanc__report_closed(t, t->close_code ? t->close_code : 1006);
    t->wsi = NULL;
    chanc__tconn_unlink(t);
    if (!t->late_close)
        chanc__tconn_release(t);
}

static int http_body_complete(tconn_t *t) {
    /* Only a request waiting for its body: an empty one was dispatched
     * (and maybe answered and finished) by chanc__http_begin already. */
    if (!t->http || !t->http->reading_body)
        return 0;
    t->http->reading_body = false;
    if (t->http->responded)
        return 0;
    return chanc__http_dispatch(t);
}

int chanc__server_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len) {
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
        t = chanc__tconn_get(s, wsi, false);
        return t && t->conn ? ws_established(s, t) : -1;

    case LWS_CALLBACK_RECEIVE:
        t = chanc__tconn_get(s, wsi, false);
        return t ? ws_receive(t, in, len) : -1;

    case LWS_CALLBACK_RECEIVE_PONG:
        t = chanc__tconn_get(s, wsi, false);
        if (t && t->conn)
            chanc_conn_pong(t->conn);
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        t = chanc__tconn_get(s, wsi, false);
        return t ? ws_writeable(t) : 0;

    case LWS_CALLBACK_TIMER:
        t = chanc__tconn_get(s, wsi, false);
        return t ? ws_close_timer(t) : 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        t = chanc__tconn_get(s, wsi, false);
        return t ? ws_peer_close(t, in, len) : 0;

    case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
        t = chanc__tconn_get(s, wsi, false);
        if (t)
            ws_lws_closing(t);
        return 0;

    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLOSED_HTTP:
        t = chanc__tconn_get(s, wsi, false);
        if (t)
            chanc__report_closed(t, t->close_code ? t->close_code : 1006);
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        t = chanc__tconn_get(s, wsi, false);
        if (t)
            wsi_destroyed(t, wsi);
        return 0;

    case LWS_CALLBACK_HTTP:
        return chanc__http_begin(s, wsi);

    case LWS_CALLBACK_HTTP_BODY:
        t = chanc__tconn_get(s, wsi, false);
        return t ? chanc__http_body(t, in, len) : -1;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        t = chanc__tconn_get(s, wsi, false);
        return t ? http_body_complete(t) : -1;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        t = chanc__tconn_get(s, wsi, false);
        return t ? chanc__http_writeable(t) : 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* The in-process transport: one simulated client per communicator. Frames
 * from the client go through the app's deferred queue (like bytes off a
 * socket); frames to the client land in an inbox the receive calls read
 * once the app has settled. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testing_internal.h"
#include <chanc/ws_client.h>

typedef enum { ST_NEW, ST_OPEN, ST_CLOSED, ST_REFUSED } state_t;

struct chanc_communicator {
    chanc_communicator_t *next;
    chanc_test_t *t;
    char *path;
    header_list_t headers;
    chanc_conn_t *conn; /* NULL until connect and after the app let go */
    state_t state;
    int close_code;
    char close_reason[124];
    chanc_buf_t **inbox; /* references, consumed from inbox_head */
    size_t inbox_head, inbox_len, inbox_cap;
    json_t *transcript;
    /* Remote (a live server over a socket; see chanc_test_create_remote). */
    chanc_ws_client_t *ws;
    size_t awaiting_completes; /* frames sent whose "complete" has not come */
    /* Fault injection: fail the next write; stop reading (frames from
     * inbox_readable on wait in the "server's queue", queued_bytes of them). */
    bool fail_next_delivery;
    bool ignore_pings;
    bool stopped;
    size_t inbox_readable, queued_bytes;
};

chanc_communicator_t *chanc__communicator_next(const chanc_communicator_t *c) { return c->next; }
chanc_communicator_t **chanc__communicator_link(chanc_communicator_t *c) { return &c->next; }
chanc_test_t *chanc__communicator_test(const chanc_communicator_t *c) { return c->t; }
const char *chanc_communicator_path(const chanc_communicator_t *c) { return c->path; }
const json_t *chanc_communicator_transcript(const chanc_communicator_t *c) { return c->transcript; }
bool chanc_communicator_closed(chanc_communicator_t *c) {
    return c->state == ST_CLOSED || c->state == ST_REFUSED;
}
int chanc_communicator_close_code(const chanc_communicator_t *c) { return c->close_code; }
const char *chanc_communicator_close_reason(const chanc_communicator_t *c) {
    return c->close_reason;
}

chanc_communicator_t *chanc__communicator_new(chanc_test_t *t, char *path) {
    chanc_communicator_t *c = calloc(1, sizeof *c);
    if (!c) {
        free(path);
        return NULL;
    }
    c->t = t;
    c->path = path;
    c->transcript = json_array();
    return c;
}

static void remote_disconnect(chanc_communicator_t *c, int code);

void chanc__communicator_free(chanc_communicator_t *c) {
    if (c->ws) {
        if (c->state == ST_OPEN)
            remote_disconnect(c, CHANC_CLOSE_NORMAL);
        chanc_ws_client_free(c->ws);
    }
    for (size_t i = c->inbox_head; i < c->inbox_len; i++)
        chanc_buf_unref(c->inbox[i]);
    free(c->inbox);
    chanc__headers_dispose(&c->headers);
    json_decref(c->transcript);
    free(c->path);
    free(c);
}

int chanc_communicator_set_header(chanc_communicator_t *c, const char *name, const char *value) {
    return chanc__headers_set(&c->headers, name, value);
}

static void record(chanc_communicator_t *c, const char *dir, const char *text, size_t len,
                   int code) {
    struct chanc_test_private *p = c->t->priv;
    json_t *e = json_object();
    json_object_set_new(e, "t", json_integer((json_int_t)(p->remote_port ? chanc__real_ms() - p->start_real
                                                                         : p->mono_ms - p->start_mono)));
    json_object_set_new(e, "dir", json_string(dir));
    if (text)
        json_object_set_new(e, "frame", json_stringn(text, len));
    if (!json_object_get(e, "frame") && text) /* not UTF-8: keep a note of it */
        json_object_set_new(e, "frame", json_sprintf("<%zu bytes, not UTF-8>", len));
    if (code)
        json_object_set_new(e, "code", json_integer(code));
    json_array_append_new(c->transcript, e);
}

/* --- the transport ops (called by the app) -------------------------------- */

/* End of the frames the client has read: all of them unless it stopped. */
static size_t readable_end(const chanc_communicator_t *c) {
    return c->stopped ? c->inbox_readable : c->inbox_len;
}

static int inbox_push(chanc_communicator_t *c, chanc_buf_t *frame) {
    if (c->inbox_len == c->inbox_cap) {
        /* Compact consumed slots before growing. */
        if (c->inbox_head) {
            memmove(c->inbox, c->inbox + c->inbox_head,
                    (c->inbox_len - c->inbox_head) * sizeof *c->inbox);
            c->inbox_len -= c->inbox_head;
            if (c->stopped)
                c->inbox_readable -= c->inbox_head;
            c->inbox_head = 0;
        }
        if (c->inbox_len == c->inbox_cap) {
            size_t cap = c->inbox_cap ? c->inbox_cap * 2 : 16;
            chanc_buf_t **in = realloc(c->inbox, cap * sizeof *in);
            if (!in)
                return CHANC_ENOMEM;
            c->inbox = in;
            c->inbox_cap = cap;
        }
    }
    c->inbox[c->inbox_len++] = chanc_buf_ref(frame);
    record(c, "recv", (const char *)frame->data, frame->len, 0);
    return 0;
}

static int inproc_write(void *tctx, chanc_buf_t *frame) {
    chanc_communicator_t *c = tctx;
    if (c->fail_next_delivery) {
        c->fail_next_delivery = false;
        return CHANC_EIO;
    }
    if (c->stopped) {
        if (c->queued_bytes + frame->len > c->t->priv->max_queue)
            return CHANC_EBUSY;
        c->queued_bytes += frame->len;
    }
    return inbox_push(c, frame);
}

void chanc_communicator_fail_next_delivery(chanc_communicator_t *c) { c->fail_next_delivery = true; }

void chanc_communicator_stop_reading(chanc_communicator_t *c) {
    if (c->stopped)
        return;
    c->stopped = true;
    c->inbox_readable = c->inbox_len;
    c->queued_bytes = 0;
}

void chanc_communicator_resume_reading(chanc_communicator_t *c) {
    c->stopped = false;
    c->queued_bytes = 0;
}

static void finish_close(void *arg) {
    chanc_communicator_t *c = arg;
    if (c->conn) {
        chanc_conn_t *conn = c->conn;
        c->conn = NULL;
        chanc_conn_closed(conn, c->close_code);
    }
}

static void inproc_close(void *tctx, int code, const char *reason) {
    chanc_communicator_t *c = tctx;
    if (c->state != ST_OPEN)
        return;
    c->state = ST_CLOSED;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    record(c, "close", reason, strlen(reason), code);
    /* The closing handshake completes on a later turn, never inside the
     * app's own call. */
    chanc_app_defer(c->t->app, finish_close, c);
}

static void deliver_pong(void *arg) {
    chanc_communicator_t *c = arg;
    if (c->conn && c->state == ST_OPEN) {
        record(c, "pong", NULL, 0, 0);
        chanc_conn_pong(c->conn);
    }
}

/* A client answers a ping on a later turn, as over a socket. */
static void inproc_ping(void *tctx) {
    chanc_communicator_t *c = tctx;
    record(c, "ping", NULL, 0, 0);
    if (!c->ignore_pings)
        chanc_app_defer(c->t->app, deliver_pong, c);
}

void chanc_communicator_answer_pings(chanc_communicator_t *c, bool answer) {
    c->ignore_pings = !answer;
}

static const chanc_transport_ops_t inproc_ops = {
    .write = inproc_write, .close = inproc_close, .ping = inproc_ping};

/* --- client side -------------------------------------------------------------- */

/* --- remote: a live server over a socket ---------------------------------
 *
 * Settling over a socket cannot be known, only inferred: read until every
 * frame sent has had its "complete", then until no frame comes for the
 * quiet period (chanc_test_remote_options_t.quiet_ms, default 100 ms). */

uint64_t chanc__real_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool is_completion(const unsigned char *data, size_t len) {
    static const char a[] = "{\"action\":\"complete\"", b[] = "{\"action\":\"group_complete\"";
    return (len >= sizeof a - 1 && memcmp(data, a, sizeof a - 1) == 0) ||
           (len >= sizeof b - 1 && memcmp(data, b, sizeof b - 1) == 0);
}

static void remote_closed(chanc_communicator_t *c, int code, const char *reason) {
    if (c->state != ST_OPEN)
        return;
    c->state = ST_CLOSED;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    record(c, "close", reason, strlen(reason), code);
}

/* Read what the server sends until settled (true) or timeout_ms (false). */
static bool remote_pump(chanc_communicator_t *c, uint64_t timeout_ms) {
    uint64_t quiet = c->t->priv->remote_quiet_ms;
    uint64_t deadline = chanc__real_ms() + timeout_ms;
    while (c->state == ST_OPEN) {
        uint64_t now = chanc__real_ms();
        if (now >= deadline)
            return false;
        uint64_t wait = c->awaiting_completes ? deadline - now : quiet;
        if (wait > deadline - now)
            wait = deadline - now;
        chanc_ws_frame_t f;
        if (chanc_ws_client_receive_frame(c->ws, &f, (int)wait) < 0) {
            if (chanc_ws_client_closed(c->ws))
                remote_closed(c, chanc_ws_client_close_code(c->ws),
                              chanc_ws_client_close_reason(c->ws));
            else if (chanc_ws_client_eof(c->ws))
                remote_closed(c, 1006, "connection lost");
            else if (!c->awaiting_completes)
                return true; /* quiet */
            continue;
        }
        if (f.opcode == CHANC_WS_OP_TEXT || f.opcode == CHANC_WS_OP_BINARY) {
            chanc_buf_t *b = chanc_buf_new(f.data, f.len);
            if (b) {
                if (f.opcode == CHANC_WS_OP_BINARY)
                    b->flags |= CHANC_BUF_BINARY;
                if (is_completion(f.data, f.len)) {
                    b->flags |= CHANC_BUF_COMPLETION;
                    if (c->awaiting_completes && f.len >= 20 && f.data[11] == 'c')
                        c->awaiting_completes--; /* "complete", not group_complete */
                }
                inbox_push(c, b);
                chanc_buf_unref(b);
            }
        }
        chanc_ws_frame_dispose(&f);
    }
    return true;
}

static bool remote_connect(chanc_communicator_t *c, uint64_t timeout_ms) {
    char **lines = calloc(c->headers.n + 1, sizeof *lines);
    for (size_t i = 0; lines && i < c->headers.n; i++)
        lines[i] =
            chanc__test_strdupf("%s: %s", c->headers.items[i].name, c->headers.items[i].value);
    int status = -1;
    chanc_ws_client_options_t o = {.headers = (const char *const *)lines,
                                   .timeout_ms = (int)timeout_ms};
    c->ws = lines ? chanc_ws_client_connect(c->t->priv->remote_port, c->path, &o, &status) : NULL;
    for (size_t i = 0; lines && i < c->headers.n; i++)
        free(lines[i]);
    free(lines);
    if (!c->ws) {
        /* Refused handshakes report 4000 + the HTTP status, as in process. */
        c->state = ST_REFUSED;
        c->close_code = status > 0 ? 4000 + status : 1006;
        snprintf(c->close_reason, sizeof c->close_reason, "handshake refused (HTTP %d)", status);
        record(c, "refused", c->close_reason, strlen(c->close_reason), c->close_code);
        return false;
    }
    c->state = ST_OPEN;
    record(c, "open", c->path, strlen(c->path), 0);
    remote_pump(c, timeout_ms);
    return true;
}

static void remote_disconnect(chanc_communicator_t *c, int code) {
    c->state = ST_CLOSED;
    c->close_code = code;
    record(c, "disconnect", NULL, 0, code);
    chanc_ws_client_close(c->ws, code, 2000);
}

bool chanc__settle(chanc_communicator_t *c, uint64_t timeout_ms) {
    if (c->ws) {
        if (remote_pump(c, timeout_ms))
            return true;
        char msg[200];
        snprintf(msg, sizeof msg, "the server did not settle within %llu ms (%zu complete frame(s) "
                 "still awaited)", (unsigned long long)timeout_ms, c->awaiting_completes);
        chanc__fail(__FILE__, __LINE__, msg);
        return false;
    }
    if (!c->t->app)
        return true;
    if (chanc_app_run_until_settled(c->t->app, timeout_ms) == 0)
        return true;
    char msg[160];
    snprintf(msg, sizeof msg, "the app did not settle within %llu ms (hung handler or a hold "
             "never released)", (unsigned long long)timeout_ms);
    chanc__fail(__FILE__, __LINE__, msg);
    return false;
}

bool chanc_communicator_connect(chanc_communicator_t *c, uint64_t timeout_ms) {
    if (c->state != ST_NEW)
        return c->state == ST_OPEN;
    if (c->t->priv->remote_port)
        return remote_connect(c, timeout_ms);
    chanc_request_t req = {c->path, c->headers.items, c->headers.n};
    int rc = chanc_conn_open(c->t->app, &req, &inproc_ops, c, &c->conn);
    if (rc < 0) {
        c->state = ST_REFUSED;
        c->close_code = rc == CHANC_ENOROUTE ? CHANC_CLOSE_NOT_FOUND : CHANC_CLOSE_INTERNAL;
        snprintf(c->close_reason, sizeof c->close_reason, "%s", chanc_strerror(rc));
        record(c, "refused", c->close_reason, strlen(c->close_reason), c->close_code);
        return false;
    }
    c->state = ST_OPEN;
    record(c, "open", c->path, strlen(c->path), 0);
    chanc_conn_start(c->conn);
    chanc__settle(c, timeout_ms);
    return true;
}

typedef struct client_frame {
    chanc_communicator_t *c;
    bool binary;
    size_t len;
    unsigned char data[];
} client_frame_t;

static void deliver_client_frame(void *arg) {
    client_frame_t *f = arg;
    if (f->c->conn)
        chanc_conn_receive(f->c->conn, f->data, f->len, f->binary);
    free(f);
}

int chanc_communicator_send_raw(chanc_communicator_t *c, const void *data, size_t len,
                                bool binary) {
    if (c->state != ST_OPEN)
        return CHANC_ECLOSED;
    if (c->ws) {
        record(c, "send", binary ? "<binary frame>" : data, binary ? 14 : len, 0);
        if (chanc_ws_client_send_frame(c->ws, binary ? CHANC_WS_OP_BINARY : CHANC_WS_OP_TEXT, true,
                                       data, len) < 0)
            return CHANC_EIO;
        c->awaiting_completes++;
        return 0;
    }
    client_frame_t *f = malloc(sizeof *f + len + 1);
    if (!f)
        return CHANC_ENOMEM;
    f->c = c;
    f->binary = binary;
    f->len = len;
    memcpy(f->data, data, len);
    f->data[len] = '\0';
    if (binary)
        record(c, "send", "<binary frame>", 14, 0);
    else
        record(c, "send", data, len, 0);
    return chanc_app_defer(c->t->app, deliver_client_frame, f);
}

int chanc_communicator_send_text(chanc_communicator_t *c, const char *text) {
    return chanc_communicator_send_raw(c, text, strlen(text), false);
}

int chanc_communicator_send_json(chanc_communicator_t *c, json_t *frame) {
    if (!frame)
        return CHANC_EINVAL;
    char *text = chanc_json_dump(frame);
    json_decref(frame);
    if (!text)
        return CHANC_ENOMEM;
    int rc = chanc_communicator_send_raw(c, text, strlen(text), false);
    free(text);
    return rc;
}

int chanc_communicator_send_message(chanc_communicator_t *c, const chanc_message_type_t *type,
                                    json_t *payload) {
    json_t *frame = json_object();
    json_object_set_new(frame, "action", json_string(type->action));
    json_object_set_new(frame, "payload", payload ? payload : json_null());
    return chanc_communicator_send_json(c, frame);
}

void chanc_communicator_disconnect_code(chanc_communicator_t *c, int code) {
    if (c->state == ST_NEW) {
        c->state = ST_CLOSED;
        c->close_code = code;
        return;
    }
    if (c->state != ST_OPEN)
        return;
    if (c->ws) {
        remote_disconnect(c, code);
        return;
    }
    c->state = ST_CLOSED;
    c->close_code = code;
    record(c, "disconnect", NULL, 0, code);
    chanc_app_defer(c->t->app, finish_close, c);
    chanc__settle(c, 1000);
}

void chanc_communicator_disconnect(chanc_communicator_t *c) {
    chanc_communicator_disconnect_code(c, CHANC_CLOSE_NORMAL);
}

/* --- receiving --------------------------------------------------------------------- */

const chanc_buf_t *chanc__communicator_peek(const chanc_communicator_t *c) {
    return chanc__communicator_peek_at(c, 0);
}

const chanc_buf_t *chanc__communicator_peek_at(const chanc_communicator_t *c, size_t i) {
    return c->inbox_head + i < readable_end(c) ? c->inbox[c->inbox_head + i] : NULL;
}

const chanc_buf_t *chanc_communicator_peek_raw(chanc_communicator_t *c) {
    chanc__settle(c, 1000);
    return chanc__communicator_peek(c);
}

static json_t *parse_buf(const chanc_buf_t *b) {
    json_t *v = json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, NULL);
    return v ? v : json_stringn((const char *)b->data, b->len);
}

static json_t *pop(chanc_communicator_t *c) {
    chanc_buf_t *b = c->inbox[c->inbox_head++];
    json_t *v = parse_buf(b);
    chanc_buf_unref(b);
    return v;
}

size_t chanc_communicator_pending(chanc_communicator_t *c, uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    return readable_end(c) - c->inbox_head;
}

json_t *chanc_communicator_receive_json(chanc_communicator_t *c, uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    return c->inbox_head < readable_end(c) ? pop(c) : NULL;
}

json_t *chanc_communicator_receive_all_json(chanc_communicator_t *c, uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    json_t *all = json_array();
    while (c->inbox_head < readable_end(c)) {
        if (c->inbox[c->inbox_head]->flags & CHANC_BUF_COMPLETION) {
            chanc_buf_unref(c->inbox[c->inbox_head++]);
            continue;
        }
        json_array_append_new(all, pop(c));
    }
    return all;
}

json_t *chanc_communicator_receive_until_action(chanc_communicator_t *c, const char *action,
                                                uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    size_t end = c->inbox_head;
    for (; end < readable_end(c); end++) {
        json_t *v = parse_buf(c->inbox[end]);
        bool hit = json_is_object(v) &&
                   strcmp(json_is_string(json_object_get(v, "action")) ? json_string_value(json_object_get(v, "action")) : "", action) == 0;
        json_decref(v);
        if (hit)
            break;
    }
    if (end == readable_end(c))
        return NULL;
    json_t *out = json_array();
    while (c->inbox_head <= end)
        json_array_append_new(out, pop(c));
    return out;
}

bool chanc_communicator_receive_nothing(chanc_communicator_t *c, uint64_t timeout_ms) {
    size_t all = chanc_communicator_pending(c, timeout_ms);
    for (size_t i = 0; i < all; i++)
        if (!(c->inbox[c->inbox_head + i]->flags & CHANC_BUF_COMPLETION))
            return false;
    while (c->inbox_head < readable_end(c)) /* only completions: drop them */
        chanc_buf_unref(c->inbox[c->inbox_head++]);
    return true;
}

void chanc_communicator_print_transcript(const chanc_communicator_t *c, FILE *out) {
    fprintf(out, "  transcript of %s:\n", c->path);
    size_t i;
    json_t *e;
    json_array_foreach(c->transcript, i, e) {
        const char *dir = json_string_value(json_object_get(e, "dir"));
        const char *frame = json_string_value(json_object_get(e, "frame"));
        json_int_t code = json_integer_value(json_object_get(e, "code"));
        const char *arrow = !strcmp(dir, "send") ? "→" : !strcmp(dir, "recv") ? "←" : "·";
        fprintf(out, "    %6lld ms %s %-10s", (long long)json_integer_value(json_object_get(e, "t")),
                arrow, dir);
        if (code)
            fprintf(out, " code %lld", (long long)code);
        if (frame)
            fprintf(out, " %.2000s%s", frame, strlen(frame) > 2000 ? "…" : "");
        fputc('\n', out);
    }
    size_t waiting = c->inbox_len - c->inbox_head;
    fprintf(out, "  not yet consumed (%zu):\n", waiting);
    for (size_t k = c->inbox_head; k < c->inbox_len; k++)
        fprintf(out, "    %s%.2000s\n", k >= readable_end(c) ? "(unread: client stopped reading) " : "",
                (const char *)c->inbox[k]->data);
}

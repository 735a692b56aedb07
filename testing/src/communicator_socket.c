/* The socket transport: the communicator is a WebSocket client of a live
 * server on 127.0.0.1 (chanc_test_create_remote), through the socket
 * client of chanc/ws_client.h.
 *
 * Settling over a socket cannot be known, only inferred: read until every
 * frame sent has had its "complete", then until no frame comes for the
 * quiet period (chanc_test_remote_options_t.quiet_ms, default 100 ms). */
#include <stdlib.h>
#include <string.h>

#include <chanc/ws_client.h>

#include "communicator_internal.h"

typedef struct socket_comm {
    struct chanc_communicator core; /* first: the core casts */
    chanc_ws_client_t *ws;          /* NULL until connected */
    size_t awaiting_completes;      /* frames sent whose "complete" has not come */
} socket_comm_t;

/* The two completion frames the framework sends (chanc/consumer.h), as it
 * encodes them: "action" first. */
typedef enum { NOT_COMPLETION, COMPLETE, GROUP_COMPLETE } completion_t;

static bool starts_with(const unsigned char *data, size_t len, const char *prefix) {
    size_t n = strlen(prefix);
    return len >= n && memcmp(data, prefix, n) == 0;
}

static completion_t completion_of(const unsigned char *data, size_t len) {
    if (starts_with(data, len, "{\"action\":\"complete\""))
        return COMPLETE;
    if (starts_with(data, len, "{\"action\":\"group_complete\""))
        return GROUP_COMPLETE;
    return NOT_COMPLETION;
}

/* A data frame from the server into the inbox, flagged as the app's own
 * buffers are. */
static void received(socket_comm_t *s, const chanc_ws_frame_t *f) {
    chanc_buf_t *b = chanc_buf_new(f->data, f->len);
    if (!b)
        return;
    if (f->opcode == CHANC_WS_OP_BINARY)
        b->flags |= CHANC_BUF_BINARY;
    completion_t kind = completion_of(f->data, f->len);
    if (kind != NOT_COMPLETION)
        b->flags |= CHANC_BUF_COMPLETION;
    if (kind == COMPLETE && s->awaiting_completes)
        s->awaiting_completes--; /* the answer to a frame we sent */
    chanc__communicator_push(&s->core, b);
    chanc_buf_unref(b);
}

/* Read what the server sends until settled (true) or timeout_ms (false). */
static bool pump(socket_comm_t *s, uint64_t timeout_ms) {
    chanc_communicator_t *c = &s->core;
    uint64_t quiet = c->t->priv->remote_quiet_ms;
    uint64_t deadline = chanc__real_ms() + timeout_ms;
    while (c->state == COMM_OPEN) {
        uint64_t now = chanc__real_ms();
        if (now >= deadline)
            return false;
        uint64_t wait = s->awaiting_completes ? deadline - now : quiet;
        if (wait > deadline - now)
            wait = deadline - now;
        chanc_ws_frame_t f;
        if (chanc_ws_client_receive_frame(s->ws, &f, (int)wait) < 0) {
            if (chanc_ws_client_closed(s->ws))
                chanc__communicator_server_closed(c, chanc_ws_client_close_code(s->ws),
                                                  chanc_ws_client_close_reason(s->ws));
            else if (chanc_ws_client_eof(s->ws))
                chanc__communicator_server_closed(c, 1006, "connection lost");
            else if (!s->awaiting_completes)
                return true; /* quiet */
            continue;
        }
        if (f.opcode == CHANC_WS_OP_TEXT || f.opcode == CHANC_WS_OP_BINARY)
            received(s, &f);
        chanc_ws_frame_dispose(&f);
    }
    return true;
}

static bool socket_settle(chanc_communicator_t *c, uint64_t timeout_ms) {
    socket_comm_t *s = (socket_comm_t *)c;
    if (pump(s, timeout_ms))
        return true;
    char msg[200];
    snprintf(msg, sizeof msg, "the server did not settle within %llu ms (%zu complete frame(s) "
             "still awaited)", (unsigned long long)timeout_ms, s->awaiting_completes);
    chanc__fail(__FILE__, __LINE__, msg);
    return false;
}

static bool socket_connect(chanc_communicator_t *c, uint64_t timeout_ms) {
    socket_comm_t *s = (socket_comm_t *)c;
    char **lines = calloc(c->headers.n + 1, sizeof *lines);
    for (size_t i = 0; lines && i < c->headers.n; i++)
        lines[i] =
            chanc_strdupf("%s: %s", c->headers.items[i].name, c->headers.items[i].value);
    int status = -1;
    chanc_ws_client_options_t o = {.headers = (const char *const *)lines,
                                   .timeout_ms = (int)timeout_ms};
    s->ws = lines ? chanc_ws_client_connect(c->t->priv->remote_port, c->path, &o, &status) : NULL;
    for (size_t i = 0; lines && i < c->headers.n; i++)
        free(lines[i]);
    free(lines);
    if (!s->ws) {
        /* Refused handshakes report 4000 + the HTTP status, as in process. */
        char reason[64];
        snprintf(reason, sizeof reason, "handshake refused (HTTP %d)", status);
        chanc__communicator_refused(c, status > 0 ? 4000 + status : 1006, reason);
        return false;
    }
    chanc__communicator_opened(c);
    pump(s, timeout_ms);
    return true;
}

static int socket_send(chanc_communicator_t *c, const void *data, size_t len, bool binary) {
    socket_comm_t *s = (socket_comm_t *)c;
    int op = binary ? CHANC_WS_OP_BINARY : CHANC_WS_OP_TEXT;
    if (chanc_ws_client_send_frame(s->ws, op, true, data, len) < 0)
        return CHANC_EIO;
    s->awaiting_completes++;
    return 0;
}

static void socket_disconnect(chanc_communicator_t *c, int code) {
    chanc_ws_client_close(((socket_comm_t *)c)->ws, code, 2000);
}

static void socket_dispose(chanc_communicator_t *c) {
    socket_comm_t *s = (socket_comm_t *)c;
    if (!s->ws)
        return;
    if (c->state == COMM_OPEN) /* a remote fixture's teardown: the client leaves */
        chanc_communicator_disconnect(c);
    chanc_ws_client_free(s->ws);
}

const comm_transport_t chanc__comm_socket = {
    .size = sizeof(socket_comm_t),
    .connect = socket_connect,
    .send = socket_send,
    .disconnect = socket_disconnect,
    .settle = socket_settle,
    .dispose = socket_dispose,
};

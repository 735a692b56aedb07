/* The in-process transport: the communicator is a client of the fixture's
 * app through the framework's public transport interface
 * (chanc/transport.h), with no socket. Frames from the client go through
 * the app's call-soon queue (like bytes off a socket), in the
 * communicator's own lane (one socket's order: chanc/schedule.h); frames to the
 * client land in the core's inbox. Settling is known: the app has nothing
 * queued and nothing held. */
#include <stdlib.h>
#include <string.h>

#include "communicator_internal.h"

typedef struct inproc {
    struct chanc_communicator core; /* first: the core casts */
    chanc_conn_t *conn;             /* NULL until connect and after the app let go */
} inproc_t;

chanc_conn_t *chanc__communicator_conn(const chanc_communicator_t *c) {
    return c->transport == &chanc__comm_inproc ? ((const inproc_t *)c)->conn : NULL;
}

const chanc_consumer_t *chanc__communicator_consumer(const chanc_communicator_t *c) {
    return c->transport == &chanc__comm_inproc ? c->consumer : NULL;
}

/* --- the transport ops (called by the app) -------------------------------- */

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
    int rc = chanc__communicator_push(c, frame);
    chanc__conformance_check(c, frame);
    return rc;
}

static void finish_close(void *arg) {
    inproc_t *ip = arg;
    if (ip->conn) {
        chanc_conn_t *conn = ip->conn;
        ip->conn = NULL;
        chanc_transport_closed(conn, ip->core.close_code);
    }
}

static void inproc_close(void *tctx, int code, const char *reason) {
    chanc_communicator_t *c = tctx;
    if (!chanc__communicator_server_closed(c, code, reason))
        return;
    /* The closing handshake completes on a later turn, never inside the
     * app's own call. */
    chanc_app_call_soon_ordered(c->t->app, c, finish_close, c);
}

static void deliver_pong(void *arg) {
    inproc_t *ip = arg;
    if (ip->conn && ip->core.state == COMM_OPEN) {
        chanc__communicator_record(&ip->core, "pong", NULL, 0, 0);
        chanc_conn_pong(ip->conn);
    }
}

/* A client answers a ping on a later turn, as over a socket. */
static void inproc_ping(void *tctx) {
    chanc_communicator_t *c = tctx;
    chanc__communicator_record(c, "ping", NULL, 0, 0);
    if (!c->ignore_pings)
        chanc_app_call_soon_ordered(c->t->app, c, deliver_pong, c);
}

static const chanc_transport_ops_t inproc_ops = {
    .write = inproc_write, .close = inproc_close, .ping = inproc_ping};

/* --- the client side -------------------------------------------------------- */

static bool inproc_settle(chanc_communicator_t *c, uint64_t timeout_ms) {
    if (!c->t->app)
        return true;
    chanc__oom_app_enter();
    int rc = chanc_app_run_until_settled(c->t->app, timeout_ms);
    chanc__oom_app_leave();
    if (rc == 0) {
        chanc__conformance_report(c->t);
        return true;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "the app did not settle within %llu ms (hung handler or a hold "
             "never released)", (unsigned long long)timeout_ms);
    chanc__fail(__FILE__, __LINE__, msg);
    return false;
}

static bool inproc_connect(chanc_communicator_t *c, uint64_t timeout_ms) {
    inproc_t *ip = (inproc_t *)c;
    chanc_request_t req = {c->path, c->headers.items, c->headers.n};
    chanc__oom_app_enter();
    int rc = chanc_conn_open(c->t->app, &req, &inproc_ops, c, &ip->conn);
    chanc__oom_app_leave();
    if (rc < 0) {
        int code = rc == CHANC_ENOROUTE ? CHANC_CLOSE_NOT_FOUND : CHANC_CLOSE_INTERNAL;
        chanc__communicator_refused(c, code, chanc_strerror(rc));
        return false;
    }
    c->consumer = chanc_conn_consumer(ip->conn);
    chanc__communicator_opened(c);
    chanc__oom_app_enter();
    chanc_transport_opened(ip->conn);
    chanc__oom_app_leave();
    inproc_settle(c, timeout_ms);
    return true;
}

typedef struct client_frame {
    inproc_t *ip;
    bool binary;
    size_t len;
    unsigned char data[];
} client_frame_t;

static void deliver_client_frame(void *arg) {
    client_frame_t *f = arg;
    if (f->ip->conn)
        chanc_transport_received(f->ip->conn, f->data, f->len, f->binary);
    free(f);
}

static int inproc_send(chanc_communicator_t *c, const void *data, size_t len, bool binary) {
    client_frame_t *f = malloc(sizeof *f + len + 1);
    if (!f)
        return CHANC_ENOMEM;
    f->ip = (inproc_t *)c;
    f->binary = binary;
    f->len = len;
    memcpy(f->data, data, len);
    f->data[len] = '\0';
    return chanc_app_call_soon_ordered(c->t->app, c, deliver_client_frame, f);
}

static void inproc_disconnect(chanc_communicator_t *c, int code) {
    (void)code; /* finish_close reports c->close_code */
    chanc_app_call_soon_ordered(c->t->app, c, finish_close, c);
    inproc_settle(c, 1000);
}

const comm_transport_t chanc__comm_inproc = {
    .size = sizeof(inproc_t),
    .connect = inproc_connect,
    .send = inproc_send,
    .disconnect = inproc_disconnect,
    .settle = inproc_settle,
};

/* The communicator inside: one core and two transports.
 *
 * The core (communicator.c) is what a test sees: the connection's state,
 * the inbox of frames received, the transcript, the receive calls and the
 * fault switches. A transport carries the frames between the client and a
 * server; it is chosen when the communicator is made:
 *
 * - communicator_inproc.c: the fixture's app, in process, through the
 *   framework's public transport interface (chanc/transport.h); settling
 *   is known (chanc_app_run_until_settled).
 * - communicator_socket.c: a live server on 127.0.0.1 through the socket
 *   client (chanc/ws_client.h); settling is inferred (every frame sent has
 *   had its "complete", then nothing came for the quiet period).
 *
 * Each transport's communicator is its own struct that starts with the
 * core's (struct chanc_communicator), so the core allocates
 * transport->size bytes and a transport casts. */
#ifndef CHANC_COMMUNICATOR_INTERNAL_H
#define CHANC_COMMUNICATOR_INTERNAL_H

#include "testing_internal.h"

typedef enum { COMM_NEW, COMM_OPEN, COMM_CLOSED, COMM_REFUSED } comm_state_t;

typedef struct comm_transport comm_transport_t;

struct chanc_communicator {
    chanc_communicator_t *next;
    chanc_test_t *t;
    const comm_transport_t *transport;
    char *path;
    header_list_t headers;
    comm_state_t state;
    int close_code;
    char close_reason[124];
    chanc_buf_t **inbox; /* references, consumed from inbox_head */
    size_t inbox_head, inbox_len, inbox_cap;
    json_t *transcript;
    /* The consumer its route gave it (in process, once connected): what
     * the protocol coverage is recorded against (coverage.c). */
    const chanc_consumer_t *consumer;
    /* Fault injection. The in-process transport fails the next write
     * (fail_next_delivery), leaves pings unanswered (ignore_pings) and
     * counts what a stopped client has queued (queued_bytes); while the
     * client is stopped the core keeps the frames from inbox_readable on
     * unread (in the "server's queue"). */
    bool fail_next_delivery;
    bool ignore_pings;
    bool stopped;
    size_t inbox_readable, queued_bytes;
};

struct comm_transport {
    size_t size; /* of the transport's communicator struct */
    /* Open the connection (state COMM_NEW) and settle: true once open
     * (chanc__communicator_opened), false when refused
     * (chanc__communicator_refused). */
    bool (*connect)(chanc_communicator_t *c, uint64_t timeout_ms);
    /* One frame from the client (the core has recorded it); 0 or a
     * CHANC_E* code. */
    int (*send)(chanc_communicator_t *c, const void *data, size_t len, bool binary);
    /* The client closes with code (the core has marked it closed and
     * recorded the disconnect). */
    void (*disconnect)(chanc_communicator_t *c, int code);
    /* Run until settled: true, or report "did not settle" and false. */
    bool (*settle)(chanc_communicator_t *c, uint64_t timeout_ms);
    /* Release what the transport holds (the communicator is being freed;
     * still open only on a remote fixture). May be NULL. */
    void (*dispose)(chanc_communicator_t *c);
};

extern const comm_transport_t chanc__comm_inproc; /* communicator_inproc.c */
extern const comm_transport_t chanc__comm_socket; /* communicator_socket.c */

/* --- what the core offers the transports ---------------------------------- */

/* Append an entry to the transcript (text may be NULL; code 0: none). */
void chanc__communicator_record(chanc_communicator_t *c, const char *dir, const char *text,
                                size_t len, int code);
/* A frame from the server: into the inbox (a new reference) and the
 * transcript. 0 or CHANC_ENOMEM. */
int chanc__communicator_push(chanc_communicator_t *c, chanc_buf_t *frame);
/* The handshake was accepted: open, recorded. */
void chanc__communicator_opened(chanc_communicator_t *c);
/* The handshake was refused with code and reason: recorded. */
void chanc__communicator_refused(chanc_communicator_t *c, int code, const char *reason);
/* The server closed: closed with code and reason, recorded. False (and
 * nothing done) when it was not open. */
bool chanc__communicator_server_closed(chanc_communicator_t *c, int code, const char *reason);

#endif

/* The chat consumer's database thread: every store call the consumer makes
 * (the lookups before authentication, the session re-check, the chat
 * message commit) runs here on the worker's own store connection, so a
 * slow database never stalls the loop. Jobs run in submission order;
 * consecutive chat messages commit together (one transaction, one fsync);
 * results come back to the loop thread in the same order. Not public. */
#ifndef CHAT_WORKER_H
#define CHAT_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "chanc/chat.h"

typedef struct chat_worker chat_worker_t;

enum { CHAT_JOB_CONNECT, CHAT_JOB_FRAME, CHAT_JOB_CALL };

/* The common head of a job. The worker owns a job from submit to done;
 * done (loop thread) owns it afterwards and frees it. */
typedef struct chat_job {
    struct chat_job *next;
    int kind;
    chanc_conn_t *conn;
    int64_t now_ms; /* the app's wall clock at submit: the job's "now" */
    void (*done)(struct chat_job *j);
    struct chat_worker *worker; /* set by submit */
} chat_job_t;

/* Before authentication: the session behind the cookie; if it names a
 * user, the room by pk and the membership; if a member, the history. A
 * step not reached leaves its rc at CHANC_ENOTFOUND. */
typedef struct chat_connect_job {
    chat_job_t h;
    bool has_token, has_room;
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    int64_t room_pk;
    int session_rc, room_rc, member_rc, history_rc;
    chat_user_t user;
    int64_t expires_ms;
    chat_room_t room;
    bool member;
    json_t *history; /* new reference, or NULL */
} chat_connect_job_t;

/* One frame: optionally re-check the session (is it still in the store?),
 * then, if it is and the frame is a chat message, store it. */
typedef struct chat_frame_job {
    chat_job_t h;
    bool check_session;
    bool session_ok;      /* out: true unless the check found it gone */
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    bool has_message;
    chat_store_msg_t msg; /* msg.text points into text[] */
    uint64_t commit_ns;   /* out: the commit this message was part of */
    bool first_in_commit; /* out: the first message of its transaction */
    char text[];
} chat_frame_job_t;

/* Anything else: run(store, job) on the worker's store (worker thread),
 * then h.done on the loop. For the HTTP views: embed it first in a struct
 * of the request's inputs and outputs. */
typedef struct chat_call_job {
    chat_job_t h;
    void (*run)(chat_store_t *s, struct chat_call_job *j);
} chat_call_job_t;

/* A worker on its own connection to s's database (chat_store_open_like),
 * or — for an in-memory SQLite database, which has one connection — one
 * that runs jobs on s, on the loop thread, at submit (results still come
 * back on a later turn). NULL on failure (err says why). */
chat_worker_t *chat_worker_create(chanc_app_t *app, chat_store_t *s, chanc_error_t *err);
/* Loop thread. Holds the app until j->done has run. Under a test's
 * scheduler (chanc_app_exploring) the loop waits for the thread at each
 * hand-over, and the results go back in the worker's own lane of the
 * app's queue (chanc_app_call_soon_ordered): still in order among
 * themselves, placed by the schedule among the other ready work. */
void chat_worker_submit(chat_worker_t *w, chat_job_t *j);
/* Finish every submitted job, run their done callbacks, stop the thread;
 * the memory goes once the loop has closed the wakeup handle. */
void chat_worker_destroy(chat_worker_t *w);

#endif

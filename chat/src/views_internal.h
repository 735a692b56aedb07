/* What the chat's HTTP views share between their files (not public):
 *
 *   views.c          routing (chat_views_handle), the view job that runs a
 *                    view's store calls on the views' database thread and
 *                    answers later, static assets, chat_views_start/stop
 *   views_http.c     HTTP helpers: a growable string, responses, templates,
 *                    requests and forms, the session cookie, security headers
 *   views_rooms.c    GET /, GET /chat/{id}/, POST …/join and …/members
 *   views_login.c    GET and POST /login (the throttle, the hash check on
 *                    libuv's threadpool), POST /logout
 *   views_metrics.c  GET /metrics (allow-list, bearer token) and /healthz
 *   views_announce.c POST /api/rooms/{id}/announcements (JSON; staff)
 *
 * Names: chat_sb_* the string, chat_http_* helpers that need no views,
 * chat_view_job_* the job, chat_views__* the rest (each view's entry
 * point included). */
#ifndef CHAT_VIEWS_INTERNAL_H
#define CHAT_VIEWS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/chat_views.h"
#include "worker.h"

/* ---- a growable string (views_http.c) ------------------------------------ */

typedef struct chat_sbuf {
    char *p; /* malloc'd, NUL-terminated; NULL while empty */
    size_t len, cap;
    bool oom; /* an append failed: everything after it is dropped */
} chat_sbuf_t;

void chat_sb_add(chat_sbuf_t *b, const char *s, size_t n);
void chat_sb_str(chat_sbuf_t *b, const char *s);
/* s HTML-escaped (& < > " '). */
void chat_sb_html(chat_sbuf_t *b, const char *s);
/* One formatted line of at most 255 bytes. */
void chat_sb_printf(chat_sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- responses and requests (views_http.c) ------------------------------- */

/* name and value must live until the server copies them (after the
 * handler returns, or in chanc_http_complete). */
int chat_http_add_header(chanc_http_response_t *r, const char *name, const char *value);
/* body's buffer becomes r's body; CHANC_ENOMEM (body freed) when it ran
 * out of memory. */
int chat_http_respond(chanc_http_response_t *r, int status, const char *type, chat_sbuf_t *body);
/* text and a newline, text/plain. */
int chat_http_respond_text(chanc_http_response_t *r, int status, const char *text);
int chat_http_render(chanc_http_response_t *r, int status, const char *tpl_name,
                     const char *const *vars);
/* "Retry-After: <seconds>". */
void chat_http_retry_after(chanc_http_response_t *r, uint32_t seconds);
/* The security headers every response of the views carries. */
void chat_http_page_headers(chanc_http_response_t *r);
int chat_http_not_allowed(chanc_http_response_t *r, const char *allow);

const char *chat_http_header(const chanc_http_request_t *req, const char *name);
bool chat_http_method_is(const chanc_http_request_t *req, const char *m);
bool chat_http_form_get(const char *form, const char *name, char *out, size_t outlen);
bool chat_http_form_urlencoded(const chanc_http_request_t *req);
/* The request's Content-Type is `want` (parameters such as charset
 * allowed; case-insensitive); absent_ok: so is no Content-Type at all. */
bool chat_http_content_type_is(const chanc_http_request_t *req, const char *want,
                               bool absent_ok);
/* body (stolen) as compact JSON, application/json. */
int chat_http_respond_json(chanc_http_response_t *r, int status, json_t *body);
bool chat_http_foreign_origin(const chanc_http_request_t *req);
const char *chat_http_safe_next(const char *next);

/* 302 to location. */
int chat_views__redirect(chanc_http_response_t *r, const char *location);
bool chat_views__cookie_token(const chat_views_t *v, const chanc_http_request_t *req,
                              char token[CHAT_SESSION_TOKEN_LEN + 1]);
void chat_views__set_session_cookie(const chat_views_t *v, chanc_http_response_t *r,
                                    const char *token, int max_age);

/* ---- answering later (views.c) ------------------------------------------- */

/* Send a deferred answer (loop thread): r as built, or a 500 when rc < 0. */
void chat_views__complete(chanc_http_deferred_t *d, int rc, chanc_http_response_t *r,
                          const char *what);

/* A view's store calls, all of them in one go: with a worker, as one call
 * job on the views' database thread (the request was deferred; the answer
 * is built on the loop thread); without, inline. The request is gone once
 * the handler returns: a job carries copies of what it needs. */
typedef struct chat_view_job chat_view_job_t;
struct chat_view_job {
    chat_call_job_t call; /* first: what the worker sees */
    chat_views_t *v;
    chanc_http_deferred_t *d;
    const char *what; /* "GET /" …, for the log */
    /* builds the response from the results (loop thread, or inline) */
    int (*answer)(chat_view_job_t *j, chanc_http_response_t *r);
    /* in */
    bool has_token;
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    int64_t room_id;
    char invitee[CHAT_USERNAME_MAX * 4 + 1]; /* POST …/members: who ("": none given) */
    json_t *payload; /* POST …/announcements: the validated body */
    /* out */
    bool logged_in; /* the token names a live session of user */
    chat_user_t user;
    int rc;         /* the view's main store call */
    int member_rc;
    bool member;    /* user is a member of room */
    int invite_rc;  /* POST …/members: adding the invitee */
    json_t *rooms;
    json_t *members; /* a private room's member names, for its page */
    chat_room_t room;
    int64_t users;
};

chat_view_job_t *chat_view_job_new(void (*run)(chat_store_t *, chat_call_job_t *),
                                   int (*answer)(chat_view_job_t *, chanc_http_response_t *),
                                   const char *what);
/* The logged-in user (a store call): false when anonymous. */
void chat_view_job_session(chat_store_t *s, chat_view_job_t *j);
/* The session, then (logged in: true) the room j->room_id and whether the
 * user is a member of it; j->rc CHANC_ENOTFOUND also for a private room
 * the user is not a member of (not revealed). Store calls. */
bool chat_view_job_room(chat_store_t *s, chat_view_job_t *j);
/* Answer j (taken): now when it needs no store call (store false) or the
 * views have no worker; else defer, run it on the worker and answer from
 * there (CHANC_HTTP_DEFERRED). */
int chat_view_job_run(chat_views_t *v, const chanc_http_request_t *req, chat_view_job_t *j,
                      bool store, chanc_http_response_t *r);

/* ---- the views (a chanc_http_handler_fn's arguments, routed) ------------- */

int chat_views__rooms(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);
int chat_views__room(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r,
                     int64_t room_id);
int chat_views__room_post(chat_views_t *v, const chanc_http_request_t *req,
                          chanc_http_response_t *r, int64_t room_id, bool invite);
int chat_views__login(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);
int chat_views__logout(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);
int chat_views__metrics(chat_views_t *v, const chanc_http_request_t *req,
                        chanc_http_response_t *r);
int chat_views__health(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);
int chat_views__announce(chat_views_t *v, const chanc_http_request_t *req,
                         chanc_http_response_t *r, int64_t room_id);

#endif

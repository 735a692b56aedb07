/* POST and GET /login, POST /logout (views_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chanc/chat_throttle.h"
#include "views_internal.h"

#define SESSION_MAX_AGE_S (14 * 24 * 3600)

/* The form, with the username typed so far (escaped like every value). */
static int login_form(chanc_http_response_t *r, int status, const char *next,
                      const char *username, const char *error) {
    const char *vars[] = {"next", chat_http_safe_next(next), "username", username,
                          "error", error, NULL};
    return chat_http_render(r, status, "login.html", vars);
}

/* A login: the user's hash is read from the store (the views' database
 * thread), checked on libuv's threadpool, and the session is created in
 * the store (the database thread again). The hash verification costs
 * ~100 ms of CPU and 64 MiB: not on the loop (every chat connection lives
 * on it), and not on the database thread either, where it would hold up
 * every other view's store calls behind it (and the threadpool runs
 * several at once). Without a worker the store calls run inline; without
 * an app the check does too.
 *
 * With a throttle (v->throttle) an attempt is admitted before any of
 * this (chat_throttle_admit: its address's and username's buckets, the
 * checks in flight) or answered 429 at once; an admitted one holds its
 * ticket until its answer, and at most `hashers` hash at once: the others
 * wait in v's FIFO (login_hash_*), so memory stays at hashers × the hash's
 * memory cost whatever the flood. */
typedef struct chat_login_job {
    chat_call_job_t call; /* first: the store steps, on the views' worker */
    uv_work_t work;       /* the hash check, on libuv's threadpool */
    chat_views_t *v;
    chanc_http_deferred_t *d;
    int rc; /* the last store step's */
    bool on_worker; /* its store steps go to the views' worker */
    chat_login_ticket_t ticket;   /* admitted by v->throttle */
    chat_login_outcome_t outcome; /* what the answer said, for the throttle */
    struct chat_login_job *wait_next;  /* waiting for a hashing slot */
    chat_user_t user;
    bool known, ok;
    char username[CHAT_USERNAME_MAX * 4 + 1];
    char hash[CHAT_PASSWORD_HASH_MAX];
    char password[1024];
    char next[512];
    char token[CHAT_SESSION_TOKEN_LEN + 1];
} login_job_t;

static void login_free(login_job_t *j) {
    if (j->v->throttle)
        chat_throttle_finish(j->v->throttle, &j->ticket, j->outcome);
    sodium_memzero(j, sizeof *j);
    free(j);
}

/* What an answer says of the attempt: 302 logged in, 401 wrong username
 * or password; anything else the server's failure (no charge). */
static chat_login_outcome_t login_outcome(int rc, const chanc_http_response_t *r) {
    return rc < 0 ? CHAT_LOGIN_ERROR : r->status == 302 ? CHAT_LOGIN_OK
                                     : r->status == 401 ? CHAT_LOGIN_WRONG : CHAT_LOGIN_ERROR;
}

/* Answer j's request and free j (loop thread). */
static void login_complete(login_job_t *j, int rc, chanc_http_response_t *r) {
    j->outcome = login_outcome(rc, r);
    chat_views__complete(j->d, rc, r, "POST /login");
    login_free(j);
}

/* Refused by the throttle: the form again, 429 and when to try again. */
static int login_refused(chanc_http_response_t *r, const char *next,
                         const char *username, uint32_t retry_after_s) {
    char msg[120];
    snprintf(msg, sizeof msg, "Too many login attempts. Try again in %u second%s.",
             retry_after_s, retry_after_s == 1 ? "" : "s");
    chat_http_retry_after(r, retry_after_s);
    chat_http_add_header(r, "Cache-Control", "no-store");
    return login_form(r, 429, next, username, msg);
}

static void login_submit(login_job_t *j, void (*run)(chat_store_t *, chat_call_job_t *),
                         void (*done)(chat_job_t *)) {
    j->call.h.kind = CHAT_JOB_CALL;
    j->call.h.now_ms = chanc_app_wall_ms(j->v->app);
    j->call.h.done = done;
    j->call.run = run;
    chat_worker_submit(j->v->worker_, &j->call.h); /* holds the app until done */
}

static void login_work(uv_work_t *w) {
    login_job_t *j = w->data;
    j->ok = chat_password_verify(j->hash, j->password);
    sodium_memzero(j->password, sizeof j->password);
}

/* A session was created: set its cookie, go on to next. */
static int login_ok(chat_views_t *v, const char *token, const char *next,
                    chanc_http_response_t *r) {
    chat_views__set_session_cookie(v, r, token, SESSION_MAX_AGE_S);
    return chat_views__redirect(r, chat_http_safe_next(next));
}

/* The answer to a login attempt, creating the session inline (no worker). */
static int login_answer(chat_views_t *v, bool ok, const chat_user_t *u, const char *next,
                        const char *username, chanc_http_response_t *r) {
    if (!ok)
        return login_form(r, 401, next, username,
                          "Please enter a correct username and password.");
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    int rc = chat_store_create_session(v->store, u->id, token);
    if (rc < 0)
        return rc;
    return login_ok(v, token, next, r);
}

static void session_run(chat_store_t *s, chat_call_job_t *c) {
    login_job_t *j = (login_job_t *)c;
    j->rc = chat_store_create_session(s, j->user.id, j->token);
}

static void session_done(chat_job_t *h) {
    login_job_t *j = (login_job_t *)h;
    chanc_http_response_t r = {0};
    login_complete(j, j->rc < 0 ? j->rc : login_ok(j->v, j->token, j->next, &r), &r);
}

static void login_hash_next(chat_views_t *v);

static void login_after(uv_work_t *w, int status) {
    login_job_t *j = w->data;
    chanc_app_t *app = j->v->app;
    chanc_http_response_t r = {0};
    j->v->hashing_--;
    login_hash_next(j->v); /* the slot goes to the next in line first */
    if (status != 0) {
        login_complete(j, CHANC_EIO, &r);
    } else if (j->known && j->ok && j->on_worker) {
        if (j->v->worker_)
            login_submit(j, session_run, session_done);
        else /* the views stopped meanwhile: no store call on the loop */
            login_complete(j, CHANC_ECLOSED, &r);
    } else {
        login_complete(
            j, login_answer(j->v, j->known && j->ok, &j->user, j->next, j->username, &r), &r);
    }
    chanc_app_release(app); /* after the submit: it holds the app itself */
}

/* Start j's hash on the threadpool (j holds the app). */
static void login_hash_start(login_job_t *j) {
    chat_views_t *v = j->v;
    j->work.data = j;
    v->hashing_++;
    if (uv_queue_work(chanc_app_loop(v->app), &j->work, login_work, login_after) != 0) {
        v->hashing_--;
        chanc_http_response_t r = {0};
        login_complete(j, CHANC_EIO, &r);
        chanc_app_release(v->app);
    }
}

/* Start the longest waiting checks while fewer than the throttle's
 * `hashers` are hashing (no throttle: no bound). */
static void login_hash_next(chat_views_t *v) {
    uint32_t max = v->throttle ? chat_throttle_limits(v->throttle)->hashers : 0;
    while (v->hash_wait_ && (!max || v->hashing_ < max)) {
        login_job_t *j = v->hash_wait_;
        v->hash_wait_ = j->wait_next;
        if (!v->hash_wait_)
            v->hash_wait_tail_ = NULL;
        j->wait_next = NULL;
        login_hash_start(j);
    }
}

/* Check the password on the threadpool (j->d deferred; loop thread), in
 * turn: j joins the FIFO of checks waiting for a hashing slot. */
static void login_verify(login_job_t *j) {
    chat_views_t *v = j->v;
    chanc_app_hold(v->app); /* a graceful shutdown waits for the answer */
    if (v->hash_wait_tail_)
        v->hash_wait_tail_->wait_next = j;
    else
        v->hash_wait_ = j;
    v->hash_wait_tail_ = j;
    login_hash_next(v);
}

static void lookup_run(chat_store_t *s, chat_call_job_t *c) {
    login_job_t *j = (login_job_t *)c;
    j->rc = chat_store_password_lookup(s, j->username, &j->user, j->hash, &j->known);
}

static void lookup_done(chat_job_t *h) {
    login_job_t *j = (login_job_t *)h;
    chanc_http_response_t r = {0};
    if (j->rc < 0 || !j->v->worker_) /* failed, or the views are stopping */
        login_complete(j, j->rc < 0 ? j->rc : CHANC_ECLOSED, &r);
    else
        login_verify(j);
}

int chat_views__login(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    char next[512] = "/";
    if (chat_http_method_is(req, "GET")) {
        if (req->query)
            chat_http_form_get(req->query, "next", next, sizeof next);
        return login_form(r, 200, next, "", "");
    }
    if (!chat_http_method_is(req, "POST"))
        return chat_http_not_allowed(r, "GET, HEAD, POST");
    if (chat_http_foreign_origin(req))
        return chat_http_respond_text(r, 403, "Forbidden: cross-origin form post");
    if (!chat_http_form_urlencoded(req))
        return chat_http_respond_text(r, 415, "Unsupported Media Type: a login is posted as "
                                              "application/x-www-form-urlencoded");
    login_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return CHANC_ENOMEM;
    j->v = v;
    j->outcome = CHAT_LOGIN_ERROR;
    const char *body = req->body ? req->body : "";
    chat_http_form_get(body, "next", j->next, sizeof j->next);
    if (!j->next[0])
        strcpy(j->next, "/");
    bool has_username = chat_http_form_get(body, "username", j->username, sizeof j->username);
    if (!has_username)
        j->username[0] = '\0'; /* a half-decoded one is not shown */
    if (!has_username || !chat_http_form_get(body, "password", j->password, sizeof j->password)) {
        int rc = login_form(r, 401, j->next, j->username,
                            "Please enter a correct username and password.");
        login_free(j);
        return rc;
    }
    uint32_t retry_after_s;
    if (v->throttle && chat_throttle_admit(v->throttle, req->peer, j->username, &j->ticket,
                                           &retry_after_s) != CHAT_LOGIN_ADMITTED) {
        int rc = login_refused(r, j->next, j->username, retry_after_s);
        login_free(j);
        return rc;
    }
    if (v->worker_) {
        if (!(j->d = chanc_http_defer(req))) {
            login_free(j);
            return CHANC_ENOMEM;
        }
        j->on_worker = true;
        login_submit(j, lookup_run, lookup_done);
        return CHANC_HTTP_DEFERRED;
    }
    int rc = chat_store_password_lookup(v->store, j->username, &j->user, j->hash, &j->known);
    if (rc == 0 && !v->app) { /* no loop to work on: verify here */
        bool ok = j->known && chat_password_verify(j->hash, j->password);
        rc = login_answer(v, ok, &j->user, j->next, j->username, r);
        j->outcome = login_outcome(rc, r);
        login_free(j);
        return rc;
    }
    if (rc == 0 && !(j->d = chanc_http_defer(req)))
        rc = CHANC_ENOMEM;
    if (rc < 0) {
        login_free(j);
        return rc;
    }
    login_verify(j);
    return CHANC_HTTP_DEFERRED;
}

static void logout_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_t *j = (chat_view_job_t *)c;
    chat_store_delete_session(s, j->token); /* unknown: already gone */
}

static int logout_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    chat_views_t *v = j->v;
    /* The session's sockets are closed before the answer (in this process;
     * other processes' when the event reaches them). */
    if (j->has_token && v->app)
        chat_session_end(v->app, j->token);
    chat_views__set_session_cookie(v, r, "", 0);
    return chat_views__redirect(r, "/login");
}

int chat_views__logout(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!chat_http_method_is(req, "POST"))
        return chat_http_not_allowed(r, "POST");
    if (chat_http_foreign_origin(req))
        return chat_http_respond_text(r, 403, "Forbidden: cross-origin form post");
    chat_view_job_t *j = chat_view_job_new(logout_run, logout_answer, "POST /logout");
    if (!j)
        return CHANC_ENOMEM;
    j->has_token = chat_views__cookie_token(v, req, j->token);
    return chat_view_job_run(v, req, j, j->has_token, r);
}

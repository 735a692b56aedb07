/* The chat's HTTP views: the room list, login/logout, the room page and
 * the static assets, on chanc_server's HTTP handler interface.
 *
 *   GET  /              rooms (login required → 302 /login?next=/)
 *   GET  /login         the form          POST /login   check, set the cookie
 *   POST /logout        end the session and close its chat sockets
 *   GET  /chat/{id}/    the room page (login required; 404 for a missing
 *                       room and for a private room the visitor is not a
 *                       member of; a public room's non-member gets a page
 *                       with a "Join" button; no state change)
 *   POST /chat/{id}/join     join a public room, back to its page
 *   POST /chat/{id}/members  a member of a private room adds a user
 *                       (username=…), back to its page
 *   GET  /static/NAME   room.js, style.css, favicon.svg
 *
 * Every value put into a page is HTML-escaped. POSTs from a foreign Origin
 * are refused (403), on top of the SameSite=Lax cookie. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <sodium.h>

#include "assets.h"
#include "chanc/chat_throttle.h"
#include "chanc/chat_docs.h"
#include "chanc/chat_views.h"
#include "worker.h"

#define SESSION_MAX_AGE_S (14 * 24 * 3600)

const chat_asset_t *chat_asset_find(const char *name) {
    for (const chat_asset_t *a = chat_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* ---- a growable string ----------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_html(sbuf_t *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_str(b, "&amp;"); break;
        case '<': sb_str(b, "&lt;"); break;
        case '>': sb_str(b, "&gt;"); break;
        case '"': sb_str(b, "&quot;"); break;
        case '\'': sb_str(b, "&#39;"); break;
        default: sb_add(b, s, 1);
        }
    }
}

/* ---- responses ----------------------------------------------------------------- */

static int add_header(chanc_http_response_t *r, const char *name, const char *value) {
    if (r->nheaders >= CHANC_HTTP_MAX_HEADERS)
        return CHANC_ENOMEM;
    r->headers[r->nheaders++] = (chanc_header_t){name, value};
    return 0;
}

static int respond(chanc_http_response_t *r, int status, const char *type, sbuf_t *body) {
    if (body->oom) {
        free(body->p);
        return CHANC_ENOMEM;
    }
    r->status = status;
    r->content_type = type;
    r->body = body->p;
    r->body_len = body->len;
    return 0;
}

static int respond_text(chanc_http_response_t *r, int status, const char *text) {
    sbuf_t b = {0};
    sb_str(&b, text);
    sb_str(&b, "\n");
    return respond(r, status, "text/plain; charset=utf-8", &b);
}

/* A template with {{name}} placeholders: vars are name/value pairs
 * (NULL-terminated); a name starting with '!' is inserted raw (already
 * HTML), others are escaped. Unknown placeholders render empty. */
static int render(chanc_http_response_t *r, int status, const char *tpl_name, const char *const *vars) {
    const chat_asset_t *tpl = chat_asset_find(tpl_name);
    if (!tpl)
        return CHANC_ENOTFOUND;
    sbuf_t b = {0};
    const char *p = tpl->data;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (!close) {
            sb_str(&b, p);
            break;
        }
        sb_add(&b, p, (size_t)(open - p));
        size_t n = (size_t)(close - open - 2);
        for (const char *const *v = vars; v && v[0]; v += 2) {
            bool raw = v[0][0] == '!';
            const char *name = v[0] + raw;
            if (strlen(name) == n && memcmp(name, open + 2, n) == 0) {
                if (raw)
                    sb_str(&b, v[1]);
                else
                    sb_html(&b, v[1]);
                break;
            }
        }
        p = close + 2;
    }
    return respond(r, status, "text/html; charset=utf-8", &b);
}

static int redirect(chat_views_t *v, chanc_http_response_t *r, const char *location) {
    snprintf(v->location, sizeof v->location, "%s", location);
    add_header(r, "Location", v->location);
    return respond_text(r, 302, "Found");
}

/* ---- requests ------------------------------------------------------------------- */

static const char *header(const chanc_http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Field `name` of an application/x-www-form-urlencoded string, decoded
 * into out. true when present and it fits (NUL bytes refused). */
static bool form_get(const char *form, const char *name, char *out, size_t outlen) {
    size_t nlen = strlen(name);
    for (const char *p = form; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
            size_t o = 0;
            for (size_t i = nlen + 1; i < len; i++) {
                int ch = (unsigned char)p[i];
                if (ch == '+')
                    ch = ' ';
                else if (ch == '%' && i + 2 < len + 1 && hexval(p[i + 1]) >= 0 &&
                         hexval(p[i + 2]) >= 0) {
                    ch = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
                    i += 2;
                }
                if (ch == 0 || o + 1 >= outlen)
                    return false;
                out[o++] = (char)ch;
            }
            out[o] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* A local redirect target: one leading '/', no scheme or host, and only
 * printable ASCII (no space, tab or control character: browsers drop tabs
 * and newlines, so "/\t/evil.example" would be "//evil.example"; a
 * control character has no place in a header). Anything else: "/". */
static const char *safe_next(const char *next) {
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\')
        return "/";
    for (const unsigned char *p = (const unsigned char *)next; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return "/";
    return next;
}

static const char *cookie_name(const chat_views_t *v) {
    return v->secure_cookies ? CHAT_SESSION_COOKIE_SECURE : CHAT_SESSION_COOKIE;
}

/* The session token of the cookie; false when there is none (anonymous
 * without asking the store). */
static bool cookie_token(const chat_views_t *v, const chanc_http_request_t *req,
                         char token[CHAT_SESSION_TOKEN_LEN + 1]) {
    const char *cookies = header(req, "cookie");
    return cookies &&
           chanc_cookie_get(cookies, cookie_name(v), token, CHAT_SESSION_TOKEN_LEN + 1) >= 0;
}

/* The session cookie's Set-Cookie value (token "" and max_age 0: cleared). */
static void set_session_cookie(chat_views_t *v, chanc_http_response_t *r, const char *token,
                               int max_age) {
    snprintf(v->cookie, sizeof v->cookie, "%s=%s; HttpOnly; SameSite=Lax; Path=/; Max-Age=%d%s",
             cookie_name(v), token, max_age, v->secure_cookies ? "; Secure" : "");
    add_header(r, "Set-Cookie", v->cookie);
}

/* On every response of the views: the page runs only this site's script
 * and style files, nothing inline, and no other site may frame it. */
static void page_headers(chanc_http_response_t *r) {
    add_header(r, "Content-Security-Policy", CHAT_CSP);
    add_header(r, "X-Frame-Options", "DENY");
}

/* POST from a page of another site? (Absent Origin: not a browser form
 * post from elsewhere, since browsers send Origin on cross-site POSTs.) */
static bool foreign_origin(const chanc_http_request_t *req) {
    const char *origin = header(req, "origin"), *host = header(req, "host");
    if (!origin || strcmp(origin, "null") == 0)
        return origin != NULL;
    const char *h = strstr(origin, "://");
    return !host || !h || strcasecmp(h + 3, host) != 0;
}

static bool method_is(const chanc_http_request_t *req, const char *m) {
    return strcmp(req->method, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(req->method, "HEAD") == 0);
}

static int not_allowed(chanc_http_response_t *r, const char *allow) {
    add_header(r, "Allow", allow);
    return respond_text(r, 405, "Method Not Allowed");
}

/* ---- answering later ---------------------------------------------------------------- */

/* What the server itself answers when a handler fails (its http_error),
 * so that a view failing after a deferral looks the same as before. */
static void respond_500(chanc_http_response_t *r) {
    *r = (chanc_http_response_t){0};
    sbuf_t b = {0};
    sb_str(&b, "500 Internal Server Error\n");
    respond(r, 500, "text/plain; charset=utf-8", &b);
}

/* Send a deferred answer (loop thread): r as built, or a 500 when rc < 0. */
static void complete(chanc_http_deferred_t *d, int rc, chanc_http_response_t *r, const char *what) {
    if (rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "HTTP %s: view failed: %s", what, chanc_strerror(rc));
        free(r->body);
        respond_500(r);
    }
    page_headers(r);
    chanc_http_complete(d, r);
    free(r->body); /* NULL unless complete left it (it takes it) */
}

/* A view's store calls, all of them in one go: with a worker, as one call
 * job on the views' database thread (the request was deferred; the answer
 * is built on the loop thread in done); without, inline. The request is
 * gone once the handler returns: a job carries copies of what it needs. */
typedef struct view_job view_job_t;
struct view_job {
    chat_call_job_t call; /* first: what the worker sees */
    chat_views_t *v;
    chanc_http_deferred_t *d;
    const char *what; /* "GET /" …, for the log */
    /* builds the response from the results (loop thread, or inline) */
    int (*answer)(chat_views_t *v, view_job_t *j, chanc_http_response_t *r);
    /* in */
    bool has_token;
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    int64_t room_id;
    char invitee[CHAT_USERNAME_MAX * 4 + 1]; /* POST …/members: who ("": none given) */
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

static view_job_t *view_job_new(void (*run)(chat_store_t *, chat_call_job_t *),
                                int (*answer)(chat_views_t *, view_job_t *, chanc_http_response_t *),
                                const char *what) {
    view_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->call.h.kind = CHAT_JOB_CALL;
    j->call.run = run;
    j->answer = answer;
    j->what = what;
    return j;
}

static void view_job_free(view_job_t *j) {
    json_decref(j->rooms);
    json_decref(j->members);
    free(j);
}

/* The logged-in user (a store call): false when anonymous. */
static void job_session(chat_store_t *s, view_job_t *j) {
    j->logged_in = j->has_token && chat_store_session_user(s, j->token, &j->user) == 0;
}

static void view_done(chat_job_t *h) {
    view_job_t *j = (view_job_t *)h;
    chanc_http_response_t r = {0};
    complete(j->d, j->answer(j->v, j, &r), &r, j->what);
    view_job_free(j);
}

/* Answer j (taken): now when it needs no store call (store false) or the
 * views have no worker; else defer, run it on the worker and answer from
 * there (CHANC_HTTP_DEFERRED). */
static int view_run(chat_views_t *v, const chanc_http_request_t *req, view_job_t *j, bool store,
                    chanc_http_response_t *r) {
    j->v = v;
    if (!store || !v->worker) {
        if (store)
            j->call.run(v->store, &j->call);
        int rc = j->answer(v, j, r);
        view_job_free(j);
        return rc;
    }
    if (!(j->d = chanc_http_defer(req))) {
        view_job_free(j);
        return CHANC_ENOMEM;
    }
    j->call.h.now_ms = chanc_app_wall_ms(v->app);
    j->call.h.done = view_done;
    chat_worker_submit(v->worker, &j->call.h); /* holds the app until done */
    return CHANC_HTTP_DEFERRED;
}

/* ---- views ------------------------------------------------------------------------ */

static void rooms_run(chat_store_t *s, chat_call_job_t *c) {
    view_job_t *j = (view_job_t *)c;
    job_session(s, j);
    if (j->logged_in) /* the public rooms and the user's private ones */
        j->rc = chat_store_list_rooms_for(s, j->user.id, &j->rooms);
}

static int rooms_answer(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    if (!j->logged_in)
        return redirect(v, r, "/login?next=/");
    if (j->rc < 0)
        return j->rc;
    sbuf_t items = {0};
    size_t i;
    json_t *room;
    json_array_foreach(j->rooms, i, room) {
        char href[64];
        snprintf(href, sizeof href, "/chat/%lld/",
                 (long long)json_integer_value(json_object_get(room, "id")));
        bool priv = json_is_true(json_object_get(room, "private"));
        bool member = json_is_true(json_object_get(room, "member"));
        sb_str(&items, priv ? "<li class=\"room private\"" : "<li class=\"room\"");
        sb_str(&items, member ? " data-member=\"true\"><a href=\"" : " data-member=\"false\"><a href=\"");
        sb_str(&items, href);
        sb_str(&items, "\">");
        sb_html(&items, json_string_value(json_object_get(room, "name")));
        sb_str(&items, "</a>");
        if (priv)
            sb_str(&items, " <span class=\"room-tag\">private</span>");
        else if (!member)
            sb_str(&items, " <span class=\"room-tag\">not joined</span>");
        sb_str(&items, "</li>\n");
    }
    if (items.oom) {
        free(items.p);
        return CHANC_ENOMEM;
    }
    const char *vars[] = {"username", j->user.username, "!rooms", items.p ? items.p : "", NULL};
    int rc = render(r, 200, "rooms.html", vars);
    free(items.p);
    return rc;
}

static int view_rooms(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    view_job_t *j = view_job_new(rooms_run, rooms_answer, "GET /");
    if (!j)
        return CHANC_ENOMEM;
    j->has_token = cookie_token(v, req, j->token);
    return view_run(v, req, j, j->has_token, r);
}

/* The form, with the username typed so far (escaped like every value). */
static int login_form(chanc_http_response_t *r, int status, const char *next,
                      const char *username, const char *error) {
    const char *vars[] = {"next", safe_next(next), "username", username, "error", error, NULL};
    return render(r, status, "login.html", vars);
}

/* A login's body: application/x-www-form-urlencoded, as the form posts it
 * (parameters such as charset allowed), or no Content-Type at all (curl,
 * scripts). */
static bool form_urlencoded(const chanc_http_request_t *req) {
    static const char want[] = "application/x-www-form-urlencoded";
    const char *type = header(req, "content-type");
    if (!type)
        return true;
    size_t n = strcspn(type, "; \t");
    return n == sizeof want - 1 && strncasecmp(type, want, n) == 0;
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
typedef struct login_job {
    chat_call_job_t call; /* first: the store steps, on the views' worker */
    uv_work_t work;       /* the hash check, on libuv's threadpool */
    chat_views_t *v;
    chanc_http_deferred_t *d;
    int rc; /* the last store step's */
    bool on_worker; /* its store steps go to the views' worker */
    chat_login_ticket_t ticket;   /* admitted by v->throttle */
    chat_login_outcome_t outcome; /* what the answer said, for the throttle */
    struct login_job *wait_next;  /* waiting for a hashing slot */
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
    complete(j->d, rc, r, "POST /login");
    login_free(j);
}

/* Refused by the throttle: the form again, 429 and when to try again. */
static int login_refused(chat_views_t *v, chanc_http_response_t *r, const char *next,
                         const char *username, uint32_t retry_after_s) {
    char msg[120];
    snprintf(v->retry_after, sizeof v->retry_after, "%u", retry_after_s);
    snprintf(msg, sizeof msg, "Too many login attempts. Try again in %u second%s.",
             retry_after_s, retry_after_s == 1 ? "" : "s");
    add_header(r, "Retry-After", v->retry_after);
    add_header(r, "Cache-Control", "no-store");
    return login_form(r, 429, next, username, msg);
}

static void login_submit(login_job_t *j, void (*run)(chat_store_t *, chat_call_job_t *),
                         void (*done)(chat_job_t *)) {
    j->call.h.kind = CHAT_JOB_CALL;
    j->call.h.now_ms = chanc_app_wall_ms(j->v->app);
    j->call.h.done = done;
    j->call.run = run;
    chat_worker_submit(j->v->worker, &j->call.h); /* holds the app until done */
}

static void login_work(uv_work_t *w) {
    login_job_t *j = w->data;
    j->ok = chat_password_verify(j->hash, j->password);
    sodium_memzero(j->password, sizeof j->password);
}

/* A session was created: set its cookie, go on to next. */
static int login_ok(chat_views_t *v, const char *token, const char *next,
                    chanc_http_response_t *r) {
    set_session_cookie(v, r, token, SESSION_MAX_AGE_S);
    return redirect(v, r, safe_next(next));
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
    j->v->hashing--;
    login_hash_next(j->v); /* the slot goes to the next in line first */
    if (status != 0) {
        login_complete(j, CHANC_EIO, &r);
    } else if (j->known && j->ok && j->on_worker) {
        if (j->v->worker)
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
    v->hashing++;
    if (uv_queue_work(chanc_app_loop(v->app), &j->work, login_work, login_after) != 0) {
        v->hashing--;
        chanc_http_response_t r = {0};
        login_complete(j, CHANC_EIO, &r);
        chanc_app_release(v->app);
    }
}

/* Start the longest waiting checks while fewer than the throttle's
 * `hashers` are hashing (no throttle: no bound). */
static void login_hash_next(chat_views_t *v) {
    uint32_t max = v->throttle ? chat_throttle_limits(v->throttle)->hashers : 0;
    while (v->hash_wait && (!max || v->hashing < max)) {
        login_job_t *j = v->hash_wait;
        v->hash_wait = j->wait_next;
        if (!v->hash_wait)
            v->hash_wait_tail = NULL;
        j->wait_next = NULL;
        login_hash_start(j);
    }
}

/* Check the password on the threadpool (j->d deferred; loop thread), in
 * turn: j joins the FIFO of checks waiting for a hashing slot. */
static void login_verify(login_job_t *j) {
    chat_views_t *v = j->v;
    chanc_app_hold(v->app); /* a graceful shutdown waits for the answer */
    if (v->hash_wait_tail)
        v->hash_wait_tail->wait_next = j;
    else
        v->hash_wait = j;
    v->hash_wait_tail = j;
    login_hash_next(v);
}

static void lookup_run(chat_store_t *s, chat_call_job_t *c) {
    login_job_t *j = (login_job_t *)c;
    j->rc = chat_store_password_lookup(s, j->username, &j->user, j->hash, &j->known);
}

static void lookup_done(chat_job_t *h) {
    login_job_t *j = (login_job_t *)h;
    chanc_http_response_t r = {0};
    if (j->rc < 0 || !j->v->worker) /* failed, or the views are stopping */
        login_complete(j, j->rc < 0 ? j->rc : CHANC_ECLOSED, &r);
    else
        login_verify(j);
}

static int view_login(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    char next[512] = "/";
    if (method_is(req, "GET")) {
        if (req->query)
            form_get(req->query, "next", next, sizeof next);
        return login_form(r, 200, next, "", "");
    }
    if (!method_is(req, "POST"))
        return not_allowed(r, "GET, HEAD, POST");
    if (foreign_origin(req))
        return respond_text(r, 403, "Forbidden: cross-origin form post");
    if (!form_urlencoded(req))
        return respond_text(r, 415, "Unsupported Media Type: a login is posted as "
                                    "application/x-www-form-urlencoded");
    login_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return CHANC_ENOMEM;
    j->v = v;
    j->outcome = CHAT_LOGIN_ERROR;
    const char *body = req->body ? req->body : "";
    form_get(body, "next", j->next, sizeof j->next);
    if (!j->next[0])
        strcpy(j->next, "/");
    bool has_username = form_get(body, "username", j->username, sizeof j->username);
    if (!has_username)
        j->username[0] = '\0'; /* a half-decoded one is not shown */
    if (!has_username || !form_get(body, "password", j->password, sizeof j->password)) {
        int rc = login_form(r, 401, j->next, j->username,
                            "Please enter a correct username and password.");
        login_free(j);
        return rc;
    }
    uint32_t retry_after_s;
    if (v->throttle && chat_throttle_admit(v->throttle, req->peer, j->username, &j->ticket,
                                           &retry_after_s) != CHAT_LOGIN_ADMITTED) {
        int rc = login_refused(v, r, j->next, j->username, retry_after_s);
        login_free(j);
        return rc;
    }
    if (v->worker) {
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
    view_job_t *j = (view_job_t *)c;
    chat_store_delete_session(s, j->token); /* unknown: already gone */
}

static int logout_answer(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    /* The session's sockets are closed before the answer (in this process;
     * other processes' when the event reaches them). */
    if (j->has_token && v->app)
        chat_session_end(v->app, j->token);
    set_session_cookie(v, r, "", 0);
    return redirect(v, r, "/login");
}

static int view_logout(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!method_is(req, "POST"))
        return not_allowed(r, "POST");
    if (foreign_origin(req))
        return respond_text(r, 403, "Forbidden: cross-origin form post");
    view_job_t *j = view_job_new(logout_run, logout_answer, "POST /logout");
    if (!j)
        return CHANC_ENOMEM;
    j->has_token = cookie_token(v, req, j->token);
    return view_run(v, req, j, j->has_token, r);
}

/* The room and whether the user may see it: a private room exists only
 * for its members. Store calls (after job_session). */
static void job_room(chat_store_t *s, view_job_t *j) {
    j->rc = chat_store_get_room(s, j->room_id, &j->room);
    if (j->rc == 0)
        j->member_rc = chat_store_is_member(s, j->room.id, j->user.id, &j->member);
    if (j->rc == 0 && j->member_rc == 0 && j->room.is_private && !j->member)
        j->rc = CHANC_ENOTFOUND; /* not revealed */
}

/* A private room's page lists its members (at most this many). */
#define PAGE_MEMBERS_MAX 100

static void job_members(chat_store_t *s, view_job_t *j) {
    if (j->rc == 0 && j->member_rc == 0 && j->member && j->room.is_private)
        j->member_rc = chat_store_room_members(s, j->room.id, PAGE_MEMBERS_MAX, &j->members);
}

static void room_run(chat_store_t *s, chat_call_job_t *c) {
    view_job_t *j = (view_job_t *)c;
    job_session(s, j);
    if (!j->logged_in)
        return;
    job_room(s, j);
    job_members(s, j);
}

static int to_login(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    char login[96];
    snprintf(login, sizeof login, "/login?next=/chat/%lld/", (long long)j->room_id);
    return redirect(v, r, login);
}

static int to_room(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    char page[64];
    snprintf(page, sizeof page, "/chat/%lld/", (long long)j->room.id);
    return redirect(v, r, page);
}

/* The answer when the user may not see the room, or a store call failed;
 * 0 when the page may be built. */
static int room_refused(view_job_t *j, chanc_http_response_t *r, bool *done) {
    *done = true;
    if (j->rc == CHANC_ENOTFOUND) /* missing, or private and not ours: the same answer */
        return respond_text(r, 404, "Not Found: no such room");
    if (j->rc < 0)
        return j->rc;
    if (j->member_rc < 0)
        return j->member_rc;
    *done = false;
    return 0;
}

/* The room page for a member, with a private room's members and its
 * "Invite" form (invite_error: shown under the form). */
static int room_page(view_job_t *j, chanc_http_response_t *r, int status,
                     const char *invite_error) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->room.id);
    sbuf_t extra = {0};
    if (j->room.is_private) {
        sb_str(&extra, "<section id=\"members\" class=\"members\" aria-label=\"Members\">\n"
                       "  <h2>Members</h2>\n  <ul id=\"member-list\">");
        size_t i;
        json_t *m;
        json_array_foreach(j->members, i, m) {
            sb_str(&extra, "<li>");
            sb_html(&extra, json_string_value(m));
            sb_str(&extra, "</li>");
        }
        sb_str(&extra, "</ul>\n  <form id=\"invite-form\" method=\"post\" action=\"/chat/");
        sb_str(&extra, id);
        sb_str(&extra, "/members\" autocomplete=\"off\">\n"
                       "    <input name=\"username\" type=\"text\" maxlength=\"150\" required "
                       "placeholder=\"Username\" aria-label=\"Username to invite\" "
                       "autocapitalize=\"none\" spellcheck=\"false\">\n"
                       "    <button type=\"submit\">Invite</button>\n  </form>\n"
                       "  <p id=\"invite-error\" class=\"form-error\" role=\"alert\">");
        sb_html(&extra, invite_error ? invite_error : "");
        sb_str(&extra, "</p>\n</section>\n");
    }
    if (extra.oom) {
        free(extra.p);
        return CHANC_ENOMEM;
    }
    const char *vars[] = {"room_id", id, "room_name", j->room.name, "username", j->user.username,
                          "!members", extra.p ? extra.p : "", NULL};
    int rc = render(r, status, "room.html", vars);
    free(extra.p);
    return rc;
}

static int room_answer(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    if (!j->logged_in)
        return to_login(v, j, r);
    bool done;
    int rc = room_refused(j, r, &done);
    if (done)
        return rc;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->room.id);
    if (!j->member) { /* a public room: joining is a POST from this page */
        const char *vars[] = {"room_id", id, "room_name", j->room.name, "username",
                              j->user.username, NULL};
        return render(r, 200, "join.html", vars);
    }
    return room_page(j, r, 200, NULL);
}

static int view_room(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r,
                     int64_t room_id) {
    view_job_t *j = view_job_new(room_run, room_answer, "GET /chat/{id}/");
    if (!j)
        return CHANC_ENOMEM;
    j->room_id = room_id;
    j->has_token = cookie_token(v, req, j->token);
    return view_run(v, req, j, j->has_token, r);
}

/* POST /chat/{id}/join: a public room adds the user (idempotent). */
static void join_run(chat_store_t *s, chat_call_job_t *c) {
    view_job_t *j = (view_job_t *)c;
    job_session(s, j);
    if (!j->logged_in)
        return;
    job_room(s, j);
    if (j->rc == 0 && j->member_rc == 0 && !j->member)
        j->member_rc = chat_store_add_member(s, j->room.id, j->user.id);
}

static int join_answer(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    if (!j->logged_in)
        return to_login(v, j, r);
    bool done;
    int rc = room_refused(j, r, &done);
    return done ? rc : to_room(v, j, r);
}

/* POST /chat/{id}/members, username=…: a member of a private room adds
 * that user to it (idempotent). */
static void invite_run(chat_store_t *s, chat_call_job_t *c) {
    view_job_t *j = (view_job_t *)c;
    job_session(s, j);
    if (!j->logged_in)
        return;
    job_room(s, j);
    if (j->rc < 0 || j->member_rc < 0 || !j->room.is_private)
        return;
    chat_user_t invitee;
    j->invite_rc = j->invitee[0] ? chat_store_get_user(s, j->invitee, &invitee) : CHANC_EINVAL;
    if (j->invite_rc == 0)
        j->invite_rc = chat_store_add_member(s, j->room.id, invitee.id);
    if (j->invite_rc < 0) /* the page again, with the error */
        job_members(s, j);
}

static int invite_answer(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    if (!j->logged_in)
        return to_login(v, j, r);
    bool done;
    int rc = room_refused(j, r, &done);
    if (done)
        return rc;
    if (!j->room.is_private)
        return respond_text(r, 400, "Bad Request: a public room is joined, not invited to");
    if (j->invite_rc == CHANC_EINVAL)
        return room_page(j, r, 400, "Type the username of the person to invite.");
    if (j->invite_rc == CHANC_ENOTFOUND) {
        char msg[CHAT_USERNAME_MAX * 4 + 32];
        snprintf(msg, sizeof msg, "There is no user called %s.", j->invitee);
        return room_page(j, r, 404, msg);
    }
    if (j->invite_rc < 0)
        return j->invite_rc;
    return to_room(v, j, r);
}

/* GET, or POST …/join and …/members (from the site's own pages). */
static int view_room_post(chat_views_t *v, const chanc_http_request_t *req,
                          chanc_http_response_t *r, int64_t room_id, bool invite) {
    if (!method_is(req, "POST"))
        return not_allowed(r, "POST");
    if (foreign_origin(req))
        return respond_text(r, 403, "Forbidden: cross-origin form post");
    if (invite && !form_urlencoded(req))
        return respond_text(r, 415, "Unsupported Media Type: an invitation is posted as "
                                    "application/x-www-form-urlencoded");
    view_job_t *j = invite ? view_job_new(invite_run, invite_answer, "POST /chat/{id}/members")
                           : view_job_new(join_run, join_answer, "POST /chat/{id}/join");
    if (!j)
        return CHANC_ENOMEM;
    j->room_id = room_id;
    j->has_token = cookie_token(v, req, j->token);
    if (invite && !form_get(req->body ? req->body : "", "username", j->invitee, sizeof j->invitee))
        j->invitee[0] = '\0';
    return view_run(v, req, j, j->has_token, r);
}

static int view_static(const chanc_http_request_t *req, chanc_http_response_t *r, const char *name) {
    static const struct {
        const char *suffix, *type;
    } types[] = {{".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        size_t n = strlen(name), s = strlen(types[i].suffix);
        if (n <= s || strcmp(name + n - s, types[i].suffix) != 0)
            continue;
        const chat_asset_t *a = chat_asset_find(name);
        if (!a)
            break;
        if (!method_is(req, "GET"))
            return not_allowed(r, "GET, HEAD");
        sbuf_t b = {0};
        sb_add(&b, a->data, a->len);
        add_header(r, "Cache-Control", "no-cache");
        return respond(r, 200, types[i].type, &b);
    }
    return respond_text(r, 404, "Not Found");
}

/* ---- metrics ------------------------------------------------------------------------ */

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void metric(sbuf_t *b, const char *name, const char *type, const char *help, uint64_t v) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
              (unsigned long long)v);
}

/* An address (IPv4 as IPv4-mapped IPv6); false when it is none. */
static bool parse_addr(const char *s, unsigned char out[16]) {
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, s, out) == 1;
}

int chat_views_allow_metrics(chat_views_t *v, const char *list, chanc_error_t *err) {
    chat_cidr_t allow[CHAT_METRICS_ALLOW_MAX];
    size_t n = 0;
    for (const char *p = list ? list : ""; *p;) {
        size_t len = strcspn(p, ",");
        char item[64];
        const char *b = p, *e = p + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        p += len + (p[len] == ',');
        if (b == e)
            continue;
        if ((size_t)(e - b) >= sizeof item)
            return chanc_error_set(err, CHANC_EINVAL, "--metrics-allow: not an address: %.*s",
                                   (int)(e - b > 60 ? 60 : e - b), b);
        memcpy(item, b, (size_t)(e - b));
        item[e - b] = '\0';
        if (n == CHAT_METRICS_ALLOW_MAX)
            return chanc_error_set(err, CHANC_EINVAL, "--metrics-allow: at most %d entries",
                                   CHAT_METRICS_ALLOW_MAX);
        char *slash = strchr(item, '/');
        long bits = -1;
        if (slash) {
            char *end;
            *slash = '\0';
            bits = isdigit((unsigned char)slash[1]) ? strtol(slash + 1, &end, 10) : -1;
            if (bits < 0 || *end)
                bits = 999;
        }
        bool v4 = strchr(item, ':') == NULL;
        if (!parse_addr(item, allow[n].addr) || bits > (v4 ? 32 : 128)) {
            if (slash)
                *slash = '/';
            return chanc_error_set(err, CHANC_EINVAL,
                                   "--metrics-allow: not an address or CIDR block: %s", item);
        }
        allow[n].bits = bits < 0 ? 128u : (unsigned)bits + (v4 ? 96u : 0u);
        n++;
    }
    if (n == 0)
        return chanc_error_set(err, CHANC_EINVAL, "--metrics-allow: no address given");
    memcpy(v->metrics_allow, allow, n * sizeof *allow);
    v->metrics_nallow = n;
    return 0;
}

int chat_views_metrics_token(chat_views_t *v, const char *token, chanc_error_t *err) {
    size_t n = token ? strlen(token) : 0;
    if (n < CHAT_METRICS_TOKEN_MIN || n > CHAT_METRICS_TOKEN_MAX)
        return chanc_error_set(err, CHANC_EINVAL, "the metrics token must be %d to %d characters",
                               CHAT_METRICS_TOKEN_MIN, CHAT_METRICS_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        if (token[i] <= 0x20 || token[i] >= 0x7f)
            return chanc_error_set(err, CHANC_EINVAL,
                                   "the metrics token must be printable ASCII without spaces");
    memcpy(v->metrics_token, token, n + 1);
    return 0;
}

static bool in_block(const unsigned char a[16], const chat_cidr_t *c) {
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (c->addr[full] & mask);
}

/* A refusal built (1), or building it failed (< 0). */
static int refusal(int rc) { return rc < 0 ? rc : 1; }

/* May this request read /metrics? 0 when it may; else the refusal in r. */
static int metrics_refused(chat_views_t *v, const chanc_http_request_t *req,
                           chanc_http_response_t *r) {
    if (!v->metrics_nallow && !v->metrics_token[0])
        return refusal(respond_text(r, 403, "Forbidden: /metrics needs an allow-list or a token "
                                    "(--metrics-allow, --metrics-token-file)"));
    if (v->metrics_nallow) {
        unsigned char a[16];
        bool ok = req->peer && parse_addr(req->peer, a);
        for (size_t i = 0; ok && i < v->metrics_nallow; i++)
            if (in_block(a, &v->metrics_allow[i]))
                goto address_ok;
        return refusal(respond_text(r, 403, "Forbidden: /metrics is not served to this address"));
    }
address_ok:
    if (v->metrics_token[0]) {
        const char *auth = header(req, "authorization");
        size_t n = strlen(v->metrics_token);
        bool ok = auth && strncasecmp(auth, "Bearer ", 7) == 0;
        if (ok) {
            const char *given = auth + 7;
            while (*given == ' ')
                given++;
            ok = strlen(given) == n && sodium_memcmp(given, v->metrics_token, n) == 0;
        }
        if (!ok) {
            add_header(r, "WWW-Authenticate", "Bearer realm=\"metrics\"");
            return refusal(respond_text(r, 401, "Unauthorized: /metrics needs its bearer token"));
        }
    }
    return 0;
}

/* POST /login: checked attempts by result, refusals (429) by reason. */
static void login_metrics(sbuf_t *b, const chat_throttle_t *th) {
    chat_login_stats_t ls;
    chat_throttle_stats(th, &ls);
    sb_printf(b, "# HELP chat_logins_total Login attempts whose password was checked, by "
                 "result.\n# TYPE chat_logins_total counter\n"
                 "chat_logins_total{result=\"ok\"} %llu\nchat_logins_total{result=\"failed\"} %llu\n",
              (unsigned long long)ls.succeeded, (unsigned long long)ls.failed);
    sb_printf(b, "# HELP chat_login_throttled_total Login attempts refused with 429 before any "
                 "password check, by reason.\n# TYPE chat_login_throttled_total counter\n");
    sb_printf(b, "chat_login_throttled_total{reason=\"address\"} %llu\n"
                 "chat_login_throttled_total{reason=\"username\"} %llu\n"
                 "chat_login_throttled_total{reason=\"busy\"} %llu\n",
              (unsigned long long)ls.limited_addr, (unsigned long long)ls.limited_user,
              (unsigned long long)ls.busy);
    metric(b, "chat_login_checks_in_flight", "gauge",
           "Login attempts admitted and not yet answered.", ls.in_flight);
}

/* Prometheus text format, version 0.0.4. */
static int view_metrics(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!method_is(req, "GET"))
        return not_allowed(r, "GET, HEAD");
    int refused = metrics_refused(v, req, r);
    if (refused)
        return refused < 0 ? refused : 0;
    sbuf_t b = {0};
    if (v->app) {
        chanc_app_stats_t a;
        chanc_app_stats(v->app, &a);
        metric(&b, "chanc_connections_open", "gauge", "Open WebSocket connections.",
               chanc_app_connections(v->app));
        metric(&b, "chanc_connections_total", "counter", "WebSocket connections opened.",
               a.connections);
        metric(&b, "chanc_frames_received_total", "counter", "Frames received from clients.",
               a.frames_in);
        metric(&b, "chanc_frames_sent_total", "counter", "Frames sent, completions included.",
               a.frames_out);
        metric(&b, "chanc_bytes_sent_total", "counter", "Payload bytes of the frames sent.",
               a.bytes_out);
        metric(&b, "chanc_encodes_total", "counter", "JSON documents serialised.", a.encodes);
        metric(&b, "chanc_group_messages_total", "counter", "Group and channel messages published.",
               a.group_messages);
        metric(&b, "chanc_group_deliveries_total", "counter",
               "Group messages delivered to a local connection.", a.group_deliveries);
        metric(&b, "chanc_validation_errors_total", "counter",
               "Frames answered with a validation error.", a.validation_errors);
        metric(&b, "chanc_handler_errors_total", "counter", "Frames whose handler failed.",
               a.handler_errors);
        metric(&b, "chanc_rate_limited_total", "counter", "Frames refused by the rate limit.",
               a.rate_limited);
        metric(&b, "chanc_slow_client_closes_total", "counter",
               "Connections closed with 1008: outgoing queue full.", a.slow_clients);
    }
    if (v->server) {
        chanc_server_stats_t st;
        chanc_server_stats(v->server, &st);
        metric(&b, "chanc_queued_bytes", "gauge", "Bytes waiting in the outgoing queues.",
               st.queued_bytes);
        metric(&b, "chanc_handshakes_refused_total", "counter",
               "Handshakes refused with 503: max_connections.", st.refused_full);
    }
    chat_commit_stats_t c;
    chat_commit_stats(&c);
    metric(&b, "chat_commit_failures_total", "counter", "Chat message commits that failed.",
           c.failed);
    metric(&b, "chat_commit_transactions_total", "counter",
           "Transactions that committed chat messages (several at once when they wait).",
           c.transactions);
    sb_str(&b, "# HELP chat_commit_seconds Time of the commit each chat message was part of.\n"
               "# TYPE chat_commit_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < CHAT_COMMIT_BUCKETS; i++) {
        cum += c.bucket[i];
        sb_printf(&b, "chat_commit_seconds_bucket{le=\"%g\"} %llu\n",
                  chat_commit_bucket_us[i] / 1e6, (unsigned long long)cum);
    }
    sb_printf(&b, "chat_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)c.count);
    sb_printf(&b, "chat_commit_seconds_sum %.9f\nchat_commit_seconds_count %llu\n",
              c.sum_ns / 1e9, (unsigned long long)c.count);
    if (v->throttle)
        login_metrics(&b, v->throttle);
    return respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* GET /healthz, for load balancers and orchestrators: 200 when the
 * database answers, 503 when it does not; the body says what the process
 * holds (JSON). A channel layer that is reconnecting does not make it
 * unhealthy: connections stay up and messages stay durable. */
static void health_run(chat_store_t *s, chat_call_job_t *c) {
    view_job_t *j = (view_job_t *)c;
    j->rc = chat_store_user_count(s, &j->users);
}

static int health_answer(chat_views_t *v, view_job_t *j, chanc_http_response_t *r) {
    bool db_ok = j->rc >= 0;
    json_t *body = json_pack("{s:s,s:s,s:b}", "status", db_ok ? "ok" : "unavailable", "database",
                             chat_store_backend_name(v->store), "database_ok", db_ok);
    if (v->app) {
        chanc_layer_t *layer = chanc_app_layer(v->app);
        chanc_layer_stats_t ls;
        chanc_layer_stats(layer, &ls);
        json_object_set_new(body, "connections",
                            json_integer((json_int_t)chanc_app_connections(v->app)));
        json_object_set_new(body, "layer", json_string(layer->ops->name));
        json_object_set_new(body, "layer_connected", json_boolean(ls.connected));
    }
    char *text = chanc_json_dump(body); /* malloc'd, compact */
    json_decref(body);
    sbuf_t b = {0};
    if (text)
        sb_str(&b, text);
    free(text);
    add_header(r, "Cache-Control", "no-store");
    return respond(r, db_ok ? 200 : 503, "application/json", &b);
}

static int view_health(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!method_is(req, "GET"))
        return not_allowed(r, "GET, HEAD");
    view_job_t *j = view_job_new(health_run, health_answer, "GET /healthz");
    if (!j)
        return CHANC_ENOMEM;
    return view_run(v, req, j, true, r);
}

/* "/chat/<digits>/<rest>" → the id (ids too big: 0, no such room) and
 * *rest ("", "join", "members"); -1 otherwise. */
static int64_t room_path(const char *path, const char **rest) {
    if (strncmp(path, "/chat/", 6) != 0 || !isdigit((unsigned char)path[6]))
        return -1;
    int64_t id = 0;
    const char *p = path + 6;
    for (; isdigit((unsigned char)*p); p++)
        id = id > (INT64_MAX - 9) / 10 ? INT64_MAX : id * 10 + (*p - '0');
    if (*p != '/')
        return -1;
    *rest = p + 1;
    if (strcmp(*rest, "") != 0 && strcmp(*rest, "join") != 0 && strcmp(*rest, "members") != 0)
        return -1;
    return id == INT64_MAX ? 0 : id;
}

static int route(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);

int chat_views_handle(void *ud, const chanc_http_request_t *req, chanc_http_response_t *r) {
    int rc = route(ud, req, r);
    if (rc == 0)
        page_headers(r); /* a deferred answer gets them in complete */
    return rc;
}

static int route(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    const char *path = req->path;
    if (strcmp(path, "/") == 0)
        return method_is(req, "GET") ? view_rooms(v, req, r) : not_allowed(r, "GET, HEAD");
    if (strcmp(path, "/login") == 0 || strcmp(path, "/login/") == 0)
        return view_login(v, req, r);
    if (strcmp(path, "/logout") == 0 || strcmp(path, "/logout/") == 0)
        return view_logout(v, req, r);
    if (strcmp(path, "/healthz") == 0)
        return view_health(v, req, r);
    if (v->metrics && strcmp(path, "/metrics") == 0)
        return view_metrics(v, req, r);
    if (strcmp(path, "/asyncapi.json") == 0 || strcmp(path, "/docs") == 0)
        return chat_docs_view(v, req, r); /* public: the protocol, chanc/chat_docs.h */
    if (strncmp(path, "/static/", 8) == 0 && !strchr(path + 8, '/'))
        return view_static(req, r, path + 8);
    const char *rest = "";
    int64_t room = room_path(path, &rest);
    if (room >= 0 && *rest)
        return view_room_post(v, req, r, room, strcmp(rest, "members") == 0);
    if (room >= 0) {
        if (!method_is(req, "GET"))
            return not_allowed(r, "GET, HEAD");
        return view_room(v, req, r, room);
    }
    return respond_text(r, 404, "Not Found");
}

/* ---- the database thread ------------------------------------------------------------ */

static void views_stop(void *arg) { chat_views_stop(arg); }

int chat_views_start(chat_views_t *v, chanc_error_t *err) {
    if (!v || !v->store || !v->app || v->worker)
        return chanc_error_set(err, CHANC_EINVAL, "chat_views_start: needs a store and an app, once");
    struct chat_worker *w = chat_worker_create(v->app, v->store, err);
    if (!w)
        return err && err->code ? err->code : CHANC_EIO;
    int rc = chanc_app_on_destroy(v->app, views_stop, v);
    if (rc < 0) {
        chat_worker_destroy(w);
        return chanc_error_set(err, rc, "out of memory");
    }
    v->worker = w;
    return 0;
}

void chat_views_stop(chat_views_t *v) {
    if (!v || !v->worker)
        return;
    /* Cleared first: the answers destroy still runs may not submit again
     * (a login between its hash check and its session would). */
    struct chat_worker *w = v->worker;
    v->worker = NULL;
    chat_worker_destroy(w);
}

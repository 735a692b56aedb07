/* The chat's HTTP views: the room list, login/logout, the room page,
 * metrics, health and the static assets, on chanc_server's HTTP handler
 * interface.
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
 *   POST /api/rooms/{id}/announcements  a staff user's announcement to the
 *                       room's members (JSON; views_announce.c)
 *   GET  /metrics       Prometheus text, when configured (chat_views_t)
 *   GET  /healthz       200 when the database answers, else 503 (JSON)
 *   GET  /static/NAME   room.js, style.css, favicon.svg
 *   GET  /asyncapi.json the AsyncAPI document of the WebSocket protocol,
 *   GET  /docs          and the reference page rendered from it (public;
 *                       views_docs.c)
 *
 * Every value put into a page is HTML-escaped. POSTs from a foreign Origin
 * are refused (403), on top of the SameSite=Lax cookie.
 *
 * This file routes a request to its view and runs the views' store calls
 * (on their database thread, answering later); the views themselves and
 * their helpers are in views_*.c (views_internal.h says which). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "chanc/chat_docs.h"
#include "views_internal.h"

const chat_asset_t *chat_asset_find(const char *name) {
    for (const chat_asset_t *a = chat_assets; a->name; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* ---- answering later ---------------------------------------------------------------- */

/* What the server itself answers when a handler fails (its http_error),
 * so that a view failing after a deferral looks the same as before. */
static void respond_500(chanc_http_response_t *r) {
    *r = (chanc_http_response_t){0};
    chat_sbuf_t b = {0};
    chat_sb_str(&b, "500 Internal Server Error\n");
    chat_http_respond(r, 500, "text/plain; charset=utf-8", &b);
}

void chat_views__complete(chanc_http_deferred_t *d, int rc, chanc_http_response_t *r,
                          const char *what) {
    if (rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "HTTP %s: view failed: %s", what, chanc_strerror(rc));
        free(r->body);
        respond_500(r);
    }
    chat_http_page_headers(r);
    chanc_http_complete(d, r);
    free(r->body); /* NULL unless complete left it (it takes it) */
}

chat_view_job_t *chat_view_job_new(void (*run)(chat_store_t *, chat_call_job_t *),
                                   int (*answer)(chat_view_job_t *, chanc_http_response_t *),
                                   const char *what) {
    chat_view_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->call.h.kind = CHAT_JOB_CALL;
    j->call.run = run;
    j->answer = answer;
    j->what = what;
    return j;
}

static void view_job_free(chat_view_job_t *j) {
    json_decref(j->payload);
    json_decref(j->rooms);
    json_decref(j->members);
    free(j);
}

void chat_view_job_session(chat_store_t *s, chat_view_job_t *j) {
    j->logged_in = j->has_token && chat_store_session_user(s, j->token, &j->user) == 0;
}

static void view_done(chat_job_t *h) {
    chat_view_job_t *j = (chat_view_job_t *)h;
    chanc_http_response_t r = {0};
    chat_views__complete(j->d, j->answer(j, &r), &r, j->what);
    view_job_free(j);
}

int chat_view_job_run(chat_views_t *v, const chanc_http_request_t *req, chat_view_job_t *j,
                      bool store, chanc_http_response_t *r) {
    j->v = v;
    if (!store || !v->worker_) {
        if (store)
            j->call.run(v->store, &j->call);
        int rc = j->answer(j, r);
        view_job_free(j);
        return rc;
    }
    if (!(j->d = chanc_http_defer(req))) {
        view_job_free(j);
        return CHANC_ENOMEM;
    }
    j->call.h.now_ms = chanc_app_wall_ms(v->app);
    j->call.h.done = view_done;
    chat_worker_submit(v->worker_, &j->call.h); /* holds the app until done */
    return CHANC_HTTP_DEFERRED;
}

/* ---- static assets ----------------------------------------------------------------- */

static int view_static(const chanc_http_request_t *req, chanc_http_response_t *r,
                       const char *name) {
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
        if (!chat_http_method_is(req, "GET"))
            return chat_http_not_allowed(r, "GET, HEAD");
        chat_sbuf_t b = {0};
        chat_sb_add(&b, a->data, a->len);
        chat_http_add_header(r, "Cache-Control", "no-cache");
        return chat_http_respond(r, 200, types[i].type, &b);
    }
    return chat_http_respond_text(r, 404, "Not Found");
}

/* ---- routing ----------------------------------------------------------------------- */

/* "<prefix><digits>/<rest>" → the id (ids too big: 0, no such room) and
 * *rest; -1 otherwise. */
static int64_t id_path(const char *path, const char *prefix, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0 || !isdigit((unsigned char)path[n]))
        return -1;
    int64_t id = 0;
    const char *p = path + n;
    for (; isdigit((unsigned char)*p); p++)
        id = id > (INT64_MAX - 9) / 10 ? INT64_MAX : id * 10 + (*p - '0');
    if (*p != '/')
        return -1;
    *rest = p + 1;
    return id == INT64_MAX ? 0 : id;
}

/* "/chat/<digits>/<rest>" → the id and *rest ("", "join", "members"); -1
 * otherwise. */
static int64_t room_path(const char *path, const char **rest) {
    int64_t id = id_path(path, "/chat/", rest);
    if (id >= 0 && strcmp(*rest, "") != 0 && strcmp(*rest, "join") != 0 &&
        strcmp(*rest, "members") != 0)
        return -1;
    return id;
}

static int route(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);

int chat_views_handle(void *ud, const chanc_http_request_t *req, chanc_http_response_t *r) {
    int rc = route(ud, req, r);
    if (rc == 0)
        chat_http_page_headers(r); /* a deferred answer gets them in complete */
    return rc;
}

static int route(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    const char *path = req->path;
    if (strcmp(path, "/") == 0)
        return chat_http_method_is(req, "GET") ? chat_views__rooms(v, req, r)
                                               : chat_http_not_allowed(r, "GET, HEAD");
    if (strcmp(path, "/login") == 0 || strcmp(path, "/login/") == 0)
        return chat_views__login(v, req, r);
    if (strcmp(path, "/logout") == 0 || strcmp(path, "/logout/") == 0)
        return chat_views__logout(v, req, r);
    if (strcmp(path, "/healthz") == 0)
        return chat_views__health(v, req, r);
    if (v->metrics && strcmp(path, "/metrics") == 0)
        return chat_views__metrics(v, req, r);
    if (strcmp(path, "/asyncapi.json") == 0 || strcmp(path, "/docs") == 0)
        return chat_docs_view(v, req, r); /* public: the protocol, chanc/chat_docs.h */
    if (strncmp(path, "/static/", 8) == 0 && !strchr(path + 8, '/'))
        return view_static(req, r, path + 8);
    const char *rest = "";
    int64_t room = id_path(path, "/api/rooms/", &rest);
    if (room >= 0 && strcmp(rest, "announcements") == 0)
        return chat_views__announce(v, req, r, room);
    room = room_path(path, &rest);
    if (room >= 0 && *rest)
        return chat_views__room_post(v, req, r, room, strcmp(rest, "members") == 0);
    if (room >= 0) {
        if (!chat_http_method_is(req, "GET"))
            return chat_http_not_allowed(r, "GET, HEAD");
        return chat_views__room(v, req, r, room);
    }
    return chat_http_respond_text(r, 404, "Not Found");
}

/* ---- the database thread ------------------------------------------------------------ */

static void views_stop(void *arg) { chat_views_stop(arg); }

int chat_views_start(chat_views_t *v, chanc_error_t *err) {
    if (!v || !v->store || !v->app || v->worker_)
        return chanc_error_set(err, CHANC_EINVAL,
                               "chat_views_start: needs a store and an app, once");
    struct chat_worker *w = chat_worker_create(v->app, v->store, err);
    if (!w)
        return err && err->code ? err->code : CHANC_EIO;
    int rc = chanc_app_on_destroy(v->app, views_stop, v);
    if (rc < 0) {
        chat_worker_destroy(w);
        return chanc_error_set(err, rc, "out of memory");
    }
    v->worker_ = w;
    return 0;
}

void chat_views_stop(chat_views_t *v) {
    if (!v || !v->worker_)
        return;
    /* Cleared first: the answers destroy still runs may not submit again
     * (a login between its hash check and its session would). */
    struct chat_worker *w = v->worker_;
    v->worker_ = NULL;
    chat_worker_destroy(w);
}

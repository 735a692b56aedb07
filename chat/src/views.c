/* The chat's HTTP views: the room list, login/logout, the room page and
 * the static assets, on chanc_server's HTTP handler interface.
 *
 *   GET  /              rooms (login required → 302 /login?next=/)
 *   GET  /login         the form          POST /login   check, set the cookie
 *   POST /logout        end the session
 *   GET  /chat/{id}/    the room page (login required; 404 for a missing
 *                       room; makes the visitor a member, as the documented
 *                       view does)
 *   GET  /static/NAME   room.js, style.css
 *
 * Every value put into a page is HTML-escaped. POSTs from a foreign Origin
 * are refused (403), on top of the SameSite=Lax cookie. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "assets.h"
#include "chanc/chat_views.h"

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

/* The logged-in user from the session cookie; false when anonymous. */
static bool session_user(chat_views_t *v, const chanc_http_request_t *req, chat_user_t *u) {
    const char *cookies = header(req, "cookie");
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    return cookies && chanc_cookie_get(cookies, "sessionid", token, sizeof token) >= 0 &&
           chat_store_session_user(v->store, token, u) == 0;
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

/* ---- views ------------------------------------------------------------------------ */

static int view_rooms(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    chat_user_t u;
    if (!session_user(v, req, &u))
        return redirect(v, r, "/login?next=/");
    json_t *rooms = NULL;
    int rc = chat_store_list_rooms(v->store, &rooms);
    if (rc < 0)
        return rc;
    sbuf_t items = {0};
    size_t i;
    json_t *room;
    json_array_foreach(rooms, i, room) {
        char href[64];
        snprintf(href, sizeof href, "/chat/%lld/",
                 (long long)json_integer_value(json_object_get(room, "id")));
        sb_str(&items, "<li><a href=\"");
        sb_str(&items, href);
        sb_str(&items, "\">");
        sb_html(&items, json_string_value(json_object_get(room, "name")));
        sb_str(&items, "</a></li>\n");
    }
    json_decref(rooms);
    if (items.oom) {
        free(items.p);
        return CHANC_ENOMEM;
    }
    const char *vars[] = {"username", u.username, "!rooms", items.p ? items.p : "", NULL};
    rc = render(r, 200, "rooms.html", vars);
    free(items.p);
    return rc;
}

static int login_form(chanc_http_response_t *r, int status, const char *next, const char *error) {
    const char *vars[] = {"next", safe_next(next), "error", error, NULL};
    return render(r, status, "login.html", vars);
}

/* A login whose password check runs on libuv's threadpool: the hash
 * verification costs ~100 ms of CPU and 64 MiB, which must not stall the
 * loop (every chat connection lives on it). */
typedef struct login_job {
    uv_work_t work;
    chat_views_t *v;
    chanc_http_deferred_t *d;
    chat_user_t user;
    bool known, ok;
    char hash[CHAT_PASSWORD_HASH_MAX];
    char password[1024];
    char next[512];
} login_job_t;

static void login_work(uv_work_t *w) {
    login_job_t *j = w->data;
    j->ok = chat_password_verify(j->hash, j->password);
    sodium_memzero(j->password, sizeof j->password);
}

/* The answer to a login attempt, on the loop thread. */
static int login_answer(chat_views_t *v, bool ok, const chat_user_t *u, const char *next,
                        chanc_http_response_t *r) {
    if (!ok)
        return login_form(r, 401, next, "Please enter a correct username and password.");
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    int rc = chat_store_create_session(v->store, u->id, token);
    if (rc < 0)
        return rc;
    snprintf(v->cookie, sizeof v->cookie,
             "sessionid=%s; HttpOnly; SameSite=Lax; Path=/; Max-Age=%d", token,
             SESSION_MAX_AGE_S);
    add_header(r, "Set-Cookie", v->cookie);
    return redirect(v, r, safe_next(next));
}

static void login_after(uv_work_t *w, int status) {
    login_job_t *j = w->data;
    chanc_http_response_t r = {0};
    if (status != 0 || login_answer(j->v, j->known && j->ok, &j->user, j->next, &r) < 0) {
        free(r.body);
        r = (chanc_http_response_t){0};
        respond_text(&r, 500, "Internal Server Error");
    }
    chanc_http_complete(j->d, &r);
    free(r.body); /* NULL unless complete left it (it takes it) */
    chanc_app_release(j->v->app);
    sodium_memzero(j, sizeof *j);
    free(j);
}

static int view_login(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    char next[512] = "/";
    if (method_is(req, "GET")) {
        if (req->query)
            form_get(req->query, "next", next, sizeof next);
        return login_form(r, 200, next, "");
    }
    if (!method_is(req, "POST"))
        return not_allowed(r, "GET, HEAD, POST");
    if (foreign_origin(req))
        return respond_text(r, 403, "Forbidden: cross-origin form post");
    login_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return CHANC_ENOMEM;
    char username[CHAT_USERNAME_MAX * 4 + 1];
    const char *body = req->body ? req->body : "";
    form_get(body, "next", j->next, sizeof j->next);
    if (!j->next[0])
        strcpy(j->next, "/");
    if (!form_get(body, "username", username, sizeof username) ||
        !form_get(body, "password", j->password, sizeof j->password)) {
        free(j);
        return login_form(r, 401, next, "Please enter a correct username and password.");
    }
    int rc = chat_store_password_lookup(v->store, username, &j->user, j->hash, &j->known);
    if (rc == 0 && !v->app) { /* no loop to work on: verify here */
        bool ok = j->known && chat_password_verify(j->hash, j->password);
        rc = login_answer(v, ok, &j->user, j->next, r);
        sodium_memzero(j, sizeof *j);
        free(j);
        return rc;
    }
    if (rc == 0 && !(j->d = chanc_http_defer(req)))
        rc = CHANC_ENOMEM;
    if (rc < 0) {
        sodium_memzero(j, sizeof *j);
        free(j);
        return rc;
    }
    j->v = v;
    j->work.data = j;
    chanc_app_hold(v->app); /* a graceful shutdown waits for the answer */
    if (uv_queue_work(chanc_app_loop(v->app), &j->work, login_work, login_after) != 0) {
        chanc_app_release(v->app);
        chanc_http_response_t err = {0};
        respond_text(&err, 500, "Internal Server Error");
        chanc_http_complete(j->d, &err);
        free(err.body);
        sodium_memzero(j, sizeof *j);
        free(j);
        return CHANC_HTTP_DEFERRED;
    }
    return CHANC_HTTP_DEFERRED;
}

static int view_logout(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!method_is(req, "POST"))
        return not_allowed(r, "POST");
    if (foreign_origin(req))
        return respond_text(r, 403, "Forbidden: cross-origin form post");
    const char *cookies = header(req, "cookie");
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    if (cookies && chanc_cookie_get(cookies, "sessionid", token, sizeof token) >= 0)
        chat_store_delete_session(v->store, token); /* unknown: already gone */
    snprintf(v->cookie, sizeof v->cookie, "sessionid=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    add_header(r, "Set-Cookie", v->cookie);
    return redirect(v, r, "/login");
}

static int view_room(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r,
                     int64_t room_id) {
    chat_user_t u;
    if (!session_user(v, req, &u)) {
        char login[96];
        snprintf(login, sizeof login, "/login?next=/chat/%lld/", (long long)room_id);
        return redirect(v, r, login);
    }
    chat_room_t room;
    int rc = chat_store_get_room(v->store, room_id, &room);
    if (rc == CHANC_ENOTFOUND)
        return respond_text(r, 404, "Not Found: no such room");
    if (rc < 0)
        return rc;
    if ((rc = chat_store_add_member(v->store, room.id, u.id)) < 0 && rc != CHANC_EEXIST)
        return rc;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)room.id);
    const char *vars[] = {"room_id", id, "room_name", room.name, "username", u.username, NULL};
    return render(r, 200, "room.html", vars);
}

static int view_static(const chanc_http_request_t *req, chanc_http_response_t *r, const char *name) {
    static const struct {
        const char *suffix, *type;
    } types[] = {{".js", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"}};
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

static bool loopback(const char *peer) {
    return peer && (strncmp(peer, "127.", 4) == 0 || strcmp(peer, "::1") == 0 ||
                    strncmp(peer, "::ffff:127.", 11) == 0);
}

/* Prometheus text format, version 0.0.4. */
static int view_metrics(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!method_is(req, "GET"))
        return not_allowed(r, "GET, HEAD");
    if (req->peer && *req->peer && !loopback(req->peer))
        return respond_text(r, 403, "Forbidden: /metrics answers loopback clients only");
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
    return respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* GET /healthz, for load balancers and orchestrators: 200 when the
 * database answers, 503 when it does not; the body says what the process
 * holds (JSON). A channel layer that is reconnecting does not make it
 * unhealthy: connections stay up and messages stay durable. */
static int view_health(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!method_is(req, "GET"))
        return not_allowed(r, "GET, HEAD");
    int64_t users = 0;
    bool db_ok = chat_store_user_count(v->store, &users) >= 0;
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

/* "/chat/<digits>/" → the id; -1 otherwise (ids too big: no such room). */
static int64_t room_path(const char *path) {
    if (strncmp(path, "/chat/", 6) != 0 || !isdigit((unsigned char)path[6]))
        return -1;
    int64_t id = 0;
    const char *p = path + 6;
    for (; isdigit((unsigned char)*p); p++) {
        if (id > (INT64_MAX - 9) / 10)
            return 0;
        id = id * 10 + (*p - '0');
    }
    return strcmp(p, "/") == 0 ? id : -1;
}

int chat_views_handle(void *ud, const chanc_http_request_t *req, chanc_http_response_t *r) {
    chat_views_t *v = ud;
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
    if (strncmp(path, "/static/", 8) == 0 && !strchr(path + 8, '/'))
        return view_static(req, r, path + 8);
    int64_t room = room_path(path);
    if (room >= 0) {
        if (!method_is(req, "GET"))
            return not_allowed(r, "GET, HEAD");
        return view_room(v, req, r, room);
    }
    return respond_text(r, 404, "Not Found");
}

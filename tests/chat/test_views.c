/* chat.views: the chat's HTTP views called directly, as chanc_server calls
 * them (password checks inline: no app). One table row per request:
 * status, Location, whether a session cookie is set. The redirect target
 * after login (`next`) must never leave the site. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat_throttle.h"
#include "chanc/chat_views.h"
#include "chat_test.h"

typedef struct row {
    const char *method, *path, *query, *body, *origin;
    const char *content_type; /* NULL: no Content-Type header */
    bool logged_in;
    int status;
    const char *location; /* NULL: none */
    bool sets_cookie;
    const char *body_has; /* NULL: not checked */
} row_t;

#define LOGIN(next) "username=testuser&password=testpass123&next=" next
#define FORM "application/x-www-form-urlencoded"
#define MULTIPART "multipart/form-data; boundary=----chanc"
#define MULTIPART_LOGIN                                                                    \
    "------chanc\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\ntestuser\r\n" \
    "------chanc\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ntestpass123\r\n" \
    "------chanc--\r\n"
#define TEXT "text/plain;charset=UTF-8"

static const row_t rows[] = {
    {"GET", "/", .status = 302, .location = "/login?next=/"},
    {"GET", "/", .logged_in = true, .status = 200},
    {"HEAD", "/", .logged_in = true, .status = 200},
    {"PUT", "/", .status = 405},
    {"GET", "/login", "next=/chat/1/", .status = 200},
    {"POST", "/login", .body = LOGIN("%2Fchat%2F1%2F"), .status = 302, .location = "/chat/1/",
     .sets_cookie = true},
    {"POST", "/login", .body = "username=testuser&password=nope", .status = 401},
    {"POST", "/login", .body = "username=nobody&password=nope", .status = 401},
    {"POST", "/login", .body = "password=testpass123", .status = 401},
    {"POST", "/login", .body = LOGIN("%2Fchat%2F1%2F"), .origin = "http://evil.example",
     .status = 403},
    /* next: only a path on this site */
    {"POST", "/login", .body = LOGIN("%2F%2Fevil.example%2F"), .status = 302, .location = "/",
     .sets_cookie = true},
    {"POST", "/login", .body = LOGIN("%2F%5Cevil.example"), .status = 302, .location = "/",
     .sets_cookie = true},
    {"POST", "/login", .body = LOGIN("https%3A%2F%2Fevil.example%2F"), .status = 302,
     .location = "/", .sets_cookie = true},
    {"POST", "/login", .body = LOGIN("%2F%09%2Fevil.example"), .status = 302, .location = "/",
     .sets_cookie = true}, /* a tab: browsers drop it and see //evil.example */
    {"POST", "/login", .body = LOGIN("%2Fchat%0D%0ASet-Cookie:x=y"), .status = 302,
     .location = "/", .sets_cookie = true},
    {"POST", "/login", .body = LOGIN("%2Fchat%12"), .status = 302, .location = "/",
     .sets_cookie = true}, /* found by fuzz_http */
    /* The form kept after a failed login: the username typed (escaped),
     * where to go next. */
    {"POST", "/login", .body = "username=testuser&password=nope", .content_type = FORM,
     .status = 401, .body_has = "value=\"testuser\""},
    {"POST", "/login", .body = "username=%3Cb%3E%22x&password=nope", .status = 401,
     .body_has = "value=\"&lt;b&gt;&quot;x\""},
    {"POST", "/login", .body = "username=testuser&next=%2Fchat%2F1%2F", .status = 401,
     .body_has = "name=\"next\" value=\"/chat/1/\""},
    /* Each body a browser may send: form-urlencoded (with a charset or
     * not), none, empty; multipart and text/plain are not what the form
     * posts: 415 with the reason, never "wrong password". */
    {"POST", "/login", .body = LOGIN("%2F"), .content_type = FORM "; charset=UTF-8",
     .status = 302, .location = "/", .sets_cookie = true},
    {"POST", "/login", .body = LOGIN("%2F"), .content_type = "Application/X-WWW-Form-Urlencoded",
     .status = 302, .location = "/", .sets_cookie = true},
    {"POST", "/login", .body = "", .content_type = FORM, .status = 401,
     .body_has = "Please enter a correct username and password."},
    {"POST", "/login", .content_type = FORM, .status = 401},
    {"POST", "/login", .status = 401},
    {"POST", "/login", .body = MULTIPART_LOGIN, .content_type = MULTIPART, .status = 415,
     .body_has = "application/x-www-form-urlencoded"},
    {"POST", "/login", .body = "", .content_type = MULTIPART, .status = 415},
    {"POST", "/login", .body = "username=testuser\r\npassword=testpass123\r\n",
     .content_type = TEXT, .status = 415},
    {"POST", "/login", .body = "{\"username\":\"testuser\"}", .content_type = "application/json",
     .status = 415},
    {"POST", "/login", .body = LOGIN("%2F"), .content_type = "application/x-www-form-urlencodedx",
     .status = 415},
    /* Logout reads no body: whatever comes, 302 to the form, cookie cleared. */
    {"POST", "/logout", .logged_in = true, .status = 302, .location = "/login",
     .sets_cookie = true},
    {"POST", "/logout", .body = "", .content_type = FORM, .logged_in = true, .status = 302,
     .location = "/login", .sets_cookie = true},
    {"POST", "/logout", .body = "", .content_type = MULTIPART, .logged_in = true, .status = 302,
     .location = "/login", .sets_cookie = true},
    {"POST", "/logout", .body = "", .content_type = TEXT, .logged_in = true, .status = 302,
     .location = "/login", .sets_cookie = true},
    {"POST", "/logout", .body = "x=1", .content_type = FORM, .logged_in = true, .status = 302,
     .location = "/login", .sets_cookie = true},
    {"POST", "/logout", .body = "", .content_type = FORM, .status = 302, .location = "/login",
     .sets_cookie = true}, /* no session: the same */
    {"GET", "/logout", .logged_in = true, .status = 405},
    {"GET", "/chat/1/", .status = 302, .location = "/login?next=/chat/1/"},
    {"GET", "/chat/1/", .logged_in = true, .status = 200, .body_has = "id=\"chat-log\""},
    {"GET", "/chat/424242/", .logged_in = true, .status = 404},
    /* Private (3): testuser is not a member: as if it did not exist. */
    {"GET", "/chat/3/", .logged_in = true, .status = 404, .body_has = "no such room"},
    {"HEAD", "/chat/3/", .logged_in = true, .status = 404},
    /* Joining is a POST from the site's own page; a private room cannot be. */
    {"POST", "/chat/1/join", .logged_in = true, .status = 302, .location = "/chat/1/"},
    {"POST", "/chat/3/join", .logged_in = true, .status = 404},
    {"POST", "/chat/424242/join", .logged_in = true, .status = 404},
    {"POST", "/chat/1/join", .logged_in = true, .origin = "http://evil.example", .status = 403},
    {"POST", "/chat/1/join", .status = 302, .location = "/login?next=/chat/1/"},
    {"GET", "/chat/1/join", .logged_in = true, .status = 405},
    /* Inviting: members of a private room only (testuser is not one). */
    {"POST", "/chat/3/members", .body = "username=bob", .logged_in = true, .status = 404},
    {"POST", "/chat/1/members", .body = "username=bob", .logged_in = true, .status = 400},
    {"POST", "/chat/1/members", .body = "username=bob", .logged_in = true,
     .origin = "http://evil.example", .status = 403},
    {"POST", "/chat/1/members", .body = "", .content_type = MULTIPART, .logged_in = true,
     .status = 415},
    {"POST", "/chat/1/members", .body = "username=bob", .status = 302,
     .location = "/login?next=/chat/1/"},
    {"GET", "/chat/1/members", .logged_in = true, .status = 405},
    {"POST", "/chat/1/leave", .logged_in = true, .status = 404},
    {"GET", "/chat/99999999999999999999/", .logged_in = true, .status = 404},
    {"DELETE", "/chat/1/", .logged_in = true, .status = 405},
    {"GET", "/static/room.js", .status = 200},
    {"GET", "/static/favicon.svg", .status = 200}, /* the icon: a file (CSP: no data: URL) */
    {"GET", "/static/nothing.js", .status = 404},
    {"GET", "/static/../main.c", .status = 404},
    {"GET", "/nowhere", .status = 404},
};

static const char *header_of(const chanc_http_response_t *r, const char *name) {
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void test_views_table(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store};
    char token[CHAT_SESSION_TOKEN_LEN + 1], cookie[100];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *r = &rows[i];
        print_message("row %zu: %s %s%s%s\n", i + 1, r->method, r->path, r->body ? " " : "",
                      r->body ? r->body : "");
        chanc_header_t headers[5];
        size_t n = 0;
        headers[n++] = (chanc_header_t){"host", "127.0.0.1:8000"};
        if (r->logged_in) {
            assert_int_equal(chat_store_create_session(t->store, t->user_id, token), 0);
            snprintf(cookie, sizeof cookie, "sessionid=%s", token);
            headers[n++] = (chanc_header_t){"cookie", cookie};
        }
        if (r->origin)
            headers[n++] = (chanc_header_t){"origin", r->origin};
        if (r->content_type)
            headers[n++] = (chanc_header_t){"content-type", r->content_type};
        chanc_http_request_t req = {.method = r->method, .path = r->path, .query = r->query,
                                    .headers = headers, .nheaders = n, .body = r->body,
                                    .body_len = r->body ? strlen(r->body) : 0};
        chanc_http_response_t resp = {0};
        assert_int_equal(chat_views_handle(&views, &req, &resp), 0);
        assert_int_equal(resp.status, r->status);
        const char *loc = header_of(&resp, "Location");
        if (r->location) {
            assert_non_null(loc);
            assert_string_equal(loc, r->location);
        } else {
            assert_null(loc);
        }
        assert_int_equal(header_of(&resp, "Set-Cookie") != NULL, r->sets_cookie);
        if (r->sets_cookie) /* plain http: no Secure, the plain name */
            assert_int_equal(strncmp(header_of(&resp, "Set-Cookie"), "sessionid=", 10), 0);
        assert_null(r->sets_cookie ? strstr(header_of(&resp, "Set-Cookie"), "Secure") : NULL);
        /* every answer: a strict CSP, no framing */
        assert_non_null(header_of(&resp, "Content-Security-Policy"));
        assert_string_equal(header_of(&resp, "Content-Security-Policy"), CHAT_CSP);
        assert_non_null(header_of(&resp, "X-Frame-Options"));
        assert_string_equal(header_of(&resp, "X-Frame-Options"), "DENY");
        if (r->body_has) {
            assert_non_null(resp.body);
            if (!strstr(resp.body, r->body_has))
                print_error("no %s in:\n%s\n", r->body_has, resp.body);
            assert_non_null(strstr(resp.body, r->body_has));
        }
        free(resp.body);
    }
}

/* One request from the site's own page, as `token`'s session (NULL:
 * none); the response (its body to free). */
static chanc_http_response_t ask(chat_views_t *v, const char *method, const char *path,
                                 const char *token, const char *body) {
    char cookie[CHAT_SESSION_TOKEN_LEN + 16];
    chanc_header_t headers[4] = {{"host", "127.0.0.1:8000"}, {"origin", "http://127.0.0.1:8000"}};
    size_t n = 2;
    if (token) {
        snprintf(cookie, sizeof cookie, "sessionid=%s", token);
        headers[n++] = (chanc_header_t){"cookie", cookie};
    }
    chanc_http_request_t req = {.method = method, .path = path, .headers = headers,
                                .nheaders = n, .body = body, .body_len = body ? strlen(body) : 0};
    chanc_http_response_t resp = {0};
    assert_int_equal(chat_views_handle(v, &req, &resp), 0);
    return resp;
}

static void session_of(chat_test_t *t, const char *username, char token[CHAT_SESSION_TOKEN_LEN + 1],
                       int64_t *id) {
    chat_user_t u;
    assert_int_equal(chat_store_get_user(t->store, username, &u), 0);
    assert_int_equal(chat_store_create_session(t->store, u.id, token), 0);
    *id = u.id;
}

static bool member_of(chat_test_t *t, int64_t room, int64_t user) {
    bool yes = false;
    assert_int_equal(chat_store_is_member(t->store, room, user, &yes), 0);
    return yes;
}

/* The status of a request; its body must hold `has` (NULL: unchecked). */
static int status_of(chat_views_t *v, const char *method, const char *path, const char *token,
                     const char *body, const char *has) {
    chanc_http_response_t r = ask(v, method, path, token, body);
    if (has && (!r.body || !strstr(r.body, has)))
        print_error("%s %s: no %s in:\n%s\n", method, path, has, r.body ? (strstr(r.body, "<main") ? strstr(r.body, "<main") : r.body) : "");
    bool ok = !has || (r.body && strstr(r.body, has));
    free(r.body);
    assert_true(ok);
    return r.status;
}

/* A socket of the chat consumer on room as token's session: its
 * authentication status (after which a refused one is closed). */
static chanc_communicator_t *room_socket(chat_test_t *t, int64_t room, const char *token) {
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", (long long)room);
    char cookie[CHAT_SESSION_TOKEN_LEN + 16];
    snprintf(cookie, sizeof cookie, "sessionid=%s", token);
    chanc_communicator_set_header(c, "Cookie", cookie);
    chanc_assert_connect(c);
    return c;
}

/* Rooms that can be private, through the views and the socket: a private
 * room is invisible to others (404 like a missing room, out of their room
 * list, socket 4403) and visiting never makes anyone a member; a public
 * room's page offers "Join" (a POST) and its socket refuses a non-member
 * until then; a member of a private room invites a user, who can then see
 * it and chat in it. */
static void test_private_rooms_and_joining(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .app = t->test->app};
    int64_t priv = chat_test_room(t, "private"), general = t->room_id;
    char alice[CHAT_SESSION_TOKEN_LEN + 1], bob[CHAT_SESSION_TOKEN_LEN + 1],
        dave[CHAT_SESSION_TOKEN_LEN + 1], path[64], members[64];
    int64_t alice_id, bob_id, dave_id;
    session_of(t, "alice", alice, &alice_id);
    session_of(t, "bob", bob, &bob_id);
    session_of(t, "dave", dave, &dave_id);
    snprintf(path, sizeof path, "/chat/%lld/", (long long)priv);
    snprintf(members, sizeof members, "/chat/%lld/members", (long long)priv);

    /* bob, not a member of Private: the answer a missing room gets, and no
     * membership from asking; his socket is refused. */
    chanc_http_response_t missing = ask(&views, "GET", "/chat/424242/", bob, NULL);
    chanc_http_response_t hidden = ask(&views, "GET", path, bob, NULL);
    assert_int_equal(hidden.status, 404);
    assert_int_equal(missing.status, 404);
    assert_int_equal(hidden.body_len, missing.body_len);
    assert_memory_equal(hidden.body, missing.body, missing.body_len);
    free(hidden.body);
    free(missing.body);
    assert_false(member_of(t, priv, bob_id));
    chanc_communicator_t *c = room_socket(t, priv, bob);
    chanc_assert_authenticated_status(c, 403);
    chanc_assert_closed(c, 4403);
    assert_int_equal(status_of(&views, "POST", members, bob, "username=bob", NULL), 404);
    assert_false(member_of(t, priv, bob_id));
    /* His room list: the public rooms; alice's: Private too. */
    assert_int_equal(status_of(&views, "GET", "/", bob, NULL, "General"), 200);
    chanc_http_response_t list = ask(&views, "GET", "/", bob, NULL);
    assert_null(strstr(list.body, "Private"));
    assert_non_null(strstr(list.body, "Random</a> <span class=\"room-tag\">not joined</span>"));
    free(list.body);
    assert_int_equal(status_of(&views, "GET", "/", alice, NULL,
                               "Private</a> <span class=\"room-tag\">private</span>"),
                     200);

    /* dave, not a member of General (public): the page offers "Join", and
     * visiting it changes nothing; his socket waits for the join. */
    assert_int_equal(status_of(&views, "GET", "/chat/1/", dave, NULL,
                               "<form id=\"join-form\" method=\"post\" action=\"/chat/1/join\">"),
                     200);
    assert_false(member_of(t, general, dave_id));
    c = room_socket(t, general, dave);
    chanc_assert_receive_match(c, "{\"payload\":{\"status_code\":403,\"data\":{\"detail\":"
                                  "\"You are not a member of this room.\"}}}");
    chanc_assert_closed(c, 4403);
    chanc_http_response_t r = ask(&views, "POST", "/chat/1/join", dave, NULL);
    assert_int_equal(r.status, 302);
    free(r.body);
    assert_true(member_of(t, general, dave_id));
    assert_int_equal(status_of(&views, "GET", "/chat/1/", dave, NULL, "id=\"chat-log\""), 200);
    c = room_socket(t, general, dave);
    chanc_assert_authenticated_status_ok(c);

    /* alice, a member of Private: its page lists the members and offers
     * "Invite"; she invites bob. */
    assert_int_equal(status_of(&views, "GET", path, alice, NULL,
                               "<ul id=\"member-list\"><li>alice</li></ul>"),
                     200);
    assert_int_equal(status_of(&views, "GET", path, alice, NULL, "<form id=\"invite-form\""), 200);
    assert_int_equal(status_of(&views, "POST", members, alice, "username=nobody",
                               "There is no user called nobody."),
                     404);
    assert_int_equal(status_of(&views, "POST", members, alice, "username=",
                               "Type the username of the person to invite."),
                     400);
    assert_int_equal(status_of(&views, "POST", members, alice, "username=%3Cb%3E",
                               "There is no user called &lt;b&gt;."),
                     404);
    r = ask(&views, "POST", members, alice, "username=bob");
    assert_int_equal(r.status, 302);
    free(r.body);
    assert_true(member_of(t, priv, bob_id));
    r = ask(&views, "POST", members, alice, "username=bob"); /* again: no change */
    assert_int_equal(r.status, 302);
    free(r.body);

    /* bob now sees it, and chats in it with alice. */
    assert_int_equal(status_of(&views, "GET", path, bob, NULL,
                               "<ul id=\"member-list\"><li>alice</li><li>bob</li></ul>"),
                     200);
    assert_int_equal(status_of(&views, "GET", "/", bob, NULL, "Private"), 200);
    chanc_communicator_t *a = room_socket(t, priv, alice);
    chanc_assert_authenticated_status_ok(a);
    json_decref(chanc_communicator_receive_all_json(a, 1000));
    c = room_socket(t, priv, bob);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000));
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("thanks for the invite"));
    chanc_assert_receive_match(a, "{\"action\":\"user_joined\",\"payload\":{\"username\":\"bob\"}}");
    chanc_assert_receive_match(a, "{\"action\":\"chat\",\"payload\":\"thanks for the invite\","
                                  "\"username\":\"bob\"}");
}

/* GET path from peer, with an Authorization header unless auth is NULL. */
static int get_auth(chat_views_t *v, const char *path, const char *peer, const char *auth,
                    char **body) {
    chanc_header_t h[1] = {{"authorization", auth}};
    chanc_http_request_t req = {.method = "GET", .path = path, .peer = peer, .headers = h,
                                .nheaders = auth ? 1 : 0};
    chanc_http_response_t resp = {0};
    assert_int_equal(chat_views_handle(v, &req, &resp), 0);
    *body = resp.body;
    if (resp.status == 401) /* says how to authenticate */
        assert_string_equal(header_of(&resp, "WWW-Authenticate"), "Bearer realm=\"metrics\"");
    return resp.status;
}

static int get(chat_views_t *v, const char *path, const char *peer, char **body) {
    return get_auth(v, path, peer, NULL, body);
}

/* The status of GET /metrics from peer with auth (NULL: none). */
static int scrape(chat_views_t *v, const char *peer, const char *auth) {
    char *body;
    int status = get_auth(v, "/metrics", peer, auth, &body);
    free(body);
    return status;
}

#define TOKEN "0123456789abcdef-metrics"

/* /metrics: off by default (404). On, never "loopback" by itself (behind a
 * reverse proxy on this host every request comes from loopback): only the
 * addresses of the allow-list, only with the bearer token, both when both
 * are configured; on with neither, nobody. */
static void test_metrics_access(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .app = t->test->app};
    chanc_error_t err = {0};
    assert_int_equal(scrape(&views, "127.0.0.1", NULL), 404);
    views.metrics = true;
    /* on, nothing configured: loopback too is refused */
    assert_int_equal(scrape(&views, "127.0.0.1", NULL), 403);
    assert_int_equal(scrape(&views, "::1", NULL), 403);
    assert_int_equal(scrape(&views, "192.0.2.7", NULL), 403);

    /* an allow-list: those addresses only (a same-host proxy's loopback
     * requests are not among them) */
    assert_int_equal(chat_views_allow_metrics(&views, "10.0.0.0/8, 192.0.2.7,2001:db8::/32", &err), 0);
    assert_int_equal(views.metrics_nallow, 3);
    assert_int_equal(scrape(&views, "10.200.3.4", NULL), 200);
    assert_int_equal(scrape(&views, "::ffff:10.1.2.3", NULL), 200);
    assert_int_equal(scrape(&views, "192.0.2.7", NULL), 200);
    assert_int_equal(scrape(&views, "2001:db8:1::5", NULL), 200);
    assert_int_equal(scrape(&views, "192.0.2.8", NULL), 403);
    assert_int_equal(scrape(&views, "11.0.0.1", NULL), 403);
    assert_int_equal(scrape(&views, "127.0.0.1", NULL), 403);
    assert_int_equal(scrape(&views, "::1", NULL), 403);
    assert_int_equal(scrape(&views, "", NULL), 403);
    assert_int_equal(chat_views_allow_metrics(&views, "127.0.0.0/8,::1", &err), 0);
    assert_int_equal(scrape(&views, "127.0.0.1", NULL), 200);
    assert_int_equal(scrape(&views, "::1", NULL), 200);
    assert_int_equal(scrape(&views, "10.200.3.4", NULL), 403); /* replaced */
    static const char *const bad[] = {"", ",", "10.0.0.0/33", "::/129", "host.example",
                                      "10.0.0.0/", "10.0.0.0/x", "1.2.3.4/8/9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (chat_views_allow_metrics(&views, bad[i], &err) != CHANC_EINVAL)
            fail_msg("allow-list \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err.text, "--metrics-allow"));
    }
    assert_int_equal(views.metrics_nallow, 2); /* a refused list changes nothing */

    /* a token too: both checks */
    assert_int_equal(chat_views_metrics_token(&views, "short", &err), CHANC_EINVAL);
    assert_int_equal(chat_views_metrics_token(&views, "with space 0123456789", &err), CHANC_EINVAL);
    assert_int_equal(chat_views_metrics_token(&views, TOKEN, &err), 0);
    assert_int_equal(scrape(&views, "127.0.0.1", NULL), 401);
    assert_int_equal(scrape(&views, "127.0.0.1", "Bearer " TOKEN "x"), 401);
    assert_int_equal(scrape(&views, "127.0.0.1", "Bearer 0123456789abcdef-metric"), 401);
    assert_int_equal(scrape(&views, "127.0.0.1", "Basic " TOKEN), 401);
    assert_int_equal(scrape(&views, "127.0.0.1", "Bearer " TOKEN), 200);
    assert_int_equal(scrape(&views, "127.0.0.1", "bearer " TOKEN), 200);
    assert_int_equal(scrape(&views, "192.0.2.7", "Bearer " TOKEN), 403); /* not on the list */
    /* a token alone: any address with it */
    views.metrics_nallow = 0;
    assert_int_equal(scrape(&views, "192.0.2.7", "Bearer " TOKEN), 200);
    assert_int_equal(scrape(&views, "127.0.0.1", NULL), 401);
}

/* /metrics: the app's counters and the commit histogram in Prometheus
 * text format. */
static void test_metrics(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .app = t->test->app, .metrics = true};
    assert_int_equal(chat_views_allow_metrics(&views, "::1/128", NULL), 0);
    char *body;

    chat_commit_stats_t before;
    chat_commit_stats(&before);
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("counted"));
    chanc_assert_receive_match(c, "{\"action\":\"chat\"}");
    chanc_communicator_send_text(c, "{\"action\":\"nope\"}");
    chanc_assert_receive_match(c, "{\"action\":\"error\"}");

    assert_int_equal(get(&views, "/metrics", "::1", &body), 200);
    assert_non_null(strstr(body, "# TYPE chanc_connections_open gauge\nchanc_connections_open 1\n"));
    assert_non_null(strstr(body, "\nchanc_frames_received_total 2\n"));
    assert_non_null(strstr(body, "\nchanc_validation_errors_total 1\n"));
    assert_non_null(strstr(body, "\nchanc_group_messages_total 2\n")); /* joined + chat */
    char want[80];
    snprintf(want, sizeof want, "chat_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
             (unsigned long long)before.count + 1);
    assert_non_null(strstr(body, want));
    assert_non_null(strstr(body, "# TYPE chat_commit_seconds histogram\n"));
    free(body);
}

/* /healthz: 200 and what the process holds while the database answers. */
static void test_health(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .app = t->test->app};
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    (void)c;
    char *body;
    assert_int_equal(get(&views, "/healthz", "192.0.2.7", &body), 200);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    char want[200];
    snprintf(want, sizeof want,
             "{\"status\":\"ok\",\"database\":\"%s\",\"database_ok\":true,\"connections\":1,"
             "\"layer_connected\":true}",
             chat_store_backend_name(t->store));
    chanc_assert_json_match(j, want);
    json_decref(j);
}

/* --secure-cookies: the session cookie is __Host-sessionid with Secure
 * (HTTPS only, host-only, Path=/); a plain "sessionid" is not read, by
 * the views or the chat consumer. */
static int secure_setup(void **state) {
    *state = chat_test_create(&(chat_test_options_t){.name = *state, .secure_cookies = true});
    return *state ? 0 : -1;
}

static int request(chat_views_t *v, const char *method, const char *path, const char *cookie,
                   const char *body, chanc_http_response_t *resp) {
    chanc_header_t h[2] = {{"host", "127.0.0.1:8000"}, {"cookie", cookie}};
    chanc_http_request_t req = {.method = method, .path = path, .headers = h,
                                .nheaders = cookie ? 2 : 1, .body = body,
                                .body_len = body ? strlen(body) : 0};
    *resp = (chanc_http_response_t){0};
    assert_int_equal(chat_views_handle(v, &req, resp), 0);
    return resp->status;
}

static void test_secure_cookies(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .secure_cookies = true};
    chanc_http_response_t r;
    assert_int_equal(request(&views, "POST", "/login", NULL, LOGIN("%2F"), &r), 302);
    const char *set = header_of(&r, "Set-Cookie");
    assert_non_null(set);
    assert_int_equal(strncmp(set, "__Host-sessionid=", 17), 0);
    assert_int_equal(strlen(set + 17) > CHAT_SESSION_TOKEN_LEN, 1);
    assert_non_null(strstr(set, "; Secure"));
    assert_non_null(strstr(set, "; Path=/"));
    assert_non_null(strstr(set, "; HttpOnly"));
    assert_null(strstr(set, "Domain")); /* __Host-: host-only */
    char token[CHAT_SESSION_TOKEN_LEN + 1], cookie[120];
    memcpy(token, set + 17, CHAT_SESSION_TOKEN_LEN);
    token[CHAT_SESSION_TOKEN_LEN] = '\0';
    free(r.body);

    snprintf(cookie, sizeof cookie, "__Host-sessionid=%s", token);
    assert_int_equal(request(&views, "GET", "/", cookie, NULL, &r), 200);
    free(r.body);
    snprintf(cookie, sizeof cookie, "sessionid=%s", token); /* the plain name: not read */
    assert_int_equal(request(&views, "GET", "/", cookie, NULL, &r), 302);
    free(r.body);

    /* the consumer reads the same cookie, and only it */
    chanc_communicator_t *c = chat_test_client(t, t->room_id, NULL);
    snprintf(cookie, sizeof cookie, "__Host-sessionid=%s", token);
    chanc_communicator_set_header(c, "Cookie", cookie);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    c = chat_test_client(t, t->room_id, NULL);
    snprintf(cookie, sizeof cookie, "sessionid=%s", token);
    chanc_communicator_set_header(c, "Cookie", cookie);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status(c, 403);
    chanc_assert_closed(c, 4403);

    /* logout clears the same cookie */
    snprintf(cookie, sizeof cookie, "__Host-sessionid=%s", token);
    assert_int_equal(request(&views, "POST", "/logout", cookie, "", &r), 302);
    set = header_of(&r, "Set-Cookie");
    assert_non_null(set);
    assert_int_equal(strncmp(set, "__Host-sessionid=;", 18), 0);
    assert_non_null(strstr(set, "Max-Age=0"));
    assert_non_null(strstr(set, "; Secure"));
    free(r.body);
    assert_int_equal(request(&views, "GET", "/", cookie, NULL, &r), 302);
    free(r.body);
}

/* ---- login throttling (chanc/chat_throttle.h) ------------------------------ */

typedef struct login_result {
    int status;
    char retry_after[16]; /* "" when absent */
    bool cookie;
    char *body;
} login_result_t;

/* POST /login from the client address peer (password checks inline). */
static login_result_t post_login(chat_views_t *v, const char *peer, const char *user,
                                 const char *password) {
    char body[200];
    snprintf(body, sizeof body, "username=%s&password=%s", user, password);
    chanc_header_t headers[] = {{"host", "127.0.0.1:8000"},
                                {"content-type", "application/x-www-form-urlencoded"}};
    chanc_http_request_t req = {.method = "POST", .path = "/login", .headers = headers,
                                .nheaders = 2, .body = body, .body_len = strlen(body),
                                .peer = peer};
    chanc_http_response_t resp = {0};
    assert_int_equal(chat_views_handle(v, &req, &resp), 0); /* answered now, never deferred */
    login_result_t out = {.status = resp.status, .body = resp.body};
    const char *ra = header_of(&resp, "Retry-After");
    snprintf(out.retry_after, sizeof out.retry_after, "%s", ra ? ra : "");
    out.cookie = header_of(&resp, "Set-Cookie") != NULL;
    return out;
}

/* The status of a login; a 429 must say when to come back, and never
 * sets a cookie. */
static int login_status(chat_views_t *v, const char *peer, const char *user, const char *password,
                        const char *want_retry_after) {
    login_result_t r = post_login(v, peer, user, password);
    if (r.status == 429) {
        assert_false(r.cookie);
        assert_true(r.retry_after[0] >= '1' && r.retry_after[0] <= '9');
        assert_non_null(strstr(r.body, "Too many login attempts. Try again in "));
    } else {
        assert_string_equal(r.retry_after, "");
    }
    if (want_retry_after)
        assert_string_equal(r.retry_after, want_retry_after);
    assert_int_equal(r.cookie, r.status == 302);
    free(r.body);
    return r.status;
}

static chat_throttle_t *throttle_for(chat_test_t *t, chat_login_limits_t limits) {
    chat_throttle_t *th = chat_throttle_create(&limits, chanc_app_clock(t->test->app));
    assert_non_null(th);
    return th;
}

static uint64_t metric_value(chat_views_t *v, const char *series) {
    char *body;
    assert_int_equal(get(v, "/metrics", "127.0.0.1", &body), 200);
    char want[120];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *at = strstr(body, want);
    if (!at)
        print_error("no %s in /metrics:\n%s\n", series, body);
    assert_non_null(at);
    uint64_t n = strtoull(at + strlen(want), NULL, 10);
    free(body);
    return n;
}

/* Per client address: a burst of failed logins, then 429 with the seconds
 * until the bucket has a token again, even for the right password (no
 * check is made); other addresses are not affected; IPv6 counts per /64,
 * IPv4-mapped IPv6 as IPv4; the bucket refills on the (virtual) clock;
 * successful logins are not charged. */
static void test_login_throttle_per_address(void **state) {
    chat_test_t *t = *state;
    chat_throttle_t *th = throttle_for(t, (chat_login_limits_t){.addr_per_min = 6, .addr_burst = 3});
    chat_views_t views = {.store = t->store, .app = NULL, .throttle = th, .metrics = true};
    assert_int_equal(chat_views_allow_metrics(&views, "127.0.0.1", NULL), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(login_status(&views, "192.0.2.1", "testuser", "nope", NULL), 401);
    /* 6 a minute: one token every 10 s. */
    assert_int_equal(login_status(&views, "192.0.2.1", "testuser", "testpass123", "10"), 429);
    login_result_t r = post_login(&views, "192.0.2.1", "testuser", "nope");
    assert_int_equal(r.status, 429);
    assert_non_null(strstr(r.body, "value=\"testuser\"")); /* the form, username kept */
    free(r.body);
    assert_int_equal(login_status(&views, "::ffff:192.0.2.1", "alice", "alice-pass-1", "10"), 429);
    assert_int_equal(login_status(&views, "192.0.2.2", "testuser", "testpass123", NULL), 302);

    for (int i = 0; i < 3; i++)
        assert_int_equal(login_status(&views, "2001:db8:1:2::1", "bob", "nope", NULL), 401);
    assert_int_equal(login_status(&views, "2001:db8:1:2:ffff::9", "bob", "bob-pass-1", "10"), 429);
    assert_int_equal(login_status(&views, "2001:db8:1:3::1", "bob", "bob-pass-1", NULL), 302);

    chanc_test_advance(t->test, 9999);
    assert_int_equal(login_status(&views, "192.0.2.1", "testuser", "testpass123", "1"), 429);
    chanc_test_advance(t->test, 1);
    assert_int_equal(login_status(&views, "192.0.2.1", "testuser", "testpass123", NULL), 302);

    /* Only failures count: an office behind one address logs in freely. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(login_status(&views, "198.51.100.7", "alice", "alice-pass-1", NULL), 302);
    assert_int_equal(login_status(&views, "198.51.100.7", "alice", "nope", NULL), 401);

    assert_int_equal(metric_value(&views, "chat_login_throttled_total{reason=\"address\"}"), 5);
    assert_int_equal(metric_value(&views, "chat_login_throttled_total{reason=\"username\"}"), 0);
    assert_int_equal(metric_value(&views, "chat_logins_total{result=\"failed\"}"), 7);
    assert_int_equal(metric_value(&views, "chat_logins_total{result=\"ok\"}"), 13);
    assert_int_equal(metric_value(&views, "chat_login_checks_in_flight"), 0);
    chat_throttle_destroy(th);
}

/* Per username: a flood of wrong passwords for alice from many addresses
 * empties her bucket; then alice herself, from yet another address, gets
 * 429 with the time to wait, and once that has passed (virtual clock) she
 * logs in: the bucket refills, she is not locked out for good. Unknown
 * usernames are treated alike (the answers say nothing of who exists);
 * other users are not affected. */
static void test_login_throttle_per_username_refills(void **state) {
    chat_test_t *t = *state;
    chat_throttle_t *th = throttle_for(t, (chat_login_limits_t){.user_per_min = 6, .user_burst = 3});
    chat_views_t views = {.store = t->store, .throttle = th, .metrics = true};
    assert_int_equal(chat_views_allow_metrics(&views, "127.0.0.1", NULL), 0);
    const char *flood[] = {"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(login_status(&views, flood[i], "alice", "guess", NULL), 401);
        assert_int_equal(login_status(&views, flood[i], "nobody", "guess", NULL), 401);
    }
    assert_int_equal(login_status(&views, flood[3], "alice", "guess", "10"), 429);
    assert_int_equal(login_status(&views, flood[3], "nobody", "guess", "10"), 429);
    /* alice, from her own address, during the lockout: told when to retry. */
    assert_int_equal(login_status(&views, "192.0.2.50", "alice", "alice-pass-1", "10"), 429);
    assert_int_equal(login_status(&views, flood[0], "bob", "bob-pass-1", NULL), 302);

    chanc_test_advance(t->test, 4000);
    assert_int_equal(login_status(&views, "192.0.2.50", "alice", "alice-pass-1", "6"), 429);
    chanc_test_advance(t->test, 6000); /* the Retry-After she was given */
    assert_int_equal(login_status(&views, "192.0.2.50", "alice", "alice-pass-1", NULL), 302);
    /* Her success cost nothing: the token is there for one more failure. */
    assert_int_equal(login_status(&views, flood[1], "alice", "guess", NULL), 401);
    assert_int_equal(login_status(&views, flood[2], "alice", "guess", "10"), 429);

    assert_int_equal(metric_value(&views, "chat_login_throttled_total{reason=\"username\"}"), 5);
    assert_int_equal(metric_value(&views, "chat_login_throttled_total{reason=\"address\"}"), 0);
    chat_throttle_destroy(th);
}

/* The checks in flight are bounded, in all and per address: past the
 * bound a login is answered 429 (Retry-After: 1) at once, without a
 * password check (the right password does not get in), and gets in again
 * as soon as a check leaves the flight. Checks are held here through the
 * throttle, as the server's deferred ones hold them. */
static void test_login_in_flight_bound(void **state) {
    chat_test_t *t = *state;
    chat_throttle_t *th =
        throttle_for(t, (chat_login_limits_t){.max_checks = 2, .max_checks_addr = 1});
    chat_views_t views = {.store = t->store, .throttle = th, .metrics = true};
    assert_int_equal(chat_views_allow_metrics(&views, "127.0.0.1", NULL), 0);
    chat_login_ticket_t held1, held2, refused;
    uint32_t retry;
    assert_int_equal(chat_throttle_admit(th, "192.0.2.1", "alice", &held1, &retry),
                     CHAT_LOGIN_ADMITTED);
    /* One in flight from 192.0.2.1: its next is refused, others' are not. */
    assert_int_equal(login_status(&views, "192.0.2.1", "testuser", "testpass123", "1"), 429);
    assert_int_equal(login_status(&views, "192.0.2.2", "testuser", "testpass123", NULL), 302);
    assert_int_equal(chat_throttle_admit(th, "192.0.2.3", "bob", &held2, &retry),
                     CHAT_LOGIN_ADMITTED);
    /* Two in flight: everyone waits. */
    assert_int_equal(login_status(&views, "192.0.2.2", "testuser", "testpass123", "1"), 429);
    assert_int_equal(chat_throttle_admit(th, "192.0.2.4", "carol", &refused, &retry),
                     CHAT_LOGIN_BUSY);
    assert_int_equal(retry, 1);
    assert_int_equal(metric_value(&views, "chat_login_checks_in_flight"), 2);
    chat_throttle_finish(th, &held1, CHAT_LOGIN_WRONG);
    chat_throttle_finish(th, &held1, CHAT_LOGIN_WRONG); /* once only */
    chat_throttle_finish(th, &refused, CHAT_LOGIN_WRONG); /* not admitted: no-op */
    assert_int_equal(login_status(&views, "192.0.2.2", "testuser", "testpass123", NULL), 302);
    assert_int_equal(login_status(&views, "192.0.2.1", "testuser", "testpass123", NULL), 302);
    chat_throttle_finish(th, &held2, CHAT_LOGIN_ERROR);

    chat_login_stats_t st;
    chat_throttle_stats(th, &st);
    assert_int_equal(st.busy, 3);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.in_flight_peak, 2);
    assert_int_equal(st.admitted, 5);
    assert_int_equal(st.succeeded, 3);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.errors, 1);
    assert_int_equal(metric_value(&views, "chat_login_throttled_total{reason=\"busy\"}"), 3);
    chat_throttle_destroy(th);
}

/* Memory stays bounded: at most max_keys buckets per table; with the
 * table full of buckets that have not refilled, a new address is refused
 * as busy; once they have refilled they are forgotten and it gets in. */
static void test_login_throttle_memory_is_bounded(void **state) {
    chat_test_t *t = *state;
    chat_throttle_t *th = throttle_for(
        t, (chat_login_limits_t){.addr_per_min = 60, .addr_burst = 1, .max_keys = 4});
    chat_views_t views = {.store = t->store, .throttle = th};
    char peer[32];
    for (int i = 1; i <= 4; i++) {
        snprintf(peer, sizeof peer, "192.0.2.%d", i);
        assert_int_equal(login_status(&views, peer, "alice", "nope", NULL), 401);
    }
    assert_int_equal(login_status(&views, "192.0.2.5", "alice", "nope", "1"), 429);
    chat_login_stats_t st;
    chat_throttle_stats(th, &st);
    assert_int_equal(st.addrs, 4);
    assert_int_equal(st.busy, 1);
    chanc_test_advance(t->test, 1000); /* 60 a minute: all refilled */
    assert_int_equal(login_status(&views, "192.0.2.5", "alice", "nope", NULL), 401);
    chat_throttle_stats(th, &st);
    assert_true(st.addrs <= 4);
    chat_throttle_destroy(th);
}

/* chat-server's flags and variables for the limits. */
static void test_login_limits_options(void **state) {
    (void)state;
    chat_login_limits_t l = CHAT_LOGIN_LIMITS_DEFAULT;
    assert_int_equal(l.addr_per_min, 10);
    assert_int_equal(l.addr_burst, 20);
    assert_int_equal(l.user_per_min, 5);
    assert_int_equal(l.user_burst, 10);
    assert_int_equal(l.max_checks, 16);
    assert_int_equal(l.max_checks_addr, 2);
    assert_int_equal(l.hashers, 2);
    assert_int_equal(chat_login_limits_option(&l, "--login-limit-addr", "30"), 0);
    assert_int_equal(l.addr_per_min, 30);
    assert_int_equal(l.addr_burst, 60);
    assert_int_equal(chat_login_limits_option(&l, "CHAT_LOGIN_LIMIT_USER", "off"), 0);
    assert_int_equal(l.user_per_min, 0);
    assert_int_equal(chat_login_limits_option(&l, "--login-checks", "8"), 0);
    assert_int_equal(l.max_checks, 8);
    assert_int_equal(l.max_checks_addr, 2);
    assert_int_equal(chat_login_limits_option(&l, "--login-checks", "1"), 0);
    assert_int_equal(l.max_checks_addr, 1);
    assert_int_equal(chat_login_limits_option(&l, "--login-checks", "4/3"), 0);
    assert_int_equal(l.max_checks_addr, 3);
    assert_int_equal(chat_login_limits_option(&l, "--login-hashers", "1"), 0);
    assert_int_equal(l.hashers, 1);
    assert_int_equal(chat_login_limits_option(&l, "--login-checks", "3/5"), -1);
    assert_int_equal(chat_login_limits_option(&l, "--login-limit-addr", "10/0"), -1);
    assert_int_equal(chat_login_limits_option(&l, "--login-limit-addr", "-1"), -1);
    assert_int_equal(chat_login_limits_option(&l, "--login-hashers", "0"), -1);
    assert_int_equal(chat_login_limits_option(&l, "--login-hashers", "2x"), -1);
    assert_int_equal(chat_login_limits_option(&l, "--port", "1"), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_views_table, chat_test_setup, chat_test_teardown),
        cmocka_unit_test_setup_teardown(test_private_rooms_and_joining, chat_test_setup,
                                        chat_test_teardown),
        cmocka_unit_test_setup_teardown(test_metrics, chat_test_setup, chat_test_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_access, chat_test_setup, chat_test_teardown),
        cmocka_unit_test_setup_teardown(test_secure_cookies, secure_setup, chat_test_teardown),
        cmocka_unit_test_setup_teardown(test_health, chat_test_setup, chat_test_teardown),
        CHAT_TEST(test_login_throttle_per_address),
        CHAT_TEST(test_login_throttle_per_username_refills),
        CHAT_TEST(test_login_in_flight_bound),
        CHAT_TEST(test_login_throttle_memory_is_bounded),
        cmocka_unit_test(test_login_limits_options),
    };
    return chanc_run_group_tests_name("chat.views", tests, NULL, NULL);
}

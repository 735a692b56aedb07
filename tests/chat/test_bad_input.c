/* chat.bad_input and chat.bad_input.live: the chat application's bad-input
 * matrix, one table run twice: in process (the chat test fixture, label
 * unit) and against a chat-server process over loopback sockets (argument
 * "live", label integration). Each row sends one kind of bad input and
 * checks its documented answer: an error frame, a close code or an
 * authentication status. Around every row a bystander (alice, in the same
 * room) stays connected; after the row she must have seen nothing but what
 * the row legitimately broadcast, and her own chat must still go round; the
 * stored message count must be exactly what the row allows; at the end the
 * database passes PRAGMA integrity_check.
 *
 * `test_chat_bad_input --table` prints the table as Markdown (docs/protocol.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <chanc/testing.h>
#include <sqlite3.h>

#include "chat_test.h"
#include "server_proc.h"

/* ---- the two drivers ------------------------------------------------------ */

typedef struct driver {
    bool live;
    chanc_test_t *test;
    chat_test_t *chat;    /* in process */
    server_proc_t server; /* live */
    chat_store_t *store;  /* the same database: sessions, counts */
    const char *db_path;
    int64_t general, private_room, testuser, alice;
} driver_t;

static driver_t drv;

static void check_rc(int rc, const char *what) {
    if (rc < 0)
        fail_msg("%s: %s", what, chanc_strerror(rc));
}

static int64_t user_id(const char *name) {
    chat_user_t u;
    check_rc(chat_store_get_user(drv.store, name, &u), name);
    return u.id;
}

static int64_t room_id(const char *slug) {
    chat_room_t r;
    check_rc(chat_store_room_by_slug(drv.store, slug, &r), slug);
    return r.id;
}

static int64_t message_count(void) {
    int64_t n = 0;
    check_rc(chat_store_message_count(drv.store, drv.general, &n), "message count");
    return n;
}

/* An expired session: made by a store whose wall clock is 15 days behind
 * (sessions last 14). */
static int64_t past_wall_ms(void *ud) { return *(const int64_t *)ud; }
static uint64_t past_mono_ms(void *ud) {
    (void)ud;
    return 0;
}

static void make_cookie(int64_t user, bool expired, char *out, size_t len) {
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    if (!expired) {
        check_rc(chat_store_create_session(drv.store, user, token), "session");
    } else {
        int64_t then = chat_store_now_ms(drv.store) - 15LL * 24 * 3600 * 1000;
        chanc_clock_t clock = {past_mono_ms, past_wall_ms, &then};
        chat_store_t *old = NULL;
        chanc_error_t err;
        check_rc(chat_store_open(&(chat_store_options_t){.path = drv.db_path, .clock = &clock},
                                 &old, &err),
                 "open the store in the past");
        check_rc(chat_store_create_session(old, user, token), "expired session");
        chat_store_close(old);
    }
    snprintf(out, len, "sessionid=%s", token);
}

static chanc_communicator_t *client(const char *path, const char *cookie) {
    chanc_communicator_t *c = chanc_test_communicator(drv.test, "%s", path);
    chanc_communicator_set_header(c, "Cookie", cookie ? cookie : "");
    return c;
}

static chanc_communicator_t *member(int64_t user) {
    char cookie[100], path[64];
    make_cookie(user, false, cookie, sizeof cookie);
    snprintf(path, sizeof path, "/ws/chat/%lld/", (long long)drv.general);
    chanc_communicator_t *c = client(path, cookie);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    return c;
}

static int setup_in_process(void) {
    drv.chat = chat_test_create(NULL);
    if (!drv.chat)
        return -1;
    drv.test = drv.chat->test;
    drv.store = drv.chat->store;
    drv.db_path = drv.chat->db.url;
    return 0;
}

static int setup_live(void) {
    if (server_proc_init(&drv.server, "bad-input") < 0 ||
        server_proc_start(&drv.server, "min", NULL) < 0)
        return -1;
    chanc_error_t err;
    if (chat_store_open(&(chat_store_options_t){.path = drv.server.store.url}, &drv.store, &err) < 0) {
        fprintf(stderr, "chat.bad_input.live: %s\n", err.text);
        return -1;
    }
    drv.db_path = drv.server.store.url;
    drv.test = chanc_test_create_remote(&(chanc_test_remote_options_t){.port = drv.server.port});
    return drv.test ? 0 : -1;
}

static int group_setup(void **state) {
    (void)state;
    if ((drv.live ? setup_live() : setup_in_process()) < 0)
        return -1;
    drv.general = room_id("general");
    drv.private_room = room_id("private");
    drv.testuser = user_id("testuser");
    drv.alice = user_id("alice");
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (!drv.live) {
        chat_test_destroy(drv.chat);
        return 0;
    }
    chanc_test_destroy(drv.test);
    chat_store_close(drv.store);
    int status = server_proc_stop(&drv.server, SIGTERM);
    server_proc_dispose(&drv.server);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* ---- inputs ------------------------------------------------------------------ */

static char *text(const char *s, size_t *len) {
    *len = strlen(s);
    return strdup(s);
}

/* {"action":"chat","payload":"<n × c>"} */
static char *chat_of(size_t n, char c, size_t *len) {
    char *s = malloc(n + 64);
    int k = sprintf(s, "{\"action\":\"chat\",\"payload\":\"");
    memset(s + k, c, n);
    strcpy(s + k + n, "\"}");
    *len = strlen(s);
    return s;
}

static char *in_malformed(size_t *len, bool *bin) { (void)bin; return text("{\"action\": \"chat\",", len); }
static char *in_array(size_t *len, bool *bin) { (void)bin; return text("[\"chat\",\"hi\"]", len); }
static char *in_string(size_t *len, bool *bin) { (void)bin; return text("\"chat\"", len); }
static char *in_no_action(size_t *len, bool *bin) { (void)bin; return text("{\"payload\":\"hi\"}", len); }
static char *in_unknown(size_t *len, bool *bin) {
    (void)bin;
    return text("{\"action\":\"delete_room\",\"payload\":1}", len);
}
static char *in_long_action(size_t *len, bool *bin) {
    (void)bin;
    size_t n = 10000;
    char *s = malloc(n + 64);
    int k = sprintf(s, "{\"action\":\"");
    memset(s + k, 'a', n);
    strcpy(s + k + n, "\",\"payload\":\"hi\"}");
    *len = strlen(s);
    return s;
}
static char *in_deep(size_t *len, bool *bin) {
    (void)bin;
    size_t depth = 10000;
    char *s = malloc(2 * depth + 64);
    char *p = s + sprintf(s, "{\"action\":\"chat\",\"payload\":");
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}");
    *len = strlen(s);
    return s;
}
static char *in_raw_nul(size_t *len, bool *bin) {
    (void)bin;
    static const char bytes[] = "{\"action\":\"chat\",\"payload\":\"a\0b\"}";
    *len = sizeof bytes - 1;
    char *s = malloc(*len);
    memcpy(s, bytes, *len);
    return s;
}
static char *in_binary(size_t *len, bool *bin) {
    *bin = true;
    return text("{\"action\":\"chat\",\"payload\":\"hi\"}", len);
}
static char *in_one_mib(size_t *len, bool *bin) { (void)bin; return chat_of(1024 * 1024 + 16, 'x', len); }
static char *in_bad_utf8(size_t *len, bool *bin) {
    (void)bin;
    return text("{\"action\":\"chat\",\"payload\":\"\xC3\x28\"}", len);
}
static char *in_overlong(size_t *len, bool *bin) {
    (void)bin;
    return text("{\"action\":\"chat\",\"payload\":\"\xC0\xAF\"}", len);
}

#define SQL_TEXT "Robert'); DROP TABLE messages;-- \\\" OR 1=1; %_ \\\\"
#define HTML_TEXT "<script>alert(1)</script><img src=x onerror=alert(2)>&amp;"
static char *in_sql(size_t *len, bool *bin) {
    (void)bin;
    return text("{\"action\":\"chat\",\"payload\":\"" SQL_TEXT "\"}", len);
}
static char *in_html(size_t *len, bool *bin) {
    (void)bin;
    return text("{\"action\":\"chat\",\"payload\":\"" HTML_TEXT "\"}", len);
}

/* ---- the table ------------------------------------------------------------------ */

typedef enum { SEND, CONNECT, FLOOD } kind_t;
typedef enum { BOTH, IN_PROCESS, LIVE } where_t;
typedef enum { COOKIE_NONE, COOKIE_VALID, COOKIE_GARBAGE, COOKIE_FORGED, COOKIE_EXPIRED,
               COOKIE_12K, COOKIE_64K } cookie_t;

typedef struct row {
    const char *input;  /* for the table */
    const char *answer; /* the documented answer, for the table */
    kind_t kind;
    where_t where;
    /* SEND */
    char *(*make)(size_t *len, bool *binary);
    const char *error; /* the answer frame (a JSON subset); NULL: a close */
    const char *echo;  /* valid chat: the text stored and broadcast as is */
    /* CONNECT */
    const char *path; /* NULL: the General room */
    cookie_t cookie;
    const char *header, *value;
    int status; /* authentication frame status; 0: refused at the handshake */
    /* SEND and CONNECT */
    int close; /* close code; 0: the connection stays open */
} row_t;

#define ERR(type) "{\"action\":\"error\",\"payload\":[{\"type\":\"" type "\"}]}"
#define ERR_AT(type, loc) "{\"action\":\"error\",\"payload\":[{\"type\":\"" type "\",\"loc\":" loc "}]}"

static const row_t rows[] = {
    {.input = "malformed JSON `{\"action\": \"chat\",`",
     .answer = "error `json_invalid`",
     .kind = SEND, .where = BOTH, .make = in_malformed, .error = ERR("json_invalid")},
    {.input = "a JSON array, not an object",
     .answer = "error `dict_type`", .kind = SEND, .where = BOTH, .make = in_array, .error = ERR_AT("dict_type", "[]")},
    {.input = "a JSON string, not an object",
     .answer = "error `dict_type`", .kind = SEND, .where = BOTH, .make = in_string, .error = ERR("dict_type")},
    {.input = "no `action` key",
     .answer = "error `union_tag_not_found` at `[\"action\"]`", .kind = SEND, .where = BOTH, .make = in_no_action, .error = ERR_AT("union_tag_not_found", "[\"action\"]")},
    {.input = "unknown action `delete_room`",
     .answer = "error `union_tag_invalid` at `[\"action\"]`", .kind = SEND, .where = BOTH, .make = in_unknown, .error = ERR_AT("union_tag_invalid", "[\"action\"]")},
    {.input = "a 10,000-character action",
     .answer = "error `union_tag_invalid` (the echo of it is cut)", .kind = SEND, .where = BOTH, .make = in_long_action, .error = ERR("union_tag_invalid")},
    {.input = "10,000 levels of nesting",
     .answer = "error `json_invalid` (nesting limit; no stack overflow)", .kind = SEND, .where = BOTH, .make = in_deep, .error = ERR("json_invalid")},
    {.input = "a raw NUL byte in the frame",
     .answer = "error `json_invalid`",
     .kind = SEND, .where = BOTH, .make = in_raw_nul, .error = ERR("json_invalid")},
    {.input = "a binary frame",
     .answer = "error `frame_type`", .kind = SEND, .where = BOTH, .make = in_binary, .error = ERR("frame_type")},
    {.input = "SQL metacharacters in the chat text",
     .answer = "stored and broadcast verbatim (bound parameters)",
     .kind = SEND, .where = BOTH, .make = in_sql, .echo = "Robert'); DROP TABLE messages;-- \" OR 1=1; %_ \\"},
    {.input = "HTML in the chat text",
     .answer = "stored and broadcast verbatim (the page inserts text, not HTML)",
     .kind = SEND, .where = BOTH, .make = in_html, .echo = HTML_TEXT},
    {.input = "a frame of 1 MiB + 16 bytes",
     .answer = "close 1009 `frame too large` (default limit 64 KiB)", .kind = SEND, .where = BOTH, .make = in_one_mib, .close = 1009},
    {.input = "invalid UTF-8 in a text frame",
     .answer = "close 1007 `invalid UTF-8`",
     .kind = SEND, .where = BOTH, .make = in_bad_utf8, .close = 1007},
    {.input = "overlong UTF-8 (`C0 AF`)",
     .answer = "close 1007", .kind = SEND, .where = BOTH, .make = in_overlong, .close = 1007},
    {.input = "10,000 chat frames at once (10 bursts of 1,000)",
     .answer = "the first 400 (the burst) and then 200/s are stored and broadcast in order; each of the "
     "others gets error `rate_limited`; every frame is answered",
     .kind = FLOOD, .where = BOTH},
    {.input = "no session cookie",
     .answer = "authentication 403, close 4403", .kind = CONNECT, .where = BOTH, .cookie = COOKIE_NONE,
     .status = 403, .close = 4403},
    {.input = "a garbage session cookie",
     .answer = "authentication 403, close 4403", .kind = CONNECT, .where = BOTH,
     .cookie = COOKIE_GARBAGE, .status = 403, .close = 4403},
    {.input = "a forged session cookie (64 random hex digits)",
     .answer = "authentication 403, close 4403", .kind = CONNECT, .where = BOTH, .cookie = COOKIE_FORGED, .status = 403, .close = 4403},
    {.input = "an expired session cookie",
     .answer = "authentication 403, close 4403", .kind = CONNECT, .where = BOTH,
     .cookie = COOKIE_EXPIRED, .status = 403, .close = 4403},
    {.input = "a Cookie header of 64 KiB (in process)",
     .answer = "authentication 403, close 4403", .kind = CONNECT, .where = IN_PROCESS, .cookie = COOKIE_64K, .status = 403, .close = 4403},
    {.input = "a Cookie header of 12 KiB (over a socket)",
     .answer = "handshake refused with HTTP 431 (4431): headers over 8 KiB", .kind = CONNECT,
     .where = LIVE, .cookie = COOKIE_12K, .close = 4431},
    {.input = "a Cookie header of 64 KiB (over a socket)",
     .answer = "the TCP connection is closed without an HTTP answer (libwebsockets 4.1.6 runs out "
     "of its 16 KiB header space and drops it before any callback could answer; logged at info, "
     "once a minute at most); the client sees 1006",
     .kind = CONNECT, .where = LIVE, .cookie = COOKIE_64K, .close = 1006},
    {.input = "a private room the user is not a member of (likewise a public room not yet joined)",
     .answer = "authentication 403, close 4403", .kind = CONNECT, .where = BOTH,
     .path = "private", .cookie = COOKIE_VALID, .status = 403, .close = 4403},
    {.input = "a room that does not exist (`/ws/chat/424242/`)",
     .answer = "authentication 404, close 4404", .kind = CONNECT, .where = BOTH, .path = "/ws/chat/424242/", .cookie = COOKIE_VALID, .status = 404, .close = 4404},
    {.input = "a room id beyond int64 (`/ws/chat/99999999999999999999/`)",
     .answer = "authentication 404, close 4404",
     .kind = CONNECT, .where = BOTH, .path = "/ws/chat/99999999999999999999/", .cookie = COOKIE_VALID,
     .status = 404, .close = 4404},
    {.input = "a room id that is not a number (`/ws/chat/abc/`)",
     .answer = "no route: handshake refused, 4404 (HTTP 404)",
     .kind = CONNECT, .where = BOTH, .path = "/ws/chat/abc/", .cookie = COOKIE_VALID, .close = 4404},
    {.input = "a foreign `Origin` (over a socket)",
     .answer = "handshake refused with HTTP 403 (4403)", .kind = CONNECT, .where = LIVE,
     .cookie = COOKIE_VALID, .header = "Origin", .value = "http://evil.example", .close = 4403},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* ---- running a row ------------------------------------------------------------------ */

static void make_row_cookie(cookie_t kind, char **out) {
    size_t cap = 66 * 1024;
    char *s = malloc(cap);
    switch (kind) {
    case COOKIE_NONE: s[0] = 0; break;
    case COOKIE_VALID: make_cookie(drv.testuser, false, s, cap); break;
    case COOKIE_EXPIRED: make_cookie(drv.testuser, true, s, cap); break;
    case COOKIE_GARBAGE: strcpy(s, "sessionid=\"; DROP TABLE sessions;--\x7f\x01"); break;
    case COOKIE_FORGED:
        strcpy(s, "sessionid=");
        for (int i = 0; i < CHAT_SESSION_TOKEN_LEN; i++)
            s[10 + i] = "0123456789abcdef"[rand() % 16];
        s[10 + CHAT_SESSION_TOKEN_LEN] = 0;
        break;
    case COOKIE_12K:
    case COOKIE_64K: {
        size_t n = strlen(strcpy(s, "sessionid=")), size = (kind == COOKIE_12K ? 12 : 64) * 1024;
        memset(s + n, 'a', size - n);
        s[size] = 0;
        break;
    }
    }
    *out = s;
}

static void run_connect(const row_t *r) {
    char path[200];
    if (!r->path)
        snprintf(path, sizeof path, "/ws/chat/%lld/", (long long)drv.general);
    else if (strcmp(r->path, "private") == 0)
        snprintf(path, sizeof path, "/ws/chat/%lld/", (long long)drv.private_room);
    else
        snprintf(path, sizeof path, "%s", r->path);
    char *cookie;
    make_row_cookie(r->cookie, &cookie);
    chanc_communicator_t *c = client(path, cookie);
    free(cookie);
    if (r->header)
        chanc_communicator_set_header(c, r->header, r->value);
    if (r->status) {
        chanc_assert_connect(c);
        chanc_assert_authenticated_status(c, r->status);
        chanc_assert_closed(c, r->close);
    } else {
        assert_false(chanc_communicator_connect(c, 5000));
        assert_int_equal(chanc_communicator_close_code(c), r->close);
    }
    chanc_communicator_disconnect(c);
}

/* One row's frame from testuser; returns the messages it stored. */
static int run_send(const row_t *r, chanc_communicator_t *c, chanc_communicator_t *bystander) {
    size_t len = 0;
    bool binary = false;
    char *bytes = r->make(&len, &binary);
    assert_int_equal(chanc_communicator_send_raw(c, bytes, len, binary), 0);
    free(bytes);
    if (r->close) {
        chanc_assert_closed(c, r->close);
        return 0;
    }
    json_t *got = chanc_communicator_receive_all_json(c, 5000);
    if (r->error) {
        assert_int_equal(json_array_size(got), 1);
        chanc_assert_json_match(json_array_get(got, 0), r->error);
        json_decref(got);
        return 0;
    }
    /* A valid chat with hostile text: verbatim to the sender and the room. */
    json_t *want = json_pack("{s:s,s:s,s:s}", "action", "chat", "payload", r->echo, "username",
                             "testuser");
    assert_int_equal(json_array_size(got), 1);
    assert_true(json_equal(json_object_get(json_array_get(got, 0), "payload"),
                           json_object_get(want, "payload")));
    json_t *seen = chanc_communicator_receive_all_json(bystander, 5000);
    assert_int_equal(json_array_size(seen), 1);
    assert_true(json_equal(json_object_get(json_array_get(seen, 0), "payload"),
                           json_object_get(want, "payload")));
    json_decref(seen);
    json_decref(want);
    json_decref(got);
    json_t *history = NULL;
    check_rc(chat_store_history(drv.store, drv.general, 1, &history), "history");
    assert_string_equal(chanc_json_str(history, "/0/message"), r->echo);
    json_decref(history);
    return 1;
}

/* 10 bursts of 1,000 chat frames, the answers read after each burst (a
 * client that never reads would be closed as a slow client, 1008). */
static int run_flood(chanc_communicator_t *c, chanc_communicator_t *bystander) {
    long accepted = 0, refused = 0, next_expected = 0;
    for (int burst = 0; burst < 10; burst++) {
        for (int i = 0; i < 1000; i++) {
            char frame[64];
            snprintf(frame, sizeof frame, "{\"action\":\"chat\",\"payload\":\"f%d\"}",
                     burst * 1000 + i);
            chanc_communicator_send_text(c, frame);
        }
        json_t *got = chanc_communicator_receive_all_json(c, 30000);
        assert_int_equal(json_array_size(got), 1000); /* every frame answered */
        size_t i;
        json_t *f;
        json_array_foreach(got, i, f) {
            const char *action = chanc_json_str(f, "/action");
            if (strcmp(action, "chat") == 0) {
                /* Accepted ones in the order sent, none of the first 400
                 * refused. (Over a socket a refusal may overtake the
                 * broadcast of an earlier accepted chat: the broadcast
                 * goes round the channel layer, the refusal does not.) */
                long n = strtol(chanc_json_str(f, "/payload") + 1, NULL, 10);
                assert_true(n >= next_expected);
                if (n < 400)
                    assert_int_equal(n, accepted);
                next_expected = n + 1;
                accepted++;
            } else {
                chanc_assert_json_match(f, ERR("rate_limited"));
                refused++;
            }
        }
        json_decref(got);
    }
    assert_int_equal(accepted + refused, 10000);
    assert_true(accepted >= 400);
    if (!drv.live)
        assert_int_equal(accepted, 400); /* no time passes in process */
    /* The bystander got exactly the accepted ones. */
    json_t *seen = chanc_communicator_receive_all_json(bystander, 30000);
    assert_int_equal(json_array_size(seen), accepted);
    json_decref(seen);
    print_message("  flood: %ld accepted, %ld refused\n", accepted, refused);
    /* The bucket refills at 200/s: a second later the connection is usable
     * again (in process a virtual second; over a socket a real one, the
     * only wait in this test, since the refill is what is being shown). */
    if (drv.live)
        nanosleep(&(struct timespec){1, 0}, NULL);
    else
        chanc_test_advance(drv.test, 1000);
    return (int)accepted;
}

static void check_bystander(chanc_communicator_t *b, int round) {
    /* Only presence of the row's connections may have reached her. */
    json_t *seen = chanc_communicator_receive_all_json(b, 5000);
    size_t i;
    json_t *f;
    json_array_foreach(seen, i, f) {
        const char *a = chanc_json_str(f, "/action");
        if (strcmp(a, "user_joined") != 0 && strcmp(a, "user_left") != 0)
            fail_msg("bystander got an unexpected %s frame", a);
    }
    json_decref(seen);
    char msg[48];
    snprintf(msg, sizeof msg, "alice still here %d", round);
    chanc_communicator_send_message(b, &chat_msg_chat, json_string(msg));
    json_t *mine = chanc_communicator_receive_all_json(b, 5000);
    assert_int_equal(json_array_size(mine), 1);
    chanc_assert_json_match(json_array_get(mine, 0), "{\"action\":\"chat\",\"is_mine\":true}");
    assert_string_equal(chanc_json_str(mine, "/0/payload"), msg);
    json_decref(mine);
}

static bool runs_here(const row_t *r) {
    return r->where == BOTH || (r->where == LIVE) == drv.live;
}

static void test_bad_input_matrix(void **state) {
    (void)state;
    chanc_communicator_t *bystander = member(drv.alice);
    int64_t stored = message_count();
    int ran = 0;
    for (size_t i = 0; i < NROWS; i++) {
        const row_t *r = &rows[i];
        if (!runs_here(r))
            continue;
        print_message("row %zu: %s\n", i + 1, r->input);
        int added = 0;
        if (r->kind == CONNECT) {
            run_connect(r);
        } else {
            chanc_communicator_t *c = member(drv.testuser);
            json_decref(chanc_communicator_receive_all_json(bystander, 5000)); /* joined */
            added = r->kind == FLOOD ? run_flood(c, bystander) : run_send(r, c, bystander);
            if (!r->close) {
                /* the sender's connection is still usable */
                chanc_communicator_send_message(c, &chat_msg_ping, NULL);
                chanc_assert_receive_match(c, "{\"action\":\"pong\"}");
            }
            chanc_communicator_disconnect(c);
        }
        check_bystander(bystander, (int)i);
        stored += added + 1; /* + the bystander's */
        assert_int_equal(message_count(), stored);
        ran++;
    }
    print_message("%d rows (%s)\n", ran, drv.live ? "live" : "in process");
    chanc_communicator_disconnect(bystander);
    if (chat_test_pg())
        return; /* the integrity check below is SQLite's */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(drv.db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The inputs derived from the chat's incoming types (chanc/derive.h):
 * every missing payload, wrong type, length bound and neighbour (ASCII and
 * 4-byte characters), null, extra key, surrogate, U+FFFF and huge number,
 * on one connection of testuser's. Each gets its documented error or is
 * accepted; the connection stays usable; every accepted chat is stored
 * once and reaches alice, in the same room, who sees nothing else. */
static void test_derived_inputs(void **state) {
    (void)state;
    chanc_communicator_t *bystander = member(drv.alice);
    chanc_communicator_t *c = member(drv.testuser);
    json_decref(chanc_communicator_receive_all_json(bystander, 5000)); /* testuser joined */
    int64_t before = message_count();
    json_t *cases = chanc_schema_cases(&chat_msg_chat);
    size_t valid = 0, i;
    json_t *k;
    json_array_foreach(cases, i, k) valid += json_is_true(json_object_get(k, "valid"));
    assert_int_equal(chanc_assert_schema_cases(c, &chat_msg_chat), json_array_size(cases));
    json_t *ping_cases = chanc_schema_cases(&chat_msg_ping);
    assert_int_equal(chanc_assert_schema_cases(c, &chat_msg_ping), json_array_size(ping_cases));
    print_message("derived inputs: chat %zu (%zu valid), ping %zu\n", json_array_size(cases), valid,
                  json_array_size(ping_cases));
    json_decref(ping_cases);
    json_decref(cases);
    /* + the first valid chat sent again at the end of the chat's cases */
    assert_int_equal(message_count() - before, (int64_t)valid + 1);
    json_t *seen = chanc_communicator_receive_all_json(bystander, 5000);
    assert_int_equal(json_array_size(seen), valid + 1);
    json_array_foreach(seen, i, k) chanc_assert_json_match(k, "{\"action\":\"chat\",\"username\":\"testuser\"}");
    json_decref(seen);
    chanc_communicator_disconnect(c);
    chanc_communicator_disconnect(bystander);
}

static void print_table(void) {
    printf("| # | input | answer | in process | live |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NROWS; i++)
        printf("| %zu | %s | %s | %s | %s |\n", i + 1, rows[i].input, rows[i].answer,
               rows[i].where != LIVE ? "✓" : "–", rows[i].where != IN_PROCESS ? "✓" : "–");
    json_t *chat = chanc_schema_cases(&chat_msg_chat), *ping = chanc_schema_cases(&chat_msg_ping);
    printf("\nAnd the inputs derived from the schemas of `chat` (%zu) and `ping` (%zu) "
           "(`chanc_assert_schema_cases`, test `test_derived_inputs`, in process and live).\n",
           json_array_size(chat), json_array_size(ping));
    json_decref(chat);
    json_decref(ping);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--table") == 0) {
        print_table();
        return 0;
    }
    drv.live = argc > 1 && strcmp(argv[1], "live") == 0;
    srand(12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input_matrix),
        cmocka_unit_test(test_derived_inputs),
    };
    return chanc_run_group_tests_name(drv.live ? "chat.bad_input.live" : "chat.bad_input", tests,
                                       group_setup, group_teardown);
}

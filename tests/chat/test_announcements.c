/* chat.announcements: POST /api/rooms/{id}/announcements through the
 * views (chat_views_handle, as chanc_server calls it) on the chat
 * fixture's app: every answer's status and body, one row per request; a
 * member's socket gets the `announcement` frame, a socket of another room
 * does not; nothing is stored; the frame is encoded once for all members. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat_views.h"
#include "chat_test.h"

#define JSON "application/json"
#define SITE "http://127.0.0.1:8000"

typedef struct row {
    const char *user;   /* whose session cookie (NULL: none; "expired": a made-up token) */
    const char *method; /* NULL: POST */
    const char *room;   /* fixture slug, or "999999" */
    const char *body;
    const char *content_type; /* NULL: none */
    const char *origin;       /* NULL: the site's own */
    int status;
    const char *body_has; /* NULL: unchecked */
} row_t;

static char *repeat(const char *s, int n) {
    size_t len = strlen(s);
    char *out = malloc(len * (size_t)n + 32);
    char *p = out + sprintf(out, "{\"message\":\"");
    for (int i = 0; i < n; i++, p += len)
        memcpy(p, s, len);
    strcpy(p, "\"}");
    return out;
}

static json_t *ask(chat_test_t *t, chat_views_t *v, const row_t *r, int64_t room,
                   chanc_http_response_t *resp) {
    char token[CHAT_SESSION_TOKEN_LEN + 1], cookie[CHAT_SESSION_TOKEN_LEN + 16], path[64];
    chanc_header_t h[5] = {{"host", "127.0.0.1:8000"}, {"origin", r->origin ? r->origin : SITE}};
    size_t n = 2;
    if (r->user && strcmp(r->user, "expired") == 0) {
        memset(token, 'a', CHAT_SESSION_TOKEN_LEN);
        token[CHAT_SESSION_TOKEN_LEN] = '\0';
    } else if (r->user) {
        chat_user_t u;
        assert_int_equal(chat_store_get_user(t->store, r->user, &u), 0);
        assert_int_equal(chat_store_create_session(t->store, u.id, token), 0);
    }
    if (r->user) {
        snprintf(cookie, sizeof cookie, "sessionid=%s", token);
        h[n++] = (chanc_header_t){"cookie", cookie};
    }
    if (r->content_type)
        h[n++] = (chanc_header_t){"content-type", r->content_type};
    snprintf(path, sizeof path, "/api/rooms/%lld/announcements", (long long)room);
    chanc_http_request_t req = {.method = r->method ? r->method : "POST", .path = path,
                                .headers = h, .nheaders = n, .body = r->body,
                                .body_len = r->body ? strlen(r->body) : 0};
    *resp = (chanc_http_response_t){0};
    assert_int_equal(chat_views_handle(v, &req, resp), 0);
    return resp->body && resp->content_type && strcmp(resp->content_type, JSON) == 0
               ? json_loadb(resp->body, resp->body_len, 0, NULL)
               : NULL;
}

static int64_t room_of(chat_test_t *t, const char *slug) {
    return strcmp(slug, "999999") == 0 ? 999999 : chat_test_room(t, slug);
}

/* Every status the view answers. bob is made staff: a member of General
 * and Random, not of Private (alice's). */
static void test_every_answer(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .app = t->test->app};
    chat_user_t bob;
    assert_int_equal(chat_store_get_user(t->store, "bob", &bob), 0);
    assert_int_equal(chat_store_set_user_staff(t->store, bob.id, true), 0);
    char *longest = repeat("\xc3\xa9", 500), *too_long = repeat("x", 501);
    const row_t rows[] = {
        {"alice", .room = "general", .body = "{\"message\":\"Fire drill at 3\"}",
         .content_type = JSON, .status = 201,
         .body_has = "{\"message\":\"Fire drill at 3\",\"username\":\"alice\"}"},
        {"alice", .room = "general", .body = longest, .content_type = JSON "; charset=utf-8",
         .status = 201},
        {"alice", .room = "private", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 201},
        {"bob", .room = "random", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 201}, /* a public room: any staff who can see it */
        {"bob", .room = "private", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 404, .body_has = "{\"detail\":\"No such room.\"}"},
        {"alice", .room = "999999", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 404},
        {"testuser", .room = "general", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 403, .body_has = "{\"detail\":\"Only staff may post announcements.\"}"},
        {NULL, .room = "general", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 401},
        {"expired", .room = "general", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 401},
        {"alice", .room = "general", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .origin = "http://evil.example", .status = 403},
        {"alice", "GET", .room = "general", .status = 405},
        {"alice", "PUT", .room = "general", .body = "{\"message\":\"hi\"}", .content_type = JSON,
         .status = 405},
        {"alice", .room = "general", .body = "{\"message\":\"hi\"}",
         .content_type = "text/plain", .status = 415},
        {"alice", .room = "general", .body = "{\"message\":\"hi\"}", .status = 415},
        {"alice", .room = "general", .body = "message=hi",
         .content_type = "application/x-www-form-urlencoded", .status = 415},
        /* 400: the WebSocket error frame's items, loc in the body */
        {"alice", .room = "general", .body = "not json", .content_type = JSON, .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"json_invalid\",\"loc\":[]}]}"},
        {"alice", .room = "general", .content_type = JSON, .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"json_invalid\"}]}"},
        {"alice", .room = "general", .body = "{\"message\":\"\"}", .content_type = JSON,
         .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"string_too_short\",\"loc\":[\"message\"]}]}"},
        {"alice", .room = "general", .body = too_long, .content_type = JSON, .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"string_too_long\",\"loc\":[\"message\"]}]}"},
        {"alice", .room = "general", .body = "{\"message\":5}", .content_type = JSON,
         .status = 400, .body_has = "{\"detail\":[{\"type\":\"string_type\"}]}"},
        {"alice", .room = "general", .body = "{}", .content_type = JSON, .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"message\"]}]}"},
        {"alice", .room = "general", .body = "{\"message\":\"x\",\"colour\":1}",
         .content_type = JSON, .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"extra_forbidden\",\"loc\":[\"colour\"]}]}"},
        {"alice", .room = "general", .body = "[\"x\"]", .content_type = JSON, .status = 400,
         .body_has = "{\"detail\":[{\"type\":\"dict_type\"}]}"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const row_t *r = &rows[i];
        print_message("row %zu: %s %s %s as %s\n", i + 1, r->method ? r->method : "POST",
                      r->room, r->body ? r->body : "(no body)", r->user ? r->user : "nobody");
        chanc_http_response_t resp;
        json_t *got = ask(t, &views, r, room_of(t, r->room), &resp);
        assert_int_equal(resp.status, r->status);
        if (r->status == 405)
            assert_non_null(resp.nheaders ? resp.headers : NULL);
        else /* every other answer is JSON */
            assert_non_null(got);
        if (r->body_has)
            chanc_assert_json_match(got, r->body_has);
        json_decref(got);
        free(resp.body);
    }
    free(longest);
    free(too_long);
}

/* The members of the room get the frame on their sockets — the same bytes,
 * encoded once — and a socket in another room does not; the history is
 * unchanged (an announcement is not stored). */
static void test_members_get_it_others_do_not(void **state) {
    chat_test_t *t = *state;
    chat_views_t views = {.store = t->store, .app = t->test->app};
    int64_t general = t->room_id, random = chat_test_room(t, "random");
    chanc_communicator_t *tu = chat_test_member(t, general, "testuser");
    chanc_communicator_t *bob = chat_test_member(t, general, "bob");
    chanc_communicator_t *other = chat_test_member(t, random, "alice");
    json_decref(chanc_communicator_receive_all_json(tu, 1000)); /* bob joined */
    int64_t stored_before, stored_after;
    assert_int_equal(chat_store_message_count(t->store, general, &stored_before), 0);
    chanc_app_stats_t before, after;
    chanc_app_stats(t->test->app, &before);

    row_t r = {"alice", .body = "{\"message\":\"Fire drill at 3 <b>\"}", .content_type = JSON};
    chanc_http_response_t resp;
    json_t *got = ask(t, &views, &r, general, &resp);
    assert_int_equal(resp.status, 201);
    chanc_assert_json_match(got, "{\"message\":\"Fire drill at 3 <b>\",\"username\":\"alice\","
                                 "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}");
    json_decref(got);
    free(resp.body);

    const char *frame = "[{\"action\":\"announcement\",\"payload\":{\"message\":"
                        "\"Fire drill at 3 <b>\",\"username\":\"alice\","
                        "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}}]";
    chanc_assert_receive_all_match(tu, frame);
    chanc_assert_receive_all_match(bob, frame);
    chanc_assert_receive_nothing(other);
    chanc_app_stats(t->test->app, &after);
    assert_int_equal(after.encodes - before.encodes, 1);
    assert_int_equal(chat_store_message_count(t->store, general, &stored_after), 0);
    assert_int_equal(stored_after, stored_before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        CHAT_TEST(test_every_answer),
        CHAT_TEST(test_members_get_it_others_do_not),
    };
    return chanc_run_group_tests_name("chat.announcements", tests, NULL, NULL);
}

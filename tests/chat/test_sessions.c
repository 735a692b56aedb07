/* chat.sessions: a session ends everywhere at once. A logout (POST
 * /logout, the view called as chat-server calls it) closes every chat
 * socket opened with that session — with a 401 authentication frame and
 * 4401 — before the view answers, so nothing more reaches them afterwards,
 * not even a broadcast already on its way; the user's other sessions are
 * untouched. A handshake in flight during the logout is closed when it
 * joins. A logout in another process (its event injected as if it came
 * through the channel layer) closes the session's sockets here. (Expiry: chat.consumer; across processes: chat.scaleout; over a
 * socket: chat.live.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat_views.h"
#include "chat_test.h"

/* A new session of `username`. */
static void new_session(chat_test_t *t, const char *username,
                        char token[CHAT_SESSION_TOKEN_LEN + 1]) {
    chat_user_t u;
    assert_int_equal(chat_store_get_user(t->store, username, &u), 0);
    assert_int_equal(chat_store_create_session(t->store, u.id, token), 0);
}

/* A communicator on room carrying the session's cookie (not connected). */
static chanc_communicator_t *client(chat_test_t *t, int64_t room, const char *token) {
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", (long long)room);
    char cookie[CHAT_SESSION_TOKEN_LEN + 16];
    snprintf(cookie, sizeof cookie, "sessionid=%s", token);
    chanc_communicator_set_header(c, "Cookie", cookie);
    return c;
}

/* The same, connected, authenticated and drained of its join frames. */
static chanc_communicator_t *member(chat_test_t *t, int64_t room, const char *token) {
    chanc_communicator_t *c = client(t, room, token);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000));
    return c;
}

/* POST /logout with the session's cookie from the site's own page, through
 * the views with the fixture's app (their store calls inline: the answer is
 * built before this returns); its status. */
static int logout(chat_test_t *t, const char *token) {
    chat_views_t views = {.store = t->store, .app = t->test->app};
    char cookie[CHAT_SESSION_TOKEN_LEN + 16];
    snprintf(cookie, sizeof cookie, "sessionid=%s", token);
    chanc_header_t headers[] = {{"host", "127.0.0.1:8000"},
                                {"origin", "http://127.0.0.1:8000"},
                                {"cookie", cookie}};
    chanc_http_request_t req = {.method = "POST", .path = "/logout", .headers = headers,
                                .nheaders = 3};
    chanc_http_response_t resp = {0};
    assert_int_equal(chat_views_handle(&views, &req, &resp), 0);
    free(resp.body);
    return resp.status;
}

#define LOGGED_OUT                                                                          \
    "{\"action\":\"authentication\",\"payload\":{\"status_code\":401,\"status_text\":"      \
    "\"Unauthorized\",\"data\":{\"detail\":\"Logged out.\"}}}"

static void test_logout_closes_the_sessions_sockets_before_it_answers(void **state) {
    chat_test_t *t = *state;
    int64_t random = chat_test_room(t, "random");
    char a[CHAT_SESSION_TOKEN_LEN + 1], a_other[CHAT_SESSION_TOKEN_LEN + 1],
        b[CHAT_SESSION_TOKEN_LEN + 1];
    new_session(t, "alice", a);
    new_session(t, "alice", a_other); /* alice in another browser */
    new_session(t, "bob", b);
    chanc_communicator_t *alice = member(t, t->room_id, a);
    chanc_communicator_t *alice_random = member(t, random, a); /* another tab, another room */
    chanc_communicator_t *alice_elsewhere = member(t, t->room_id, a_other);
    chanc_communicator_t *bob = member(t, t->room_id, b);
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    json_decref(chanc_communicator_receive_all_json(alice_elsewhere, 1000));

    /* A broadcast already on its way (committed and published, not yet
     * delivered) when the logout comes... */
    char group[40];
    snprintf(group, sizeof group, "chat_room_%lld", (long long)t->room_id);
    assert_int_equal(chanc_app_group_send(t->test->app, group,
                                          json_pack("{s:s,s:s,s:s,s:s}", "action", "chat",
                                                    "payload", "in flight", "username", "bob",
                                                    "timestamp", "2026-01-01T00:00:00.000Z")),
                     0);
    assert_int_equal(logout(t, a), 302);
    /* ...the session's sockets were closed before the answer was built, */
    assert_true(chanc_communicator_closed(alice));
    assert_true(chanc_communicator_closed(alice_random));
    assert_false(chanc_communicator_closed(alice_elsewhere));
    assert_false(chanc_communicator_closed(bob));
    /* with the reason, and nothing after it: not the broadcast either. */
    chanc_assert_receive_match(alice, LOGGED_OUT);
    chanc_assert_receive_nothing(alice);
    chanc_assert_closed(alice, 4401);
    assert_string_equal(chanc_communicator_close_reason(alice), "Logged out");
    chanc_assert_receive_match(alice_random, LOGGED_OUT);
    chanc_assert_receive_nothing(alice_random);
    chanc_assert_closed(alice_random, 4401);

    /* Everyone else gets the broadcast, then alice leaving. */
    chanc_assert_receive_all_match(bob, "[{\"action\":\"chat\",\"payload\":\"in flight\"},"
                                        "{\"action\":\"user_left\",\"payload\":{\"username\":"
                                        "\"alice\"}}]");
    chanc_assert_receive_all_match(alice_elsewhere, "[{\"action\":\"chat\",\"payload\":"
                                                    "\"in flight\"},{\"action\":\"user_left\"}]");
    /* alice's other session goes on; the ended one is gone for good. */
    chanc_communicator_send_message(alice_elsewhere, &chat_msg_chat, json_string("still here"));
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"still here\","
                                    "\"username\":\"alice\"}");
    assert_int_equal(chat_store_session_user(t->store, a, NULL), CHANC_ENOTFOUND);
    chanc_communicator_t *again = client(t, t->room_id, a);
    chanc_assert_connect(again);
    chanc_assert_authenticated_status(again, 403);
    chanc_assert_closed(again, 4403);
}

/* A logout with no socket open, a second logout of the same session, a
 * cookie that is no session: 302 each, and nobody else is touched. */
static void test_logout_without_sockets_touches_nobody(void **state) {
    chat_test_t *t = *state;
    char a[CHAT_SESSION_TOKEN_LEN + 1], b[CHAT_SESSION_TOKEN_LEN + 1];
    new_session(t, "alice", a);
    new_session(t, "bob", b);
    char a_group[CHAT_SESSION_GROUP_MAX];
    chat_session_group(a, a_group);
    assert_int_equal(chanc_test_capture_group(t->test, a_group), 0);
    chanc_communicator_t *bob = member(t, t->room_id, b);
    assert_int_equal(logout(t, a), 302);
    /* no socket here, but the event goes out (for the other processes') */
    chanc_assert_group_sent_match(t->test, a_group, "[{\"action\":\"session_ended\"}]");
    assert_int_equal(logout(t, a), 302);
    assert_int_equal(logout(t, "0000000000000000000000000000000000000000000000000000000000000000"),
                     302);
    assert_int_equal(logout(t, "not-a-token"), 302);
    chanc_assert_receive_nothing(bob);
    chanc_assert_open(bob);
}

/* The session ended in another process (its event comes through the
 * channel layer): this process's sockets of that session get the 401
 * frame and 4401, the room is told, the others stay. */
static void test_a_logout_in_another_process_closes_the_sockets_here(void **state) {
    chat_test_t *t = *state;
    char a[CHAT_SESSION_TOKEN_LEN + 1], b[CHAT_SESSION_TOKEN_LEN + 1];
    new_session(t, "alice", a);
    new_session(t, "bob", b);
    char a_group[CHAT_SESSION_GROUP_MAX], room[CHAT_TEST_GROUP_MAX];
    chat_session_group(a, a_group);
    chanc_communicator_t *alice = member(t, t->room_id, a);
    chanc_communicator_t *bob = member(t, t->room_id, b);
    json_decref(chanc_communicator_receive_all_json(alice, 1000)); /* bob joined */
    chanc_assert_in_group(alice, a_group);
    chanc_assert_not_in_group(bob, a_group);
    chat_test_capture_room(t, t->room_id, room);
    chanc_test_inject_event(t->test, a_group, &chat_event_session_ended, NULL);
    chanc_assert_receive_match(alice, LOGGED_OUT);
    chanc_assert_closed(alice, 4401);
    chanc_assert_not_in_group(alice, a_group);
    chanc_assert_open(bob);
    chanc_assert_group_sent_match(t->test, room,
                                  "[{\"action\":\"user_left\",\"payload\":{\"username\":"
                                  "\"alice\"}}]");
}

static chat_test_t *fixture;
static char racing_token[CHAT_SESSION_TOKEN_LEN + 1];

static void logout_now(void *arg) {
    (void)arg;
    assert_int_equal(logout(fixture, racing_token), 302);
}

/* A handshake whose lookups ran before the logout deleted its session, and
 * which joins the session's group only after the logout's event went out:
 * it is closed when it joins, not left open with an ended session. (On an
 * in-memory database the handshake's lookups run when it starts; the
 * logout is queued to run before their results come back.) */
static void test_a_handshake_in_flight_during_the_logout_is_closed_when_it_joins(void **state) {
    chat_test_t *t = *state;
    fixture = t;
    new_session(t, "alice", racing_token);
    char room[CHAT_TEST_GROUP_MAX];
    chat_test_capture_room(t, t->room_id, room);
    chanc_communicator_t *alice = client(t, t->room_id, racing_token);
    assert_int_equal(chanc_app_call_soon(t->test->app, logout_now, NULL), 0);
    chanc_assert_connect(alice);
    chanc_assert_authenticated_status_ok(alice); /* the lookups saw the session */
    chanc_assert_receive_match(alice, LOGGED_OUT);
    chanc_assert_receive_nothing(alice); /* no history, no user_joined */
    chanc_assert_closed(alice, 4401);
    chanc_assert_group_sent_nothing(t->test, room); /* neither joined nor left */
    assert_int_equal(chat_store_session_user(t->store, racing_token, NULL), CHANC_ENOTFOUND);
}

static int setup_in_memory(void **state) {
    *state = chat_test_create(&(chat_test_options_t){.name = *state, .in_memory = true});
    return *state ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        CHAT_TEST(test_logout_closes_the_sessions_sockets_before_it_answers),
        CHAT_TEST(test_logout_without_sockets_touches_nobody),
        CHAT_TEST(test_a_logout_in_another_process_closes_the_sockets_here),
        chanc_unit_test(test_a_handshake_in_flight_during_the_logout_is_closed_when_it_joins,
                        setup_in_memory, chat_test_teardown),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}

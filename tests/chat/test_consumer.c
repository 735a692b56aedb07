/* chat.consumer: the chat application through the in-process
 * communicator, as an application developer would test it. Fresh store
 * per test (fixtures/chat.json), testuser logged in, virtual clock at
 * 2026-01-01T00:00:00Z. */
#include <string.h>

#include "chat_test.h"

#define ROOM_PATH "/ws/chat/%lld/"

/* ---- the seed's two tests, line for line ---------------------------------- */

static void test_connect_and_receive_history(void **state) {
    chat_test_t *t = *state; /* app + fresh DB + logged-in user */
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    assert_true(chanc_communicator_connect(c, 1000));
    chanc_assert_authenticated_status_ok(c);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    assert_true(json_array_size(msgs) >= 1);
    json_t *join = chanc_json_find(msgs, "{\"action\":\"user_joined\"}");
    assert_non_null(join);
    assert_string_equal(chanc_json_str(join, "/payload/username"), "testuser");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
    chanc_assert_transcript_matches(c, "fixtures/transcripts/connect_and_receive_history.jsonl");
}

static void test_chat_message(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    assert_true(chanc_communicator_connect(c, 1000));
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000)); /* join + history */
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("Hello everyone!"));
    chanc_assert_receive_all_match(c, "[{\"action\":\"chat\",\"payload\":\"Hello everyone!\","
                                      "\"username\":\"testuser\",\"is_mine\":true}]");
    chanc_communicator_disconnect(c);
    chanc_assert_transcript_matches(c, "fixtures/transcripts/chat_message.jsonl");
}

/* ---- joining ------------------------------------------------------------------ */

static void test_join_frames_are_exact(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_client(t, t->room_id, "alice");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    chanc_assert_json_match(msgs, "[{\"action\":\"history\",\"payload\":["
        "{\"username\":\"alice\",\"message\":\"Welcome to General!\",\"timestamp\":\"2025-12-31T23:50:00.000Z\"},"
        "{\"username\":\"bob\",\"message\":\"hi alice\",\"timestamp\":\"2025-12-31T23:51:00.000Z\"},"
        "{\"username\":\"alice\",\"message\":\"Has anyone seen the release notes?\",\"timestamp\":\"2025-12-31T23:52:00.000Z\"}]},"
        "{\"action\":\"user_joined\",\"payload\":{\"username\":\"alice\",\"room_name\":\"General\","
        "\"timestamp\":\"2026-01-01T00:00:00.000Z\"},\"is_mine\":true,\"is_current\":true}]");
    assert_int_equal(json_array_size(chanc_json_ptr(msgs, "/0/payload")), 3);
    json_decref(msgs);
}

static void test_history_is_the_last_50_oldest_first(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_client(t, chat_test_room(t, "busy"), "testuser");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    json_t *history = chanc_json_ptr(chanc_json_find(msgs, "{\"action\":\"history\"}"), "/payload");
    assert_int_equal(json_array_size(history), 50);
    for (size_t i = 0; i < 50; i++) {
        char want[32];
        snprintf(want, sizeof want, "message %zu", i + 11);
        assert_string_equal(json_string_value(json_object_get(json_array_get(history, i), "message")),
                            want);
    }
    /* 59 and 60 share a timestamp: ordered by id. */
    assert_string_equal(chanc_json_str(history, "/48/timestamp"), chanc_json_str(history, "/49/timestamp"));
    json_decref(msgs);
}

/* What the room is sent, captured: no member needed as a witness (the
 * delivery to members: the two- and three-member tests below). */
static void test_joining_announces_to_the_room(void **state) {
    chat_test_t *t = *state;
    char room[CHAT_TEST_GROUP_MAX];
    chat_test_capture_room(t, t->room_id, room);
    chanc_test_advance(t->test, 1500);
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    chanc_assert_in_group(bob, room);
    chanc_assert_group_sent_match(t->test, room,
                                  "[{\"action\":\"user_joined\",\"payload\":{\"username\":\"bob\","
                                  "\"room_name\":\"General\",\"timestamp\":"
                                  "\"2026-01-01T00:00:01.500Z\"}}]");
}

/* ---- refusals ----------------------------------------------------------------- */

static void test_non_member_gets_403_and_is_closed(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_client(t, t->room_id, "dave");
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":403,"
                                  "\"status_text\":\"Forbidden\",\"data\":{\"detail\":"
                                  "\"You are not a member of this room.\"}}}");
    chanc_assert_closed(c, 4403);
}

static void test_missing_room_gets_404_and_is_closed(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/999999/");
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"payload\":{\"status_code\":404,\"status_text\":\"Not Found\","
                                  "\"data\":{\"detail\":\"Not found.\"}}}");
    chanc_assert_closed(c, 4404);

    chanc_communicator_t *huge = chanc_test_communicator(t->test, "/ws/chat/99999999999999999999999/");
    chanc_assert_connect(huge);
    chanc_assert_authenticated_status(huge, 404);
    chanc_assert_closed(huge, 4404);
}

static void test_non_numeric_room_is_refused_by_the_router(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/general/");
    assert_false(chanc_communicator_connect(c, 1000));
    assert_int_equal(chanc_communicator_close_code(c), 4404);
}

static void test_anonymous_gets_403_and_is_closed(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_client(t, t->room_id, NULL);
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"payload\":{\"status_code\":403,\"data\":{\"detail\":"
                                  "\"Authentication credentials were not provided.\"}}}");
    chanc_assert_closed(c, 4403);
}

static void test_forged_and_expired_sessions_are_anonymous(void **state) {
    chat_test_t *t = *state;
    static const char *const forged[] = {
        "sessionid=0000000000000000000000000000000000000000000000000000000000000000",
        "sessionid=not-a-token", "sessionid=", "sessionid=' OR 1=1 --", "other=1"};
    for (size_t i = 0; i < sizeof forged / sizeof *forged; i++) {
        chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
        chanc_communicator_set_header(c, "Cookie", forged[i]);
        chanc_assert_connect(c);
        chanc_assert_authenticated_status(c, 403);
        chanc_assert_closed(c, 4403);
    }
    /* testuser's session (the fixture's default cookie) lives 14 days. */
    chanc_test_advance(t->test, 14LL * 24 * 3600 * 1000 - 1);
    chanc_communicator_t *ok = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    chanc_assert_connect(ok);
    chanc_assert_authenticated_status_ok(ok);
    chanc_test_advance(t->test, 1);
    chanc_communicator_t *expired = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    chanc_assert_connect(expired);
    chanc_assert_authenticated_status(expired, 403);
    chanc_assert_closed(expired, 4403);
}

/* A session that expires while connected closes its sockets when it
 * expires (a timer on the app's clock), without waiting for their next
 * frame: every socket of that session, in every room; others stay. */
static void test_session_expiring_while_connected_closes_its_sockets_then(void **state) {
    chat_test_t *t = *state;
    int64_t random = chat_test_room(t, "random");
    /* Two sockets of the fixture's session (testuser's cookie), two rooms. */
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    chanc_communicator_t *c2 = chanc_test_communicator(t->test, ROOM_PATH, (long long)random);
    chanc_communicator_t *both[] = {c, c2};
    for (size_t i = 0; i < 2; i++) {
        chanc_assert_connect(both[i]);
        chanc_assert_authenticated_status_ok(both[i]);
        json_decref(chanc_communicator_receive_all_json(both[i], 1000));
    }
    chanc_test_advance(t->test, 60000);
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice"); /* expires later */
    json_decref(chanc_communicator_receive_all_json(c, 1000));
    int64_t before = -1, after = -1;
    assert_int_equal(chat_store_message_count(t->store, t->room_id, &before), 0);
    /* Sessions live 14 days: the last millisecond still works... */
    chanc_test_advance(t->test, 14LL * 24 * 3600 * 1000 - 60000 - 1);
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("just in time"));
    chanc_assert_receive_match(c, "{\"action\":\"chat\",\"payload\":\"just in time\"}");
    chanc_assert_receive_match(alice, "{\"action\":\"chat\",\"payload\":\"just in time\"}");
    chanc_assert_open(c2);
    /* ...and at the expiry both of testuser's sockets are closed, though
     * neither sends anything. */
    chanc_test_advance(t->test, 1);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":401,"
                                  "\"status_text\":\"Unauthorized\",\"data\":{\"detail\":\"Session expired.\"}}}");
    chanc_assert_closed(c, 4401);
    assert_string_equal(chanc_communicator_close_reason(c), "Session expired");
    chanc_assert_receive_match(c2, "{\"action\":\"authentication\",\"payload\":{\"status_code\":401}}");
    chanc_assert_closed(c2, 4401);
    chanc_assert_receive_match(alice, "{\"action\":\"user_left\",\"payload\":{\"username\":\"testuser\"}}");
    chanc_assert_receive_nothing(alice);
    chanc_assert_open(alice); /* her session has a minute left */
    assert_int_equal(chat_store_message_count(t->store, t->room_id, &after), 0);
    assert_int_equal(after, before + 1);
    chanc_test_advance(t->test, 60000);
    chanc_assert_closed(alice, 4401);
}

/* A logout (the session deleted) while connected: frames still pass for
 * up to a second (the store is asked at most once a second per
 * connection), then the next one is refused. */
static void test_logout_while_connected_refuses_frames_within_a_second(void **state) {
    chat_test_t *t = *state;
    char token[CHAT_SESSION_TOKEN_LEN + 1], cookie[100];
    assert_int_equal(chat_store_create_session(t->store, t->user_id, token), 0);
    snprintf(cookie, sizeof cookie, "sessionid=%s", token);
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    chanc_communicator_set_header(c, "Cookie", cookie);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000));
    assert_int_equal(chat_store_delete_session(t->store, token), 0);
    chanc_test_advance(t->test, 999);
    chanc_communicator_send_message(c, &chat_msg_ping, NULL);
    chanc_assert_receive_match(c, "{\"action\":\"pong\"}");
    chanc_test_advance(t->test, 1);
    chanc_communicator_send_message(c, &chat_msg_ping, NULL);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":401}}");
    chanc_assert_closed(c, 4401);
}

/* ---- conversation ---------------------------------------------------------------- */

static void test_two_members_exchange_messages_with_flags(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000)); /* bob joined */

    chanc_test_advance(t->test, 250);
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("hi bob"));
    chanc_assert_receive_match(alice, "{\"action\":\"chat\",\"payload\":\"hi bob\",\"username\":\"alice\","
                                      "\"timestamp\":\"2026-01-01T00:00:00.250Z\",\"is_mine\":true,\"is_current\":true}");
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"hi bob\",\"username\":\"alice\","
                                    "\"timestamp\":\"2026-01-01T00:00:00.250Z\",\"is_mine\":false,\"is_current\":false}");
    chanc_communicator_send_message(bob, &chat_msg_chat, json_string("hello alice"));
    chanc_assert_receive_match(alice, "{\"payload\":\"hello alice\",\"username\":\"bob\",\"is_mine\":false}");
    chanc_assert_receive_match(bob, "{\"payload\":\"hello alice\",\"is_mine\":true,\"is_current\":true}");
    chanc_assert_receive_nothing(alice);
    chanc_assert_receive_nothing(bob);
    /* The whole conversation, both sides; timestamps are virtual, hence
     * exact, but masked here to show how (and to survive a clock change). */
    chanc_communicator_disconnect(bob);
    chanc_assert_transcript_matches(alice, "fixtures/transcripts/two_members_alice.jsonl",
                                    "/timestamp", "/payload/timestamp");
    chanc_assert_transcript_matches(bob, "fixtures/transcripts/two_members_bob.jsonl",
                                    "/timestamp", "/payload/timestamp");
}

static void test_three_members_and_a_second_tab(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    chanc_communicator_t *carol = chat_test_member(t, t->room_id, "carol");
    chanc_communicator_t *alice2 = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *all[] = {alice, bob, carol, alice2};
    for (size_t i = 0; i < 4; i++)
        json_decref(chanc_communicator_receive_all_json(all[i], 1000));

    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("one for all"));
    static const char *const expect[] = {
        "[{\"action\":\"chat\",\"payload\":\"one for all\",\"is_mine\":true,\"is_current\":true}]",
        "[{\"action\":\"chat\",\"payload\":\"one for all\",\"is_mine\":false,\"is_current\":false}]",
        "[{\"action\":\"chat\",\"payload\":\"one for all\",\"is_mine\":false,\"is_current\":false}]",
        "[{\"action\":\"chat\",\"payload\":\"one for all\",\"is_mine\":true,\"is_current\":false}]"};
    for (size_t i = 0; i < 4; i++) {
        json_t *msgs = chanc_communicator_receive_all_json(all[i], 1000);
        chanc_assert_json_match(msgs, expect[i]);
        assert_int_equal(json_array_size(msgs), 1); /* exactly once each */
        json_decref(msgs);
    }
}

static void test_rooms_are_isolated(void **state) {
    chat_test_t *t = *state;
    int64_t random = chat_test_room(t, "random");
    char general[CHAT_TEST_GROUP_MAX], random_group[CHAT_TEST_GROUP_MAX];
    chat_test_capture_room(t, t->room_id, general);
    chat_test_capture_room(t, random, random_group);
    chanc_communicator_t *in_random = chat_test_member(t, random, "testuser");
    chanc_assert_not_in_group(in_random, general);
    chanc_communicator_send_message(in_random, &chat_msg_chat, json_string("random talk"));
    chanc_communicator_disconnect(in_random);
    chanc_assert_group_sent_match(t->test, random_group,
                                  "[{\"action\":\"user_joined\"},"
                                  " {\"action\":\"chat\",\"payload\":\"random talk\"},"
                                  " {\"action\":\"user_left\"}]");
    chanc_assert_group_sent_nothing(t->test, general); /* no chat, no user_left across rooms */

    json_t *history = NULL;
    assert_int_equal(chat_store_history(t->store, t->room_id, 50, &history), 0);
    assert_int_equal(json_array_size(history), 3);
    json_decref(history);
}

static void test_user_left_reaches_the_others_not_the_leaver(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    chanc_test_advance(t->test, 60000);
    chanc_communicator_disconnect(bob);
    chanc_assert_receive_match(alice, "{\"action\":\"user_left\",\"payload\":{\"username\":\"bob\","
                                      "\"room_name\":\"General\",\"timestamp\":\"2026-01-01T00:01:00.000Z\"},"
                                      "\"is_mine\":false,\"is_current\":false}");
    chanc_assert_receive_nothing(alice);
    chanc_assert_receive_nothing(bob); /* closed: nothing after the close */
}

static void test_refused_connections_announce_nothing(void **state) {
    chat_test_t *t = *state;
    char room[CHAT_TEST_GROUP_MAX];
    chat_test_capture_room(t, t->room_id, room);
    chanc_communicator_t *dave = chat_test_client(t, t->room_id, "dave");
    chanc_assert_connect(dave);
    chanc_assert_authenticated_status(dave, 403);
    chanc_assert_closed(dave, 4403);
    chanc_assert_not_in_group(dave, room);
    chanc_assert_group_sent_nothing(t->test, room); /* neither user_joined nor user_left */
}

static void test_ping_pong(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    chanc_communicator_send_message(c, &chat_msg_ping, NULL);
    json_t *frames = chanc_communicator_receive_until_action(c, "complete", 1000);
    chanc_assert_json_match(frames, "[{\"action\":\"pong\",\"payload\":null},"
                                    "{\"action\":\"complete\",\"payload\":null}]");
    json_decref(frames);
    chanc_assert_receive_nothing(c);
}

/* ---- bad chat payloads ---------------------------------------------------------- */

static void test_bad_chat_payloads_get_the_documented_errors(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    chanc_communicator_send_message(c, &chat_msg_chat, json_string(""));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_too_short\","
                                  "\"loc\":[\"payload\"],\"msg\":\"String should have at least 1 character\"}]}");
    chanc_communicator_send_json(c, json_pack("{s:s,s:i}", "action", "chat", "payload", 42));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_type\","
                                  "\"loc\":[\"payload\"]}]}");
    chanc_communicator_send_json(c, json_pack("{s:s}", "action", "chat"));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"missing\","
                                  "\"loc\":[\"payload\"]}]}");
    chanc_communicator_send_json(c, json_pack("{s:s,s:{s:s}}", "action", "chat", "payload", "text", "hi"));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_type\"}]}");

    char *long_text = malloc(CHAT_MESSAGE_MAX + 2);
    memset(long_text, 'x', CHAT_MESSAGE_MAX + 1);
    long_text[CHAT_MESSAGE_MAX + 1] = '\0';
    chanc_communicator_send_message(c, &chat_msg_chat, json_string(long_text));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_too_long\","
                                  "\"loc\":[\"payload\"],\"msg\":\"String should have at most 4000 characters\"}]}");
    long_text[CHAT_MESSAGE_MAX] = '\0'; /* exactly the limit: accepted */
    chanc_communicator_send_message(c, &chat_msg_chat, json_string(long_text));
    free(long_text);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    const char *echoed = chanc_json_str(chanc_json_find(msgs, "{\"action\":\"chat\"}"), "/payload");
    assert_non_null(echoed); /* (strlen(NULL) would crash: the allocation-failure sweep says so) */
    assert_int_equal(strlen(echoed), CHAT_MESSAGE_MAX);
    json_decref(msgs);

    int64_t n = -1;
    assert_int_equal(chat_store_message_count(t->store, t->room_id, &n), 0);
    assert_int_equal(n, 3 + 1); /* only the valid one was stored */
}

static void test_limit_counts_characters_not_bytes(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    const char *snow = "\xe2\x98\x83"; /* ☃: 3 bytes, 1 character */
    char *text = malloc(CHAT_MESSAGE_MAX * 3 + 4);
    text[0] = '\0';
    for (int i = 0; i < CHAT_MESSAGE_MAX; i++)
        memcpy(text + i * 3, snow, 4);
    chanc_communicator_send_message(c, &chat_msg_chat, json_string(text));
    chanc_assert_receive_match(c, "{\"action\":\"chat\",\"is_mine\":true}");
    strcat(text, snow);
    chanc_communicator_send_message(c, &chat_msg_chat, json_string(text));
    free(text);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    assert_non_null(chanc_json_find(msgs, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_too_long\"}]}"));
    json_decref(msgs);
}

/* ---- storage through the consumer -------------------------------------------- */

static void test_metacharacters_are_stored_and_returned_byte_exact(void **state) {
    chat_test_t *t = *state;
    static const char *const texts[] = {
        "'); DROP TABLE messages; --", "<img src=x onerror=alert(1)>", "\"quoted\" \\ back\\slash",
        "emoji \xf0\x9f\x98\x80 and \xe2\x80\x8b zero-width", "line\nbreak\ttab", "%s %n %x"};
    const size_t n = sizeof texts / sizeof *texts;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    for (size_t i = 0; i < n; i++) {
        chanc_communicator_send_message(c, &chat_msg_chat, json_string(texts[i]));
        json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
        assert_string_equal(chanc_json_str(msgs, "/0/payload"), texts[i]);
        json_decref(msgs);
    }
    chanc_communicator_disconnect(c);
    /* A newcomer sees them in history, unchanged and in order. */
    chanc_communicator_t *later = chat_test_client(t, t->room_id, "alice");
    chanc_assert_connect(later);
    chanc_assert_authenticated_status_ok(later);
    json_t *msgs = chanc_communicator_receive_all_json(later, 1000);
    json_t *history = chanc_json_ptr(chanc_json_find(msgs, "{\"action\":\"history\"}"), "/payload");
    assert_int_equal(json_array_size(history), 3 + n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(history, 3 + i), "message")),
                            texts[i]);
    json_decref(msgs);
}

static void test_message_is_committed_when_complete_arrives(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("durable"));
    json_t *f = chanc_communicator_receive_until_action(c, "complete", 1000);
    assert_non_null(f);
    json_decref(f);
    /* A second connection to the database sees it: it is committed, not just
     * in this connection's transaction. */
    chat_store_t *other = NULL;
    chanc_error_t err;
    assert_int_equal(chat_store_open(&(chat_store_options_t){.path = t->db.url}, &other, &err), 0);
    json_t *history = NULL;
    assert_int_equal(chat_store_history(other, t->room_id, 1, &history), 0);
    chanc_assert_json_match(history, "[{\"username\":\"testuser\",\"message\":\"durable\","
                                     "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}]");
    json_decref(history);
    chat_store_close(other);
}

static void test_sender_is_identified_by_session_not_by_payload(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    /* Extra keys are refused: a client cannot smuggle a username. */
    chanc_communicator_send_json(c, json_pack("{s:s,s:s,s:s}", "action", "chat", "payload", "hi",
                                              "username", "alice"));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"extra_forbidden\","
                                  "\"loc\":[\"username\"]}]}");
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("hi"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    chanc_assert_json_match(msgs, "[{\"action\":\"chat\",\"username\":\"testuser\"}]");
    json_decref(msgs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        CHAT_TEST(test_connect_and_receive_history),
        CHAT_TEST(test_chat_message),
        CHAT_TEST(test_join_frames_are_exact),
        chanc_unit_test(test_history_is_the_last_50_oldest_first, chat_test_setup_busy,
                        chat_test_teardown),
        CHAT_TEST(test_joining_announces_to_the_room),
        CHAT_TEST(test_non_member_gets_403_and_is_closed),
        CHAT_TEST(test_missing_room_gets_404_and_is_closed),
        CHAT_TEST(test_non_numeric_room_is_refused_by_the_router),
        CHAT_TEST(test_anonymous_gets_403_and_is_closed),
        CHAT_TEST(test_forged_and_expired_sessions_are_anonymous),
        CHAT_TEST(test_session_expiring_while_connected_closes_its_sockets_then),
        CHAT_TEST(test_logout_while_connected_refuses_frames_within_a_second),
        CHAT_TEST(test_two_members_exchange_messages_with_flags),
        CHAT_TEST(test_three_members_and_a_second_tab),
        CHAT_TEST(test_rooms_are_isolated),
        CHAT_TEST(test_user_left_reaches_the_others_not_the_leaver),
        CHAT_TEST(test_refused_connections_announce_nothing),
        CHAT_TEST(test_ping_pong),
        CHAT_TEST(test_bad_chat_payloads_get_the_documented_errors),
        CHAT_TEST(test_limit_counts_characters_not_bytes),
        CHAT_TEST(test_metacharacters_are_stored_and_returned_byte_exact),
        CHAT_TEST(test_message_is_committed_when_complete_arrives),
        CHAT_TEST(test_sender_is_identified_by_session_not_by_payload),
    };
    return chanc_run_group_tests_name(chat_test_pg() ? "chat.consumer.pg" : "chat.consumer", tests,
                                       NULL, NULL);
}

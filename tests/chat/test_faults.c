/* chat.faults: the chat application when things go wrong, one fault a line
 * from the fixture: a failed commit, a failed delivery, a client that stops
 * reading, a channel layer that drops or delays a message. */
#include <sqlite3.h>
#include <string.h>

#include "chat_test.h"

static int64_t stored(chat_test_t *t) {
    int64_t n = -1;
    assert_int_equal(chat_store_message_count(t->store, t->room_id, &n), 0);
    return n;
}

static void test_failed_commit_answers_error_and_broadcasts_nothing(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    char room[CHAT_TEST_GROUP_MAX];
    chat_test_capture_room(t, t->room_id, room);
    int64_t before = stored(t);

    assert_int_equal(chat_test_fail_next_commit(t), 0);
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("lost"));
    chanc_assert_receive_match(alice, "{\"action\":\"error\",\"payload\":{\"detail\":\"Failed to process message\"}}");
    chanc_assert_receive_nothing(alice);
    chanc_assert_group_sent_nothing(t->test, room);
    assert_int_equal(stored(t), before);
    assert_true(chanc_test_log_contains(t->test, CHANC_LOG_ERROR, "storing a message"));

    /* The connection stays usable and the next commit succeeds. */
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("again"));
    chanc_assert_receive_match(alice, "{\"action\":\"chat\",\"payload\":\"again\",\"is_mine\":true}");
    chanc_assert_group_sent_match(t->test, room, "[{\"action\":\"chat\",\"payload\":\"again\","
                                                 "\"username\":\"alice\"}]");
    assert_int_equal(stored(t), before + 1);
}

static void test_failed_delivery_closes_that_recipient_only(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    chanc_communicator_t *carol = chat_test_member(t, t->room_id, "carol");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    json_decref(chanc_communicator_receive_all_json(bob, 1000));

    chanc_communicator_fail_next_delivery(bob);
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("to all"));
    chanc_assert_closed(bob, 1011);
    assert_string_equal(chanc_communicator_close_reason(bob), "delivery failed");
    chanc_assert_receive_match(alice, "{\"action\":\"chat\",\"payload\":\"to all\",\"is_mine\":true}");
    chanc_assert_receive_match(carol, "{\"action\":\"chat\",\"payload\":\"to all\",\"is_mine\":false}");
    /* bob's close is a disconnect like any other: the others learn it. */
    chanc_assert_receive_match(alice, "{\"action\":\"user_left\",\"payload\":{\"username\":\"bob\"}}");
    chanc_assert_receive_match(carol, "{\"action\":\"user_left\",\"payload\":{\"username\":\"bob\"}}");
    chanc_assert_receive_nothing(alice);
    chanc_assert_receive_nothing(carol);
}

static void test_client_that_stops_reading_is_closed_1008(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));

    chanc_communicator_stop_reading(bob);
    char text[CHAT_MESSAGE_MAX + 1];
    memset(text, 'x', CHAT_MESSAGE_MAX);
    text[CHAT_MESSAGE_MAX] = '\0';
    /* ~4.1 KB a frame: 1 MiB (the default max_queue) fills after ~255. */
    const size_t sent = 300;
    for (size_t i = 0; i < sent; i++)
        chanc_communicator_send_message(alice, &chat_msg_chat, json_string(text));
    /* 300 commits and 4 MB of frames: under valgrind more than the 1 s
     * that a receive allows a hung app. */
    assert_int_equal(chanc_test_settle(t->test, 60000), 0);
    chanc_assert_closed(bob, 1008);
    assert_string_equal(chanc_communicator_close_reason(bob), "slow client: outgoing queue full");
    assert_int_equal(chanc_communicator_pending(bob, 1000), 0); /* it read nothing */
    chanc_communicator_resume_reading(bob);
    json_t *queued = chanc_communicator_receive_all_json(bob, 1000);
    assert_in_range(json_array_size(queued), 200, sent - 1); /* what fit, then the close */
    json_decref(queued);

    /* alice is not slowed: every message, and bob leaving where he was
     * closed (her frames wait for their commits, so the later ones come
     * after it). */
    json_t *mine = chanc_communicator_receive_all_json(alice, 1000);
    assert_int_equal(json_array_size(mine), sent + 1);
    size_t chats = 0, left = 0;
    for (size_t i = 0; i < sent + 1; i++) {
        json_t *f = json_array_get(mine, i);
        const char *action = json_string_value(json_object_get(f, "action"));
        if (strcmp(action, "chat") == 0) {
            chanc_assert_json_match(f, "{\"action\":\"chat\",\"is_mine\":true}");
            chats++;
        } else {
            chanc_assert_json_match(f, "{\"action\":\"user_left\",\"payload\":{\"username\":\"bob\"}}");
            left++;
        }
    }
    assert_int_equal(chats, sent);
    assert_int_equal(left, 1);
    json_decref(mine);
}

static void test_layer_drops_a_message(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    int64_t before = stored(t);

    chanc_test_layer_drop_next(t->test);
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("into the void"));
    json_t *frames = chanc_communicator_receive_until_action(alice, "complete", 1000);
    chanc_assert_json_match(frames, "[{\"action\":\"complete\"}]"); /* committed, not relayed */
    json_decref(frames);
    chanc_assert_receive_nothing(alice);
    chanc_assert_receive_nothing(bob);
    assert_int_equal(stored(t), before + 1); /* history has it */

    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("next"));
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"next\"}");
}

static void test_layer_delays_a_message_in_virtual_time(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));

    chanc_test_layer_delay_next(t->test, 500);
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("slow"));
    chanc_communicator_send_message(alice, &chat_msg_chat, json_string("fast"));
    /* The second overtakes the first. */
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"fast\"}");
    chanc_assert_receive_nothing(bob);
    chanc_test_advance(t->test, 499);
    chanc_assert_receive_nothing(bob);
    chanc_test_advance(t->test, 1);
    /* Stamped when sent, delivered 500 ms of virtual time later. */
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"slow\","
                                    "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}");
    chanc_assert_receive_match(alice, "{\"payload\":\"fast\"}");
    chanc_assert_receive_match(alice, "{\"payload\":\"slow\"}");
}

/* A member whose client stops answering the keepalive ping is closed with
 * 4408 once keepalive_timeout_ms has passed; the others stay and hear
 * that it left. */
static void test_dead_peer_is_closed_4408(void **state) {
    (void)state;
    chat_test_t *t = chat_test_create(&(chat_test_options_t){.name = "dead_peer",
                                                             .keepalive_ms = 30000});
    assert_non_null(t);
    chanc_communicator_t *alice = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *bob = chat_test_member(t, t->room_id, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    chanc_communicator_answer_pings(bob, false);
    chanc_test_advance(t->test, 30000 + 10000 - 1); /* pinged at 30 s; the timeout: 10 s */
    chanc_assert_open(bob);
    chanc_test_advance(t->test, 1);
    chanc_assert_closed(bob, CHANC_CLOSE_KEEPALIVE);
    chanc_assert_open(alice);
    chanc_assert_receive_match(alice, "{\"action\":\"user_left\",\"payload\":{\"username\":\"bob\"}}");
    chat_test_destroy(t);
}

/* The lookups before authentication fail (the rooms table is gone, as a
 * broken database would have it): authentication 500, close 4500; the
 * store's error is logged. */
static void test_failed_room_lookup_is_500(void **state) {
    chat_test_t *t = *state;
    if (chat_test_pg())
        skip();
    sqlite3 *db;
    assert_int_equal(sqlite3_open(t->db.url, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE rooms RENAME TO rooms_gone", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    chanc_communicator_t *c = chat_test_client(t, t->room_id, "alice");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status(c, 500);
    chanc_assert_closed(c, 4500);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        CHAT_TEST(test_failed_commit_answers_error_and_broadcasts_nothing),
        CHAT_TEST(test_failed_delivery_closes_that_recipient_only),
        CHAT_TEST(test_client_that_stops_reading_is_closed_1008),
        CHAT_TEST(test_layer_drops_a_message),
        CHAT_TEST(test_layer_delays_a_message_in_virtual_time),
        cmocka_unit_test(test_dead_peer_is_closed_4408),
        CHAT_TEST(test_failed_room_lookup_is_500),
    };
    return chanc_run_group_tests_name("chat.faults", tests, NULL, NULL);
}

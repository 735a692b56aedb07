/* chat.interleavings: the chat's own guarantees, written to hold under
 * every schedule (docs/testing.md, "Explored schedules"): members sending
 * at once while another joins. The unit suite runs them FIFO; the
 * `explore` label (explore.chat.interleavings) under CHANC_EXPLORE_K
 * schedules, the database thread's results placed by each schedule.
 * - a message reaches a joiner exactly once: in its history or live;
 * - each sender's messages reach every member in the order sent;
 * - a frame's `complete` carries its commit's outcome: with one commit
 *   failing among the racing ones, each message is stored and heard by
 *   every member once, or stored nowhere, heard by no one, and its sender
 *   gets one error before that frame's `complete`. (That a message is in
 *   the database when its `complete` arrives is chat.consumer's
 *   test_message_is_committed_when_complete_arrives, explored too.) */
#include <string.h>

#include "chat_test.h"

#define ROUNDS 3
static const char *const senders[] = {"alice", "bob"};

/* The text sender s sends in round r: "alice 0", "bob 2", … */
static const char *text_of(char out[32], size_t s, int r) {
    snprintf(out, 32, "%s %d", senders[s], r);
    return out;
}

/* Where a text appears in frames: its history entries and live copies. */
static size_t occurrences(const json_t *frames, const char *text, size_t *last_at) {
    size_t n = 0, pos = 0;
    for (size_t i = 0; i < json_array_size(frames); i++) {
        const json_t *f = json_array_get(frames, i);
        const char *action = chanc_json_str(f, "/action");
        if (strcmp(action, "history") == 0) {
            const json_t *h = json_object_get(f, "payload");
            for (size_t k = 0; k < json_array_size(h); k++, pos++)
                if (strcmp(chanc_json_str(json_array_get(h, k), "/message"), text) == 0) {
                    n++;
                    *last_at = pos;
                }
        } else if (strcmp(action, "chat") == 0) {
            if (strcmp(chanc_json_str(f, "/payload"), text) == 0) {
                n++;
                *last_at = pos;
            }
            pos++;
        }
    }
    return n;
}

/* Every text of every sender once in frames, each sender's in order. */
static void assert_each_once_in_order(const json_t *frames, int rounds) {
    for (size_t s = 0; s < 2; s++) {
        size_t prev = 0;
        for (int r = 0; r < rounds; r++) {
            char text[32];
            text_of(text, s, r);
            size_t at = 0;
            if (occurrences(frames, text, &at) != 1)
                chanc_assert_json_match(frames, "\"each message exactly once\"");
            assert_int_equal(occurrences(frames, text, &at), 1);
            if (r > 0)
                assert_true(at > prev); /* the sender's order */
            prev = at;
        }
    }
}

static void send_round(chanc_communicator_t *const *c, int r) {
    for (size_t s = 0; s < 2; s++) {
        char text[32];
        chanc_communicator_send_message(c[s], &chat_msg_chat, json_string(text_of(text, s, r)));
    }
}

static void test_a_joiner_gets_each_message_once_in_history_or_live(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c[2] = {chat_test_member(t, t->room_id, "alice"),
                                  chat_test_member(t, t->room_id, "bob")};
    json_decref(chanc_communicator_receive_all_json(c[0], 1000)); /* bob joined */
    send_round(c, 0);
    assert_int_equal(chanc_test_settle(t->test, 10000), 0); /* round 0: committed */
    send_round(c, 1);
    send_round(c, 2); /* rounds 1 and 2 race the joiner's handshake */
    chanc_communicator_t *carol = chat_test_client(t, t->room_id, "carol");
    chanc_assert_connect(carol);
    chanc_assert_authenticated_status_ok(carol);
    json_t *seen = chanc_communicator_receive_all_json(carol, 10000);
    assert_each_once_in_order(seen, ROUNDS);
    json_decref(seen);
    for (size_t s = 0; s < 2; s++) {
        seen = chanc_communicator_receive_all_json(c[s], 10000);
        assert_each_once_in_order(seen, ROUNDS);
        json_decref(seen);
    }
}

/* One text: in the database (n stored), and among frames (n copies). */
static size_t stored_copies(const json_t *history, const char *text) {
    size_t n = 0;
    for (size_t k = 0; k < json_array_size(history); k++)
        n += strcmp(chanc_json_str(json_array_get(history, k), "/message"), text) == 0;
    return n;
}

static void test_each_complete_carries_its_commit_outcome(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c[2] = {chat_test_member(t, t->room_id, "alice"),
                                  chat_test_member(t, t->room_id, "bob")};
    json_decref(chanc_communicator_receive_all_json(c[0], 1000));
    assert_int_equal(chat_test_fail_next_commit(t), 0); /* one commit fails, whichever */
    for (int r = 0; r < ROUNDS; r++)
        send_round(c, r);
    json_t *frames[2];
    for (size_t s = 0; s < 2; s++) {
        frames[s] = json_array();
        json_t *f;
        while ((f = chanc_communicator_receive_json(c[s], 10000)) != NULL)
            json_array_append_new(frames[s], f);
    }
    json_t *history = NULL;
    assert_int_equal(chat_store_history(t->store, t->room_id, 50, &history), 0);
    size_t failed = 0;
    for (size_t s = 0; s < 2; s++) {
        /* Every frame of the sender's is answered once, in order: an error
         * (its commit failed) or nothing, then its complete. */
        size_t completes = 0, errors = 0;
        for (size_t i = 0; i < json_array_size(frames[s]); i++) {
            const char *action = chanc_json_str(json_array_get(frames[s], i), "/action");
            completes += strcmp(action, "complete") == 0;
            errors += strcmp(action, "error") == 0;
            assert_true(errors <= completes + 1);
        }
        assert_int_equal(completes, ROUNDS);
        failed += errors;
        for (int r = 0; r < ROUNDS; r++) {
            char text[32];
            size_t at = 0, in_db = stored_copies(history, text_of(text, s, r));
            /* Committed: stored once and heard once by both members; or
             * not committed: stored nowhere, heard by no one. */
            assert_int_equal(occurrences(frames[0], text, &at), in_db);
            assert_int_equal(occurrences(frames[1], text, &at), in_db);
            assert_true(in_db <= 1);
        }
    }
    size_t lost = 0;
    for (size_t s = 0; s < 2; s++)
        for (int r = 0; r < ROUNDS; r++) {
            char text[32];
            lost += stored_copies(history, text_of(text, s, r)) == 0;
        }
    assert_true(failed >= 1);
    assert_int_equal(lost, failed); /* one error a message not stored */
    json_decref(history);
    json_decref(frames[0]);
    json_decref(frames[1]);
}

/* A member sends and goes at once, while another sends too: whatever of
 * the leaver's was committed reaches the others, in order and before its
 * user_left, and nothing of it after. */
static void test_a_leaver_s_committed_messages_come_before_it_leaves(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c[2] = {chat_test_member(t, t->room_id, "alice"),
                                  chat_test_member(t, t->room_id, "bob")};
    chanc_communicator_t *carol = chat_test_member(t, t->room_id, "carol");
    json_decref(chanc_communicator_receive_all_json(c[0], 1000));
    json_decref(chanc_communicator_receive_all_json(c[1], 1000));
    for (int r = 0; r < ROUNDS; r++)
        send_round(c, r);
    chanc_communicator_disconnect(c[0]); /* alice goes; her frames may be unprocessed */
    json_t *seen = chanc_communicator_receive_all_json(carol, 10000);
    json_t *history = NULL;
    assert_int_equal(chat_store_history(t->store, t->room_id, 50, &history), 0);
    size_t left_at = json_array_size(seen), alice_heard = 0;
    for (size_t i = 0; i < json_array_size(seen); i++) {
        const json_t *f = json_array_get(seen, i);
        if (strcmp(chanc_json_str(f, "/action"), "user_left") == 0) {
            assert_string_equal(chanc_json_str(f, "/payload/username"), "alice");
            assert_int_equal(left_at, json_array_size(seen)); /* once */
            left_at = i;
        } else if (strcmp(chanc_json_str(f, "/username"), "alice") == 0) {
            assert_true(i < left_at);
            char want[32];
            snprintf(want, sizeof want, "alice %zu", alice_heard++); /* her order */
            assert_string_equal(chanc_json_str(f, "/payload"), want);
        }
    }
    assert_true(left_at < json_array_size(seen));
    size_t alice_stored = 0;
    for (int r = 0; r < ROUNDS; r++) {
        char text[32];
        alice_stored += stored_copies(history, text_of(text, 0, r));
    }
    assert_int_equal(alice_heard, alice_stored); /* committed = heard */
    assert_each_once_in_order(seen, 0);
    json_decref(history);
    json_decref(seen);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        CHAT_TEST(test_a_joiner_gets_each_message_once_in_history_or_live),
        CHAT_TEST(test_each_complete_carries_its_commit_outcome),
        CHAT_TEST(test_a_leaver_s_committed_messages_come_before_it_leaves),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}

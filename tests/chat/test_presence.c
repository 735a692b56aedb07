/* chat.presence: presence that scales. Rooms up to the threshold get the
 * seed's user_joined / user_left per join and leave; past it, the joins
 * and leaves of one interval reach every member as one `presence` frame;
 * the room goes back at half the threshold. On the virtual clock: the
 * fixture here has threshold 2 (a third member starts coalescing, the
 * leave down to 1 stops it) and an interval of 1000 ms. */
#include <string.h>

#include "chat_test.h"

#define INTERVAL 1000

static int setup(void **state) {
    *state = chat_test_create(&(chat_test_options_t){
        .name = *state, .presence_threshold = 2, .presence_interval_ms = INTERVAL});
    return *state ? 0 : -1;
}

#define PRESENCE_TEST(fn) chanc_unit_test(fn, setup, chat_test_teardown)

/* A member of the General room as `username`; the frames of its join
 * (history, and user_joined while the room is small) are drained. */
static chanc_communicator_t *member(chat_test_t *t, const char *username) {
    return chat_test_member(t, t->room_id, username);
}

/* ---- at or below the threshold: the seed's frames -------------------------------- */

static void test_below_the_threshold_each_join_and_leave_is_its_own_frame(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice");
    chanc_communicator_t *bob = member(t, "bob"); /* 2 members: the threshold, not past it */
    chanc_assert_receive_all_match(alice, "[{\"action\":\"user_joined\",\"payload\":"
                                          "{\"username\":\"bob\",\"room_name\":\"General\"},"
                                          "\"is_mine\":false,\"is_current\":false}]");
    chanc_communicator_disconnect(bob);
    chanc_assert_receive_all_match(alice, "[{\"action\":\"user_left\",\"payload\":"
                                          "{\"username\":\"bob\"}}]");
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_nothing(alice); /* no presence frame either */
    chanc_communicator_disconnect(alice);
    chanc_assert_transcript_matches(alice, "fixtures/transcripts/presence_small_room.jsonl",
                                    "/payload/timestamp");
}

/* ---- past it: one frame per interval ------------------------------------------------- */

static void test_crossing_the_threshold_up_and_down(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice");
    chanc_communicator_t *bob = member(t, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000)); /* user_joined bob */

    /* The third member: past the threshold. Nobody hears of it at once. */
    chanc_communicator_t *carol = chat_test_client(t, t->room_id, "carol");
    chanc_assert_connect(carol);
    chanc_assert_authenticated_status_ok(carol);
    chanc_assert_receive_all_match(carol, "[{\"action\":\"history\"}]");
    chanc_assert_receive_nothing(carol);
    chanc_assert_receive_nothing(alice);
    chanc_assert_receive_nothing(bob);
    chanc_test_advance(t->test, INTERVAL);
    static const char joined[] =
        "[{\"action\":\"presence\",\"payload\":{\"joined\":[\"carol\"],\"left\":[],"
        "\"joined_count\":1,\"left_count\":0,\"online\":3},\"is_mine\":false,\"is_current\":false}]";
    chanc_assert_receive_all_match(alice, joined);
    chanc_assert_receive_all_match(bob, joined);
    chanc_assert_receive_all_match(carol, joined); /* the joiner too */

    /* Down to 2: still coalesced (the hysteresis: back at threshold / 2). */
    chanc_communicator_disconnect(carol);
    chanc_assert_receive_nothing(alice);
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_all_match(alice, "[{\"action\":\"presence\",\"payload\":{\"joined\":[],"
                                          "\"left\":[\"carol\"],\"joined_count\":0,"
                                          "\"left_count\":1,\"online\":2}}]");
    json_decref(chanc_communicator_receive_all_json(bob, 1000));

    /* Down to 1: the batch open at that moment goes at once, then the
     * seed's frames again. */
    chanc_test_advance(t->test, 10);
    chanc_communicator_t *testuser = member(t, "testuser"); /* 3 again: batched */
    chanc_communicator_disconnect(testuser);                /* came and went: cancelled */
    chanc_communicator_disconnect(bob);                     /* 1: flushed now */
    chanc_assert_receive_all_match(alice, "[{\"action\":\"presence\",\"payload\":{\"joined\":[],"
                                          "\"left\":[\"bob\"],\"joined_count\":0,"
                                          "\"left_count\":1,\"online\":1}}]");
    chanc_assert_receive_nothing(alice);
    chanc_communicator_t *bob2 = member(t, "bob");
    chanc_assert_receive_all_match(alice, "[{\"action\":\"user_joined\",\"payload\":"
                                          "{\"username\":\"bob\"}}]");
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_nothing(alice);
    chanc_communicator_disconnect(bob2);
    chanc_assert_receive_all_match(alice, "[{\"action\":\"user_left\",\"payload\":"
                                          "{\"username\":\"bob\"}}]");
    chanc_communicator_disconnect(alice);
    chanc_assert_transcript_matches(alice, "fixtures/transcripts/presence_big_room.jsonl",
                                    "/payload/timestamp");
}

static void test_several_joins_in_one_interval_are_one_frame(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice");
    chanc_communicator_t *bob = member(t, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    member(t, "carol");
    chanc_test_advance(t->test, 300);
    member(t, "testuser");
    chanc_test_advance(t->test, 300);
    chanc_communicator_t *alice2 = member(t, "alice");
    chanc_communicator_disconnect(bob); /* a leave in the same interval */
    chanc_assert_receive_nothing(alice);
    chanc_test_advance(t->test, INTERVAL - 600 - 1);
    chanc_assert_receive_nothing(alice); /* the interval runs from its first join */
    chanc_test_advance(t->test, 1);
    json_t *got = chanc_communicator_receive_all_json(alice, 1000);
    assert_int_equal(json_array_size(got), 1); /* one frame for the four */
    chanc_assert_json_match(got, "[{\"action\":\"presence\",\"payload\":{"
                                 "\"joined\":[\"carol\",\"testuser\",\"alice\"],\"left\":[\"bob\"],"
                                 "\"joined_count\":3,\"left_count\":1,\"online\":4}}]");
    json_decref(got);
    chanc_assert_receive_all_match(alice2, "[{\"action\":\"presence\",\"payload\":{\"online\":4}}]");
}

static void test_a_join_and_a_leave_within_one_interval_cancel_out(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice");
    member(t, "bob");
    member(t, "carol");
    chanc_test_advance(t->test, INTERVAL);
    json_decref(chanc_communicator_receive_all_json(alice, 1000)); /* bob, then carol's batch */

    /* Came and went unseen: no frame at all. */
    chanc_communicator_t *tu = member(t, "testuser");
    chanc_communicator_disconnect(tu);
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_nothing(alice);

    /* Beside another join: only that one is named, and counted. */
    chanc_communicator_t *tu2 = member(t, "testuser");
    member(t, "alice");
    chanc_communicator_disconnect(tu2);
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_all_match(alice, "[{\"action\":\"presence\",\"payload\":{"
                                          "\"joined\":[\"alice\"],\"left\":[],\"joined_count\":1,"
                                          "\"left_count\":0,\"online\":4}}]");
    /* A leave of one who joined in an earlier interval is a leave. */
    chanc_communicator_t *tu3 = member(t, "testuser");
    chanc_test_advance(t->test, INTERVAL);
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    chanc_communicator_disconnect(tu3);
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_all_match(alice, "[{\"action\":\"presence\",\"payload\":{"
                                          "\"joined\":[],\"left\":[\"testuser\"],"
                                          "\"left_count\":1,\"online\":4}}]");
}

/* The interval's timer runs only while a batch is open. */
static void test_the_interval_timer_stops_when_the_room_is_quiet(void **state) {
    chat_test_t *t = *state;
    chanc_app_t *app = t->test->app;
    chanc_communicator_t *alice = member(t, "alice");
    member(t, "bob");
    uint64_t before;
    assert_true(chanc_app_next_timer(app, &before)); /* the sessions' expiry, days away */
    assert_true(before > chanc_app_mono_ms(app) + 3600 * 1000);
    member(t, "carol");
    uint64_t due;
    assert_true(chanc_app_next_timer(app, &due));
    assert_int_equal(due, chanc_app_mono_ms(app) + INTERVAL); /* the batch's */
    chanc_test_advance(t->test, INTERVAL);
    chanc_assert_receive_all_match(alice, "[{\"action\":\"user_joined\"},{\"action\":\"presence\"}]");
    assert_true(chanc_app_next_timer(app, &due));
    assert_true(due > chanc_app_mono_ms(app) + 3600 * 1000); /* none of ours left */
    chanc_test_advance(t->test, 10 * INTERVAL);
    chanc_assert_receive_nothing(alice);
    assert_true(chanc_app_next_timer(app, &due));
    assert_true(due > chanc_app_mono_ms(app) + 3600 * 1000);
}

/* Past the cap, names are left out and still counted. */
static void test_lists_are_capped_and_the_counts_are_not(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice");
    member(t, "bob");
    chanc_test_advance(t->test, INTERVAL);
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    enum { N = CHAT_PRESENCE_LIST_MAX + 5 };
    for (int i = 0; i < N; i++)
        member(t, "carol");
    chanc_test_advance(t->test, INTERVAL);
    json_t *got = chanc_communicator_receive_all_json(alice, 1000);
    assert_int_equal(json_array_size(got), 1);
    assert_int_equal(json_array_size(chanc_json_ptr(got, "/0/payload/joined")),
                     CHAT_PRESENCE_LIST_MAX);
    assert_int_equal(json_integer_value(chanc_json_ptr(got, "/0/payload/joined_count")), N);
    assert_int_equal(json_integer_value(chanc_json_ptr(got, "/0/payload/online")), N + 2);
    json_decref(got);
}

/* ---- the guarantees across the switch ---------------------------------------------- */

/* Each "burst NN" in frames once, in the sender's order, N of them;
 * returns how many came in the history. */
static int assert_bursts_once_in_order(const json_t *frames, int n_expected) {
    int order[64], in_history = 0;
    bool from_history[64];
    size_t n = chat_test_numbered(frames, "burst ", order, from_history, 64);
    assert_int_equal(n, n_expected);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(order[k], (int)k); /* each once, in order */
        in_history += from_history[k];
    }
    return in_history;
}

/* Messages sent while the room crosses the threshold: the joiner gets each
 * exactly once, in history or live, in the sender's order; the members
 * already there get each once, in order. */
static void test_a_joiner_across_the_switch_gets_every_message_once_in_order(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice");
    chanc_communicator_t *bob = member(t, "bob");
    json_decref(chanc_communicator_receive_all_json(alice, 1000));
    enum { SETTLED = 10, BEFORE = 20, N = 30 };
    chanc_communicator_t *carol = NULL;
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(text, sizeof text, "burst %02d", i);
        if (i == SETTLED) /* 0-9 committed; 10-19 still on their way when she joins */
            assert_int_equal(chanc_test_settle(t->test, 5000), 0);
        if (i == BEFORE) { /* carol joins mid-burst: the room goes past the threshold */
            carol = chat_test_client(t, t->room_id, "carol");
            chanc_assert_connect(carol);
            chanc_assert_authenticated_status_ok(carol);
        }
        chanc_communicator_send_message(alice, &chat_msg_chat, json_string(text));
    }
    chanc_test_advance(t->test, INTERVAL);
    json_t *got = chanc_communicator_receive_all_json(carol, 1000);
    int in_history = assert_bursts_once_in_order(got, N);
    assert_true(in_history >= SETTLED && in_history < N); /* she joined mid-burst */
    assert_non_null(chanc_json_find(got, "{\"action\":\"presence\",\"payload\":"
                                         "{\"joined\":[\"carol\"],\"online\":3}}"));
    json_decref(got);
    got = chanc_communicator_receive_all_json(bob, 1000);
    assert_int_equal(assert_bursts_once_in_order(got, N), 0);
    assert_non_null(chanc_json_find(got, "{\"action\":\"presence\"}"));
    json_decref(got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        PRESENCE_TEST(test_below_the_threshold_each_join_and_leave_is_its_own_frame),
        PRESENCE_TEST(test_crossing_the_threshold_up_and_down),
        PRESENCE_TEST(test_several_joins_in_one_interval_are_one_frame),
        PRESENCE_TEST(test_a_join_and_a_leave_within_one_interval_cancel_out),
        PRESENCE_TEST(test_the_interval_timer_stops_when_the_room_is_quiet),
        PRESENCE_TEST(test_lists_are_capped_and_the_counts_are_not),
        PRESENCE_TEST(test_a_joiner_across_the_switch_gets_every_message_once_in_order),
    };
    return chanc_run_group_tests_name("chat.presence", tests, NULL, NULL);
}

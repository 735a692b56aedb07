/* testing.broadcast: the fixture's broadcast assertions on the demo room
 * consumer (groups room_<name>, "said" to the room, "left" when a member
 * goes, the internal event "kick"). What a group was sent is captured at
 * the channel layer, so it is seen with no member connected; membership
 * is read on the server side; messages and events are delivered as if
 * another process had published them. A recording fail handler catches
 * what a failing assertion would print. */
#include "fail_recorder.h" /* and test_common.h */

#define T(fn) chanc_unit_test(fn, recorded_demo_setup, recorded_demo_teardown)

static chanc_communicator_t *member(chanc_test_t *t, const char *user) {
    chanc_communicator_t *c = room_client(t, "lobby", user);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000)); /* the joins so far */
    return c;
}

/* One member, no witness: what it said is what the room was sent. */
static void test_capture_sees_what_a_member_said(void **state) {
    chanc_test_t *t = *state;
    assert_int_equal(chanc_test_capture_group(t, "room_lobby"), 0);
    chanc_communicator_t *a = member(t, "alice");
    chanc_communicator_send_message(a, &demo_say, json_string("hi"));
    chanc_assert_group_sent_match(t, "room_lobby",
                                  "[{\"action\":\"joined\",\"payload\":{\"username\":\"alice\"}},"
                                  " {\"action\":\"said\",\"payload\":{\"username\":\"alice\","
                                  "\"text\":\"hi\"}}]");
    /* as published: without the per-recipient flags */
    chanc_communicator_send_message(a, &demo_say, json_string("again"));
    json_t *sent = chanc_test_group_sent(t, "room_lobby");
    assert_int_equal(json_array_size(sent), 1);
    assert_null(json_object_get(json_array_get(sent, 0), "is_mine"));
    json_decref(sent);
    chanc_assert_group_sent_nothing(t, "room_lobby"); /* consumed */
    assert_int_equal(rec.failures, 0);
}

/* The last member's "left" goes to a room nobody is in any more, and the
 * app's own message to an empty group: both are captured. */
static void test_capture_needs_no_member(void **state) {
    chanc_test_t *t = *state;
    chanc_test_capture_group(t, "room_lobby");
    chanc_test_capture_group(t, "room_empty");
    chanc_communicator_t *a = member(t, "alice");
    chanc_communicator_t *b = member(t, "bob");
    json_decref(chanc_test_group_sent(t, "room_lobby")); /* the two joins */
    chanc_communicator_disconnect(b);
    chanc_communicator_disconnect(a);
    chanc_assert_group_sent_match(t, "room_lobby",
                                  "[{\"action\":\"left\",\"payload\":{\"username\":\"bob\"}},"
                                  " {\"action\":\"left\",\"payload\":{\"username\":\"alice\"}}]");
    assert_int_equal(chanc_app_group_send(t->app, "room_empty",
                                          json_pack("{s:s,s:n}", "action", "notice", "payload")),
                     0);
    chanc_assert_group_sent_match(t, "room_empty", "[{\"action\":\"notice\"}]");
    assert_int_equal(rec.failures, 0);
}

static void test_capture_failures_show_what_was_published(void **state) {
    chanc_test_t *t = *state;
    chanc_test_capture_group(t, "room_lobby");
    chanc_communicator_t *a = member(t, "alice");
    json_decref(chanc_test_group_sent(t, "room_lobby"));
    chanc_communicator_send_message(a, &demo_say, json_string("hi"));
    assert_false(chanc_assert_group_sent_match(t, "room_lobby",
                                               "[{\"payload\":{\"text\":\"bye\"}}]"));
    assert_contains(rec.message, "what was published to group \"room_lobby\" does not match");
    assert_contains(rec.message, "published: [{\"action\":\"said\",\"payload\":{\"username\":"
                                 "\"alice\",\"text\":\"hi\"}}]");
    assert_contains(rec.message, "at /0/payload/text: expected \"bye\", got \"hi\"");
    assert_contains(rec.message, "transcript of /ws/room/lobby/");
    chanc_communicator_send_message(a, &demo_say, json_string("more"));
    assert_false(chanc_assert_group_sent_nothing(t, "room_lobby"));
    assert_contains(rec.message, "expected nothing published to group \"room_lobby\", but 1 "
                                 "message(s) were: [{\"action\":\"said\"");
    assert_false(chanc_assert_group_sent_nothing(t, "room_other"));
    assert_contains(rec.message, "group \"room_other\" is not captured (call "
                                 "chanc_test_capture_group first)");
    assert_int_equal(chanc_test_capture_group(t, "no spaces"), CHANC_EINVAL);
    assert_int_equal(chanc_test_capture_group(t, NULL), CHANC_EINVAL);
    assert_int_equal(rec.failures, 3);
}

static void test_membership_on_the_server_side(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = member(t, "alice");
    assert_true(chanc_assert_in_group(a, "room_lobby"));
    assert_true(chanc_assert_not_in_group(a, "room_private"));
    assert_false(chanc_assert_in_group(a, "room_private"));
    assert_contains(rec.message, "expected /ws/room/lobby/ to be in group \"room_private\", but "
                                 "it is not a member");
    assert_contains(rec.message, "transcript of /ws/room/lobby/");
    chanc_communicator_send_message(a, &demo_leave_group, NULL);
    assert_true(chanc_assert_not_in_group(a, "room_lobby"));
    chanc_communicator_disconnect(a);
    assert_false(chanc_assert_in_group(a, "room_lobby"));
    assert_contains(rec.message, "but it is not connected (in no group)");
    assert_int_equal(rec.failures, 2);
}

/* An event from "another process": every member's consumer runs it. */
static void test_injected_event_runs_the_consumers(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = member(t, "alice");
    chanc_communicator_t *b = member(t, "bob");
    json_decref(chanc_communicator_receive_all_json(a, 1000));
    unsigned before = demo_counters.events;
    assert_true(chanc_test_inject_event(t, "room_lobby", &demo_kick,
                                        json_pack("{s:s}", "username", "bob")));
    assert_int_equal(demo_counters.events, before + 2);
    chanc_assert_receive_all_match(b, "[{\"action\":\"kicked\"}]");
    chanc_assert_closed(b, 4001);
    chanc_assert_open(a);
    /* never to a client: alice got only bob's "left" */
    chanc_assert_receive_all_match(a, "[{\"action\":\"left\",\"payload\":{\"username\":\"bob\"}}]");
    assert_int_equal(rec.failures, 0);
    assert_false(chanc_test_inject_event(t, "room_lobby", &demo_kick, json_integer(1)));
    assert_contains(rec.message, "chanc_test_inject_event: the payload does not match kick");
    assert_false(chanc_test_inject_event(t, "room lobby", &demo_kick,
                                         json_pack("{s:s}", "username", "bob")));
    assert_contains(rec.message, "chanc_test_inject_event: not a valid group name");
    assert_int_equal(rec.failures, 2);
}

/* A group frame from "another process": is_current is never true here;
 * is_mine when the sender is the member's user. */
static void test_injected_group_frame_reaches_the_members(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = member(t, "alice");
    assert_true(chanc_test_inject_group_frame(
        t, "room_lobby",
        json_pack("{s:s,s:{s:s,s:s}}", "action", "said", "payload", "username", "bob", "text",
                  "from afar"),
        "2"));
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"payload\":{\"text\":\"from afar\"},"
                                  "\"is_mine\":false,\"is_current\":false}");
    assert_true(chanc_test_inject_group_frame(
        t, "room_lobby",
        json_pack("{s:s,s:{s:s,s:s}}", "action", "said", "payload", "username", "alice", "text",
                  "my other tab"),
        "1"));
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"is_mine\":true,\"is_current\":false}");
    assert_false(chanc_test_inject_group_frame(t, "room_lobby", json_string("said"), NULL));
    assert_contains(rec.message, "chanc_test_inject_group_frame: the frame is not a JSON object");
    assert_int_equal(rec.failures, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_capture_sees_what_a_member_said),
        T(test_capture_needs_no_member),
        T(test_capture_failures_show_what_was_published),
        T(test_membership_on_the_server_side),
        T(test_injected_event_runs_the_consumers),
        T(test_injected_group_frame_reaches_the_members),
    };
    return chanc_run_group_tests_name("testing.broadcast", tests, NULL, NULL);
}

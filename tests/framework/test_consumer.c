/* framework.consumer: the lifecycle of one connection through the
 * in-process communicator: typed receive/send, completions, handler
 * failures, hooks. */
#include "test_common.h"

static void test_echo_round_trip(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    assert_true(chanc_communicator_connect(c, 1000));
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &demo_echo, json_string("hello"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    chanc_assert_json_match(msgs, "[{\"action\":\"echo\",\"payload\":\"hello\"}]");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
    assert_true(chanc_communicator_closed(c));
}

static void test_completion_follows_every_frame(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &demo_echo, json_string("one"));
    chanc_communicator_send_message(c, &demo_ping, NULL);
    chanc_communicator_send_text(c, "{\"action\":\"nope\"}");
    json_t *all = chanc_communicator_receive_until_action(c, "complete", 1000);
    chanc_assert_json_match(all, "[{\"action\":\"echo\",\"payload\":\"one\"},"
                                 "{\"action\":\"complete\",\"payload\":null}]");
    json_decref(all);
    chanc_assert_receive_match(c, "{\"action\":\"pong\",\"payload\":null}");
    /* chanc_assert_receive_match skips the completion after pong. */
    chanc_assert_receive_match(c, "{\"action\":\"error\"}");
    json_t *last = chanc_communicator_receive_json(c, 1000);
    chanc_assert_json_match(last, "{\"action\":\"complete\",\"payload\":null}");
    json_decref(last);
    chanc_assert_receive_nothing(c);
}

static void test_typed_object_payload(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(
        c, &demo_shout,
        json_pack("{s:s,s:i,s:[s,s],s:b,s:{s:f,s:s},s:n}", "text", "hey", "times", 3, "tags", "a",
                  "b", "loud", 1, "meta", "n", 1.5, "free", "x", "note"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    chanc_assert_json_match(msgs, "[{\"action\":\"shouted\",\"payload\":[\"hey\",\"hey\",\"hey\"]}]");
    json_decref(msgs);
}

static void test_handler_failure_sends_error_and_keeps_connection(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &demo_fail, NULL);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    chanc_assert_json_match(
        msgs, "[{\"action\":\"error\",\"payload\":{\"detail\":\"Failed to process message\"}}]");
    json_decref(msgs);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR, "fail handler failed"));
    /* Still usable. */
    chanc_communicator_send_message(c, &demo_ping, NULL);
    chanc_assert_receive_match(c, "{\"action\":\"pong\"}");
    assert_false(chanc_communicator_closed(c));
}

static void test_outgoing_frame_is_validated(void **state) {
    (void)state;
    chanc_error_t err;
    json_t *bad = chanc_message_build(&demo_echo, json_integer(5), &err);
    assert_null(bad);
    assert_int_equal(err.code, CHANC_EVALIDATION);
    assert_non_null(strstr(err.text, "Input should be a valid string"));
    json_t *ok = chanc_message_build(&demo_ping, NULL, NULL);
    chanc_assert_json_match(ok, "{\"action\":\"ping\",\"payload\":null}");
    assert_int_equal(json_object_size(ok), 2);
    json_decref(ok);
}

static void test_unmatched_path_is_refused(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/nowhere/");
    assert_false(chanc_communicator_connect(c, 1000));
    assert_int_equal(chanc_communicator_close_code(c), CHANC_CLOSE_NOT_FOUND);
    chanc_assert_closed(c, CHANC_CLOSE_NOT_FOUND);
    assert_int_equal(chanc_communicator_send_text(c, "{}"), CHANC_ECLOSED);
}

static void test_hooks_run_in_order_and_state_is_disposed(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = room_client(t, "lobby", "alice");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    assert_int_equal(demo_counters.build_groups, 1);
    assert_int_equal(demo_counters.post_authentication, 1);
    assert_int_equal(demo_counters.disconnect, 0);
    chanc_communicator_disconnect(c);
    assert_int_equal(demo_counters.disconnect, 1);
    assert_int_equal(demo_counters.disposed, 1);
    assert_int_equal(chanc_app_connections(t->app), 0);
}

static void test_server_frames_after_client_close_are_dropped(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &demo_echo, json_string("late"));
    chanc_communicator_disconnect(c); /* the frame was queued before the close */
    assert_int_equal(chanc_communicator_send_text(c, "{}"), CHANC_ECLOSED);
    assert_int_equal(chanc_communicator_close_code(c), CHANC_CLOSE_NORMAL);
    assert_int_equal(chanc_app_connections(t->app), 0);
}

static void test_timestamps_come_from_the_virtual_clock(void **state) {
    chanc_test_t *t = *state;
    char ts[32];
    chanc_format_timestamp(chanc_app_wall_ms(t->app), ts);
    assert_string_equal(ts, "2026-01-01T00:00:00.000Z");
    chanc_test_advance(t, 61001);
    chanc_format_timestamp(chanc_app_wall_ms(t->app), ts);
    assert_string_equal(ts, "2026-01-01T00:01:01.001Z");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        DEMO_TEST(test_echo_round_trip),
        DEMO_TEST(test_completion_follows_every_frame),
        DEMO_TEST(test_typed_object_payload),
        DEMO_TEST(test_handler_failure_sends_error_and_keeps_connection),
        DEMO_TEST(test_outgoing_frame_is_validated),
        DEMO_TEST(test_unmatched_path_is_refused),
        DEMO_TEST(test_hooks_run_in_order_and_state_is_disposed),
        DEMO_TEST(test_server_frames_after_client_close_are_dropped),
        DEMO_TEST(test_timestamps_come_from_the_virtual_clock),
    };
    return chanc_run_group_tests_name("framework.consumer", tests, NULL, NULL);
}

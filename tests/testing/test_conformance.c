/* testing.conformance: the fixture checks every frame the app sends
 * against the consumer's declared outgoing messages. A recording fail
 * handler catches what the check would print: which frame, to which
 * communicator, why (the validation error items), and the transcript.
 * The switches (the fixture option, CHANC_CONFORMANCE=0) and an
 * undeclared consumer (not checked, noted once in the log) too. The same
 * failures through cmocka's own reporting, FAILED and listed: the
 * expected-to-fail cases of test_conformance_fail.c. */
#include "conformance_consumer.h"
#include "fail_recorder.h" /* also cmocka's headers */

static int setup(void **state) {
    recorder_start();
    return conformance_fixture_setup(state);
}

static int teardown(void **state) {
    recorder_stop();
    return conformance_fixture_teardown(state);
}

#define T(fn) chanc_unit_test(fn, setup, teardown)

static void test_declared_frames_pass(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("ok"));
    chanc_assert_receive_all_match(c, "[{\"action\":\"said\",\"payload\":\"ok\"}]");
    chanc_communicator_send_message(c, &conf_ask, json_string("group"));
    chanc_assert_receive_all_match(c, "[{\"action\":\"said_all\",\"is_mine\":true}]");
    chanc_communicator_send_text(c, "{\"action\":\"nope\"}"); /* the framework's error frame */
    chanc_assert_receive_match(c, "{\"action\":\"error\"}");
    assert_int_equal(rec.failures, 0);
}

static void test_undeclared_action_fails_with_the_frame_and_why(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    json_decref(chanc_communicator_receive_all_json(c, 1000)); /* settles: reported here */
    assert_int_equal(rec.failures, 1);
    assert_contains(rec.message, "1 frame(s) the app sent do not conform to the consumer's "
                                 "declared outgoing messages");
    assert_contains(rec.message, "frame to /ws/declared/ (transcript entry 3): "
                                 "{\"action\":\"surprise\",\"payload\":null}");
    assert_contains(rec.message, "why: action \"surprise\" is not declared by consumer declared");
    assert_contains(rec.message, "transcript of /ws/declared/");
    /* reported once */
    chanc_assert_receive_nothing(c);
    assert_int_equal(rec.failures, 1);
}

static void test_payload_off_its_schema_lists_the_error_items(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("off"));
    chanc_assert_receive_match(c, "{\"action\":\"said\",\"payload\":42}");
    assert_int_equal(rec.failures, 1);
    assert_contains(rec.message, "{\"action\":\"said\",\"payload\":42}");
    assert_contains(rec.message, "why: it matches no declared type with action \"said\": "
                                 "[{\"type\":\"said\",\"errors\":[{\"type\":\"string_type\","
                                 "\"loc\":[\"payload\"]");
}

static void test_keys_beside_the_payload_are_checked(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("beside"));
    chanc_assert_receive_match(c, "{\"action\":\"said\"}");
    assert_int_equal(rec.failures, 1);
    assert_contains(rec.message, "{\"type\":\"extra_forbidden\",\"loc\":[\"room\"]");
}

static void test_the_fixture_option_turns_it_off(void **state) {
    (void)state;
    chanc_test_t *t = chanc_test_create(&(chanc_test_options_t){
        .setup = conformance_setup, .name = "off", .conformance_off = true});
    assert_non_null(t);
    chanc_communicator_t *c = conformance_client(t, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    chanc_assert_receive_match(c, "{\"action\":\"surprise\"}");
    chanc_test_destroy(t);
    assert_int_equal(rec.failures, 0);
}

static void test_the_environment_turns_it_off(void **state) {
    setenv("CHANC_CONFORMANCE", "0", 1);
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    chanc_assert_receive_match(c, "{\"action\":\"surprise\"}");
    unsetenv("CHANC_CONFORMANCE");
    assert_int_equal(rec.failures, 0);
}

/* outgoing NULL: the frames are not checked; the log says so. */
static void test_an_undeclared_consumer_is_not_checked(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = conformance_client(t, "/ws/undeclared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    chanc_assert_receive_match(c, "{\"action\":\"surprise\"}");
    assert_int_equal(rec.failures, 0);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_INFO, "consumer undeclared declares no "
                                        "outgoing messages (outgoing NULL): its frames are not "
                                        "checked"));
}

/* Found after the test's last settle: the fixture's destroy reports it. */
static void test_a_frame_found_at_destroy_is_reported(void **state) {
    (void)state;
    chanc_test_t *t = chanc_test_create(&(chanc_test_options_t){.setup = conformance_setup,
                                                                .name = "late"});
    chanc_communicator_t *c = conformance_client(t, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    chanc_test_destroy(t); /* outside the runner's teardown: a failure now */
    assert_int_equal(rec.failures, 1);
    assert_contains(rec.message, "late: 1 frame(s) the app sent do not conform");
    assert_contains(rec.message, "action \"surprise\" is not declared");
}

static void test_frame_conforms_explains_each_problem(void **state) {
    (void)state;
    json_t *errors = json_array();
    json_t *frame = json_pack("{s:s,s:s,s:b}", "action", "said_all", "payload", "x", "is_mine", 1);
    assert_false(chanc_test_frame_conforms(&conf_said_all, frame, errors));
    chanc_assert_json_match(errors, "[{\"type\":\"missing\",\"loc\":[\"is_current\"]}]");
    json_object_set_new(frame, "is_current", json_false());
    assert_true(chanc_test_frame_conforms(&conf_said_all, frame, NULL));
    json_object_set_new(frame, "is_current", json_string("no"));
    json_array_clear(errors);
    assert_false(chanc_test_frame_conforms(&conf_said_all, frame, errors));
    chanc_assert_json_match(errors, "[{\"type\":\"bool_type\",\"loc\":[\"is_current\"]}]");
    json_array_clear(errors);
    assert_false(chanc_test_frame_conforms(&conf_said, frame, errors));
    chanc_assert_json_match(errors, "[{\"type\":\"literal_error\",\"loc\":[\"action\"]},"
                                    " {\"type\":\"extra_forbidden\",\"loc\":[\"is_mine\"]},"
                                    " {\"type\":\"extra_forbidden\",\"loc\":[\"is_current\"]}]");
    json_array_clear(errors);
    json_t *s = json_string("said");
    assert_false(chanc_test_frame_conforms(&conf_said, s, errors));
    chanc_assert_json_match(errors, "[{\"type\":\"object_type\",\"loc\":[\"frame\"]}]");
    json_decref(s);
    json_decref(frame);
    json_decref(errors);
    assert_int_equal(rec.failures, 0);
}

int main(void) {
    setenv("CHANC_CONFORMANCE", "1", 1); /* the check's own tests: on, whatever the run says */
    const struct CMUnitTest tests[] = {
        T(test_declared_frames_pass),
        T(test_undeclared_action_fails_with_the_frame_and_why),
        T(test_payload_off_its_schema_lists_the_error_items),
        T(test_keys_beside_the_payload_are_checked),
        T(test_the_fixture_option_turns_it_off),
        T(test_the_environment_turns_it_off),
        T(test_an_undeclared_consumer_is_not_checked),
        T(test_a_frame_found_at_destroy_is_reported),
        T(test_frame_conforms_explains_each_problem),
    };
    return chanc_run_group_tests_name("testing.conformance", tests, NULL, NULL);
}

/* testing.assertions: the assertions themselves. A recording fail handler
 * catches what a failing assertion would print, so we can check that it
 * shows the expected JSON, the received JSON, where they differ, the file
 * and line, and the transcript. */
#include "fail_recorder.h" /* and test_common.h */

#define T(fn) cmocka_unit_test_setup_teardown(fn, recorded_demo_setup, recorded_demo_teardown)

static void test_json_mismatch_shows_both_documents_and_the_path(void **state) {
    (void)state;
    json_t *v = json_pack("{s:s,s:{s:s}}", "action", "user_joined", "payload", "username", "alice");
    int line = __LINE__ + 1;
    bool ok = chanc_assert_json_match(v, "{\"payload\":{\"username\":\"bob\"}}");
    assert_false(ok);
    assert_int_equal(rec.failures, 1);
    assert_int_equal(rec.line, line);
    assert_non_null(strstr(rec.file, "test_assertions.c"));
    assert_contains(rec.message, "expected: {\"payload\":{\"username\":\"bob\"}}");
    assert_contains(rec.message, "received: {\"action\":\"user_joined\",\"payload\":{\"username\":\"alice\"}}");
    assert_contains(rec.message, "at /payload/username: expected \"bob\", got \"alice\"");
    char where[64];
    snprintf(where, sizeof where, "test_assertions.c:%d", line);
    assert_contains(rec.message, where);
    json_decref(v);
}

static void test_json_match_passes_silently(void **state) {
    (void)state;
    json_t *v = json_pack("{s:s,s:i,s:[i,i]}", "a", "x", "n", 1, "l", 1, 2);
    assert_true(chanc_assert_json_match(v, "{\"n\":1.0,\"l\":[1,2]}"));
    assert_true(chanc_assert_json_match(v, "{}"));
    assert_int_equal(rec.failures, 0);
    json_decref(v);
}

static void test_missing_key_and_array_length_are_explained(void **state) {
    (void)state;
    json_t *v = json_pack("{s:[i]}", "items", 1);
    assert_false(chanc_assert_json_match(v, "{\"count\":1}"));
    assert_contains(rec.message, "at /count: expected 1, but the key is missing");
    assert_false(chanc_assert_json_match(v, "{\"items\":[1,2]}"));
    assert_contains(rec.message, "at /items: expected an array of 2 item(s), got 1");
    assert_false(chanc_assert_json_match(v, "{\"items\":{}}"));
    assert_contains(rec.message, "at /items: expected {}, got [1]");
    assert_false(chanc_assert_json_match(v, "not json"));
    assert_contains(rec.message, "bad pattern not json");
    assert_int_equal(rec.failures, 4);
    json_decref(v);
}

static void test_auth_status_failure_shows_frame_and_transcript(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = room_client(t, "lobby", NULL); /* anonymous → 403 */
    assert_true(chanc_communicator_connect(c, 1000));
    assert_false(chanc_assert_authenticated_status_ok(c));
    assert_contains(rec.message, "authentication status");
    assert_contains(rec.message, "expected: {\"action\":\"authentication\",\"payload\":{\"status_code\":200}}");
    assert_contains(rec.message, "\"status_code\":403");
    assert_contains(rec.message, "at /payload/status_code: expected 200, got 403");
    assert_contains(rec.message, "transcript of /ws/room/lobby/");
    assert_contains(rec.message, "close");
    assert_contains(rec.message, "code 4403");
}

static void test_receive_nothing_failure_lists_waiting_frames(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    assert_false(chanc_assert_receive_nothing(c)); /* the authentication frame waits */
    assert_contains(rec.message, "expected nothing, but 1 frame(s) are waiting");
    assert_contains(rec.message, "not yet consumed (1):");
    assert_contains(rec.message, "{\"action\":\"authentication\"");
}

static void test_closed_and_connect_failures(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    assert_false(chanc_assert_closed(c, 1000));
    assert_contains(rec.message, "expected the connection to be closed with code 1000, but it is open");
    chanc_communicator_disconnect_code(c, 4000);
    assert_false(chanc_assert_closed(c, 1000));
    assert_contains(rec.message, "expected close code 1000, got 4000");
    chanc_communicator_t *nowhere = chanc_test_communicator(t, "/nowhere");
    assert_false(chanc_assert_connect(nowhere));
    assert_contains(rec.message, "expected /nowhere to connect, but it was refused with code 4404");
}

static void test_receive_match_failure(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    assert_false(chanc_assert_receive_match(c, "{\"action\":\"pong\"}"));
    assert_contains(rec.message, "expected a frame matching {\"action\":\"pong\"}, but nothing arrived");
    chanc_communicator_send_message(c, &demo_echo, json_string("x"));
    assert_false(chanc_assert_receive_match(c, "{\"action\":\"pong\"}"));
    assert_contains(rec.message, "at /action: expected \"pong\", got \"echo\"");
    assert_contains(rec.message, "→ send");
}

static void test_receive_all_match_and_open(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    assert_true(chanc_assert_open(c));
    chanc_communicator_send_message(c, &demo_echo, json_string("x"));
    chanc_communicator_send_message(c, &demo_echo, json_string("y"));
    assert_true(chanc_assert_receive_all_match(c, "[{\"action\":\"echo\",\"payload\":\"x\"},"
                                                  "{\"action\":\"echo\",\"payload\":\"y\"}]"));
    assert_int_equal(rec.failures, 0);
    chanc_communicator_send_message(c, &demo_echo, json_string("z"));
    int line = __LINE__ + 1;
    assert_false(chanc_assert_receive_all_match(c, "[]"));
    assert_int_equal(rec.line, line);
    assert_contains(rec.message, "at /: expected an array of 0 item(s), got 1");
    assert_contains(rec.message, "received: [{\"action\":\"echo\",\"payload\":\"z\"}]");
    assert_contains(rec.message, "transcript of /ws/echo/");
    assert_true(chanc_assert_receive_nothing(c)); /* consumed, even on failure */
    chanc_communicator_disconnect_code(c, 4000);
    assert_false(chanc_assert_open(c));
    assert_contains(rec.message, "expected the connection to be open, but it was closed with code 4000");
}

static void test_json_match_without_a_communicator_shows_every_live_one(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = chanc_test_communicator(t, "/ws/echo/");
    chanc_communicator_t *b = chanc_test_communicator(t, "/ws/room/lobby/");
    chanc_assert_connect(a);
    chanc_assert_connect(b);
    json_t *v = json_string("got");
    assert_false(chanc_assert_json_match(v, "\"wanted\""));
    assert_contains(rec.message, "transcript of /ws/echo/");
    assert_contains(rec.message, "transcript of /ws/room/lobby/");
    json_decref(v);
}

static void test_json_find_and_pointer_helpers(void **state) {
    (void)state;
    json_t *arr = json_pack("[{s:s,s:{s:s}},{s:s,s:{s:s}}]", "action", "history", "payload", "x",
                            "y", "action", "user_joined", "payload", "username", "testuser");
    json_t *j = chanc_json_find(arr, "{\"action\":\"user_joined\"}");
    assert_ptr_equal(j, json_array_get(arr, 1));
    assert_string_equal(chanc_json_str(j, "/payload/username"), "testuser");
    assert_null(chanc_json_find(arr, "{\"action\":\"user_left\"}"));
    assert_null(chanc_json_find(arr, "{bad"));
    char *why = chanc_json_mismatch(json_array_get(arr, 0), json_array_get(arr, 1));
    assert_non_null(why);
    assert_contains(why, "at /action: expected \"user_joined\", got \"history\"");
    free(why);
    assert_null(chanc_json_mismatch(json_array_get(arr, 1), json_array_get(arr, 1)));
    json_decref(arr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_json_mismatch_shows_both_documents_and_the_path),
        T(test_json_match_passes_silently),
        T(test_missing_key_and_array_length_are_explained),
        T(test_auth_status_failure_shows_frame_and_transcript),
        T(test_receive_nothing_failure_lists_waiting_frames),
        T(test_closed_and_connect_failures),
        T(test_receive_match_failure),
        T(test_receive_all_match_and_open),
        T(test_json_match_without_a_communicator_shows_every_live_one),
        T(test_json_find_and_pointer_helpers),
    };
    return chanc_run_group_tests_name("testing.assertions", tests, NULL, NULL);
}

/* Its tests, against the installed chanc::testing (chanc_run_group_tests included). */
#include <chanc/testing.h>

#include "lobby.h"

static int register_routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return lobby_register(t->app);
}

static int setup(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){.setup = register_routes});
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

static void test_chat_reaches_everyone(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = chanc_test_communicator(t, "/ws/lobby/");
    chanc_communicator_set_header(a, "Cookie", "sessionid=alice-session");
    chanc_assert_connect(a);
    chanc_assert_authenticated_status_ok(a);
    chanc_communicator_t *b = chanc_test_communicator(t, "/ws/lobby/");
    chanc_communicator_set_header(b, "Cookie", "sessionid=bob-session");
    chanc_assert_connect(b);
    chanc_assert_authenticated_status_ok(b);

    chanc_communicator_send_message(a, &chat, json_string("hello"));
    json_t *msgs = chanc_communicator_receive_all_json(a, 1000);
    chanc_assert_json_match(msgs, "[{\"action\":\"chat\",\"payload\":\"hello\","
                                  "\"is_mine\":true,\"is_current\":true}]");
    json_decref(msgs);
    msgs = chanc_communicator_receive_all_json(b, 1000);
    chanc_assert_json_match(msgs, "[{\"action\":\"chat\",\"payload\":\"hello\","
                                  "\"is_mine\":false,\"is_current\":false}]");
    json_decref(msgs);
}

static void test_anonymous_is_refused(void **state) {
    chanc_communicator_t *a = chanc_test_communicator(*state, "/ws/lobby/");
    chanc_assert_connect(a);
    chanc_assert_authenticated_status(a, 403);
    chanc_assert_closed(a, 4403);
}

static void test_bad_move_is_a_typed_error(void **state) {
    chanc_communicator_t *a = chanc_test_communicator(*state, "/ws/lobby/");
    chanc_communicator_set_header(a, "Cookie", "sessionid=alice-session");
    chanc_assert_connect(a);
    chanc_assert_authenticated_status_ok(a);
    chanc_communicator_send_json(a, json_pack("{s:s,s:{s:s}}", "action", "move", "payload", "x", "1"));
    chanc_assert_receive_match(a, "{\"action\":\"error\",\"payload\":["
                                  "{\"type\":\"int_type\",\"loc\":[\"payload\",\"x\"]},"
                                  "{\"type\":\"missing\",\"loc\":[\"payload\",\"y\"]}]}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chat_reaches_everyone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_move_is_a_typed_error, setup, teardown),
    };
    return chanc_run_group_tests_name("package.lobby", tests, NULL, NULL);
}

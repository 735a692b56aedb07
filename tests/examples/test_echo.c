/* The echo example (examples/echo): its consumer, driven in process by
 * communicators (chanc/testing.h). */
#include <chanc/testing.h>

#include "echo.h"

static int routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return echo_route(t->app);
}

static int setup(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){.setup = routes, .name = *state});
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

/* A client of ws/echo/, connected and past its authentication frame. */
static chanc_communicator_t *client(chanc_test_t *t) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c); /* anonymous, and welcome */
    return c;
}

static void test_each_echo_comes_back(void **state) {
    chanc_communicator_t *c = client(*state);
    chanc_communicator_send_message(c, &echo_message, json_string("hello"));
    chanc_assert_receive_match(c, "{\"action\":\"echo\",\"payload\":\"hello\"}");
    chanc_communicator_send_message(c, &echo_message, json_string("Grüße, 世界"));
    chanc_communicator_send_message(c, &echo_message, json_string("again"));
    chanc_assert_receive_all_match(c, "[{\"action\":\"echo\",\"payload\":\"Grüße, 世界\"},"
                                      "{\"action\":\"echo\",\"payload\":\"again\"}]");
}

static void test_only_the_sender_hears_it(void **state) {
    chanc_communicator_t *a = client(*state), *b = client(*state);
    chanc_communicator_send_message(a, &echo_message, json_string("mine"));
    chanc_assert_receive_match(a, "{\"payload\":\"mine\"}");
    chanc_assert_receive_nothing(b);
}

static void test_what_is_not_an_echo_is_an_error_frame(void **state) {
    chanc_communicator_t *c = client(*state);
    chanc_communicator_send_message(c, &echo_message, json_string("")); /* sent unchecked */
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":"
                                  "[{\"type\":\"string_too_short\",\"loc\":[\"payload\"]}]}");
    chanc_communicator_send_message(c, &echo_message, json_integer(42));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":"
                                  "[{\"type\":\"string_type\",\"loc\":[\"payload\"]}]}");
    chanc_communicator_send_text(c, "{\"action\":\"shout\",\"payload\":\"hi\"}");
    chanc_assert_receive_match(c, "{\"action\":\"error\"}");
    chanc_assert_receive_nothing(c); /* and it is still open: */
    chanc_communicator_send_message(c, &echo_message, json_string("still here"));
    chanc_assert_receive_match(c, "{\"action\":\"echo\",\"payload\":\"still here\"}");
}

static void test_a_path_without_a_route_is_refused(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/nope/");
    assert_false(chanc_communicator_connect(c, 1000));
    assert_int_equal(chanc_communicator_close_code(c), CHANC_CLOSE_NOT_FOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        chanc_unit_test(test_each_echo_comes_back, setup, teardown),
        chanc_unit_test(test_only_the_sender_hears_it, setup, teardown),
        chanc_unit_test(test_what_is_not_an_echo_is_an_error_frame, setup, teardown),
        chanc_unit_test(test_a_path_without_a_route_is_refused, setup, teardown),
    };
    return chanc_run_group_tests_name("examples.echo", tests, NULL, NULL);
}

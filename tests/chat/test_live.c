/* chat.live (label integration): the chat tests against a real chat-server
 * process over loopback sockets. The group setup starts chat-server on a
 * free port with a fresh database seeded from fixtures/chat.json; the
 * tests use the same communicator calls as in process, made from
 * chanc_test_create_remote; the group teardown sends SIGTERM and requires
 * exit status 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <chanc/testing.h>

#include "server_proc.h"

static server_proc_t server;

static int start_server(void **state) {
    (void)state;
    /* CHAT_LIVE_WRAPPER (e.g. valgrind and its flags) runs the server under
     * a tool: the memcheck variant of this test, with cheap password hashes. */
    const char *wrapper = getenv("CHAT_LIVE_WRAPPER");
    if (server_proc_init(&server, "live") < 0 ||
        server_proc_start(&server, wrapper ? "min" : "interactive", wrapper) < 0)
        return -1;
    return 0;
}

static int stop_server(void **state) {
    (void)state;
    int status = server_proc_stop(&server, SIGTERM);
    server_proc_dispose(&server);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "chat.live: chat-server did not exit 0 on SIGTERM (status %d%s)\n", status,
                WIFEXITED(status) && WEXITSTATUS(status) == 99 ? ": valgrind found errors" : "");
        return -1;
    }
    return 0;
}

static void login(const char *user, const char *password, char *cookie, size_t len) {
    server_proc_login(&server, user, password, cookie, len, 10000);
}

typedef struct live {
    chanc_test_t *test;
    long long room_id;
} live_t;

static int live_setup(void **state) {
    live_t *t = calloc(1, sizeof *t);
    const char *quiet = getenv("CHAT_LIVE_QUIET_MS");
    t->test = chanc_test_create_remote(&(chanc_test_remote_options_t){
        .port = server.port, .quiet_ms = quiet ? strtoull(quiet, NULL, 10) : 0});
    t->room_id = 1; /* General */
    char cookie[200];
    login("testuser", "testpass123", cookie, sizeof cookie);
    chanc_test_set_default_header(t->test, "Cookie", cookie);
    *state = t;
    return 0;
}

static int live_teardown(void **state) {
    live_t *t = *state;
    chanc_test_destroy(t->test);
    free(t);
    return 0;
}

static chanc_communicator_t *member(live_t *t, const char *user, const char *password) {
    char cookie[200];
    login(user, password, cookie, sizeof cookie);
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    chanc_communicator_set_header(c, "Cookie", cookie);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    return c;
}

/* ---- the seed's two tests, unchanged but for the fixture ------------------ */

static void test_connect_and_receive_history(void **state) {
    live_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    assert_true(chanc_communicator_connect(c, 5000));
    chanc_assert_authenticated_status_ok(c);
    json_t *msgs = chanc_communicator_receive_all_json(c, 5000);
    assert_true(json_array_size(msgs) >= 1);
    json_t *join = chanc_json_find(msgs, "{\"action\":\"user_joined\"}");
    assert_non_null(join);
    assert_string_equal(chanc_json_str(join, "/payload/username"), "testuser");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
}

static void test_chat_message(void **state) {
    live_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    assert_true(chanc_communicator_connect(c, 5000));
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    chanc_communicator_send_message(c, &(chanc_message_type_t){.action = "chat"},
                                    json_string("Hello everyone!"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 5000);
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(chanc_json_str(msgs, "/0/action"), "chat");
    assert_string_equal(chanc_json_str(msgs, "/0/payload"), "Hello everyone!");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
}

/* ---- several members over sockets ---------------------------------------- */

static void test_three_members_exchange_with_flags(void **state) {
    live_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice", "alice-pass-1");
    chanc_communicator_t *bob = member(t, "bob", "bob-pass-1");
    chanc_communicator_t *carol = member(t, "carol", "carol-pass-1");
    json_decref(chanc_communicator_receive_all_json(alice, 5000)); /* bob, carol joined */
    json_decref(chanc_communicator_receive_all_json(bob, 5000));

    chanc_communicator_send_message(bob, &(chanc_message_type_t){.action = "chat"},
                                    json_string("over a real socket"));
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"over a real socket\","
                                    "\"username\":\"bob\",\"is_mine\":true,\"is_current\":true}");
    chanc_assert_receive_match(alice, "{\"action\":\"chat\",\"username\":\"bob\",\"is_mine\":false}");
    chanc_assert_receive_match(carol, "{\"action\":\"chat\",\"username\":\"bob\",\"is_mine\":false}");

    chanc_communicator_disconnect(carol);
    chanc_assert_receive_match(alice, "{\"action\":\"user_left\",\"payload\":{\"username\":\"carol\"}}");
    chanc_assert_receive_match(bob, "{\"action\":\"user_left\",\"payload\":{\"username\":\"carol\"}}");
}

static void test_refusals_over_a_socket(void **state) {
    live_t *t = *state;
    chanc_communicator_t *missing = chanc_test_communicator(t->test, "/ws/chat/424242/");
    chanc_assert_connect(missing);
    chanc_assert_authenticated_status(missing, 404);
    chanc_assert_closed(missing, 4404);

    chanc_communicator_t *anon = chanc_test_communicator(t->test, "/ws/chat/1/");
    chanc_communicator_set_header(anon, "Cookie", "sessionid=forged");
    chanc_assert_connect(anon);
    chanc_assert_authenticated_status(anon, 403);
    chanc_assert_closed(anon, 4403);

    chanc_communicator_t *nowhere = chanc_test_communicator(t->test, "/ws/nowhere/");
    assert_false(chanc_communicator_connect(nowhere, 5000));
    assert_int_equal(chanc_communicator_close_code(nowhere), 4404);

    chanc_communicator_t *foreign = chanc_test_communicator(t->test, "/ws/chat/1/");
    chanc_communicator_set_header(foreign, "Origin", "http://evil.example");
    assert_false(chanc_communicator_connect(foreign, 5000));
    assert_int_equal(chanc_communicator_close_code(foreign), 4403);
}

static void test_bad_input_is_answered_and_others_are_unaffected(void **state) {
    live_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice", "alice-pass-1");
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    json_decref(chanc_communicator_receive_all_json(alice, 5000));
    chanc_communicator_send_text(c, "{not json");
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"json_invalid\"}]}");
    chanc_communicator_send_text(c, "{\"action\":\"chat\",\"payload\":\"\"}");
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_too_short\"}]}");
    chanc_communicator_send_raw(c, "\xff\xfe", 2, false); /* invalid UTF-8 */
    chanc_assert_closed(c, 1007);
    /* alice sees testuser leave, and her connection still answers. */
    chanc_communicator_send_message(alice, &(chanc_message_type_t){.action = "ping"}, NULL);
    json_t *msgs = chanc_communicator_receive_all_json(alice, 5000);
    chanc_assert_json_match(msgs, "[{\"action\":\"user_left\",\"payload\":{\"username\":\"testuser\"}},"
                                  "{\"action\":\"pong\"}]");
    json_decref(msgs);
}

int main(void) {
#define LIVE(fn) cmocka_unit_test_setup_teardown(fn, live_setup, live_teardown)
    const struct CMUnitTest tests[] = {
        LIVE(test_connect_and_receive_history),
        LIVE(test_chat_message),
        LIVE(test_three_members_exchange_with_flags),
        LIVE(test_refusals_over_a_socket),
        LIVE(test_bad_input_is_answered_and_others_are_unaffected),
    };
    return cmocka_run_group_tests_name("chat.live", tests, start_server, stop_server);
}

/* testing.red_path.*: tests that FAIL the way a user's test fails, so that
 * tests/testing/check_red_path can check what the user then sees: the
 * test reported FAILED (not ERROR) with the real failure first and listed
 * in the summary, the transcript shown, the leak ledger a note under the
 * failure, no location inside chanc, and nothing new left in $TMPDIR
 * (the chat fixture's scratch SQLite files). argv[1] picks the case:
 *   chanc      a chanc assertion fails while the test holds a json_t
 *   cmocka     a plain cmocka assertion fails holding one (docs/testing.md's
 *              walked-through test with one expected value broken)
 *   deferred   a failure while a chat message is on the database thread
 *   two        a failure with two fixtures (two apps) alive
 *   pass       the same steps passing: the check's control */
#include <string.h>

#include "chat_test.h"

#define ROOM_PATH "/ws/chat/%lld/"

static const char *expected_payload = "Hello everyone!";

/* docs/testing.md's walked-through test, with a chanc assertion. */
static void test_chat_message_chanc(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000)); /* join + history */
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("Hello everyone!"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    char pattern[200];
    snprintf(pattern, sizeof pattern, "[{\"action\":\"chat\",\"payload\":\"%s\"}]", expected_payload);
    chanc_assert_json_match(msgs, pattern);
    json_decref(msgs);
}

/* ... and with plain cmocka assertions, as docs/testing.md's was written. */
static void test_chat_message_cmocka(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    assert_true(chanc_communicator_connect(c, 1000));
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000)); /* join + history */
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("Hello everyone!"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(chanc_json_str(msgs, "/0/action"), "chat");
    assert_string_equal(chanc_json_str(msgs, "/0/payload"), expected_payload);
    json_decref(msgs);
    chanc_communicator_disconnect(c);
}

/* The message is sent but not yet settled: its commit is still to run on
 * the chat's database thread (the frame is deferred) when the test fails. */
static void test_failure_while_deferred(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, ROOM_PATH, (long long)t->room_id);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_t *join = chanc_communicator_receive_all_json(c, 1000);
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("in flight"));
    assert_true(chanc_communicator_closed(c)); /* fails: the message is still on its way */
    json_decref(join);
}

/* Two apps (two chat-servers' worth) alive when the test fails. */
static chat_test_t *second;

static void test_failure_with_two_fixtures(void **state) {
    chat_test_t *t = *state;
    chat_test_t *other = chat_test_create(&(chat_test_options_t){.name = "second"});
    assert_non_null(other);
    chanc_communicator_t *a = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_t *b = chat_test_member(other, other->room_id, "bob");
    chanc_communicator_send_message(a, &chat_msg_chat, json_string("to my own app only"));
    json_t *got = chanc_communicator_receive_all_json(b, 1000);
    /* Fails: the two apps share no layer. The teardown destroys both. */
    second = other; /* the teardown destroys it */
    chanc_assert_json_match(got, "[{\"action\":\"chat\",\"payload\":\"to my own app only\"}]");
    json_decref(got);
}

static int teardown_both(void **state) {
    chat_test_destroy(second);
    second = NULL;
    return chat_test_teardown(state);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "";
    const struct CMUnitTest chanc[] = {CHAT_TEST(test_chat_message_chanc)};
    const struct CMUnitTest cmocka[] = {CHAT_TEST(test_chat_message_cmocka)};
    const struct CMUnitTest deferred[] = {CHAT_TEST(test_failure_while_deferred)};
    const struct CMUnitTest two[] = {
        chanc_unit_test(test_failure_with_two_fixtures, chat_test_setup, teardown_both)};
    if (!strcmp(which, "pass")) {
        expected_payload = "Hello everyone!";
        const struct CMUnitTest pass[] = {CHAT_TEST(test_chat_message_chanc),
                                          CHAT_TEST(test_chat_message_cmocka)};
        return chanc_run_group_tests_name("testing.red_path.pass", pass, NULL, NULL);
    }
    expected_payload = "Hello everyone?";
    if (!strcmp(which, "chanc"))
        return chanc_run_group_tests_name("testing.red_path.chanc", chanc, NULL, NULL);
    if (!strcmp(which, "cmocka"))
        return chanc_run_group_tests_name("testing.red_path.cmocka", cmocka, NULL, NULL);
    if (!strcmp(which, "deferred"))
        return chanc_run_group_tests_name("testing.red_path.deferred", deferred, NULL, NULL);
    if (!strcmp(which, "two"))
        return chanc_run_group_tests_name("testing.red_path.two", two, NULL, NULL);
    fprintf(stderr, "usage: %s chanc|cmocka|deferred|two|pass\n", argv[0]);
    return 2;
}

/* testing.will_fail.*: tests that must FAIL, registered with WILL_FAIL, to
 * show the harness catches what it claims to (argv[1] picks one):
 *   leak       a consumer keeps a reference: the leak ledger fails teardown
 *   late_frame a reply comes after slow threadpool work: receive_nothing,
 *              which settles instead of waiting, still sees it
 *   subset     a wrong JSON subset: the failure shows the diff */
#include <string.h>

#include "probe_consumer.h"


static chanc_communicator_t *probe(chanc_test_t *t) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}

static void test_leaking_consumer_fails_at_teardown(void **state) {
    chanc_communicator_t *c = probe(*state);
    chanc_communicator_send_message(c, &probe_leak, NULL);
    chanc_assert_receive_nothing(c);
}

static void test_receive_nothing_catches_a_late_frame(void **state) {
    chanc_communicator_t *c = probe(*state);
    chanc_communicator_send_message(c, &probe_later, json_string("after 20 ms of work"));
    chanc_assert_receive_nothing(c); /* fails: the reply is there once settled */
}

static void test_wrong_subset_fails_with_the_diff(void **state) {
    chanc_communicator_t *c = probe(*state);
    chanc_communicator_send_message(c, &probe_echo, json_string("alice"));
    chanc_assert_receive_match(c, "{\"action\":\"reply\",\"payload\":\"bob\"}");
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "";
    const struct CMUnitTest leak[] = {
        PROBE_TEST(test_leaking_consumer_fails_at_teardown)};
    const struct CMUnitTest late[] = {
        PROBE_TEST(test_receive_nothing_catches_a_late_frame)};
    const struct CMUnitTest subset[] = {
        PROBE_TEST(test_wrong_subset_fails_with_the_diff)};
    if (!strcmp(which, "leak"))
        return chanc_run_group_tests_name("testing.will_fail.leak", leak, NULL, NULL);
    if (!strcmp(which, "late_frame"))
        return chanc_run_group_tests_name("testing.will_fail.late_frame", late, NULL, NULL);
    if (!strcmp(which, "subset"))
        return chanc_run_group_tests_name("testing.will_fail.subset", subset, NULL, NULL);
    fprintf(stderr, "usage: %s leak|late_frame|subset\n", argv[0]);
    return 2;
}

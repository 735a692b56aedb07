/* testing.conformance_fail.*: tests that FAIL because the app sent a frame
 * its consumer does not declare, run by tests/testing/check_conformance,
 * which checks what the user sees: the test FAILED (not ERROR) and listed
 * in the summary, the offending frame with why, the transcript, no
 * location inside chanc, and (memcheck twins) nothing from valgrind.
 * argv[1] picks the case:
 *   undeclared   an action the consumer does not declare
 *   off_schema   a declared action whose payload is off its schema
 *   at_teardown  the frame comes after the test's last settle: the
 *                fixture's destroy finds it */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "conformance_consumer.h"

#define CONF_TEST(fn) chanc_unit_test(fn, conformance_fixture_setup, conformance_fixture_teardown)

static void test_undeclared_action(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    chanc_assert_receive_match(c, "{\"action\":\"surprise\"}"); /* fails before matching */
}

static void test_payload_off_schema(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("off"));
    json_t *all = chanc_communicator_receive_all_json(c, 1000); /* fails here, holding nothing */
    json_decref(all);
}

static void test_found_at_teardown(void **state) {
    chanc_communicator_t *c = conformance_client(*state, "/ws/declared/");
    chanc_communicator_send_message(c, &conf_ask, json_string("undeclared"));
    /* no receive: the fixture's destroy settles and finds it */
}

int main(int argc, char **argv) {
    setenv("CHANC_CONFORMANCE", "1", 1); /* the check's own tests: on, whatever the run says */
    const char *which = argc > 1 ? argv[1] : "";
    const struct CMUnitTest undeclared[] = {CONF_TEST(test_undeclared_action)};
    const struct CMUnitTest off[] = {CONF_TEST(test_payload_off_schema)};
    const struct CMUnitTest late[] = {CONF_TEST(test_found_at_teardown)};
    if (!strcmp(which, "undeclared"))
        return chanc_run_group_tests_name("testing.conformance_fail.undeclared", undeclared, NULL,
                                          NULL);
    if (!strcmp(which, "off_schema"))
        return chanc_run_group_tests_name("testing.conformance_fail.off_schema", off, NULL, NULL);
    if (!strcmp(which, "at_teardown"))
        return chanc_run_group_tests_name("testing.conformance_fail.at_teardown", late, NULL, NULL);
    fprintf(stderr, "usage: %s undeclared|off_schema|at_teardown\n", argv[0]);
    return 2;
}

/* Shared boilerplate of the framework tests: cmocka includes and a
 * fixture with the demo consumers. */
#ifndef TEST_COMMON_H
#define TEST_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chanc/testing.h"
#include "demo_consumers.h"

static inline int demo_fixture_setup(void **state) {
    chanc_test_options_t opts = {.setup = demo_setup};
    *state = chanc_test_create(&opts);
    return *state ? 0 : -1;
}

static inline int demo_fixture_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

#define DEMO_TEST(fn) cmocka_unit_test_setup_teardown(fn, demo_fixture_setup, demo_fixture_teardown)

/* A communicator on the room consumer, logged in as `user`. */
static inline chanc_communicator_t *room_client(chanc_test_t *t, const char *room,
                                                const char *user) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/room/%s/", room);
    if (user) {
        char token[64];
        snprintf(token, sizeof token, "Token %s", user);
        chanc_communicator_set_header(c, "Authorization", token);
    }
    return c;
}

#endif

/* Two small consumers for the conformance check's own tests (routes
 * ws/declared/ and ws/undeclared/, the same hooks): "ask" with a string
 * answers
 *   "ok"          said "ok"                 (declared)
 *   "group"       said_all "x" to group conf (declared, is_mine/is_current)
 *   "undeclared"  surprise                  (no such outgoing type)
 *   "off"         said 42                   (payload off its schema)
 *   "beside"      said "x" with "room": 1   (a key the type does not have)
 * "declared" lists said and said_all as its outgoing messages;
 * "undeclared" has outgoing NULL. */
#ifndef CONFORMANCE_CONSUMER_H
#define CONFORMANCE_CONSUMER_H

#include <chanc/testing.h>

extern const chanc_message_type_t conf_ask, conf_said, conf_said_all;
int conformance_setup(chanc_test_t *t, void *ud);
/* cmocka setup/teardown: a fixture with both routed, named after the test. */
int conformance_fixture_setup(void **state);
int conformance_fixture_teardown(void **state);
/* A communicator on path, connected and authenticated (status 200 consumed). */
chanc_communicator_t *conformance_client(chanc_test_t *t, const char *path);

#endif

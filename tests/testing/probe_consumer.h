/* A small consumer for the harness's own tests (route ws/probe/): "echo"
 * answers at once, "later" answers after work on the threadpool (held, so
 * settling waits for it), "leak" keeps a reference to its frame until
 * process exit (leaked as far as a test is concerned, freed at exit so
 * valgrind stays clean). */
#ifndef PROBE_CONSUMER_H
#define PROBE_CONSUMER_H

#include <chanc/testing.h>

extern const chanc_message_type_t probe_echo, probe_later, probe_leak;
int probe_setup(chanc_test_t *t, void *ud);
/* cmocka setup/teardown: a fixture with the probe routed, named after the
 * test (chanc_unit_test). */
int probe_fixture_setup(void **state);
int probe_fixture_teardown(void **state);
#define PROBE_TEST(fn) chanc_unit_test(fn, probe_fixture_setup, probe_fixture_teardown)

#endif

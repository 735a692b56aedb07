/* For tests of the assertions themselves: a fail handler that records what
 * a failing chanc assertion would print (chanc_testing_set_fail_handler)
 * instead of failing the test; the assertion then returns false. */
#ifndef FAIL_RECORDER_H
#define FAIL_RECORDER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chanc/testing.h"
#include "test_common.h"

typedef struct recorded {
    int failures;
    char file[256];
    int line;
    char *message; /* the last failure's text */
} recorded_t;

static recorded_t rec;

static inline void record_failure(const char *file, int line, const char *message, void *ud) {
    (void)ud;
    rec.failures++;
    snprintf(rec.file, sizeof rec.file, "%s", file);
    rec.line = line;
    free(rec.message);
    rec.message = strdup(message);
}

/* In a test's setup: record from now on (nothing recorded yet). */
static inline void recorder_start(void) {
    memset(&rec, 0, sizeof rec);
    chanc_testing_set_fail_handler(record_failure, NULL);
}

/* In its teardown: the default handler again. */
static inline void recorder_stop(void) {
    chanc_testing_set_fail_handler(NULL, NULL);
    free(rec.message);
    rec.message = NULL;
}

/* cmocka setup/teardown: the demo fixture (test_common.h), recording. */
static inline int recorded_demo_setup(void **state) {
    recorder_start();
    return demo_fixture_setup(state);
}

static inline int recorded_demo_teardown(void **state) {
    recorder_stop();
    return demo_fixture_teardown(state);
}

static inline void assert_contains(const char *haystack, const char *needle) {
    if (!haystack || !strstr(haystack, needle))
        fail_msg("expected the failure message to contain\n  %s\nbut it was\n%s", needle,
                 haystack ? haystack : "(null)");
}

#endif

/* Private parts of the testing library shared between its files. */
#ifndef CHANC_TESTING_INTERNAL_H
#define CHANC_TESTING_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>

#include "chanc/testing.h"

typedef struct header_list {
    chanc_header_t *items; /* names and values malloc'd */
    size_t n;
} header_list_t;

int chanc__headers_set(header_list_t *h, const char *name, const char *value);
void chanc__headers_dispose(header_list_t *h);

#define LOG_KEEP 256

/* How long an assertion lets the app run before calling it hung. Only a
 * bound: a passing test never waits for it (settling is known), but work
 * on other threads can be slow on a loaded machine (the soak runs with
 * CPU burners), so it is generous. */
#define CHANC__HANG_MS 10000

struct chanc_test_private {
    uv_loop_t loop;
    chanc_test_options_t opts;
    chanc_communicator_t *comms, **comms_tail;
    header_list_t default_headers;
    uint64_t mono_ms;
    int64_t wall_ms;
    uint64_t start_mono;
    /* Captured log lines (a ring of the last LOG_KEEP). */
    char *log[LOG_KEEP];
    int log_level[LOG_KEEP];
    size_t log_count;
    int saved_log_level;
    /* Remote fixtures (a live server): its port, the quiet period. */
    int remote_port;
    uint64_t remote_quiet_ms;
    uint64_t start_real;
    /* The test's name (transcript files), the leak ledger at creation. */
    char *name;
    chanc_test_ledger_t ledger_base;
    uint64_t ledger_json_seq; /* jansson allocations made before it */
    chanc_test_t *live_next;  /* fixtures alive now (fixture.c) */
    size_t max_queue;
    /* The fault-injecting wrapper around the app's layer (faults.c). */
    chanc_layer_t *fault_layer;
    /* The conformance check (conformance.c): on; frames found not to
     * conform and not yet reported (text), how many, the communicator of
     * the first; an undeclared consumer noted in the log. destroying: the
     * fixture is being destroyed (found frames go to its teardown report). */
    bool conformance;
    char *nonconforming;
    size_t nonconforming_n;
    chanc_communicator_t *nonconforming_comm;
    bool undeclared_noted;
    bool destroying;
    /* Groups captured (broadcast.c). */
    struct group_capture *captures;
    /* Explored schedules (schedule.c): the generator's state, draws. */
    uint64_t schedule_rng, schedule_draws;
};

/* faults.c: wrap inner (stolen; NULL: in-memory) in the fault layer. */
chanc_layer_t *chanc__fault_layer_wrap(struct chanc_test_private *p, chanc_layer_t *inner);
/* Earliest delayed delivery, if any; deliver those due by now. */
bool chanc__fault_layer_next_due(const struct chanc_test_private *p, uint64_t *due);
void chanc__fault_layer_run_due(struct chanc_test_private *p, chanc_app_t *app);

/* conformance.c: check a frame the app wrote to c (in process); report
 * what was found (a failure, raised at file:line of the test program when
 * the runner knows it) unless the fixture is being destroyed; the text of
 * what is pending (malloc'd, NULL if nothing), cleared. */
void chanc__conformance_check(chanc_communicator_t *c, const chanc_buf_t *frame);
void chanc__conformance_report(chanc_test_t *t);
char *chanc__conformance_take(chanc_test_t *t);

/* broadcast.c: record a message published to group (the fault layer
 * calls it for every publish); free the captures. */
void chanc__capture_published(struct chanc_test_private *p, const char *group,
                              const chanc_envelope_t *env);
void chanc__captures_free(struct chanc_test_private *p);
/* schedule.c: the seeds the runner goes through (CHANC_SEED: that one;
 * CHANC_EXPLORE=K: 1..K; neither: 0, FIFO), the one in use (from_runner:
 * set by chanc_run_group_tests), a new fixture's scheduler (index: of the
 * fixtures alive), and the command that replays a seed. */
void chanc__schedule_plan(uint64_t *first, uint64_t *last);
void chanc__schedule_use(uint64_t seed, bool from_runner);
uint64_t chanc__schedule_seed(void);
void chanc__schedule_fixture(chanc_test_t *t, unsigned index);
int chanc__schedule_replay(char *out, size_t size, const char *test, uint64_t seed);
/* Choices the schedules have drawn in this process so far (each among two
 * or more alternatives). */
uint64_t chanc__schedule_drawn(void);

/* ledger.c */
void chanc__ledger_snapshot(chanc_test_ledger_t *out);
/* malloc'd description of what is alive, NULL when nothing is. */
char *chanc__ledger_describe(const chanc_test_ledger_t *l);
/* Number of jansson allocations made so far. */
uint64_t chanc__ledger_json_seq(void);
/* Keep the jansson blocks made after allocation number seq that are still
 * alive reachable until exit (a failed test's values); how many. Blocks
 * the app made during an allocation-failure run are not the test's: not
 * kept, their number in *app_alive. */
size_t chanc__ledger_keep_since(uint64_t seq, size_t *app_alive);

/* runner.c: what the fixture and the assertions ask of the runner. */
void chanc__run_mark_failed(void);      /* a chanc assertion failed (context shown) */
bool chanc__run_test_failed(void);      /* the current test has failed */
bool chanc__run_context_shown(void);    /* ... through a chanc assertion */
const char *chanc__run_test_name(void); /* the running test's, or NULL */
/* A short note printed under the failure (cmocka keeps ~1 KiB in all). */
void chanc__run_note(const char *text);
/* Where chanc_run_group_tests was called (the test program), for failures
 * found outside an assertion; false outside it. */
bool chanc__run_where(const char **file, int *line);
/* Where long notes go: printed after cmocka's summary; NULL outside
 * chanc_run_group_tests. */
FILE *chanc__run_notes(void);
/* What a fixture's teardown found (message stolen): a note when the test
 * failed already, a failure raised once the test's teardown has finished
 * when its body passed, else a failure now. */
void chanc__run_teardown_failure(const char *name, char *message);

/* transcript.c: write every communicator's transcript to
 * $CHANC_TRANSCRIPT_DIR/<program>.<test>.jsonl when that is set. */
void chanc__test_write_transcripts(chanc_test_t *t);
/* mkdir -p; 0 or -1 (errno set). */
int chanc__mkdirs(const char *path);

/* coverage.c: add what the fixture's communicators exercised to the
 * process's protocol coverage (before the app goes) and, when
 * CHANC_COVERAGE_DIR is set, rewrite <dir>/<program>.coverage.json. */
void chanc__coverage_record(chanc_test_t *t);

/* assert.c: format the headline, add c's transcript, waiting frames and
 * log (c may be NULL), report; returns false. */
bool chanc__report_failure(chanc_communicator_t *c, const char *file, int line, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

/* The same in two steps, for a caller that frees its own text in
 * between (raising may longjmp): prepare, then raise (returns false). */
void chanc__failure_prepare(chanc_communicator_t *c, const char *file, int line, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));
bool chanc__failure_raise(const char *file, int line);

/* Real monotonic milliseconds (a live server's fixture, socket deadlines):
 * the framework's system clock, the one clock helper. */
static inline uint64_t chanc__real_ms(void) {
    const chanc_clock_t *k = chanc_clock_system();
    return k->mono_ms(k->ud);
}

/* Create/free a communicator (the fixture owns them). */
chanc_communicator_t *chanc__communicator_new(chanc_test_t *t, char *path);
void chanc__communicator_free(chanc_communicator_t *c);
chanc_communicator_t *chanc__communicator_next(const chanc_communicator_t *c);
/* The communicator's "next" slot, for appending to the fixture's list. */
chanc_communicator_t **chanc__communicator_link(chanc_communicator_t *c);
chanc_test_t *chanc__communicator_test(const chanc_communicator_t *c);

/* Write the captured log lines to out. */
void chanc__test_print_log(const chanc_test_t *t, FILE *out);
/* Every live fixture's communicators' transcripts and log, to out. */
void chanc__test_print_all(FILE *out);
/* Report a failure through the installed handler. */
void chanc__fail(const char *file, int line, const char *message);
/* Settle or report "did not settle" (false). */
bool chanc__settle(chanc_communicator_t *c, uint64_t timeout_ms);
/* The server-side connection of an in-process communicator (NULL: remote,
 * not connected, or closed and let go); its consumer (NULL: remote or not
 * connected). */
chanc_conn_t *chanc__communicator_conn(const chanc_communicator_t *c);
const chanc_consumer_t *chanc__communicator_consumer(const chanc_communicator_t *c);
/* Peek the first unconsumed frame; NULL if none. Borrowed. */
const chanc_buf_t *chanc__communicator_peek(const chanc_communicator_t *c);
/* The i-th waiting frame (0 = next) or NULL. */
const chanc_buf_t *chanc__communicator_peek_at(const chanc_communicator_t *c, size_t i);

/* oom.c: the allocation-failure sweep (CHANC_OOM, CHANC_OOM_AT). */
/* At the start of chanc_run_group_tests: true when this process sweeps
 * (the result in *rc) instead of running the tests. */
bool chanc__oom_run(const char *group, const struct CMUnitTest *tests, size_t n, int *rc);
/* At its end: the exit status of a run with an allocation failing. */
int chanc__oom_child_result(int failed);
void chanc__oom_arm(bool on);                  /* around a test's body */
bool chanc__oom_in_app(void);                  /* allocating for the app, in a body? */
bool chanc__oom_fail_json(size_t size);        /* ledger.c: fail this jansson allocation? */
void chanc__oom_app_enter(void);               /* the inproc transport runs the app */
void chanc__oom_app_leave(void);
void chanc__oom_harness_enter(void);           /* ... and the testing library's own work */
void chanc__oom_harness_leave(void);           /* inside it (transcript, inbox) */
/* chanc_test_destroy: what the clients saw and the probe, before it
 * closes them; the ledger once everything is gone. */
void chanc__oom_before_teardown(chanc_test_t *t);
void chanc__oom_check_ledger(const chanc_test_ledger_t *alive, bool clean);

#endif

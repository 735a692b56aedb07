/* chanc_run_group_tests: cmocka's group runner with the red path made
 * first-class.
 *
 * Every test is run through three trampolines. The setup one hands the
 * test its own initial state (or the group's) and runs its setup. The body
 * one runs the body and, when it returns, the test's teardown too: a leak
 * the ledger finds after a passing body then fails the *body* (cmocka
 * reports FAILED and lists it), not the teardown (ERROR, unlisted). When
 * the body fails, cmocka longjmps past all that and calls the teardown
 * trampoline, which runs the test's teardown knowing the body failed: the
 * fixture reports what it finds as notes under the real failure and
 * completes (scratch files removed, handles closed), never failing twice.
 *
 * It also selects tests by name (CHANC_TEST, CHANC_TEST_SKIP: cmocka's
 * filters, `*` and `?` wildcards), times setup, body and teardown
 * (printed with CHANC_TEST_TIMES=1) and writes the times into cmocka's
 * JUnit XML (CMOCKA_MESSAGE_OUTPUT=xml with CMOCKA_XML_FILE).
 *
 * Explored schedules: with CHANC_EXPLORE=K the body trampoline runs each
 * test K times, each with a fresh setup and teardown, under the seeds
 * 1..K (CHANC_SEED=n: that one alone); a failure names its seed and the
 * command that replays it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <cmocka.h>

#include "testing_internal.h"

/* libcmocka exports it (and formats failures with it) without declaring
 * it: text given here is kept and printed with the test's failure, after
 * cmocka's own message, up to about 1 KiB in all. */
void cm_print_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

typedef enum {
    PHASE_NONE,
    PHASE_SETUP,
    PHASE_BODY,
    PHASE_TEARDOWN_PASSED, /* the body returned */
    PHASE_TEARDOWN_FAILED, /* cmocka failed the body and jumped out */
} phase_t;

typedef struct unit {
    const struct CMUnitTest *test;
    double setup_ms, body_ms, teardown_ms;
    uint64_t drawn; /* choices its schedules drew */
    bool ran, torn_down;
} unit_t;

typedef struct runner {
    bool active;
    phase_t phase;
    unit_t *current;
    void *group_state;
    CMFixtureFunction group_setup;
    const char *file; /* where chanc_run_group_tests was called */
    int line;
    /* A chanc assertion failed in the current test: its context (the
     * transcript, the log) is shown already. */
    bool chanc_failed;
    /* What a teardown after a passing body found: failed once the
     * teardown has completed. */
    char *pending;
    /* Long notes, printed after cmocka's summary. */
    FILE *notes;
    char *notes_text;
    size_t notes_len;
    /* Explored schedules: the seeds each test runs under (0..0: FIFO
     * only) and the one running; the test called skip(). */
    uint64_t seed_first, seed_last, seed;
    bool skipped;
} runner_t;
static runner_t run;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- what the fixture and the assertions ask ------------------------------ */

void chanc__run_mark_failed(void) { run.chanc_failed = true; }

bool chanc__run_test_failed(void) {
    return run.chanc_failed || run.phase == PHASE_TEARDOWN_FAILED;
}

bool chanc__run_context_shown(void) { return run.chanc_failed; }

const char *chanc__run_test_name(void) {
    return run.current ? run.current->test->name : NULL;
}

void chanc__run_note(const char *text) {
    /* cm_print_error keeps the text with the failure, printed after
     * cmocka's own message; pieces stay inside its format buffer. */
    cm_print_error("\n");
    for (size_t len = strlen(text), i = 0; i < len; i += 200)
        cm_print_error("%.200s", text + i);
}

bool chanc__run_where(const char **file, int *line) {
    if (!run.active)
        return false;
    *file = run.file;
    *line = run.line;
    return true;
}

FILE *chanc__run_notes(void) {
    if (!run.active)
        return NULL;
    if (!run.notes)
        run.notes = open_memstream(&run.notes_text, &run.notes_len);
    return run.notes;
}

void chanc__run_teardown_failure(const char *name, char *message) {
    if (chanc__run_test_failed()) {
        char *note =
            chanc_strdupf("note: after the failure, teardown of %s found: %s", name, message);
        chanc__run_note(note ? note : message);
        free(note);
        free(message);
        return;
    }
    char *named = chanc_strdupf("%s: %s", name, message);
    if (named) {
        free(message);
        message = named;
    }
    if (run.active && run.phase == PHASE_TEARDOWN_PASSED) {
        if (run.pending) { /* two fixtures: keep both */
            char *both = chanc_strdupf("%s\n%s", run.pending, message);
            if (both) {
                free(message);
                message = both;
            }
            free(run.pending);
        }
        run.pending = message;
    } else {
        /* Outside chanc_run_group_tests (or in a test's own body): fail
         * here, naming the test rather than this file. Reporting may
         * longjmp: nothing of ours may be left on the heap. */
        static char text[2048], where[256];
        snprintf(text, sizeof text, "%s", message);
        snprintf(where, sizeof where, "teardown of %s", name);
        free(message);
        chanc__fail(where, 0, text);
    }
}

/* --- the trampolines ------------------------------------------------------ */

static void print_times(const unit_t *u) {
    if (!getenv("CHANC_TEST_TIMES") || !strcmp(getenv("CHANC_TEST_TIMES"), "0"))
        return;
    print_message("[   TIME   ] %s: setup %.3f ms, body %.3f ms, teardown %.3f ms", u->test->name,
                  u->setup_ms, u->body_ms, u->teardown_ms);
    if (run.seed_first)
        print_message("; schedules %llu to %llu drew %llu choices",
                      (unsigned long long)run.seed_first, (unsigned long long)run.seed,
                      (unsigned long long)(chanc__schedule_drawn() - u->drawn));
    print_message("\n");
}

static int run_group_setup(void **state) {
    int rc = run.group_setup(state);
    run.group_state = *state;
    return rc;
}

/* The test's setup for the schedule run.seed (times added up). */
static int setup_schedule(unit_t *u, void **state) {
    chanc__schedule_use(run.seed, true);
    run.phase = PHASE_SETUP;
    u->torn_down = false;
    *state = u->test->initial_state ? u->test->initial_state : run.group_state;
    double t0 = now_ms();
    int rc = u->test->setup_func ? u->test->setup_func(state) : 0;
    u->setup_ms += now_ms() - t0;
    run.phase = PHASE_BODY;
    return rc;
}

static int run_setup(void **state) {
    unit_t *u = *state;
    run.current = u;
    run.chanc_failed = false;
    run.skipped = false;
    u->ran = true;
    u->drawn = chanc__schedule_drawn();
    run.seed = run.seed_first;
    return setup_schedule(u, state);
}

void chanc_skip_at(const char *file, int line) {
    run.skipped = true;
    _skip(file, line);
}

/* The seed of a failed schedule and the command that replays it: a line
 * now, and again after the summary. */
static void note_seed(const unit_t *u) {
    if (!run.seed || run.skipped)
        return;
    char replay[700];
    chanc__schedule_replay(replay, sizeof replay, u->test->name, run.seed);
    char line[900];
    snprintf(line, sizeof line, "[  SEED    ] %s failed under schedule %llu%s; replay: %s\n",
             u->test->name, (unsigned long long)run.seed,
             run.seed_last > run.seed_first ? " (CHANC_EXPLORE)" : "", replay);
    print_message("%s", line);
    FILE *notes = chanc__run_notes();
    if (notes)
        fputs(line, notes);
}

static void run_body(void **state) {
    unit_t *u = run.current;
    int rc = 0;
    for (;;) {
        double t0 = now_ms();
        chanc__oom_arm(true);
        u->test->test_func(state);
        chanc__oom_arm(false);
        u->body_ms += now_ms() - t0;
        run.phase = PHASE_TEARDOWN_PASSED;
        u->torn_down = true;
        t0 = now_ms();
        if (u->test->teardown_func)
            rc = u->test->teardown_func(state);
        u->teardown_ms += now_ms() - t0;
        if (run.pending || rc != 0 || run.seed >= run.seed_last)
            break;
        run.seed++; /* the next schedule: a fresh setup */
        if (setup_schedule(u, state) != 0) {
            run.phase = PHASE_NONE;
            note_seed(u);
            static char text[256];
            snprintf(text, sizeof text, "the setup of %s failed under schedule %llu",
                     u->test->name, (unsigned long long)run.seed);
            u->torn_down = true; /* nothing to tear down */
            chanc__fail(run.file, run.line, text);
            return;
        }
    }
    print_times(u);
    run.phase = PHASE_NONE;
    if (run.pending || rc != 0)
        note_seed(u);
    if (run.pending) {
        static char text[2048];
        snprintf(text, sizeof text, "%s", run.pending);
        free(run.pending);
        run.pending = NULL;
        chanc__fail(run.file, run.line, text);
    }
    if (rc != 0) {
        static char text[256];
        snprintf(text, sizeof text, "the teardown of %s returned %d", u->test->name, rc);
        chanc__fail(run.file, run.line, text);
    }
}

static int run_teardown(void **state) {
    unit_t *u = run.current;
    chanc__oom_arm(false);
    if (u && !u->torn_down) { /* the body failed */
        u->torn_down = true;
        run.phase = PHASE_TEARDOWN_FAILED;
        double t0 = now_ms();
        if (u->test->teardown_func)
            u->test->teardown_func(state);
        u->teardown_ms += now_ms() - t0;
        print_times(u);
        note_seed(u);
    }
    run.phase = PHASE_NONE;
    run.current = NULL;
    return 0;
}

/* --- JUnit times ---------------------------------------------------------- */

/* cmocka writes <testcase name="x" time="…" > with the body's time only,
 * to the millisecond: rewrite each with the whole test's time and add
 * setup/body/teardown as properties (as pytest's record_property does). */
/* The JUnit file cmocka will write (CMOCKA_XML_FILE, "%g" the group's
 * name), or false when it writes none. */
static bool junit_path(const char *group, char *path, size_t size) {
    const char *out = getenv("CMOCKA_MESSAGE_OUTPUT");
    const char *file = getenv("CMOCKA_XML_FILE");
    if (!out || strcasecmp(out, "xml") != 0 || !file || !*file)
        return false;
    size_t k = 0;
    for (const char *f = file; *f; f++) {
        int n = f[0] == '%' && f[1] == 'g' ? snprintf(path + k, size - k, "%s", group)
                                           : snprintf(path + k, size - k, "%c", *f);
        if (n < 0 || (size_t)n >= size - k)
            return false;
        k += (size_t)n;
        f += f[0] == '%' && f[1] == 'g';
    }
    return true;
}

static void junit_add_times(const char *path, const unit_t *units, size_t n) {
    FILE *in = fopen(path, "r");
    if (!in)
        return;
    char *xml = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&xml, &len);
    char chunk[4096];
    size_t got;
    while (mem && (got = fread(chunk, 1, sizeof chunk, in)) > 0)
        fwrite(chunk, 1, got, mem);
    fclose(in);
    if (!mem || fclose(mem) != 0) {
        free(xml);
        return;
    }
    char *tmp_path = chanc_strdupf("%s.tmp", path);
    FILE *w = tmp_path ? fopen(tmp_path, "w") : NULL;
    if (!w) {
        free(xml);
        free(tmp_path);
        return;
    }
    const char *p = xml;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += units[i].setup_ms + units[i].body_ms + units[i].teardown_ms;
    /* <testsuite name="…" time="…": the suite's time, whole tests too. */
    const char *suite = strstr(p, "<testsuite ");
    const char *stime = suite ? strstr(suite, " time=\"") : NULL;
    const char *send = stime ? strchr(stime + 7, '"') : NULL;
    if (send) {
        fwrite(p, 1, (size_t)(stime - p), w);
        fprintf(w, " time=\"%.6f", total / 1e3);
        p = send;
    }
    for (size_t i = 0; i < n; i++) {
        if (!units[i].ran)
            continue;
        char open[300];
        snprintf(open, sizeof open, "<testcase name=\"%s\" time=\"", units[i].test->name);
        const char *at = strstr(p, open);
        const char *end = at ? strchr(at + strlen(open), '"') : NULL;
        const char *close = end ? strchr(end, '>') : NULL;
        if (!close)
            continue;
        const unit_t *u = &units[i];
        fwrite(p, 1, (size_t)(at - p), w);
        fprintf(w, "%s%.6f\" >\n      <properties>\n", open,
                (u->setup_ms + u->body_ms + u->teardown_ms) / 1e3);
        fprintf(w, "        <property name=\"setup_time\" value=\"%.6f\"/>\n", u->setup_ms / 1e3);
        fprintf(w, "        <property name=\"body_time\" value=\"%.6f\"/>\n", u->body_ms / 1e3);
        fprintf(w, "        <property name=\"teardown_time\" value=\"%.6f\"/>\n",
                u->teardown_ms / 1e3);
        fprintf(w, "      </properties>");
        p = close + 1;
    }
    fputs(p, w);
    if (fclose(w) == 0)
        rename(tmp_path, path);
    else
        remove(tmp_path);
    free(tmp_path);
    free(xml);
}

/* --- the runner ----------------------------------------------------------- */

int chanc_run_group_tests_at(const char *group, const struct CMUnitTest *tests, size_t n,
                             CMFixtureFunction group_setup, CMFixtureFunction group_teardown,
                             const char *file, int line) {
    int oom_rc;
    if (chanc__oom_run(group, tests, n, &oom_rc))
        return oom_rc;
    const char *only = getenv("CHANC_TEST"), *skip = getenv("CHANC_TEST_SKIP");
    if (only && *only)
        cmocka_set_test_filter(only);
    if (skip && *skip)
        cmocka_set_skip_filter(skip);
    unit_t *units = calloc(n ? n : 1, sizeof *units);
    struct CMUnitTest *wrapped = calloc(n ? n : 1, sizeof *wrapped);
    if (!units || !wrapped) {
        free(units);
        free(wrapped);
        fprintf(stderr, "chanc_run_group_tests: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        units[i].test = &tests[i];
        wrapped[i] = (struct CMUnitTest){tests[i].name, run_body, run_setup, run_teardown, &units[i]};
    }
    char xml_path[1024];
    bool xml = junit_path(group, xml_path, sizeof xml_path);
    if (xml)
        remove(xml_path); /* cmocka refuses to overwrite: this run's file */
    run = (runner_t){.active = true, .group_setup = group_setup, .file = file, .line = line};
    chanc__schedule_plan(&run.seed_first, &run.seed_last);
    if (run.seed_last > run.seed_first)
        print_message("[ EXPLORE  ] each test under schedules %llu to %llu (CHANC_EXPLORE)\n",
                      (unsigned long long)run.seed_first, (unsigned long long)run.seed_last);
    int rc = _cmocka_run_group_tests(group, wrapped, n, group_setup ? run_group_setup : NULL,
                                     group_teardown);
    if (run.notes && fclose(run.notes) == 0 && run.notes_len) {
        fflush(stdout);
        fprintf(stderr, "%s", run.notes_text);
    }
    free(run.notes_text);
    free(run.pending);
    if (xml)
        junit_add_times(xml_path, units, n);
    run = (runner_t){0};
    chanc__schedule_use(0, false);
    free(units);
    free(wrapped);
    return chanc__oom_child_result(rc);
}

/* The allocation-failure sweep (CHANC_OOM=1): every test of the program is
 * run again and again, each run in a fresh process (this program
 * re-executed with CHANC_OOM_AT=N and CHANC_TEST=<the test>), with the
 * N-th allocation of its body failing: the framework's own (through
 * chanc_ledger_set_alloc_hook) and jansson's (the ledger's counting
 * allocator: the consumer's, the framework's and the testing library's
 * JSON), on any thread, for N = 1, 2, … until a run completes with no
 * failure injected. The body's assertions may fail (it diverged); what
 * every run must still do:
 *   - not crash (a signal, or a fault cmocka caught), not hang (killed
 *     after CHANC_OOM_TIMEOUT seconds, default 60);
 *   - leave nothing alive by the leak ledger (connections, envelopes,
 *     frame buffers; jansson too unless the failed body held values), and
 *     shut down cleanly;
 *   - give each client a documented outcome: every frame a JSON object
 *     with an "action", every close or refusal a documented code
 *     (docs/protocol.md), and, when the body diverged after an allocation
 *     the app made, something a client can see: an error frame, a close
 *     other than 1000 or a refused handshake — never a silent loss;
 *   - keep serving: the probe (chanc_test_set_oom_probe) does a round trip
 *     on a fresh communicator with nothing failing.
 * The last run (nothing injected) must pass as usual. Allocations of
 * setup and teardown, of libuv, SQLite, libwebsockets and libc are not
 * failed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fnmatch.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "chanc/ledger.h"
#include "communicator_internal.h"
#include "testing_internal.h"

/* --- the child: one run with allocation N failing --------------------------- */

static struct {
    bool child;               /* CHANC_OOM_AT set */
    uint64_t at;              /* the allocation to fail */
    _Atomic bool armed;       /* in a test's body */
    _Atomic uint64_t count;   /* allocations counted so far */
    _Atomic bool injected;    /* allocation `at` was failed */
    bool injected_in_app;     /* ... by the app (not the test's own code) */
    size_t injected_size;
    const char *injected_kind;
    char violations[2048];
    size_t violations_len;
    bool (*probe)(chanc_test_t *, void *);
    void *probe_ud;
} oom;

/* The test's thread, and how deep it is in the app (the inproc transport
 * marks where it runs it): an allocation on another thread, or inside,
 * is the app's. */
static _Thread_local int app_depth, harness_depth;
static _Thread_local bool harness_thread;

void chanc__oom_app_enter(void) { app_depth++; }
void chanc__oom_app_leave(void) { app_depth--; }
void chanc__oom_harness_enter(void) { harness_depth++; }
void chanc__oom_harness_leave(void) { harness_depth--; }

/* jansson 2.14's decoder writes past its buffer when an allocation fails
 * while it reads a string (valgrind: an invalid write under json_loadb,
 * then "free(): invalid next size"), so allocations inside json_load*
 * are neither failed nor counted: a sweep would only find that bug. */
static bool in_decoder(void) {
    void *frames[24];
    int n = backtrace(frames, 24);
    for (int i = 2; i < n; i++) {
        Dl_info info;
        if (dladdr(frames[i], &info) && info.dli_sname &&
            !strncmp(info.dli_sname, "json_load", 9))
            return true;
    }
    return false;
}

static bool fail_now(size_t size, const char *kind) {
    if (!atomic_load_explicit(&oom.armed, memory_order_acquire))
        return false;
    if (kind[0] == 'j' && in_decoder())
        return false;
    if (atomic_fetch_add(&oom.count, 1) + 1 != oom.at)
        return false;
    oom.injected_in_app = chanc__oom_in_app();
    oom.injected_size = size;
    oom.injected_kind = kind;
    atomic_store(&oom.injected, true);
    if (getenv("CHANC_OOM_BACKTRACE")) { /* addresses: addr2line -e <program> … */
        void *frames[40];
        backtrace_symbols_fd(frames, backtrace(frames, 40), 2);
    }
    return true;
}

bool chanc__oom_fail_json(size_t size) { return oom.child && fail_now(size, "jansson"); }

static bool framework_hook(size_t size, void *ud) {
    (void)ud;
    return fail_now(size, "framework");
}

static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static struct sigaction saved[sizeof fatal / sizeof *fatal]; /* cmocka's */

/* A fault ends the run (a crash), unless it is a cmocka assertion of the
 * test's own given a NULL the diverged test did not expect
 * (assert_string_equal(NULL, …) faults in cmocka 1.1): that is the test
 * failing, as without the sweep, and cmocka's handler reports it. */
static void on_fault(int sig) {
    void *frames[8];
    int n = backtrace(frames, 8);
    for (int i = 1; i < n; i++) {
        Dl_info info;
        if (!dladdr(frames[i], &info) || !info.dli_sname)
            continue;
        if (!strncmp(info.dli_sname, "_assert_", 8) || !strncmp(info.dli_sname, "_fail", 5))
            for (size_t k = 0; k < sizeof fatal / sizeof *fatal; k++)
                if (fatal[k] == sig && saved[k].sa_handler != SIG_DFL &&
                    saved[k].sa_handler != SIG_IGN) {
                    static const char note[] = "oom: a cmocka assertion of the test faulted on a "
                                               "NULL: the test fails\n";
                    ssize_t w = write(1, note, sizeof note - 1);
                    (void)w;
                    saved[k].sa_handler(sig);
                    return;
                }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

bool chanc__oom_in_app(void) {
    return oom.child && atomic_load_explicit(&oom.armed, memory_order_relaxed) &&
           (!harness_thread || app_depth > 0) && !harness_depth;
}

void chanc__oom_arm(bool on) {
    if (!oom.child)
        return;
    harness_thread = true;
    if (on) /* a fault ends the run, as it would a server (cmocka would catch it) */
        for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) {
            struct sigaction sa = {.sa_handler = on_fault};
            sigaction(fatal[i], &sa, &saved[i]);
        }
    atomic_store_explicit(&oom.armed, on, memory_order_release);
}

void chanc_test_set_oom_probe(bool (*probe)(chanc_test_t *t, void *ud), void *ud) {
    oom.probe = probe;
    oom.probe_ud = ud;
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...) {
    size_t room = sizeof oom.violations - oom.violations_len;
    if (room < 2)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(oom.violations + oom.violations_len, room - 1, fmt, ap);
    va_end(ap);
    if (n > 0)
        oom.violations_len += (size_t)n < room - 1 ? (size_t)n : room - 2;
    oom.violations[oom.violations_len++] = '\n';
    oom.violations[oom.violations_len] = '\0';
}

/* docs/protocol.md, "Close codes"; 4000-4999 are the application's own
 * (RFC 6455 §7.4.2: private use), documented by it. */
static bool documented_close(int code) {
    static const int codes[] = {1000, 1001, 1007, 1008, 1009, 1011};
    if (code >= 4000 && code <= 4999)
        return true;
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (codes[i] == code)
            return true;
    return false;
}

/* What the clients saw, before the fixture closes them: documented, and
 * visible when the app failed an allocation and the test diverged. */
static void check_outcomes(chanc_test_t *t) {
    bool visible = false;
    for (chanc_communicator_t *c = t->priv->comms; c; c = chanc__communicator_next(c)) {
        const char *path = chanc_communicator_path(c);
        int code = chanc_communicator_close_code(c);
        if (code && !documented_close(code))
            violation("%s: closed or refused with %d, not a documented close code", path, code);
        if (code && code != 1000)
            visible = true;
        const json_t *tr = chanc_communicator_transcript(c);
        size_t i;
        json_t *e;
        json_array_foreach(tr, i, e) {
            if (strcmp(json_string_value(json_object_get(e, "dir")) ?: "", "recv") != 0)
                continue;
            const char *text = json_string_value(json_object_get(e, "frame"));
            json_t *frame = text ? json_loads(text, 0, NULL) : NULL;
            const char *action = json_string_value(json_object_get(frame, "action"));
            if (text && !frame)
                continue; /* jansson itself out of memory here: not the app's */
            if (!action)
                violation("%s: a frame without an \"action\": %.200s", path, text ? text : "?");
            else if (!strcmp(action, "error"))
                visible = true;
            json_decref(frame);
        }
    }
    if (oom.injected_in_app && chanc__run_test_failed() && !visible)
        violation("the test diverged after the app's failed allocation, but no client saw it: "
                  "no error frame, no close code other than 1000, no refused handshake");
}

static void probe_failed(const char *file, int line, const char *message, void *ud) {
    (void)ud;
    violation("the probe failed at %s:%d: %.300s", file, line, message);
}

void chanc__oom_before_teardown(chanc_test_t *t) {
    if (!oom.child || !atomic_load(&oom.injected) || !t->app)
        return;
    check_outcomes(t);
    if (!oom.probe)
        return;
    if (chanc_app_run_until_settled(t->app, CHANC__HANG_MS) != 0) {
        violation("the app did not settle after the failure");
        return;
    }
    /* A failed probe reports through the fail handler: record it instead
     * of failing (and jumping out of) the teardown. */
    chanc_testing_set_fail_handler(probe_failed, NULL);
    if (!oom.probe(t, oom.probe_ud))
        violation("the app stopped serving: the probe's round trip on a new connection failed");
    chanc_testing_set_fail_handler(NULL, NULL);
}

void chanc__oom_check_ledger(const chanc_test_ledger_t *alive, bool clean) {
    if (!oom.child || !atomic_load(&oom.injected))
        return;
    char *leaks = chanc__ledger_describe(alive);
    if (leaks)
        violation("%s", leaks);
    free(leaks);
    if (!clean)
        violation("the fixture did not shut down cleanly (the app did not settle, or a libuv "
                  "handle was left open)");
}

/* The child's exit status: 0 a run with the failure injected and every
 * promise kept; 3 the test completed with nothing injected (the sweep's
 * last run), passing, 4 failing; 1 a promise broken. */
static int child_result(int failed) {
    uint64_t made = atomic_load(&oom.count);
    if (!atomic_load(&oom.injected)) {
        printf("oom: allocation %llu not reached: the body makes %llu\n",
               (unsigned long long)oom.at, (unsigned long long)made);
        if (failed)
            printf("oom: violation: the test fails with no failure injected\n");
        return failed ? 4 : 3;
    }
    printf("oom: allocation %llu failed (%s, %zu bytes, %s)\n", (unsigned long long)oom.at,
           oom.injected_kind, oom.injected_size, oom.injected_in_app ? "the app's" : "the test's");
    if (oom.violations_len) {
        for (char *line = strtok(oom.violations, "\n"); line; line = strtok(NULL, "\n"))
            printf("oom: violation: %s\n", line);
        return 1;
    }
    return 0;
}

/* --- the parent: the sweep ------------------------------------------------------ */

typedef struct run {
    pid_t pid;
    uint64_t n;
    int fd; /* memfd: the child's output */
} run_t;

static char **self_argv(void) {
    static char buf[8192];
    static char *argv[64];
    FILE *f = fopen("/proc/self/cmdline", "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    size_t k = 0;
    for (size_t i = 0; i < len && k < 63; i += strlen(buf + i) + 1)
        argv[k++] = buf + i;
    argv[k] = NULL;
    return k ? argv : NULL;
}

static bool spawn(run_t *r, const char *name, uint64_t n, char **argv, unsigned timeout_s) {
    r->n = n;
    r->fd = memfd_create("chanc-oom", MFD_CLOEXEC); /* dup2 onto 1 and 2 keeps those */
    if (r->fd < 0)
        return false;
    fflush(NULL);
    r->pid = fork();
    if (r->pid < 0) {
        close(r->fd);
        return false;
    }
    if (r->pid == 0) {
        char at[32];
        snprintf(at, sizeof at, "%llu", (unsigned long long)n);
        setenv("CHANC_OOM_AT", at, 1);
        setenv("CHANC_TEST", name, 1);
        unsetenv("CHANC_TEST_SKIP");
        unsetenv("CHANC_OOM");
        unsetenv("CHANC_TRANSCRIPT_DIR"); /* one file a run: thousands */
        unsetenv("CMOCKA_XML_FILE");
        setenv("CMOCKA_MESSAGE_OUTPUT", "stdout", 1);
        dup2(r->fd, 1);
        dup2(r->fd, 2);
        alarm(timeout_s);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    return true;
}

static char *output_of(int fd) {
    off_t len = lseek(fd, 0, SEEK_END);
    char *s = malloc(len > 0 ? (size_t)len + 1 : 1);
    if (!s)
        return NULL;
    ssize_t got = len > 0 ? pread(fd, s, (size_t)len, 0) : 0;
    s[got > 0 ? got : 0] = '\0';
    return s;
}

/* 3: not reached (the end); 4: the same, failing (printed); 0: kept its
 * promises; 1: printed what broke. */
static int judge(const run_t *r, int status, const char *name, const char *prog) {
    char *out = output_of(r->fd);
    close(r->fd);
    const char *what = NULL;
    char buf[96];
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        what = sig == SIGALRM ? "hang (killed by the timeout)" : buf;
        snprintf(buf, sizeof buf, "crash (%s)", strsignal(sig));
    } else if (out && strstr(out, "Test failed with exception") &&
               !strstr(out, "oom: a cmocka assertion of the test faulted")) {
        what = "crash (a fault, caught by cmocka)";
    } else if (WEXITSTATUS(status) == 3) {
        free(out);
        return 3;
    } else if (WEXITSTATUS(status) == 4) {
        what = "the test fails with no failure injected (the sweep's last run)";
    } else if (WEXITSTATUS(status) != 0) {
        what = "a promise broken";
    }
    if (!what) {
        free(out);
        return 0;
    }
    printf("oom: %s: allocation %llu: %s\n", name, (unsigned long long)r->n, what);
    printf("oom: replay: CHANC_OOM_AT=%llu CHANC_TEST='%s' %s\n", (unsigned long long)r->n, name,
           prog);
    const char *quiet = getenv("CHANC_OOM_QUIET");
    if (out && (!quiet || !strcmp(quiet, "0"))) {
        /* The child's own report: its violations and the test's failure. */
        printf("---- output of that run ----\n%.6000s%s---- end ----\n", out,
               strlen(out) > 6000 ? "\n[…]\n" : "");
    }
    free(out);
    return WIFEXITED(status) && WEXITSTATUS(status) == 4 ? 4 : 1;
}

static unsigned env_uint(const char *name, unsigned dflt) {
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sweep one test: runs N = 1.. in parallel batches of `jobs`; returns the
 * number of broken runs, *points the allocations swept. */
static int sweep_test(const char *name, char **argv, unsigned jobs, unsigned timeout_s,
                      uint64_t *points) {
    run_t *runs = calloc(jobs, sizeof *runs);
    if (!runs)
        return 1;
    int broken = 0;
    uint64_t next = 1, end = 0; /* end: the first N not reached */
    unsigned active = 0;
    for (;;) {
        while (active < jobs && (!end || next < end)) {
            unsigned slot = 0;
            while (runs[slot].pid)
                slot++;
            if (!spawn(&runs[slot], name, next, argv, timeout_s)) {
                printf("oom: %s: cannot start a run: %s\n", name, strerror(errno));
                free(runs);
                return broken + 1;
            }
            next++;
            active++;
        }
        if (!active)
            break;
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0)
            break;
        for (unsigned i = 0; i < jobs; i++) {
            if (runs[i].pid != pid)
                continue;
            runs[i].pid = 0;
            active--;
            if (end && runs[i].n > end) { /* past the end: nothing to learn */
                close(runs[i].fd);
                break;
            }
            int v = judge(&runs[i], status, name, argv[0]);
            if (v >= 3 && (!end || runs[i].n < end))
                end = runs[i].n;
            broken += v == 1 || v == 4;
            break;
        }
    }
    free(runs);
    *points = end ? end - 1 : 0;
    return broken;
}

static int sweep(const char *group, const struct CMUnitTest *tests, size_t n) {
    char **argv = self_argv();
    if (!argv) {
        printf("oom: cannot read /proc/self/cmdline\n");
        return 1;
    }
    const char *only = getenv("CHANC_TEST"), *skip = getenv("CHANC_TEST_SKIP");
    unsigned jobs = env_uint("CHANC_OOM_JOBS", 1), timeout_s = env_uint("CHANC_OOM_TIMEOUT", 60);
    double t0 = now_s();
    int broken_tests = 0;
    uint64_t total = 0;
    size_t swept = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = tests[i].name;
        if ((only && *only && fnmatch(only, name, 0) != 0) ||
            (skip && *skip && fnmatch(skip, name, 0) == 0))
            continue;
        double t1 = now_s();
        uint64_t points = 0;
        int broken = sweep_test(name, argv, jobs, timeout_s, &points);
        printf("[   OOM    ] %s: %llu allocation(s) failed in turn, %d broken, %.1f s\n", name,
               (unsigned long long)points, broken, now_s() - t1);
        fflush(stdout);
        total += points;
        swept++;
        broken_tests += broken > 0;
    }
    printf("oom: %s: %zu test(s), %llu allocation point(s) swept, %d test(s) broken, %.1f s\n",
           group, swept, (unsigned long long)total, broken_tests, now_s() - t0);
    return broken_tests;
}

bool chanc__oom_run(const char *group, const struct CMUnitTest *tests, size_t n, int *rc) {
    const char *mode = getenv("CHANC_OOM"), *at = getenv("CHANC_OOM_AT");
    if (at && *at) {
        oom.child = true;
        oom.at = strtoull(at, NULL, 10);
        chanc_ledger_set_alloc_hook(framework_hook, NULL);
        return false; /* run the test; chanc__oom_child_result gives the status */
    }
    if (mode && *mode && strcmp(mode, "0") != 0) {
        *rc = sweep(group, tests, n);
        return true;
    }
    return false;
}

int chanc__oom_child_result(int failed) {
    if (!oom.child)
        return failed;
    chanc_ledger_set_alloc_hook(NULL, NULL);
    fflush(stdout);
    return child_result(failed);
}

/* Assertions: each failure message says what was expected, what arrived,
 * and shows the communicator's transcript, waiting frames and log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chanc/json.h"
#include "testing_internal.h"

/* libcmocka exports it without declaring it (see runner.c). */
void cm_print_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void default_fail(const char *file, int line, const char *message, void *ud) {
    (void)ud;
    chanc__run_mark_failed();
    /* The whole message goes to stderr at once: cmocka keeps what it
     * prints with a failure to about 1 KiB, too little for a transcript.
     * cmocka formats each print_error into a 1 KiB buffer: hand it the
     * message in pieces so long transcripts arrive whole. */
    const size_t piece = 900;
    bool one_line = !strchr(message, '\n') || !strchr(message, '\n')[1];
    for (const char *p = one_line ? "" : message; *p;) {
        size_t n = strcspn(p, "\n");
        size_t take = n > piece ? piece : n;
        print_error("%.*s%s", (int)take, p, take == n ? "\n" : "");
        p += take;
        if (take == n && *p == '\n')
            p++;
    }
    /* The headline (without its location) heads cmocka's own report:
     * "[  ERROR   ] --- JSON does not match". */
    const char *head = message;
    char loc[32];
    snprintf(loc, sizeof loc, ":%d: ", line);
    const char *after = strstr(message, loc);
    if (after && (size_t)(after - message) < 512 && !memchr(message, '\n', (size_t)(after - message)))
        head = after + strlen(loc);
    cm_print_error("%.*s\n", (int)(strcspn(head, "\n") < 200 ? strcspn(head, "\n") : 200), head);
    _fail(file, line);
}

static chanc_fail_fn fail_fn = default_fail;
static void *fail_ud;

void chanc_testing_set_fail_handler(chanc_fail_fn fn, void *ud) {
    fail_fn = fn ? fn : default_fail;
    fail_ud = fn ? ud : NULL;
}

void chanc__fail(const char *file, int line, const char *message) {
    fail_fn(file, line, message, fail_ud);
}

/* The last failure's text. Reporting may longjmp (cmocka's _fail), so it
 * is kept here, reachable, rather than on the stack; callers free their
 * own temporaries between preparing the text and raising it. */
static char *failure_text;

static void free_failure_text(void) {
    free(failure_text);
    failure_text = NULL;
}

/* Format the headline, then the context of communicator c (may be NULL). */
static void prepare_failure(chanc_communicator_t *c, const char *file, int line, const char *fmt,
                            va_list ap) {
    static bool registered;
    if (!registered) {
        registered = true;
        atexit(free_failure_text);
    }
    free_failure_text();
    size_t len = 0;
    FILE *out = open_memstream(&failure_text, &len);
    if (!out)
        return;
    fprintf(out, "%s:%d: ", file, line);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    if (c) {
        chanc_communicator_print_transcript(c, out);
        chanc__test_print_log(chanc__communicator_test(c), out);
    } else {
        chanc__test_print_all(out); /* no communicator named: every one */
    }
    fclose(out);
}

static bool raise_failure(const char *file, int line) {
    chanc__fail(file, line, failure_text ? failure_text : "assertion failed (out of memory)");
    return false;
}

void chanc__failure_prepare(chanc_communicator_t *c, const char *file, int line, const char *fmt,
                            ...) {
    va_list ap;
    va_start(ap, fmt);
    prepare_failure(c, file, line, fmt, ap);
    va_end(ap);
}

bool chanc__failure_raise(const char *file, int line) { return raise_failure(file, line); }

bool chanc__report_failure(chanc_communicator_t *c, const char *file, int line, const char *fmt,
                           ...) {
    va_list ap;
    va_start(ap, fmt);
    prepare_failure(c, file, line, fmt, ap);
    va_end(ap);
    return raise_failure(file, line);
}

/* Next frame that is not a completion; new reference or NULL. */
static json_t *next_frame(chanc_communicator_t *c) {
    for (;;) {
        chanc__settle(c, CHANC__HANG_MS);
        const chanc_buf_t *b = chanc__communicator_peek(c);
        if (!b)
            return NULL;
        bool completion = b->flags & CHANC_BUF_COMPLETION;
        json_t *v = chanc_communicator_receive_json(c, CHANC__HANG_MS);
        if (!completion)
            return v;
        json_decref(v);
    }
}

bool chanc_assert_connect_at(chanc_communicator_t *c, const char *file, int line) {
    if (chanc_communicator_connect(c, CHANC__HANG_MS))
        return true;
    return chanc__report_failure(c, file, line, "expected %s to connect, but it was refused with code %d (%s)",
                chanc_communicator_path(c), chanc_communicator_close_code(c),
                chanc_communicator_close_reason(c));
}

/* value against pattern (stolen) as chanc_json_match; on a mismatch the
 * headline, both sides and where they differ. owned (may be NULL) is
 * released before a failure is raised. */
static bool compare_or_fail(const json_t *value, json_t *pattern, json_t *owned,
                            const char *headline, chanc_communicator_t *c, const char *file,
                            int line) {
    char *why = chanc_json_mismatch(value, pattern);
    bool ok = why == NULL;
    if (!ok) {
        char *got = chanc_json_dump(value), *want = chanc_json_dump(pattern);
        chanc__failure_prepare(c, file, line, "%s\n  expected: %s\n  received: %s\n  %s", headline,
                               want, got, why);
        free(got);
        free(want);
    }
    free(why);
    json_decref(pattern);
    json_decref(owned);
    return ok || raise_failure(file, line);
}

bool chanc_assert_auth_status_at(chanc_communicator_t *c, int status, const char *file, int line) {
    chanc__settle(c, CHANC__HANG_MS);
    const chanc_buf_t *b = chanc__communicator_peek(c);
    if (!b)
        return chanc__report_failure(c, file, line,
                    "expected an authentication frame with status_code %d, but nothing arrived",
                    status);
    json_t *frame = chanc_communicator_receive_json(c, CHANC__HANG_MS);
    json_t *pattern = json_pack("{s:s,s:{s:i}}", "action", "authentication", "payload",
                                "status_code", status);
    return compare_or_fail(frame, pattern, frame, "authentication status", c, file, line);
}

bool chanc_assert_closed_at(chanc_communicator_t *c, int code, const char *file, int line) {
    chanc__settle(c, CHANC__HANG_MS);
    if (!chanc_communicator_closed(c))
        return chanc__report_failure(c, file, line, "expected the connection to be closed with code %d, but it is open",
                    code);
    if (chanc_communicator_close_code(c) != code)
        return chanc__report_failure(c, file, line, "expected close code %d, got %d (reason \"%s\")", code,
                    chanc_communicator_close_code(c), chanc_communicator_close_reason(c));
    return true;
}

bool chanc_assert_open_at(chanc_communicator_t *c, const char *file, int line) {
    chanc__settle(c, CHANC__HANG_MS);
    if (!chanc_communicator_closed(c))
        return true;
    return chanc__report_failure(c, file, line, "expected the connection to be open, but it was "
                                 "closed with code %d (reason \"%s\")",
                                 chanc_communicator_close_code(c), chanc_communicator_close_reason(c));
}

bool chanc_assert_receive_nothing_at(chanc_communicator_t *c, const char *file, int line) {
    if (chanc_communicator_receive_nothing(c, CHANC__HANG_MS))
        return true;
    return chanc__report_failure(c, file, line, "expected nothing, but %zu frame(s) are waiting "
                                 "(completions included)", chanc_communicator_pending(c, 0));
}

/* owned (may be NULL) is released before a failure is raised. */
static bool match_or_fail(const json_t *value, const char *pattern_text, json_t *owned,
                          chanc_communicator_t *c, const char *file, int line) {
    json_error_t err;
    json_t *pattern = json_loads(pattern_text, JSON_DECODE_ANY, &err);
    if (!pattern) {
        chanc__failure_prepare(c, file, line, "bad pattern %s: %s", pattern_text, err.text);
        json_decref(owned);
        return raise_failure(file, line);
    }
    return compare_or_fail(value, pattern, owned, "JSON does not match", c, file, line);
}

bool chanc_assert_json_match_at(const json_t *value, const char *pattern,
                                chanc_communicator_t *context, const char *file, int line) {
    return match_or_fail(value, pattern, NULL, context, file, line);
}

bool chanc_assert_receive_match_at(chanc_communicator_t *c, const char *pattern, const char *file,
                                   int line) {
    json_t *frame = next_frame(c);
    if (!frame)
        return chanc__report_failure(c, file, line, "expected a frame matching %s, but nothing arrived", pattern);
    return match_or_fail(frame, pattern, frame, c, file, line);
}

bool chanc_assert_receive_all_match_at(chanc_communicator_t *c, const char *pattern,
                                       const char *file, int line) {
    json_t *all = chanc_communicator_receive_all_json(c, CHANC__HANG_MS);
    return match_or_fail(all, pattern, all, c, file, line);
}
